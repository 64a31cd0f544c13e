# STUB, for compile checks only (t/compile.sh): stands for Bugzilla::Bug. The extension
# uses Bugzilla::Bug->check($id) (the bug, or Bugzilla's error page if it does not exist
# or the user may not see it) and, on the objects Bugzilla hands it, ->id, ->attachments
# (Bugzilla::Attachment: id, description, attacher->login, ispatch, isobsolete, flags
# (Bugzilla::Flag: name, status, setter, requestee)).
package Bugzilla::Bug;

use strict;
use warnings;

sub check { die "stub Bugzilla::Bug->check called\n" }

1;
