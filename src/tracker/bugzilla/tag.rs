//! The `[autoland-...]` landing request tag on a bug's status whiteboard.
//!
//! Grammar (compatible with the 2012 service):
//!
//! ```text
//! [autoland-<dest>[,<dest>...][:<attachment-id>[,<attachment-id>...]][:<try syntax starting with '-'>]]
//! ```
//!
//! * Case-insensitive; destination names are lowercased.
//! * Only the first tag counts: the first `[` that is followed (after optional
//!   spaces/tabs) by `autoland`, compared ASCII case-insensitively.
//! * The tag ends at the `]` that balances its opening `[`, because try syntax
//!   may contain nested brackets (`-u mochitest-1[Windows XP,10.8]`).
//! * Spaces and tabs are tolerated around commas, colons, `-` after `autoland`
//!   and just inside the brackets.
//! * The section after the first `:` is the try syntax if (trimmed) it starts
//!   with `-`; otherwise it is the attachment id list, which may be followed by
//!   a second `:` and the try syntax. The try syntax keeps any further `:`.
//! * `[autoland-in-queue]` is Autoland's own "working on it" marker, not a
//!   request ([`Found::InQueue`]).
//!
//! The whiteboard is free text written by anyone, so every byte is treated as
//! hostile: scanning is linear, slicing only ever happens at ASCII bytes, and
//! errors quote at most 60 characters with control and invisible
//! characters escaped.

use std::ops::Range;

/// The `[autoland-in-queue]` marker text.
pub const IN_QUEUE: &str = "[autoland-in-queue]";

/// Longest accepted tag, in characters, brackets included.
const MAX_TAG_CHARS: usize = 1000;
/// Most destinations in one tag.
const MAX_DESTINATIONS: usize = 10;
/// Most attachment ids in one tag.
const MAX_ATTACHMENT_IDS: usize = 50;
/// Longest destination name, in characters.
const MAX_DESTINATION_CHARS: usize = 64;
/// Most characters of offending text quoted in an error message.
const QUOTE_CHARS: usize = 60;
/// The keyword after `[`, matched ASCII case-insensitively.
const KEYWORD: &str = "autoland";
/// The destination name reserved for the [`IN_QUEUE`] marker.
const IN_QUEUE_NAME: &str = "in-queue";

/// A parsed landing request tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Lowercased, deduplicated (first occurrence kept), in the order written.
    pub destinations: Vec<String>,
    /// Positive ids, deduplicated (first occurrence kept), in the order written.
    pub attachment_ids: Vec<i64>,
    /// Trimmed; always starts with `-`; printable ASCII (and tabs) only.
    pub try_syntax: Option<String>,
    /// byte range of the whole tag "[...]" in the whiteboard
    pub span: Range<usize>,
}

/// What [`find`] found on a whiteboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// no autoland tag
    None,
    /// `[autoland-in-queue]` at this span
    InQueue(Range<usize>),
    /// a request
    Request(Tag),
}

/// A malformed autoland tag. Messages are meant for humans (bug comments);
/// quoted text is truncated to about 60 characters with control and
/// invisible characters escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error(
        "the tag `{tag}` is not closed with `]` (square brackets inside the tag must be balanced)"
    )]
    Unclosed { tag: String, span: Range<usize> },
    #[error("the tag is longer than {max} characters")]
    TooLong { max: usize, span: Range<usize> },
    #[error("the tag `{tag}` contains the control character {ch}")]
    ControlCharacter {
        ch: String,
        tag: String,
        span: Range<usize>,
    },
    #[error("expected `-` and a destination after `autoland` in `{tag}`")]
    MissingDash { tag: String, span: Range<usize> },
    #[error("empty destination in `{tag}`")]
    EmptyDestination { tag: String, span: Range<usize> },
    #[error(
        "destination name `{name}` is not valid (use 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit)"
    )]
    InvalidDestination { name: String, span: Range<usize> },
    #[error(
        "`in-queue` is reserved for Autoland's own `[autoland-in-queue]` marker and cannot be combined with anything: `{tag}`"
    )]
    ReservedDestination { tag: String, span: Range<usize> },
    #[error("too many destinations (max {max})")]
    TooManyDestinations { max: usize, span: Range<usize> },
    #[error(
        "nothing after ':' in `{tag}` (expected attachment ids, or try syntax starting with '-')"
    )]
    EmptySection { tag: String, span: Range<usize> },
    #[error("empty attachment id in `{ids}`")]
    EmptyAttachmentId { ids: String, span: Range<usize> },
    #[error("attachment id `{id}` is not a number")]
    InvalidAttachmentId { id: String, span: Range<usize> },
    #[error("attachment id `{id}` must be a positive number")]
    NonPositiveAttachmentId { id: String, span: Range<usize> },
    #[error("attachment id `{id}` is too large")]
    AttachmentIdTooLarge { id: String, span: Range<usize> },
    #[error("too many attachment ids (max {max})")]
    TooManyAttachmentIds { max: usize, span: Range<usize> },
    #[error("try syntax must start with '-': `{syntax}`")]
    TrySyntaxMissingDash { syntax: String, span: Range<usize> },
    #[error("try syntax may only contain printable ASCII characters, found {ch} in `{syntax}`")]
    InvalidTrySyntax {
        ch: String,
        syntax: String,
        span: Range<usize>,
    },
}

impl TagError {
    /// byte range of the malformed tag in the whiteboard (from `[autoland` to its end or to the end of the whiteboard), so the caller can remove it
    pub fn span(&self) -> Range<usize> {
        match self {
            TagError::Unclosed { span, .. }
            | TagError::TooLong { span, .. }
            | TagError::ControlCharacter { span, .. }
            | TagError::MissingDash { span, .. }
            | TagError::EmptyDestination { span, .. }
            | TagError::InvalidDestination { span, .. }
            | TagError::ReservedDestination { span, .. }
            | TagError::TooManyDestinations { span, .. }
            | TagError::EmptySection { span, .. }
            | TagError::EmptyAttachmentId { span, .. }
            | TagError::InvalidAttachmentId { span, .. }
            | TagError::NonPositiveAttachmentId { span, .. }
            | TagError::AttachmentIdTooLarge { span, .. }
            | TagError::TooManyAttachmentIds { span, .. }
            | TagError::TrySyntaxMissingDash { span, .. }
            | TagError::InvalidTrySyntax { span, .. } => span.clone(),
        }
    }
}

/// Finds and parses the first autoland tag on `whiteboard`.
///
/// Linear in the length of the whiteboard; never panics.
pub fn find(whiteboard: &str) -> Result<Found, TagError> {
    let bytes = whiteboard.as_bytes();
    let Some(start) = find_tag_start(bytes) else {
        return Ok(Found::None);
    };
    // `start` and the end found below are positions of ASCII bytes (or the
    // end of the string), hence char boundaries.
    let Some(end) = balanced_end(bytes, start) else {
        let span = start..whiteboard.len();
        return Err(TagError::Unclosed {
            tag: quote(&whiteboard[span.clone()]),
            span,
        });
    };
    let span = start..end;
    parse_tag(&whiteboard[span.clone()], span)
}

/// whiteboard with `span` replaced by `replacement`; tidy whitespace only at the seam (no double spaces created, no leading/trailing space created), everything else byte-for-byte. Must not panic for any span (clamp; snap to char boundaries).
///
/// The span is clamped to the whiteboard, an inverted span becomes empty, and
/// a span that cuts a multi-byte character is widened to cover it. At each
/// seam, whitespace at the start of the following piece is dropped when the
/// text before already ends with whitespace or is empty, and trailing
/// whitespace is dropped when nothing but whitespace follows. No whitespace is ever added.
/// Replacing an empty span with nothing returns the whiteboard unchanged.
pub fn replace(whiteboard: &str, span: Range<usize>, replacement: &str) -> String {
    let len = whiteboard.len();
    let mut start = span.start.min(len);
    let mut end = span.end.min(len).max(start);
    while !whiteboard.is_char_boundary(start) {
        start -= 1; // 0 is a boundary, so this stops
    }
    while !whiteboard.is_char_boundary(end) {
        end += 1; // len is a boundary, so this stops
    }
    if start == end && replacement.is_empty() {
        return whiteboard.to_owned();
    }
    let (left, right) = (&whiteboard[..start], &whiteboard[end..]);
    let mut out = String::with_capacity(len + replacement.len());
    out.push_str(left);
    push_seamed(&mut out, replacement);
    if right.trim_start().is_empty() {
        // Nothing but whitespace follows: don't leave any trailing.
        let kept = out.trim_end().len();
        out.truncate(kept);
    } else {
        push_seamed(&mut out, right);
    }
    out
}

/// Human help text for the grammar with examples, to be put in a bug comment when a tag is malformed (a few lines, plain text).
pub fn grammar_help() -> &'static str {
    "Autoland reads the first tag of this form on the bug's status whiteboard:\n\
     \x20 [autoland-<destination>[,<destination>...][:<attachment id>[,<attachment id>...]][:<try syntax>]]\n\
     - destinations: 1 to 10 names of letters, digits, '-', '_' and '.', starting with a letter or digit (for example try, central, inbound)\n\
     - attachment ids (optional): up to 50 positive numbers separated by commas\n\
     - try syntax (optional, always last): must start with '-'; it may contain ':' and balanced [ ]\n\
     The tag is case-insensitive, at most 1000 characters, and spaces around ',' and ':' are allowed.\n\
     [autoland-in-queue] is set by Autoland itself while it works on the bug.\n\
     Examples:\n\
     \x20 [autoland-try]\n\
     \x20 [autoland-try:-b do -p linux64 -u all]\n\
     \x20 [autoland-try:409589,409590]\n\
     \x20 [autoland-try:409589:-b o -p all]\n\
     \x20 [autoland-inbound,beta:-b o -p all]\n"
}

/// Whitespace inside a tag.
fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn trim_ws(s: &str) -> &str {
    s.trim_matches(is_ws)
}

/// Byte offset of the first `[` followed by optional spaces/tabs and the
/// keyword. Each byte is looked at a bounded number of times.
fn find_tag_start(bytes: &[u8]) -> Option<usize> {
    let keyword = KEYWORD.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'[' {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
            j += 1;
        }
        if bytes
            .get(j..j + keyword.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
        {
            return Some(i);
        }
        // Nothing in i+1..j can start a tag; bytes[j] may be another '['.
        i = j;
    }
    None
}

/// Byte offset just past the `]` that balances the `[` at `start`.
fn balanced_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &b) in bytes.iter().enumerate().skip(start) {
        match b {
            b'[' => depth += 1,
            b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Parses a complete, balanced tag `[...]` found at `span`.
fn parse_tag(tag: &str, span: Range<usize>) -> Result<Found, TagError> {
    if tag.chars().count() > MAX_TAG_CHARS {
        return Err(TagError::TooLong {
            max: MAX_TAG_CHARS,
            span,
        });
    }
    if let Some(c) = tag.chars().find(|&c| c.is_control() && c != '\t') {
        return Err(TagError::ControlCharacter {
            ch: describe_char(c),
            tag: quote(tag),
            span,
        });
    }
    let missing_dash = || TagError::MissingDash {
        tag: quote(tag),
        span: span.clone(),
    };
    // The tag starts with '[' and ends with ']', both ASCII.
    let inner = trim_ws(
        tag.strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .ok_or_else(missing_dash)?,
    );
    let rest = strip_keyword(inner).ok_or_else(missing_dash)?;
    let rest = rest
        .trim_start_matches(is_ws)
        .strip_prefix('-')
        .ok_or_else(missing_dash)?;

    let (dest_part, after) = match rest.split_once(':') {
        Some((d, a)) => (d, Some(a)),
        None => (rest, None),
    };
    if after.is_none() && trim_ws(dest_part).eq_ignore_ascii_case(IN_QUEUE_NAME) {
        return Ok(Found::InQueue(span));
    }
    let destinations = parse_destinations(tag, dest_part, &span)?;

    let mut attachment_ids = Vec::new();
    let mut try_syntax = None;
    if let Some(after) = after {
        let section = trim_ws(after);
        if section.is_empty() {
            return Err(TagError::EmptySection {
                tag: quote(tag),
                span,
            });
        }
        if section.starts_with('-') {
            try_syntax = Some(parse_try_syntax(section, &span)?);
        } else {
            let (id_part, syntax_part) = match section.split_once(':') {
                Some((i, s)) => (i, Some(s)),
                None => (section, None),
            };
            if trim_ws(id_part).is_empty() {
                return Err(TagError::EmptySection {
                    tag: quote(tag),
                    span,
                });
            }
            attachment_ids = parse_ids(id_part, &span)?;
            if let Some(syntax_part) = syntax_part {
                let syntax = trim_ws(syntax_part);
                if syntax.is_empty() {
                    return Err(TagError::EmptySection {
                        tag: quote(tag),
                        span,
                    });
                }
                if !syntax.starts_with('-') {
                    return Err(TagError::TrySyntaxMissingDash {
                        syntax: quote(syntax),
                        span,
                    });
                }
                try_syntax = Some(parse_try_syntax(syntax, &span)?);
            }
        }
    }

    Ok(Found::Request(Tag {
        destinations,
        attachment_ids,
        try_syntax,
        span,
    }))
}

/// `s` without its leading keyword (ASCII case-insensitive), if it has one.
fn strip_keyword(s: &str) -> Option<&str> {
    let n = KEYWORD.len();
    let head = s.as_bytes().get(..n)?;
    if head.eq_ignore_ascii_case(KEYWORD.as_bytes()) {
        // The first n bytes are ASCII, so n is a char boundary.
        s.get(n..)
    } else {
        None
    }
}

fn parse_destinations(tag: &str, part: &str, span: &Range<usize>) -> Result<Vec<String>, TagError> {
    if part.split(',').count() > MAX_DESTINATIONS {
        return Err(TagError::TooManyDestinations {
            max: MAX_DESTINATIONS,
            span: span.clone(),
        });
    }
    let mut destinations: Vec<String> = Vec::new();
    for item in part.split(',') {
        let name = trim_ws(item);
        if name.is_empty() {
            return Err(TagError::EmptyDestination {
                tag: quote(tag),
                span: span.clone(),
            });
        }
        let lower = name.to_ascii_lowercase();
        if lower == IN_QUEUE_NAME {
            return Err(TagError::ReservedDestination {
                tag: quote(tag),
                span: span.clone(),
            });
        }
        if !is_valid_destination(&lower) {
            return Err(TagError::InvalidDestination {
                name: quote(name),
                span: span.clone(),
            });
        }
        if !destinations.contains(&lower) {
            destinations.push(lower);
        }
    }
    Ok(destinations)
}

/// 1 to 64 ASCII letters, digits, '-', '_' or '.', starting with a letter
/// or digit (so no `.`, `..` or option-like `-x`).
fn is_valid_destination(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_DESTINATION_CHARS
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn parse_ids(part: &str, span: &Range<usize>) -> Result<Vec<i64>, TagError> {
    if part.split(',').count() > MAX_ATTACHMENT_IDS {
        return Err(TagError::TooManyAttachmentIds {
            max: MAX_ATTACHMENT_IDS,
            span: span.clone(),
        });
    }
    let mut ids: Vec<i64> = Vec::new();
    for item in part.split(',') {
        let text = trim_ws(item);
        if text.is_empty() {
            return Err(TagError::EmptyAttachmentId {
                ids: quote(trim_ws(part)),
                span: span.clone(),
            });
        }
        let id = parse_id(text, span)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

fn parse_id(text: &str, span: &Range<usize>) -> Result<i64, TagError> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TagError::InvalidAttachmentId {
            id: quote(text),
            span: span.clone(),
        });
    }
    let non_positive = || TagError::NonPositiveAttachmentId {
        id: quote(text),
        span: span.clone(),
    };
    if negative {
        return Err(non_positive());
    }
    let mut value: i64 = 0;
    for b in digits.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or_else(|| TagError::AttachmentIdTooLarge {
                id: quote(text),
                span: span.clone(),
            })?;
    }
    if value == 0 {
        return Err(non_positive());
    }
    Ok(value)
}

/// `syntax` is trimmed and starts with '-'.
fn parse_try_syntax(syntax: &str, span: &Range<usize>) -> Result<String, TagError> {
    if let Some(c) = syntax
        .chars()
        .find(|&c| !(c.is_ascii_graphic() || c == ' ' || c == '\t'))
    {
        return Err(TagError::InvalidTrySyntax {
            ch: describe_char(c),
            syntax: quote(syntax),
            span: span.clone(),
        });
    }
    Ok(syntax.to_owned())
}

/// Characters that must not be shown raw in a message.
fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// "U+000A", or "`é` (U+00E9)" for a printable character.
fn describe_char(c: char) -> String {
    if is_unprintable(c) {
        format!("U+{:04X}", u32::from(c))
    } else {
        format!("`{c}` (U+{:04X})", u32::from(c))
    }
}

/// At most `QUOTE_CHARS` characters of `s`, unprintable characters
/// escaped, "..." appended when cut.
fn quote(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    for c in chars.by_ref().take(QUOTE_CHARS) {
        if is_unprintable(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if chars.next().is_some() {
        out.push_str("...");
    }
    out
}

/// Appends `piece` to `out`, dropping the piece's leading whitespace when
/// `out` is empty or already ends with whitespace.
fn push_seamed(out: &mut String, piece: &str) {
    let drop_leading = out.chars().next_back().is_none_or(char::is_whitespace);
    if drop_leading {
        out.push_str(piece.trim_start());
    } else {
        out.push_str(piece);
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng as _, SeedableRng as _};

    use super::*;

    fn request(whiteboard: &str) -> Tag {
        match find(whiteboard) {
            Ok(Found::Request(tag)) => tag,
            other => panic!("expected a request in {whiteboard:?}, got {other:?}"),
        }
    }

    fn error(whiteboard: &str) -> TagError {
        match find(whiteboard) {
            Err(e) => e,
            other => panic!("expected an error in {whiteboard:?}, got {other:?}"),
        }
    }

    type Names = &'static [&'static str];
    /// Input, destinations, attachment ids, try syntax.
    type Example = (&'static str, Names, &'static [i64], Option<&'static str>);

    #[test]
    fn examples_parse() {
        let cases: &[Example] = &[
            ("[autoland-try]", &["try"], &[], None),
            (
                "[autoland-try:-b do -p linux64 -u all]",
                &["try"],
                &[],
                Some("-b do -p linux64 -u all"),
            ),
            (
                "[autoland-try:409589,409590]",
                &["try"],
                &[409589, 409590],
                None,
            ),
            ("[autoland-central]", &["central"], &[], None),
            (
                "[autoland-inbound,beta:-b o -p all]",
                &["inbound", "beta"],
                &[],
                Some("-b o -p all"),
            ),
            ("[autoland-try:123:-b o]", &["try"], &[123], Some("-b o")),
            ("[AutoLand-Try]", &["try"], &[], None),
            ("[ autoland-try , central ]", &["try", "central"], &[], None),
            (
                "[autoland-try:1,2:-b o: -p x]",
                &["try"],
                &[1, 2],
                Some("-b o: -p x"),
            ),
            (
                "[autoland-try:-u mochitest-1[Windows XP,10.8] -p all]",
                &["try"],
                &[],
                Some("-u mochitest-1[Windows XP,10.8] -p all"),
            ),
            (
                "[autoland-try : 7 , 8 : -b o ]",
                &["try"],
                &[7, 8],
                Some("-b o"),
            ),
            (
                "[\tAUTOLAND-Mozilla-Central\t]",
                &["mozilla-central"],
                &[],
                None,
            ),
            ("[autoland-try,try:5,5]", &["try"], &[5], None),
            ("[autoland -try]", &["try"], &[], None),
            ("[autoland-try:-5]", &["try"], &[], Some("-5")),
            ("[autoland-a.b_c-1]", &["a.b_c-1"], &[], None),
        ];
        for &(input, dests, ids, syntax) in cases {
            let tag = request(input);
            assert_eq!(tag.destinations, dests, "{input}");
            assert_eq!(tag.attachment_ids, ids, "{input}");
            assert_eq!(tag.try_syntax.as_deref(), syntax, "{input}");
            assert_eq!(tag.span, 0..input.len(), "{input}");
        }
    }

    #[test]
    fn span_and_surrounding_text() {
        let wb = "é[autoland-try]ü";
        let tag = request(wb);
        assert_eq!(&wb[tag.span.clone()], "[autoland-try]");
        assert_eq!(tag.span, 2..16);
        assert_eq!(replace(wb, tag.span, IN_QUEUE), "é[autoland-in-queue]ü");

        let wb = "[foo] see bug 123 [ AUTOLAND-try:1 ] [bar]";
        let tag = request(wb);
        assert_eq!(&wb[tag.span.clone()], "[ AUTOLAND-try:1 ]");
        assert_eq!(tag.attachment_ids, [1]);
    }

    #[test]
    fn no_tag() {
        for wb in [
            "",
            "[foo] [bar]",
            "autoland-try",
            "[autolan-try]",
            "[checkin-needed]",
            "[[[[[[",
            "]]]]",
            "é ü 😀",
            "[auto land-try]",
        ] {
            assert_eq!(find(wb), Ok(Found::None), "{wb:?}");
        }
    }

    #[test]
    fn first_tag_wins() {
        let wb = "[autoland-try:-b o] [autoland-central]";
        let tag = request(wb);
        assert_eq!(tag.destinations, ["try"]);
        assert_eq!(tag.span, 0..19);

        // A malformed first tag is the answer even if a good one follows.
        let e = error("x [autoland-try,] [autoland-central]");
        assert!(matches!(e, TagError::EmptyDestination { .. }), "{e:?}");
        assert_eq!(e.span(), 2..17);

        // The in-queue marker first means the bug is being worked on.
        assert_eq!(
            find("[autoland-in-queue] [autoland-try]"),
            Ok(Found::InQueue(0..19))
        );
    }

    #[test]
    fn in_queue() {
        assert_eq!(find(IN_QUEUE), Ok(Found::InQueue(0..IN_QUEUE.len())));
        assert_eq!(find("[foo] [AutoLand-In-Queue]"), Ok(Found::InQueue(6..25)));
        assert_eq!(find("[ autoland-in-queue ]"), Ok(Found::InQueue(0..21)));
        for wb in [
            "[autoland-in-queue,try]",
            "[autoland-try,in-queue]",
            "[autoland-in-queue:123]",
            "[autoland-in-queue:-b o]",
        ] {
            let e = error(wb);
            assert!(
                matches!(e, TagError::ReservedDestination { .. }),
                "{wb}: {e:?}"
            );
        }
    }

    #[test]
    fn malformed_tags() {
        type Check = fn(&TagError) -> bool;
        let junk = "x".repeat(10 * 1024);
        let unclosed_junk = format!("[autoland-try {junk}");
        let long_closed = format!("[autoland-try:-{}]", "b".repeat(1000));
        let many_dests = format!("[autoland-{}]", ["a"; 11].join(","));
        let many_ids = format!("[autoland-try:{}]", ["1"; 51].join(","));
        let cases: Vec<(&str, Check, &str)> = vec![
            (
                "[autoland-try",
                |e| matches!(e, TagError::Unclosed { .. }),
                "the tag `[autoland-try` is not closed with `]`",
            ),
            (
                "[autoland-try:-u m[Win]",
                |e| matches!(e, TagError::Unclosed { .. }),
                "is not closed",
            ),
            (
                &unclosed_junk,
                |e| matches!(e, TagError::Unclosed { .. }),
                "xxx...` is not closed",
            ),
            (
                &long_closed,
                |e| matches!(e, TagError::TooLong { max: 1000, .. }),
                "the tag is longer than 1000 characters",
            ),
            (
                "[autoland-]",
                |e| matches!(e, TagError::EmptyDestination { .. }),
                "empty destination in `[autoland-]`",
            ),
            (
                "[autoland-try,]",
                |e| matches!(e, TagError::EmptyDestination { .. }),
                "empty destination in `[autoland-try,]`",
            ),
            (
                "[autoland-:1]",
                |e| matches!(e, TagError::EmptyDestination { .. }),
                "empty destination",
            ),
            (
                "[autoland]",
                |e| matches!(e, TagError::MissingDash { .. }),
                "expected `-` and a destination after `autoland` in `[autoland]`",
            ),
            (
                "[autolandtry]",
                |e| matches!(e, TagError::MissingDash { .. }),
                "expected `-`",
            ),
            (
                "[autoland-try:1:b o]",
                |e| matches!(e, TagError::TrySyntaxMissingDash { .. }),
                "try syntax must start with '-': `b o`",
            ),
            (
                "[autoland-try:1:2]",
                |e| matches!(e, TagError::TrySyntaxMissingDash { .. }),
                "try syntax must start with '-': `2`",
            ),
            (
                "[autoland-try:12a]",
                |e| matches!(e, TagError::InvalidAttachmentId { .. }),
                "attachment id `12a` is not a number",
            ),
            (
                "[autoland-try:+12]",
                |e| matches!(e, TagError::InvalidAttachmentId { .. }),
                "attachment id `+12` is not a number",
            ),
            (
                "[autoland-try:1,-5]",
                |e| matches!(e, TagError::NonPositiveAttachmentId { .. }),
                "attachment id `-5` must be a positive number",
            ),
            (
                "[autoland-try:0]",
                |e| matches!(e, TagError::NonPositiveAttachmentId { .. }),
                "attachment id `0` must be a positive number",
            ),
            (
                "[autoland-try:000]",
                |e| matches!(e, TagError::NonPositiveAttachmentId { .. }),
                "`000`",
            ),
            (
                "[autoland-try:9223372036854775808]",
                |e| matches!(e, TagError::AttachmentIdTooLarge { .. }),
                "attachment id `9223372036854775808` is too large",
            ),
            (
                "[autoland-try:99999999999999999999999999]",
                |e| matches!(e, TagError::AttachmentIdTooLarge { .. }),
                "is too large",
            ),
            (
                "[autoland-try:1,,2]",
                |e| matches!(e, TagError::EmptyAttachmentId { .. }),
                "empty attachment id in `1,,2`",
            ),
            (
                "[autoland-try:]",
                |e| matches!(e, TagError::EmptySection { .. }),
                "nothing after ':'",
            ),
            (
                "[autoland-try: :-b o]",
                |e| matches!(e, TagError::EmptySection { .. }),
                "nothing after ':'",
            ),
            (
                "[autoland-try:1:]",
                |e| matches!(e, TagError::EmptySection { .. }),
                "nothing after ':'",
            ),
            (
                "[autoland-..]",
                |e| matches!(e, TagError::InvalidDestination { .. }),
                "destination name `..` is not valid",
            ),
            (
                "[autoland-try/../x]",
                |e| matches!(e, TagError::InvalidDestination { .. }),
                "destination name `try/../x` is not valid",
            ),
            (
                "[autoland-tr y]",
                |e| matches!(e, TagError::InvalidDestination { .. }),
                "`tr y`",
            ),
            (
                "[autoland-trÿ]",
                |e| matches!(e, TagError::InvalidDestination { .. }),
                "`trÿ`",
            ),
            (
                "[autoland--b]",
                |e| matches!(e, TagError::InvalidDestination { .. }),
                "`-b`",
            ),
            (
                "[autoland-try[x]]",
                |e| matches!(e, TagError::InvalidDestination { .. }),
                "`try[x]`",
            ),
            (
                &many_dests,
                |e| matches!(e, TagError::TooManyDestinations { max: 10, .. }),
                "too many destinations (max 10)",
            ),
            (
                &many_ids,
                |e| matches!(e, TagError::TooManyAttachmentIds { max: 50, .. }),
                "too many attachment ids (max 50)",
            ),
            (
                "[autoland-try\n]",
                |e| matches!(e, TagError::ControlCharacter { .. }),
                "the tag `[autoland-try\\n]` contains the control character U+000A",
            ),
            (
                "[autoland-try:-b o\0]",
                |e| matches!(e, TagError::ControlCharacter { .. }),
                "U+0000",
            ),
            (
                "[autoland-try:-b o\u{1b}[31m]]",
                |e| matches!(e, TagError::ControlCharacter { .. }),
                "U+001B",
            ),
            (
                "[autoland-try:-b o\u{85}]",
                |e| matches!(e, TagError::ControlCharacter { .. }),
                "U+0085",
            ),
            (
                "[autoland-try:-b ö]",
                |e| matches!(e, TagError::InvalidTrySyntax { .. }),
                "found `ö` (U+00F6) in `-b ö`",
            ),
            (
                "[autoland-try:-b o\u{202e}x]",
                |e| matches!(e, TagError::InvalidTrySyntax { .. }),
                "found U+202E in `-b o\\u{202e}x`",
            ),
        ];
        for (input, check, message) in cases {
            let e = error(input);
            assert!(check(&e), "{input:?}: unexpected {e:?}");
            let text = e.to_string();
            assert!(
                text.contains(message),
                "{input:?}: {text:?} lacks {message:?}"
            );
            assert!(
                text.chars().count() < 300,
                "{input:?}: message too long: {text}"
            );
            assert_eq!(e.span().start, 0, "{input:?}");
            // Balanced tags end at their `]`, unclosed ones at the end.
            assert_eq!(e.span().end, input.len(), "{input:?}");
        }
    }

    #[test]
    fn error_spans_cover_the_tag_only() {
        let wb = "[foo] [autoland-try:abc] [bar]";
        let e = error(wb);
        assert_eq!(&wb[e.span()], "[autoland-try:abc]");
        assert_eq!(replace(wb, e.span(), ""), "[foo] [bar]");

        let wb = "[foo] é [autoland-try ü [bar]";
        let e = error(wb);
        assert!(matches!(e, TagError::Unclosed { .. }));
        assert_eq!(&wb[e.span()], "[autoland-try ü [bar]");
        assert_eq!(replace(wb, e.span(), ""), "[foo] é");
    }

    #[test]
    fn quotes_are_truncated() {
        let wb = format!("[autoland-try {}", "é".repeat(5000));
        let text = error(&wb).to_string();
        assert!(text.contains("ééé...`"), "{text}");
        assert!(text.chars().count() < 200, "{text}");
    }

    #[test]
    fn replace_keeps_surrounding_text() {
        let wb = "[foo] [autoland-try] [bar]";
        let tag = request(wb);
        assert_eq!(
            replace(wb, tag.span.clone(), IN_QUEUE),
            "[foo] [autoland-in-queue] [bar]"
        );
        assert_eq!(replace(wb, tag.span, ""), "[foo] [bar]");

        let cases: &[(&str, Range<usize>, &str, &str)] = &[
            ("[autoland-try] foo", 0..14, "", "foo"),
            ("foo [autoland-try]", 4..18, "", "foo"),
            ("[autoland-try]", 0..14, "", ""),
            ("  [autoland-try]  ", 2..16, "", ""),
            ("foo[autoland-try]bar", 3..17, "", "foobar"),
            ("a  [x] b", 3..6, "", "a  b"),
            ("a [x]b", 2..5, "", "a b"),
            ("a [x] b", 2..5, " [y] ", "a [y] b"),
            ("a [x] b", 2..5, " ", "a b"),
            ("[x] b", 0..3, " [y]", "[y] b"),
            ("a [x]", 2..5, "[y] ", "a [y]"),
            ("  keep  this  ", 7..7, "", "  keep  this  "),
            ("ab", 1..1, "X", "aXb"),
            ("ab", 5..9, "X", "abX"),
            ("abc", Range { start: 2, end: 1 }, "X", "abXc"),
            // 'é' is bytes 1..3: spans inside it widen to the whole char.
            ("aéb", 2..2, "X", "aXb"),
            ("aéb", 0..2, "", "b"),
            ("aéb", 2..3, "", "ab"),
            ("aéb", 0..usize::MAX, "[z]", "[z]"),
        ];
        for (wb, span, with, want) in cases {
            assert_eq!(
                replace(wb, span.clone(), with),
                *want,
                "{wb:?} {span:?} {with:?}"
            );
        }
    }

    #[test]
    fn grammar_help_examples_parse() {
        let help = grammar_help();
        assert!(help.contains("[autoland-try]"));
        let examples: Vec<&str> = help
            .lines()
            .skip_while(|l| !l.starts_with("Examples"))
            .skip(1)
            .map(str::trim)
            .collect();
        assert!(examples.len() >= 4);
        for example in examples {
            assert!(matches!(find(example), Ok(Found::Request(_))), "{example}");
        }
    }

    #[test]
    fn big_hostile_whiteboards_are_fast() {
        let started = std::time::Instant::now();
        let inputs = [
            "[".repeat(64 * 1024),
            "[autolan".repeat(8 * 1024),
            format!("[autoland-try{}", "[".repeat(64 * 1024)),
            format!("[autoland-try{}", "[]".repeat(32 * 1024)),
            format!("{}[autoland-try]", "[ \t".repeat(20 * 1024)),
            format!("[autoland-try:{}]", "1,".repeat(32 * 1024)),
            format!("[autoland-{}]", "a,".repeat(32 * 1024)),
            format!("[autoland-try:-{}", "é[".repeat(16 * 1024)),
        ];
        for wb in &inputs {
            let result = find(wb);
            if let Err(e) = &result {
                assert!(e.to_string().len() < 400);
            }
        }
        assert!(matches!(find(&inputs[4]), Ok(Found::Request(_))));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
    }

    fn assert_span_ok(wb: &str, span: &Range<usize>) {
        assert!(
            span.start <= span.end && span.end <= wb.len(),
            "{wb:?} {span:?}"
        );
        assert!(wb.is_char_boundary(span.start), "{wb:?} {span:?}");
        assert!(wb.is_char_boundary(span.end), "{wb:?} {span:?}");
        assert!(wb[span.clone()].starts_with('['), "{wb:?} {span:?}");
    }

    #[test]
    fn fuzz() {
        const PIECES: &[&str] = &[
            "[",
            "]",
            ":",
            ",",
            "-",
            " ",
            "\t",
            "\n",
            "\0",
            "\u{7f}",
            "é",
            "€",
            "😀",
            "\u{202e}",
            "1",
            "0",
            "9",
            "a",
            "Z",
            ".",
            "_",
            "+",
            "autoland",
            "AUTOLAND",
            "[autoland-",
            "in-queue",
            "try",
            "-b o",
            "[Windows XP,10.8]",
            "99999999999999999999",
        ];
        const SEEDS: &[&str] = &[
            "[autoland-try]",
            "[autoland-try:-b do -p linux64 -u all]",
            "[autoland-try:409589,409590]",
            "[autoland-inbound,beta:-b o -p all]",
            "[autoland-try:123:-b o]",
            "[ autoland-try , central ]",
            "[autoland-try:-u mochitest-1[Windows XP,10.8] -p all]",
            "[foo] [autoland-in-queue] [bar]",
            "é[autoland-try]ü",
            "",
        ];
        let mut rng = StdRng::seed_from_u64(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let mut chars: Vec<char> = SEEDS[rng.random_range(0..SEEDS.len())].chars().collect();
            for _ in 0..1 + rng.random_range(0..6) {
                let at = rng.random_range(0..chars.len() + 1);
                match rng.random_range(0..4) {
                    0 | 1 => {
                        let piece = PIECES[rng.random_range(0..PIECES.len())];
                        chars.splice(at..at, piece.chars());
                    }
                    2 if !chars.is_empty() => {
                        let end = (at + 1 + rng.random_range(0..4)).min(chars.len());
                        chars.drain(at.min(end)..end);
                    }
                    _ => {
                        let other: Vec<char> =
                            SEEDS[rng.random_range(0..SEEDS.len())].chars().collect();
                        chars.splice(at..at, other);
                    }
                }
            }
            let wb: String = chars.into_iter().collect();
            match find(&wb) {
                Ok(Found::None) => assert!(!wb.to_ascii_lowercase().contains("[autoland")),
                Ok(Found::InQueue(span)) => {
                    assert_span_ok(&wb, &span);
                    assert!(wb[span.clone()].ends_with(']'));
                }
                Ok(Found::Request(tag)) => {
                    assert_span_ok(&wb, &tag.span);
                    assert!(wb[tag.span.clone()].ends_with(']'));
                    assert!(!tag.destinations.is_empty());
                    assert!(tag.attachment_ids.iter().all(|&id| id > 0));
                    assert!(tag.try_syntax.as_deref().is_none_or(|s| s.starts_with('-')));
                    // Marking the bug as in queue is then recognised.
                    let marked = replace(&wb, tag.span.clone(), IN_QUEUE);
                    let start = tag.span.start;
                    assert_eq!(
                        find(&marked),
                        Ok(Found::InQueue(start..start + IN_QUEUE.len())),
                        "{wb:?} -> {marked:?}"
                    );
                }
                Err(e) => {
                    let span = e.span();
                    assert_span_ok(&wb, &span);
                    assert!(!e.to_string().is_empty());
                    let removed = replace(&wb, span, "");
                    assert!(removed.len() <= wb.len());
                }
            }
            // replace never panics, whatever the span.
            let len = wb.len();
            let a = rng.random_range(0..len + 3);
            let b = rng.random_range(0..len + 3);
            let out = replace(&wb, a..b, PIECES[rng.random_range(0..PIECES.len())]);
            assert!(out.len() <= len + 32);
            let _ = replace(&wb, usize::MAX - 1..usize::MAX, "x");
        }
    }
}
