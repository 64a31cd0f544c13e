//! Commit message trailers (`Key: value` lines at the end of a message).

/// Append (or keep) a trailer line "Key: value" to a commit message, separated from the body by a blank line,
/// as git's trailer convention: if the message's last paragraph already consists of trailers ("Token: value" lines), add the line to it.
///
/// The message is trimmed; the result ends with a single newline, as git's messages do. Line breaks in
/// `key` and `value` are replaced by spaces. If the trailer block already has
/// the same trailer (key compared case-insensitively), the message is kept.
pub fn with_trailer(message: &str, key: &str, value: &str) -> String {
    let one_line = |s: &str| {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (key, value) = (one_line(key), one_line(value));
    let trailer = format!("{key}: {value}");
    let body = message.trim();
    if body.is_empty() {
        return format!("{trailer}\n");
    }
    // Already the last line (a message that is only the trailer included): kept, so
    // that adding a trailer twice gives the message of adding it once.
    let is_it = |line: &str| {
        line.split_once(':')
            .is_some_and(|(k, v)| k.trim().eq_ignore_ascii_case(&key) && v.trim() == value)
    };
    if body.lines().last().is_some_and(is_it) {
        return format!("{body}\n");
    }
    let lines: Vec<&str> = body.lines().collect();
    // The subject paragraph is never a trailer block.
    let block = lines
        .iter()
        .rposition(|l| l.trim().is_empty())
        .and_then(|i| lines.get(i + 1..))
        .filter(|block| is_trailer_block(block));
    match block {
        Some(block) => {
            let exists = block
                .iter()
                .filter_map(|l| l.split_once(':'))
                .any(|(k, v)| k.eq_ignore_ascii_case(&key) && v.trim() == value);
            if exists {
                format!("{body}\n")
            } else {
                format!("{body}\n{trailer}\n")
            }
        }
        None => format!("{body}\n\n{trailer}\n"),
    }
}

fn is_trailer_block(block: &[&str]) -> bool {
    let mut lines = block.iter();
    lines.next().is_some_and(|l| is_trailer_line(l))
        && lines.all(|l| is_trailer_line(l) || l.starts_with([' ', '\t']))
}

fn is_trailer_line(line: &str) -> bool {
    line.split_once(':').is_some_and(|(key, value)| {
        !key.is_empty()
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && value.starts_with(' ')
            && !value.trim().is_empty()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers() {
        let add = |m: &str| with_trailer(m, "Reviewed-by", "Ann <ann@example.com>");
        let ann = "Reviewed-by: Ann <ann@example.com>\n";
        assert_eq!(add("Fix bug"), format!("Fix bug\n\n{ann}"));
        assert_eq!(add("Bug 1: crash"), format!("Bug 1: crash\n\n{ann}"));
        assert_eq!(add("  \n"), ann);
        assert_eq!(
            add("Fix bug\n\nBody.\n\nSigned-off-by: Bob <bob@example.com>\n"),
            format!("Fix bug\n\nBody.\n\nSigned-off-by: Bob <bob@example.com>\n{ann}")
        );
        let existing = "Fix bug\n\nreviewed-by: Ann <ann@example.com>\nAcked-by: Cy <c@x>\n";
        assert_eq!(add(&format!("{existing}\n\n")), existing);
        assert_eq!(
            add("Fix bug\n\nNote: this is prose\nthat goes on."),
            format!("Fix bug\n\nNote: this is prose\nthat goes on.\n\n{ann}")
        );
        assert_eq!(
            add("Fix\n\nSee https://example.com/x"),
            format!("Fix\n\nSee https://example.com/x\n\n{ann}")
        );
        assert_eq!(
            add("Fix\n\nCo-authored-by: Dee <d@x>\n  (long continuation)"),
            format!("Fix\n\nCo-authored-by: Dee <d@x>\n  (long continuation)\n{ann}")
        );
        assert_eq!(
            with_trailer("Fix", "Landed-by", "autoland\nEvil: yes"),
            "Fix\n\nLanded-by: autoland Evil: yes\n"
        );
    }
}
