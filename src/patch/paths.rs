//! Which repository paths a patch may touch, and how a name is shown in an error.

use super::error::PatchError;

/// Longest accepted repository path, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// Checks one repository path against the rules [`parse`](crate::patch::parse) applies to every
/// path of a patch (no `..`, nothing absolute, nothing inside `.git`/`.hg`, ...).
pub fn validate_path(path: &str) -> Result<(), PatchError> {
    match path_problem(path) {
        None => Ok(()),
        Some(reason) => Err(PatchError::UnsafePath {
            path: shown(path),
            reason,
        }),
    }
}

fn path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("it is empty");
    }
    if path.len() > MAX_PATH_BYTES {
        return Some("it is longer than 4096 bytes");
    }
    if path.chars().any(|c| c < ' ' || c == '\u{7f}') {
        return Some("it contains control characters");
    }
    let drive = matches!(path.as_bytes(), [d, b':', ..] if d.is_ascii_alphabetic());
    if path.starts_with('/') || path.starts_with("\\\\") || drive {
        return Some("it is absolute");
    }
    if path.contains('\\') {
        return Some("it contains a backslash");
    }
    for component in path.split('/') {
        // What Windows and macOS would make of the name: no NTFS stream
        // suffix, no trailing dots or spaces, no ignorable code points.
        let visible: String = component.chars().filter(|c| !is_ignorable(*c)).collect();
        let name = visible
            .split(':')
            .next()
            .unwrap_or_default()
            .trim_end_matches(['.', ' '])
            .to_ascii_lowercase();
        let problem = match component {
            "" => "it contains an empty component (`//`)",
            ".." => "it leaves the repository (`..`)",
            "." => "it contains a `.` component",
            _ if visible.trim_end_matches(['.', ' ']).is_empty() => {
                "it has a component made only of dots and spaces"
            }
            _ => match name.as_str() {
                ".git" | "git~1" => "it is inside the .git directory",
                ".hg" | "hg~1" => "it is inside the .hg directory",
                ".gitmodules" | "gitmod~1" | ".hgsub" | ".hgsubstate" => {
                    "it would define a submodule or subrepository"
                }
                _ => continue,
            },
        };
        return Some(problem);
    }
    None
}

/// Code points HFS+ ignores in file names.
fn is_ignorable(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}')
}

/// A name as shown in an error: control characters escaped, at most 256 characters.
pub(super) fn shown(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == 256 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::fixtures::{plain_for, unsafe_reason};

    #[test]
    fn unsafe_paths_are_rejected() {
        let long = "a".repeat(4097);
        let cases = [
            ("../etc/passwd", "leaves"),
            ("src/../../x", "leaves"),
            ("/etc/passwd", "absolute"),
            ("C:/Windows/system.ini", "absolute"),
            ("c:x", "absolute"),
            ("\\\\server\\share", "absolute"),
            ("src\\main.rs", "backslash"),
            (".git/config", ".git directory"),
            ("sub/.GIT./hooks/pre-commit", ".git directory"),
            (".git /config", ".git directory"),
            ("GIT~1/config", ".git directory"),
            (".git::$INDEX_ALLOCATION/config", ".git directory"),
            (".g\u{200c}it/config", ".git directory"),
            (".git.\u{200c}/config", ".git directory"),
            (". .", "dots and spaces"),
            ("vendor/.hg/hgrc", ".hg directory"),
            (".Hg", ".hg directory"),
            (".hgsub", "subrepository"),
            (".hgsubstate", "subrepository"),
            (".gitmodules", "submodule"),
            ("src/./main.rs", "`.`"),
            ("x\u{1}y", "control"),
            ("x\u{7f}", "control"),
            ("a//b", "empty component"),
            ("dir/", "empty component"),
            ("...", "dots and spaces"),
            ("", "empty"),
            (long.as_str(), "4096"),
        ];
        for (path, expected) in cases {
            let (_, reason) = unsafe_reason(&plain_for(path));
            assert!(reason.contains(expected), "{path:?}: {reason}");
        }
        assert_eq!(unsafe_reason(&plain_for(".git/config")).0, ".git/config");
        assert!(validate_path("src/.gitignore").is_ok());
        assert!(validate_path("docs/..foo/git~2/.github/x.hg/:colon").is_ok());
        // the old name counts too
        let rename = "--- a/../secret\n+++ b/fine\n@@ -1 +1 @@\n-a\n+b\n";
        assert_eq!(unsafe_reason(rename).0, "../secret");
    }
}
