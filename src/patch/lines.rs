//! Reading a patch line by line, and the lines that tell where a mail, an hg
//! changeset or a diff starts. Every other part of the parser walks [`Lines`].

/// The first line of an `hg export` changeset.
pub(super) const HG_MARKER: &str = "# HG changeset patch";

/// The lines of a text, with their offsets and numbers; cheap to clone, so a
/// parser can look ahead with [`Lines::peek`] and [`Lines::peek2`].
#[derive(Clone)]
pub(super) struct Lines<'a> {
    text: &'a str,
    pos: usize,
    number: usize,
}

/// One line of a patch.
#[derive(Clone, Copy)]
pub(super) struct Line<'a> {
    /// Byte offset of the line in the text.
    pub(super) start: usize,
    /// 1-based line number.
    pub(super) number: usize,
    /// The line without its "\n" and a trailing "\r".
    pub(super) text: &'a str,
}

impl<'a> Lines<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Lines {
            text,
            pos: 0,
            number: 0,
        }
    }

    pub(super) fn peek(&self) -> Option<Line<'a>> {
        self.clone().next()
    }

    pub(super) fn peek2(&self) -> Option<Line<'a>> {
        let mut lines = self.clone();
        lines.next();
        lines.next()
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        let rest = self.text.get(self.pos..).filter(|r| !r.is_empty())?;
        let (raw, len) = match rest.find('\n') {
            Some(i) => (rest.get(..i)?, i + 1),
            None => (rest, rest.len()),
        };
        let line = Line {
            start: self.pos,
            number: self.number + 1,
            text: raw.strip_suffix('\r').unwrap_or(raw),
        };
        self.pos += len;
        self.number += 1;
        Some(line)
    }
}

fn is_diff_start(line: &str, next: Option<&str>) -> bool {
    line.starts_with("diff -")
        || line.starts_with("Index: ")
        || (line.starts_with("--- ") && next.is_some_and(|n| n.starts_with("+++ ")))
}

/// Whether the next line of `lines` starts a diff.
pub(super) fn at_diff_start(lines: &Lines<'_>) -> bool {
    lines
        .peek()
        .is_some_and(|l| is_diff_start(l.text, lines.peek2().map(|n| n.text)))
}

/// `From <commit hash> ...`, the first line of a format-patch mail.
pub(super) fn is_from_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("From ") else {
        return false;
    };
    let len = rest.find(' ').unwrap_or(rest.len());
    (len == 40 || len == 64) && rest.bytes().take(len).all(|b| b.is_ascii_hexdigit())
}
