//! What the header of a format-patch mail or an hg changeset yields (author,
//! date, message), and the checks both kinds of header go through.

use super::date::PatchDate;
use super::error::{PatchError, malformed};
use super::paths::shown;

/// Longest accepted commit message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Longest accepted author header, in bytes.
pub const MAX_AUTHOR_BYTES: usize = 1024;

/// The metadata of a patch, as read from its header.
#[derive(Default)]
pub(super) struct Header {
    pub(super) author: Option<String>,
    pub(super) date: Option<PatchDate>,
    pub(super) message: Option<String>,
}

/// The trimmed message, `None` if empty; an error (at `line`) if it is too long.
pub(super) fn check_message(message: &str, line: usize) -> Result<Option<String>, PatchError> {
    let message = message.trim();
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(malformed(
            line,
            format!(
                "the commit message is {} bytes; the limit is {MAX_MESSAGE_BYTES} bytes",
                message.len()
            ),
        ));
    }
    Ok((!message.is_empty()).then(|| message.to_string()))
}

/// Validates an author header: `Name <email>` or a bare email address.
pub(super) fn check_author(raw: &str, line: usize) -> Result<Option<String>, PatchError> {
    let author = raw.trim();
    if author.chars().any(char::is_control) {
        return Err(malformed(
            line,
            "the author contains control characters or line breaks",
        ));
    }
    if author.len() > MAX_AUTHOR_BYTES {
        return Err(malformed(line, "the author is too long"));
    }
    if author.is_empty() {
        return Ok(None);
    }
    // `"Doe, Jane" <jane@example.com>` -> `Doe, Jane <jane@example.com>`
    let author = match author.strip_prefix('"').and_then(|r| r.split_once('"')) {
        Some((name, rest)) => format!("{name}{rest}"),
        None => author.to_string(),
    };
    let is_address =
        |s: &str| !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c == '<' || c == '>');
    let valid = match author.strip_suffix('>') {
        Some(inner) => inner
            .rsplit_once('<')
            .is_some_and(|(name, email)| !name.contains(['<', '>']) && is_address(email)),
        None => is_address(&author) && author.contains('@'),
    };
    if valid {
        Ok(Some(author))
    } else {
        Err(malformed(
            line,
            format!(
                "the author `{}` is not of the form `Name <email>`",
                shown(&author)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::patch::fixtures::{FORMAT_PATCH, HG_GIT, malformed_at, ok};

    #[test]
    fn author_headers_are_validated() {
        let control = FORMAT_PATCH.replace("From: Jane Doe", "From: Jane\u{1} Doe");
        assert_eq!(malformed_at(&control).0, 2);
        let newline = FORMAT_PATCH.replace("From: Jane Doe", "From: =?UTF-8?q?Eve=0A?=");
        assert_eq!(malformed_at(&newline).0, 2);
        let not_email = FORMAT_PATCH.replace("From: Jane Doe <jane@example.com>", "From: Jane Doe");
        assert!(malformed_at(&not_email).1.contains("Name <email>"));
        let hg = HG_GIT.replace("# User Jane Doe <jane@example.com>", "# User jane");
        assert_eq!(malformed_at(&hg).0, 2);
        let hg = HG_GIT.replace(
            "# User Jane Doe <jane@example.com>",
            "# User Jane <j@x> <k@y>",
        );
        assert_eq!(malformed_at(&hg).0, 2);
        let long = HG_GIT.replace("# User Jane Doe", &format!("# User {}", "J".repeat(2000)));
        assert!(malformed_at(&long).1.contains("too long"));
        let none = HG_GIT.replace("# User Jane Doe <jane@example.com>\n", "");
        assert_eq!(ok(&none).author, None);
    }

    #[test]
    fn long_messages_are_rejected() {
        let body = "word ".repeat(14_000);
        let patch = FORMAT_PATCH.replace("When two landings race", &body);
        let (line, reason) = malformed_at(&patch);
        assert_eq!(line, 4);
        assert!(reason.contains("65536"));
        let hg = HG_GIT.replace("The old name was misleading.", &body);
        assert_eq!(malformed_at(&hg).0, 8);
        let fits = FORMAT_PATCH.replace("When two landings race", &"word ".repeat(13_000));
        assert!(ok(&fits).message.is_some_and(|m| m.len() > 60_000));
    }
}
