//! The header of an `hg export` changeset (`# User`, `# Date`, then the message).

use super::date::PatchDate;
use super::error::PatchError;
use super::header::{Header, check_author, check_message};
use super::lines::{HG_MARKER, Lines, at_diff_start};

/// Reads the changeset header and message, leaving `lines` at the diff.
pub(super) fn parse_hg_header(lines: &mut Lines<'_>) -> Result<Header, PatchError> {
    for line in lines.by_ref() {
        if line.text.trim_end() == HG_MARKER {
            break;
        }
    }
    let mut header = Header::default();
    while let Some(line) = lines.peek() {
        let text = line.text;
        if let Some(user) = text.strip_prefix("# User ") {
            header.author = check_author(user, line.number)?;
        } else if let Some(date) = text.strip_prefix("# Date ") {
            header.date = PatchDate::from_hg(date);
        } else if !(text == "#" || text.starts_with("# ") || text.trim().is_empty()) {
            break;
        }
        lines.next();
    }
    let message_line = lines.peek().map_or(0, |l| l.number);
    let mut message = String::new();
    while lines.peek().is_some() && !at_diff_start(lines) {
        let Some(line) = lines.next() else { break };
        message.push_str(line.text);
        message.push('\n');
    }
    header.message = check_message(&message, message_line)?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use crate::patch::date::PatchDate;
    use crate::patch::fixtures::{HG_GIT, HG_PLAIN, ok};
    use crate::patch::parser::PatchFormat;

    #[test]
    fn hg_export_with_git_diff() {
        let p = ok(HG_GIT);
        assert_eq!(p.format, PatchFormat::HgExport);
        assert_eq!(p.author.as_deref(), Some("Jane Doe <jane@example.com>"));
        assert_eq!(
            p.date,
            Some(PatchDate {
                seconds: 1_700_000_000,
                offset_minutes: 60
            })
        );
        assert_eq!(
            p.message.as_deref(),
            Some(
                "Bug 1234 - rename the helper and add a test; r=reviewer\n\nThe old name was misleading."
            )
        );
        assert!(
            p.diff
                .starts_with("diff --git a/tools/helper.py b/tools/run_helper.py\n")
        );
        assert!(p.diff.ends_with("+    assert True\n"));
        assert_eq!(
            p.files,
            [
                "tools/helper.py",
                "tools/run_helper.py",
                "tests/test_helper.py"
            ]
        );
    }

    #[test]
    fn hg_export_with_plain_diff() {
        let p = ok(HG_PLAIN);
        assert_eq!(p.format, PatchFormat::HgExport);
        assert_eq!(p.author.as_deref(), Some("hg-user@example.org"));
        assert_eq!(
            p.date,
            Some(PatchDate {
                seconds: 1_699_999_999,
                offset_minutes: 0
            })
        );
        assert_eq!(p.message.as_deref(), Some("Fix a typo in the manual"));
        assert!(
            p.diff
                .starts_with("diff -r 0a1b2c3d4e5f -r 5b2c8f0e1a3d docs/")
        );
        assert_eq!(p.files, ["docs/manual of style.txt"]);
    }
}
