//! The entry point, [`parse`]: size and encoding checks, recognising the
//! format, then the header (`mail.rs`, `hg.rs`) and the diff (`diff.rs`).

use super::date::PatchDate;
use super::diff::scan_diff;
use super::error::{PatchError, malformed};
use super::header::Header;
use super::hg::parse_hg_header;
use super::lines::{HG_MARKER, Lines, at_diff_start, is_from_line};
use super::mail::parse_mail_header;

/// The format a patch was submitted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchFormat {
    /// `git format-patch` output (an mbox-style mail).
    GitFormatPatch,
    /// `hg export` output.
    HgExport,
    /// A plain unified diff, possibly preceded by free text.
    PlainDiff,
}

/// Size limits applied by [`parse`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted patch, in bytes.
    pub max_bytes: usize,
    /// Largest number of distinct paths a patch may touch.
    pub max_files: usize,
}

impl Default for Limits {
    /// 5 MiB and 2000 files.
    fn default() -> Self {
        Limits {
            max_bytes: 5 * 1024 * 1024,
            max_files: 2000,
        }
    }
}

/// A validated patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPatch {
    /// The format the patch was submitted in.
    pub format: PatchFormat,
    /// `Name <email>` as given by the header, if any (format-patch From:, hg # User)
    pub author: Option<String>,
    /// The author date, if the header had one that could be parsed.
    pub date: Option<PatchDate>,
    /// Commit message (subject + body for format-patch, with "[PATCH n/m] " removed; hg message lines), trimmed; None if absent or empty
    pub message: Option<String>,
    /// The diff part only, starting at the first `diff `/`Index: `/`--- ` line, ending with a newline, with the format-patch signature (`-- \n<version>`) removed. This is what gets fed to `git apply` / `hg import`.
    pub diff: String,
    /// Every repository path the patch touches (old and new names, deduplicated, in order of appearance), without the a/ b/ prefixes.
    pub files: Vec<String>,
}

/// Parses and validates one patch. See the module documentation.
pub fn parse(content: &[u8], limits: &Limits) -> Result<ParsedPatch, PatchError> {
    if content.len() > limits.max_bytes {
        return Err(PatchError::TooLarge {
            size: content.len(),
            limit: limits.max_bytes,
        });
    }
    if content.iter().all(u8::is_ascii_whitespace) {
        return Err(PatchError::Empty);
    }
    let nul = content.iter().position(|&b| b == 0);
    let text = match std::str::from_utf8(content) {
        Ok(text) => text,
        Err(e) => {
            let offset = e.valid_up_to();
            return Err(match nul {
                Some(n) if n < offset => PatchError::Nul { offset: n },
                _ => PatchError::NotText { offset },
            });
        }
    };
    if let Some(offset) = nul {
        return Err(PatchError::Nul { offset });
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);

    let mut lines = Lines::new(text);
    let format = match lines.clone().find(|l| !l.text.trim().is_empty()) {
        Some(l) if is_from_line(l.text) => PatchFormat::GitFormatPatch,
        Some(l) if l.text.trim_end() == HG_MARKER => PatchFormat::HgExport,
        _ => PatchFormat::PlainDiff,
    };
    let header = match format {
        PatchFormat::GitFormatPatch => parse_mail_header(&mut lines)?,
        PatchFormat::HgExport => parse_hg_header(&mut lines)?,
        PatchFormat::PlainDiff => Header::default(),
    };
    while lines.peek().is_some() && !at_diff_start(&lines) {
        lines.next();
    }
    let Some(start) = lines.peek() else {
        return Err(
            match Lines::new(text).find(|l| l.text.starts_with("@@ -")) {
                Some(l) => malformed(l.number, "a hunk (`@@`) without a `---`/`+++` file header"),
                None => PatchError::NoDiff,
            },
        );
    };
    let (end, files) = scan_diff(lines, text.len())?;
    if files.is_empty() {
        return Err(PatchError::NoDiff);
    }
    if files.len() > limits.max_files {
        return Err(PatchError::TooManyFiles {
            count: files.len(),
            limit: limits.max_files,
        });
    }
    let mut diff = text.get(start.start..end).unwrap_or_default().to_string();
    if !diff.ends_with('\n') {
        diff.push('\n');
    }
    Ok(ParsedPatch {
        format,
        author: header.author,
        date: header.date,
        message: header.message,
        diff,
        files,
    })
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng as _, SeedableRng as _};

    use super::*;
    use crate::patch::date::PatchDate;
    use crate::patch::error::PatchError;
    use crate::patch::fixtures::{
        FORMAT_PATCH, HG_GIT, HG_PLAIN, PLAIN, QUOTED, err, malformed_at, ok, plain_for,
    };
    use crate::patch::header::MAX_MESSAGE_BYTES;
    use crate::patch::paths::validate_path;

    #[test]
    fn format_patch_with_two_files_folded_subject_and_signature() {
        let p = ok(FORMAT_PATCH);
        assert_eq!(p.format, PatchFormat::GitFormatPatch);
        assert_eq!(p.author.as_deref(), Some("Jane Doe <jane@example.com>"));
        assert_eq!(
            p.date,
            Some(PatchDate {
                seconds: 1_699_996_400,
                offset_minutes: 60
            })
        );
        assert_eq!(
            p.message.as_deref(),
            Some(
                "landing: retry pushes when the remote rejects them because of a race\n\n\
                 When two landings race, the second push is rejected. Retry it once\n\
                 after rebasing instead of failing the whole request."
            )
        );
        assert!(p.diff.starts_with("diff --git a/README.md b/README.md\n"));
        assert!(p.diff.ends_with("     Ok(())\n }\n"), "{:?}", p.diff);
        assert!(!p.diff.contains("2.42.0"));
        assert!(!p.diff.contains("files changed"));
        assert_eq!(p.files, ["README.md", "src/land.rs"]);
    }

    #[test]
    fn plain_diff_with_preface_and_timestamps() {
        let p = ok(PLAIN);
        assert_eq!(p.format, PatchFormat::PlainDiff);
        assert_eq!((p.author, p.date, p.message), (None, None, None));
        assert!(p.diff.starts_with("--- a/src/config.c\t2023-11-14"));
        assert!(p.diff.ends_with(" int main(void)\n"));
        assert_eq!(p.files, ["src/config.c"]);
    }

    #[test]
    fn size_emptiness_and_encoding_checks() {
        assert_eq!(err(""), PatchError::Empty);
        assert_eq!(err(" \n\t\r\n"), PatchError::Empty);
        let small = Limits {
            max_bytes: 10,
            max_files: 5,
        };
        assert_eq!(
            parse(b"\xff\0 much too long", &small),
            Err(PatchError::TooLarge {
                size: 16,
                limit: 10
            })
        );
        assert_eq!(
            parse(b"--- a/x\n\xff", &Limits::default()),
            Err(PatchError::NotText { offset: 8 })
        );
        assert_eq!(
            parse(b"--- a/x\n\0", &Limits::default()),
            Err(PatchError::Nul { offset: 8 })
        );
        assert_eq!(
            parse(b"ab\0c\xff", &Limits::default()),
            Err(PatchError::Nul { offset: 2 })
        );
        assert_eq!(
            parse(b"ab\xffc\0", &Limits::default()),
            Err(PatchError::NotText { offset: 2 })
        );
    }

    #[test]
    fn patches_without_a_diff() {
        assert_eq!(err("Just some text.\nNo diff here.\n"), PatchError::NoDiff);
        let cut = FORMAT_PATCH.split("---\n").next().unwrap_or_default();
        assert_eq!(err(cut), PatchError::NoDiff);
        let hg = HG_GIT.split("diff --git").next().unwrap_or_default();
        assert_eq!(err(hg), PatchError::NoDiff);
        assert_eq!(err("Index: foo.c\n"), PatchError::NoDiff);
        assert_eq!(malformed_at("text\n@@ -1 +1 @@\n-a\n+b\n").0, 2);
        assert_eq!(
            malformed_at("diff --git a/x b/x\n@@ -1 +1 @@\n-a\n+b\n").0,
            2
        );
    }

    #[test]
    fn too_many_files() {
        let one = Limits {
            max_files: 1,
            ..Limits::default()
        };
        assert_eq!(
            parse(FORMAT_PATCH.as_bytes(), &one),
            Err(PatchError::TooManyFiles { count: 2, limit: 1 })
        );
        let many: String = (0..30).map(|i| plain_for(&format!("f{i}"))).collect();
        let p = ok(&many);
        assert_eq!(p.files.len(), 30);
        assert_eq!(p.files.first().map(String::as_str), Some("f0"));
        let two = Limits {
            max_files: 29,
            ..Limits::default()
        };
        assert_eq!(
            parse(many.as_bytes(), &two),
            Err(PatchError::TooManyFiles {
                count: 30,
                limit: 29
            })
        );
    }

    #[test]
    fn byte_order_mark_and_missing_blank_line_after_headers() {
        let p = ok(&format!("\u{feff}{}", plain_for("bom.txt")));
        assert_eq!(p.files, ["bom.txt"]);
        assert!(p.diff.starts_with("--- a/bom.txt"));
        let squashed = "From 8f2a4c1e9b7d3a5f6e0c2b4d8a1f3e5c7b9d0a2e Mon Sep 17 00:00:00 2001\n\
                        From: a@example.com\nSubject: [PATCH] terse\nIndex: x\n--- a/x\n+++ b/x\n\
                        @@ -1 +1 @@\n-a\n+b\n";
        let p = ok(squashed);
        assert_eq!(p.message.as_deref(), Some("terse"));
        assert!(p.diff.starts_with("Index: x\n"));
        assert_eq!(p.files, ["x"]);
    }

    #[test]
    fn serde_names_are_snake_case() {
        let json = serde_json::to_string(&PatchFormat::GitFormatPatch).unwrap_or_default();
        assert_eq!(json, "\"git_format_patch\"");
        let back: Result<PatchFormat, _> = serde_json::from_str("\"hg_export\"");
        assert_eq!(back.ok(), Some(PatchFormat::HgExport));
    }

    const TOKENS: [&str; 24] = [
        "\n",
        "-- \n",
        "--\n",
        "@@ -1,3 +1,4 @@\n",
        "@@ -0,0 +1 @@\n",
        "\"",
        "\\",
        "\\303",
        "diff --git a/x b/x\n",
        "+++ b/",
        "--- a/",
        "=?UTF-8?q?",
        "?=",
        "\u{e9}",
        "\r\n",
        "\u{feff}",
        "rename to ../x\n",
        "120000",
        "GIT binary patch\n",
        "\t",
        " ",
        "+",
        "-",
        "From 8f2a4c1e9b7d3a5f6e0c2b4d8a1f3e5c7b9d0a2e x\n",
    ];

    fn mutate(data: &mut Vec<u8>, rng: &mut StdRng) {
        let len = data.len();
        let pos = rng.random_range(0..len + 1);
        match rng.random_range(0..6) {
            0 if len > 0 => {
                if let Some(b) = data.get_mut(pos.min(len - 1)) {
                    *b = rng.random();
                }
            }
            1 => data.insert(pos, b"\n-+ @\\\"\t\r0aZ\xc3\xff"[rng.random_range(0..14)]),
            2 => {
                let end = (pos + rng.random_range(0..40)).min(len);
                data.drain(pos..end);
            }
            3 => data.truncate(pos),
            4 => {
                let end = (pos + rng.random_range(0..200)).min(len);
                let copy = data[pos..end].to_vec();
                let at = rng.random_range(0..len + 1);
                data.splice(at..at, copy);
            }
            _ => {
                let token = TOKENS[rng.random_range(0..TOKENS.len())].as_bytes();
                data.splice(pos..pos, token.iter().copied());
            }
        }
    }

    #[test]
    fn fuzzed_inputs_never_panic() {
        let fixtures = [FORMAT_PATCH, HG_GIT, HG_PLAIN, PLAIN, QUOTED];
        let mut rng = StdRng::seed_from_u64(0x9E37_79B9_7F4A_7C15);
        let mut accepted = 0;
        for i in 0..6000 {
            let mut data = fixtures[i % fixtures.len()].as_bytes().to_vec();
            for _ in 0..=rng.random_range(0..4) {
                mutate(&mut data, &mut rng);
            }
            let limits = if i % 7 == 0 {
                Limits {
                    max_bytes: 600,
                    max_files: 1,
                }
            } else {
                Limits::default()
            };
            if let Ok(p) = parse(&data, &limits) {
                accepted += 1;
                assert!(p.diff.ends_with('\n'));
                assert!(!p.files.is_empty() && p.files.len() <= limits.max_files);
                assert!(
                    p.files.iter().all(|f| validate_path(f).is_ok()),
                    "{:?}",
                    p.files
                );
                assert!(
                    p.message
                        .is_none_or(|m| !m.is_empty() && m.len() <= MAX_MESSAGE_BYTES)
                );
            }
        }
        assert!(
            accepted > 100,
            "the mutations should not all be fatal ({accepted})"
        );
        for _ in 0..3000 {
            let data: String = (0..rng.random_range(0..30))
                .map(|_| TOKENS[rng.random_range(0..TOKENS.len())])
                .collect();
            let _ = parse(data.as_bytes(), &Limits::default());
        }
    }

    #[test]
    fn pathological_inputs_stay_linear() {
        let big = 1 << 20;
        let subject = format!(
            "From 8f2a4c1e9b7d3a5f6e0c2b4d8a1f3e5c7b9d0a2e x\nSubject: {}\n\n",
            "=?x".repeat(big / 3)
        );
        assert!(malformed_at(&subject).1.contains("commit message"));
        let header = format!("diff --git {}\n", "a/x b/".repeat(big / 6));
        assert!(matches!(err(&header), PatchError::Malformed { .. }));
        let name = "n".repeat(3000);
        let hunks = format!(
            "--- a/{name}\n+++ b/{name}\n{}",
            "@@ -1 +1 @@\n-a\n+b\n".repeat(big / 20)
        );
        assert_eq!(ok(&hunks).files.len(), 1);
        let newlines = "\n".repeat(big) + "x";
        assert_eq!(err(&newlines), PatchError::NoDiff);
        let quotes = format!("--- \"{}\n+++ b\n", "\\\"".repeat(big / 2));
        assert!(matches!(err(&quotes), PatchError::Malformed { .. }));
    }
}
