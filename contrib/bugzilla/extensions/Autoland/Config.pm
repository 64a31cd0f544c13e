# Autoland extension for Bugzilla: declares the extension to checksetup.pl.
#
# Having this file also makes Bugzilla map Bugzilla::Extension::Autoland::<Module>
# to extensions/Autoland/lib/<Module>.pm (used for Params.pm and Client.pm).

package Bugzilla::Extension::Autoland;

use 5.10.1;
use strict;
use warnings;

use constant NAME => 'Autoland';

# Everything the extension uses ships with Perl itself (HTTP::Tiny, JSON::PP), so
# checksetup.pl has nothing to ask for. https Autoland URLs need IO::Socket::SSL,
# which every Bugzilla that serves https already has (see README.md).
use constant REQUIRED_MODULES => [];
use constant OPTIONAL_MODULES => [];

__PACKAGE__->NAME;
