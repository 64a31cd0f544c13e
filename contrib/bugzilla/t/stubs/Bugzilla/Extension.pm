# STUB, for compile checks only (t/compile.sh): stands for Bugzilla::Extension, the base
# class of every extension's Extension.pm.
#
# For an extension that has a Config.pm, the real Bugzilla::Extension also makes
# "use Bugzilla::Extension::<Name>::<Module>" load extensions/<Name>/lib/<Module>.pm
# (an @INC hook). This stub installs the same mapping, for the extensions/ directory
# next to t/ (or $BZ_EXTENSIONS_DIR), so that Extension.pm and Params.pm compile.
package Bugzilla::Extension;

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Spec;

our $EXTENSIONS_DIR = $ENV{BZ_EXTENSIONS_DIR}
    || File::Spec->catdir(dirname(File::Spec->rel2abs(__FILE__)), ('..') x 3, 'extensions');

unshift(@INC, sub {
    my (undef, $file) = @_;
    my ($name, $module) = $file =~ m{^Bugzilla/Extension/(\w+)/(.+\.pm)\z} or return;
    my $path = File::Spec->catfile($EXTENSIONS_DIR, $name, 'lib', split(m{/}, $module));
    open(my $fh, '<', $path) or return;
    $INC{$file} = $path;    # so that messages name the real file
    return $fh;
});

1;
