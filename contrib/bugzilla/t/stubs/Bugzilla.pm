# STUB, for compile checks only (t/compile.sh): stands for Bugzilla.pm, the "Bugzilla"
# class of a real Bugzilla. The extension uses Bugzilla->user (the logged-in user),
# Bugzilla->login(LOGIN_REQUIRED), Bugzilla->params (the parameters hash) and
# Bugzilla->cgi (the Bugzilla::CGI object of the request).
package Bugzilla;

use strict;
use warnings;

sub _stub { die "stub $_[0] called: the real one exists only inside Bugzilla\n" }

sub user   { _stub('Bugzilla->user') }
sub login  { _stub('Bugzilla->login') }
sub params { _stub('Bugzilla->params') }
sub cgi    { _stub('Bugzilla->cgi') }

1;
