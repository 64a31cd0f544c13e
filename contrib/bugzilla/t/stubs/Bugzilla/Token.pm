# STUB, for compile checks only (t/compile.sh): stands for Bugzilla::Token, which exports
# issue_hash_token(\@data) (a CSRF token for the logged-in user and @data; also a
# template function) and check_hash_token($token, \@data) (shows Bugzilla's "suspicious
# action" page and exits unless the token matches).
package Bugzilla::Token;

use strict;
use warnings;

use parent qw(Exporter);
our @EXPORT = qw(issue_hash_token check_hash_token);

sub issue_hash_token { die "stub issue_hash_token called\n" }
sub check_hash_token { die "stub check_hash_token called\n" }

1;
