# STUB, for compile checks only (t/compile.sh): stands for Bugzilla::Constants, which
# exports all its constants. The extension uses LOGIN_REQUIRED (argument of
# Bugzilla->login: show the login form unless logged in); 2 is its real value.
package Bugzilla::Constants;

use strict;
use warnings;

use parent qw(Exporter);
our @EXPORT = qw(LOGIN_REQUIRED);

use constant LOGIN_REQUIRED => 2;

1;
