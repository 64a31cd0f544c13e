//! Sample patches and helpers shared by the tests of the files of `patch/`.

use super::error::PatchError;
use super::parser::{Limits, ParsedPatch, parse};

pub(super) const FORMAT_PATCH: &str = concat!(
    r#"From 8f2a4c1e9b7d3a5f6e0c2b4d8a1f3e5c7b9d0a2e Mon Sep 17 00:00:00 2001
From: Jane Doe <jane@example.com>
Date: Tue, 14 Nov 2023 22:13:20 +0100
Subject: [PATCH 1/2] landing: retry pushes when the remote rejects them
 because of a race
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit

When two landings race, the second push is rejected. Retry it once
after rebasing instead of failing the whole request.
---
 README.md   | 1 +
 src/land.rs | 4 +++-
 2 files changed, 4 insertions(+), 1 deletion(-)

diff --git a/README.md b/README.md
index 3b18e51..a042389 100644
--- a/README.md
+++ b/README.md
@@ -1,2 +1,3 @@
 # Autoland
 Lands patches.
+Retries racing pushes once.
diff --git a/src/land.rs b/src/land.rs
index 1111111..2222222 100644
--- a/src/land.rs
+++ b/src/land.rs
@@ -10,4 +10,6 @@ fn land() {
     let repo = open()?;
-    push(&repo)?;
+    if push(&repo).is_err() {
+        rebase_and_push(&repo)?;
+    }
     Ok(())
 }
"#,
    "-- \n2.42.0\n\n"
);

pub(super) const HG_GIT: &str = r#"# HG changeset patch
# User Jane Doe <jane@example.com>
# Date 1700000000 -3600
#      Tue Nov 14 23:13:20 2023 +0100
# Node ID 5b2c8f0e1a3d4c6b7e9f0a1b2c3d4e5f6a7b8c9d
# Parent  0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b
# Branch default
Bug 1234 - rename the helper and add a test; r=reviewer

The old name was misleading.

diff --git a/tools/helper.py b/tools/run_helper.py
rename from tools/helper.py
rename to tools/run_helper.py
--- a/tools/helper.py
+++ b/tools/run_helper.py
@@ -1,3 +1,3 @@
 import sys
-print("helper")
+print("run helper")
 sys.exit(0)
diff --git a/tests/test_helper.py b/tests/test_helper.py
new file mode 100644
--- /dev/null
+++ b/tests/test_helper.py
@@ -0,0 +1,2 @@
+def test_helper():
+    assert True
"#;

pub(super) const HG_PLAIN: &str = "# HG changeset patch
# User hg-user@example.org
# Date 1699999999 0
# Node ID 5b2c8f0e1a3d4c6b7e9f0a1b2c3d4e5f6a7b8c9d
# Parent  0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b
Fix a typo in the manual

diff -r 0a1b2c3d4e5f -r 5b2c8f0e1a3d docs/manual of style.txt
--- a/docs/manual of style.txt\tThu Jan 01 00:00:00 1970 +0000
+++ b/docs/manual of style.txt\tTue Nov 14 22:13:20 2023 +0000
@@ -1,1 +1,1 @@
-Teh manual
+The manual
\\ No newline at end of file
";

pub(super) const PLAIN: &str = "Hi, here is the fix we discussed on IRC. It applies on top of
yesterday's nightly: diff it against your tree if in doubt.

Thanks!

--- a/src/config.c\t2023-11-14 22:13:20.000000000 +0100
+++ b/src/config.c\t2023-11-14 22:15:01.000000000 +0100
@@ -5,7 +5,7 @@ static int parse(void)
 {
     int x = 0;
     /* comment */
-    return x;
+    return x + 1;
 }

 int main(void)
";

pub(super) const QUOTED: &str = r#"diff --git "a/caf\303\251 menu.txt" "b/caf\303\251 menu.txt"
index 1111111..2222222 100644
--- "a/caf\303\251 menu.txt"
+++ "b/caf\303\251 menu.txt"
@@ -1 +1 @@
-old
+new
"#;

pub(super) fn ok(patch: &str) -> ParsedPatch {
    parse(patch.as_bytes(), &Limits::default()).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn err(patch: &str) -> PatchError {
    parse(patch.as_bytes(), &Limits::default()).expect_err("the patch should be rejected")
}

pub(super) fn unsafe_reason(patch: &str) -> (String, &'static str) {
    match err(patch) {
        PatchError::UnsafePath { path, reason } => (path, reason),
        other => panic!("expected UnsafePath, got {other:?}"),
    }
}

pub(super) fn malformed_at(patch: &str) -> (usize, String) {
    match err(patch) {
        PatchError::Malformed { line, reason } => (line, reason),
        other => panic!("expected Malformed, got {other:?}"),
    }
}

pub(super) fn plain_for(path: &str) -> String {
    format!("--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-a\n+b\n")
}
