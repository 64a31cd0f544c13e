//! Parsing and validation of user-submitted patches.
//!
//! Every byte of a patch comes from an untrusted user, so this module never
//! panics: it only slices strings at positions of ASCII delimiters it found
//! itself, through checked accessors, and every loop is linear in the input.
//!
//! Three formats are understood: `git format-patch` mails, `hg export`
//! changesets and plain unified diffs. [`parse`] extracts the metadata
//! (author, date, message), isolates the diff that is later handed to
//! `git apply` / `hg import`, and rejects everything Autoland does not land:
//! binary changes, symlinks, submodules, paths that leave the repository or
//! touch its metadata, and malformed or truncated hunks.

use std::collections::HashSet;

/// Longest accepted commit message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Longest accepted repository path, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest accepted author header, in bytes.
pub const MAX_AUTHOR_BYTES: usize = 1024;

const HG_MARKER: &str = "# HG changeset patch";

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

/// A commit timestamp: seconds since the epoch and the zone offset in minutes EAST of UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PatchDate {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub seconds: i64,
    /// Offset of the author's time zone, in minutes east of UTC (`+0100` is 60).
    pub offset_minutes: i32,
}

impl PatchDate {
    /// git's raw date format: "1700000000 +0100"
    pub fn to_git(&self) -> String {
        let sign = if self.offset_minutes < 0 { '-' } else { '+' };
        let abs = self.offset_minutes.unsigned_abs();
        format!("{} {sign}{:02}{:02}", self.seconds, abs / 60, abs % 60)
    }

    /// hg's date format: "1700000000 -3600" (seconds west of UTC)
    pub fn to_hg(&self) -> String {
        format!("{} {}", self.seconds, -i64::from(self.offset_minutes) * 60)
    }

    /// Parses an RFC 2822 date such as `Tue, 14 Nov 2023 22:13:20 +0100`
    /// (day of week optional, seconds optional). `None` if it cannot be parsed.
    pub fn from_rfc2822(s: &str) -> Option<Self> {
        let s = s.split('(').next().unwrap_or(s); // drop a trailing "(CET)" comment
        let mut tokens = s
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|t| !t.is_empty());
        let mut token = tokens.next()?;
        if token.chars().all(|c| c.is_ascii_alphabetic()) {
            token = tokens.next()?; // day of week
        }
        let day = parse_digits(token, 1, 2)?;
        let month = month_number(tokens.next()?)?;
        let year = i64::from(parse_digits(tokens.next()?, 4, 4)?);
        let mut time = tokens.next()?.split(':');
        let hour = parse_digits(time.next()?, 1, 2)?;
        let minute = parse_digits(time.next()?, 2, 2)?;
        let second = match time.next() {
            Some(s) => parse_digits(s, 2, 2)?,
            None => 0,
        };
        let offset_minutes = zone_minutes(tokens.next()?)?;
        if time.next().is_some()
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let local = days_from_civil(year, month, day) * 86_400
            + i64::from(hour * 3600 + minute * 60 + second);
        let seconds = local - i64::from(offset_minutes) * 60;
        COMMIT_DATES.contains(&seconds).then_some(PatchDate {
            seconds,
            offset_minutes,
        })
    }

    /// Parses hg's `"<seconds> <offset west of UTC in seconds>"` form. `None` if it cannot be parsed.
    pub fn from_hg(s: &str) -> Option<Self> {
        let mut parts = s.split_whitespace();
        let seconds: i64 = parts.next()?.parse().ok()?;
        let west: i64 = parts.next()?.parse().ok()?;
        if parts.next().is_some()
            || !(-86_400..=86_400).contains(&west)
            || west % 60 != 0
            || !COMMIT_DATES.contains(&seconds)
        {
            return None;
        }
        Some(PatchDate {
            seconds,
            offset_minutes: i32::try_from(-west / 60).ok()?,
        })
    }
}

/// Dates git accepts for a commit: from the epoch to 2242. A patch date outside them is
/// ignored (the commit gets the current date) rather than failing the landing.
const COMMIT_DATES: std::ops::RangeInclusive<i64> = 0..=(1 << 33);

fn parse_digits(s: &str, min: usize, max: usize) -> Option<u32> {
    if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn month_number(s: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let s = s.to_ascii_lowercase();
    let index = MONTHS
        .iter()
        .position(|m| s == *m || (s.len() == 3 && m.starts_with(s.as_str())))?;
    u32::try_from(index + 1).ok()
}

fn zone_minutes(s: &str) -> Option<i32> {
    if ["GMT", "UT", "UTC", "Z"]
        .iter()
        .any(|z| s.eq_ignore_ascii_case(z))
    {
        return Some(0);
    }
    let (sign, digits) = match (s.strip_prefix('+'), s.strip_prefix('-')) {
        (Some(d), _) => (1, d),
        (_, Some(d)) => (-1, d),
        _ => return None,
    };
    let value = parse_digits(digits, 4, 4)?;
    if value % 100 > 59 {
        return None;
    }
    Some(sign * i32::try_from(value / 100 * 60 + value % 100).ok()?)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
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
    /// "Name <email>" as given by the header, if any (format-patch From:, hg # User)
    pub author: Option<String>,
    /// The author date, if the header had one that could be parsed.
    pub date: Option<PatchDate>,
    /// Commit message (subject + body for format-patch, with "[PATCH n/m] " removed; hg message lines), trimmed; None if absent or empty
    pub message: Option<String>,
    /// The diff part only, starting at the first `diff `/`Index: `/`--- ` line, ending with a newline, with the format-patch signature ("-- \n<version>") removed. This is what gets fed to `git apply` / `hg import`.
    pub diff: String,
    /// Every repository path the patch touches (old and new names, deduplicated, in order of appearance), without the a/ b/ prefixes.
    pub files: Vec<String>,
}

/// Why a patch was rejected. The messages are meant for the submitter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch is empty or only whitespace.
    #[error("the patch is empty")]
    Empty,
    /// The patch exceeds [`Limits::max_bytes`].
    #[error("the patch is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The patch is not valid UTF-8.
    #[error("the patch is not UTF-8 text (first invalid byte at offset {offset})")]
    NotText { offset: usize },
    /// The patch contains a NUL byte.
    #[error("the patch contains a NUL byte at offset {offset}; binary data is not accepted")]
    Nul { offset: usize },
    /// No diff was found.
    #[error("the patch contains no diff (no `diff`, `---`/`+++` or `@@` hunk lines were found)")]
    NoDiff,
    /// A file is changed in binary form.
    #[error("`{path}` is a binary change; Autoland only lands text patches")]
    Binary { path: String },
    /// A file is or becomes a symbolic link.
    #[error("`{path}` would be a symbolic link (mode 120000); Autoland does not land symlinks")]
    Symlink { path: String },
    /// A path is dangerous (or a submodule is touched).
    #[error("`{path}` is not a safe path: {reason}")]
    UnsafePath { path: String, reason: &'static str },
    /// The patch touches more than [`Limits::max_files`] paths.
    #[error("the patch touches {count} files; the limit is {limit}")]
    TooManyFiles { count: usize, limit: usize },
    /// The patch is structurally broken at the given 1-based line.
    #[error("line {line}: {reason}")]
    Malformed { line: usize, reason: String },
}

fn malformed(line: usize, reason: impl Into<String>) -> PatchError {
    PatchError::Malformed {
        line,
        reason: reason.into(),
    }
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

/// Checks one repository path against the rules [`parse`] applies to every
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
fn shown(s: &str) -> String {
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

// ---------------------------------------------------------------------------
// Lines

#[derive(Clone)]
struct Lines<'a> {
    text: &'a str,
    pos: usize,
    number: usize,
}

#[derive(Clone, Copy)]
struct Line<'a> {
    /// Byte offset of the line in the text.
    start: usize,
    /// 1-based line number.
    number: usize,
    /// The line without its "\n" and a trailing "\r".
    text: &'a str,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Lines {
            text,
            pos: 0,
            number: 0,
        }
    }

    fn peek(&self) -> Option<Line<'a>> {
        self.clone().next()
    }

    fn peek2(&self) -> Option<Line<'a>> {
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
fn at_diff_start(lines: &Lines<'_>) -> bool {
    lines
        .peek()
        .is_some_and(|l| is_diff_start(l.text, lines.peek2().map(|n| n.text)))
}

/// `From <commit hash> ...`, the first line of a format-patch mail.
fn is_from_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("From ") else {
        return false;
    };
    let len = rest.find(' ').unwrap_or(rest.len());
    (len == 40 || len == 64) && rest.bytes().take(len).all(|b| b.is_ascii_hexdigit())
}

// ---------------------------------------------------------------------------
// Headers

#[derive(Default)]
struct Header {
    author: Option<String>,
    date: Option<PatchDate>,
    message: Option<String>,
}

fn parse_mail_header(lines: &mut Lines<'_>) -> Result<Header, PatchError> {
    for line in lines.by_ref() {
        if is_from_line(line.text) {
            break;
        }
    }
    // (lower-case name, unfolded value, line number)
    let mut fields: Vec<(String, String, usize)> = Vec::new();
    while let Some(line) = lines.peek() {
        if line.text.trim().is_empty() {
            lines.next();
            break;
        }
        if at_diff_start(lines) {
            break;
        }
        if line.text.starts_with([' ', '\t']) {
            let Some(field) = fields.last_mut() else {
                break;
            };
            field.1.push_str(line.text);
        } else {
            match line.text.split_once(':') {
                Some((name, value))
                    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()) =>
                {
                    let value = value.trim_start().to_string();
                    fields.push((name.to_ascii_lowercase(), value, line.number));
                }
                _ => break, // the body starts without a blank line
            }
        }
        lines.next();
    }

    let mut header = Header::default();
    let mut subject = String::new();
    let mut message_line = lines.peek().map_or(0, |l| l.number);
    for (name, value, line) in &fields {
        match name.as_str() {
            "from" => header.author = check_author(&decode_rfc2047(value), *line)?,
            "date" => header.date = PatchDate::from_rfc2822(value),
            "subject" => {
                let decoded = decode_rfc2047(value).replace(|c: char| c.is_control(), " ");
                subject = strip_patch_prefix(&decoded).to_string();
                message_line = *line;
            }
            "content-transfer-encoding" => {
                let encoding = value.trim().to_ascii_lowercase();
                if encoding == "base64" || encoding == "quoted-printable" {
                    return Err(malformed(
                        *line,
                        format!(
                            "{encoding} mail bodies are not supported; submit the `git format-patch` output as is"
                        ),
                    ));
                }
            }
            _ => {}
        }
    }

    let mut body = String::new();
    while lines.peek().is_some() && !at_diff_start(lines) {
        let Some(line) = lines.next() else { break };
        // git ends the message at the first `---` line (before the diffstat).
        if line.text == "---" || line.text.starts_with("--- ") || line.text.starts_with("---\t") {
            break;
        }
        body.push_str(line.text);
        body.push('\n');
    }
    let body = body.trim();
    let message = match (subject.is_empty(), body.is_empty()) {
        (true, _) => body.to_string(),
        (false, true) => subject,
        (false, false) => format!("{subject}\n\n{body}"),
    };
    header.message = check_message(&message, message_line)?;
    Ok(header)
}

fn parse_hg_header(lines: &mut Lines<'_>) -> Result<Header, PatchError> {
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

fn check_message(message: &str, line: usize) -> Result<Option<String>, PatchError> {
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

/// Removes leading `[PATCH ...]`-style tags from a subject, as `git am` does.
fn strip_patch_prefix(subject: &str) -> &str {
    let mut rest = subject.trim();
    while let Some(inner) = rest.strip_prefix('[') {
        let Some((tag, after)) = inner.split_once(']') else {
            break;
        };
        if !tag.to_ascii_uppercase().contains("PATCH") {
            break;
        }
        rest = after.trim_start();
    }
    rest
}

/// Validates an author header: `Name <email>` or a bare email address.
fn check_author(raw: &str, line: usize) -> Result<Option<String>, PatchError> {
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

/// Decodes RFC 2047 encoded words (`=?UTF-8?q?...?=`, `=?UTF-8?b?...?=`) in
/// UTF-8, US-ASCII and ISO-8859-1; anything else is left as it is.
fn decode_rfc2047(s: &str) -> String {
    fn flush(out: &mut String, pending: &mut Vec<u8>, latin1: bool) {
        if latin1 {
            out.extend(pending.iter().map(|&b| char::from(b)));
        } else {
            out.push_str(&String::from_utf8_lossy(pending));
        }
        pending.clear();
    }
    let mut out = String::new();
    // Bytes of adjacent encoded words are joined before decoding, so that a
    // character split across two words survives.
    let mut pending = Vec::new();
    let mut pending_latin1 = false;
    let mut after_word = false;
    let mut rest = s;
    while let Some(i) = rest.find("=?") {
        let Some((before, candidate)) = rest.split_at_checked(i) else {
            break;
        };
        if let Some((bytes, latin1, consumed)) = encoded_word(candidate) {
            let adjacent = after_word && before.chars().all(char::is_whitespace);
            if !adjacent || latin1 != pending_latin1 {
                flush(&mut out, &mut pending, pending_latin1);
            }
            if !adjacent {
                out.push_str(before);
            }
            pending.extend(bytes);
            pending_latin1 = latin1;
            after_word = true;
            rest = candidate.get(consumed..).unwrap_or_default();
        } else {
            flush(&mut out, &mut pending, pending_latin1);
            out.push_str(before);
            out.push_str("=?");
            after_word = false;
            rest = candidate.get(2..).unwrap_or_default();
        }
    }
    flush(&mut out, &mut pending, pending_latin1);
    out.push_str(rest);
    out
}

/// Decodes one encoded word at the start of `s`: (bytes, is latin-1, length consumed).
fn encoded_word(s: &str) -> Option<(Vec<u8>, bool, usize)> {
    // Encoded words are at most 75 characters; never look further than that.
    let mut limit = s.len().min(128);
    while !s.is_char_boundary(limit) {
        limit -= 1;
    }
    let inner = s.get(..limit)?.strip_prefix("=?")?;
    let (charset, rest) = inner.split_once('?')?;
    let (encoding, rest) = rest.split_once('?')?;
    let end = rest.find("?=")?;
    let text = rest.get(..end)?;
    if [charset, encoding, text]
        .iter()
        .any(|p| p.contains(char::is_whitespace))
    {
        return None;
    }
    let name = charset
        .split('*')
        .next()
        .unwrap_or(charset)
        .to_ascii_lowercase();
    let latin1 = match name.as_str() {
        "utf-8" | "utf8" | "us-ascii" => false,
        "iso-8859-1" | "latin1" => true,
        _ => return None,
    };
    let bytes = match encoding {
        "Q" | "q" => decode_q(text)?,
        "B" | "b" => decode_base64(text)?,
        _ => return None,
    };
    Some((
        bytes,
        latin1,
        2 + charset.len() + 1 + encoding.len() + 1 + end + 2,
    ))
}

fn decode_q(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'_' => out.push(b' '),
            b'=' => {
                let hi = char::from(bytes.next()?).to_digit(16)?;
                let lo = char::from(bytes.next()?).to_digit(16)?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
            }
            _ => out.push(b),
        }
    }
    Some(out)
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in text.bytes() {
        let value = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6 | u32::from(value)) & 0xff_ffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------
// Diff

#[derive(Default)]
struct FileList {
    list: Vec<String>,
    seen: HashSet<String>,
}

impl FileList {
    fn push(&mut self, name: String) {
        if !self.seen.contains(&name) {
            self.seen.insert(name.clone());
            self.list.push(name);
        }
    }
}

/// One file's part of the diff, from its `diff`/`Index:`/`---` line to the next.
#[derive(Default)]
struct Section<'a> {
    line: usize,
    /// What follows `diff --git `.
    git_header: Option<&'a str>,
    /// The path of `diff -r REV [-r REV] path` (hg), informational.
    hg_path: Option<String>,
    /// The path of `Index: path` (svn), informational.
    index_path: Option<String>,
    /// `--- name`, with `Some(None)` for `/dev/null`.
    minus: Option<Option<String>>,
    /// `+++ name`, with `Some(None)` for `/dev/null`.
    plus: Option<Option<String>>,
    rename_from: Option<String>,
    rename_to: Option<String>,
    copy_from: Option<String>,
    copy_to: Option<String>,
    binary_name: Option<String>,
    binary: bool,
    symlink: bool,
    gitlink: bool,
}

impl Section<'_> {
    fn extended_header(&mut self, text: &str, number: usize) -> Result<(), PatchError> {
        const MODES: [&str; 4] = [
            "old mode ",
            "new mode ",
            "deleted file mode ",
            "new file mode ",
        ];
        if let Some(mode) = MODES.iter().find_map(|p| text.strip_prefix(p)) {
            self.mode(mode.trim());
        } else if let Some(rest) = text.strip_prefix("index ") {
            if let Some((_, mode)) = rest.trim_end().rsplit_once(' ') {
                self.mode(mode);
            }
        } else if let Some(name) = text.strip_prefix("rename from ") {
            self.rename_from = Some(parse_bare_name(name, number)?);
        } else if let Some(name) = text.strip_prefix("rename to ") {
            self.rename_to = Some(parse_bare_name(name, number)?);
        } else if let Some(name) = text.strip_prefix("copy from ") {
            self.copy_from = Some(parse_bare_name(name, number)?);
        } else if let Some(name) = text.strip_prefix("copy to ") {
            self.copy_to = Some(parse_bare_name(name, number)?);
        } else if let Some(rest) = text.strip_prefix("Binary files ") {
            self.binary = true;
            let names = rest.strip_suffix(" differ").unwrap_or(rest);
            self.binary_name = names.split_once(" and ").map(|(old, new)| {
                if old == "/dev/null" {
                    new.strip_prefix("b/").unwrap_or(new).to_string()
                } else {
                    old.strip_prefix("a/").unwrap_or(old).to_string()
                }
            });
        } else if let Some(rest) = text.strip_prefix("Binary file ") {
            self.binary = true;
            self.binary_name = Some(
                rest.strip_suffix(" has changed")
                    .unwrap_or(rest)
                    .to_string(),
            );
        } else if text == "GIT binary patch" || is_binary_hunk(text) {
            self.binary = true;
        }
        Ok(())
    }

    /// git reads a mode as octal and keeps only its file type (regular files become 100644
    /// or 100755; every type but regular, symlink and directory becomes a gitlink), so the
    /// type bits decide, not the spelling: `120644` and `0120000` are symlinks too.
    fn mode(&mut self, mode: &str) {
        match u32::from_str_radix(mode.trim(), 8).map(|m| m & 0o170000) {
            Ok(0o100000) => {}
            Ok(0o120000) => self.symlink = true,
            _ => self.gitlink = true,
        }
    }

    /// The best name to show in an error about this section.
    fn display_name(&self) -> String {
        let names = [
            self.rename_to.as_ref(),
            self.copy_to.as_ref(),
            self.plus.as_ref().and_then(Option::as_ref),
            self.rename_from.as_ref(),
            self.copy_from.as_ref(),
            self.minus.as_ref().and_then(Option::as_ref),
            self.hg_path.as_ref(),
            self.index_path.as_ref(),
            self.binary_name.as_ref(),
        ];
        if let Some(name) = names.into_iter().flatten().next() {
            return shown(name);
        }
        match self.git_header {
            Some(rest) => shown(&symmetric_header_name(rest).unwrap_or_else(|| rest.to_string())),
            None => "(unknown file)".to_string(),
        }
    }

    /// Validates the section and adds its paths to `files`.
    fn finish(self, files: &mut FileList) -> Result<(), PatchError> {
        if self.gitlink {
            return Err(PatchError::UnsafePath {
                path: self.display_name(),
                reason: "submodules and special file modes are not landed (only regular files)",
            });
        }
        if self.symlink {
            return Err(PatchError::Symlink {
                path: self.display_name(),
            });
        }
        if self.binary {
            return Err(PatchError::Binary {
                path: self.display_name(),
            });
        }
        let names = match self.git_header {
            Some(rest) => self.git_names(rest)?,
            None => [&self.minus, &self.plus]
                .into_iter()
                .flatten()
                .flatten()
                .cloned()
                .collect(),
        };
        let informational = [
            &self.hg_path,
            &self.index_path,
            &self.rename_from,
            &self.rename_to,
            &self.copy_from,
            &self.copy_to,
        ];
        for name in informational.into_iter().flatten() {
            validate_path(name)?;
        }
        for name in names {
            validate_path(&name)?;
            files.push(name);
        }
        Ok(())
    }

    /// The old and new names of a `diff --git` section, checked against its header as git does.
    fn git_names(&self, header: &str) -> Result<Vec<String>, PatchError> {
        let minus = self.minus.as_ref().and_then(Option::as_ref);
        let plus = self.plus.as_ref().and_then(Option::as_ref);
        let olds: Vec<&String> = [self.rename_from.as_ref(), self.copy_from.as_ref(), minus]
            .into_iter()
            .flatten()
            .collect();
        let news: Vec<&String> = [self.rename_to.as_ref(), self.copy_to.as_ref(), plus]
            .into_iter()
            .flatten()
            .collect();
        let consistent = |names: &[&String]| names.iter().all(|n| Some(n) == names.first());
        if !consistent(&olds) || !consistent(&news) {
            return Err(malformed(
                self.line,
                "the file names of this `diff --git` section disagree",
            ));
        }
        let (old, new) = (olds.first().copied(), news.first().copied());
        match (old.or(new), new.or(old)) {
            (Some(old), Some(new)) => {
                if !header_matches(header, old, new) {
                    return Err(malformed(
                        self.line,
                        "the `diff --git` header does not match the file names that follow it",
                    ));
                }
                Ok(vec![old.clone(), new.clone()])
            }
            _ => symmetric_header_name(header)
                .map(|n| vec![n])
                .ok_or_else(|| {
                    malformed(
                        self.line,
                        "cannot tell the file name from the `diff --git` header",
                    )
                }),
        }
    }
}

fn is_binary_hunk(text: &str) -> bool {
    text.strip_prefix("literal ")
        .or_else(|| text.strip_prefix("delta "))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The path of an hg `diff -r REV [-r REV] path` line.
fn hg_diff_path(line: &str) -> Option<&str> {
    let mut rest = line.strip_prefix("diff ")?;
    let mut revisions = 0;
    while let Some(after) = rest.strip_prefix("-r ") {
        rest = after.split_once(' ')?.1;
        revisions += 1;
    }
    (revisions > 0 && !rest.is_empty()).then_some(rest)
}

fn strip(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_string()
}

/// Splits a `diff --git` header in which at least one name is quoted.
fn quoted_header_names(header: &str) -> Option<(String, String)> {
    let (old, new) = if header.starts_with('"') {
        let (old, tail) = unquote_c(header)?;
        let tail = tail.strip_prefix(' ')?;
        let new = if tail.starts_with('"') {
            let (new, tail) = unquote_c(tail)?;
            tail.is_empty().then_some(new)?
        } else {
            tail.as_bytes().to_vec()
        };
        (old, new)
    } else {
        // An unquoted name contains no `"` (git would have quoted it).
        let i = header.find(" \"")?;
        let (new, tail) = unquote_c(header.get(i + 1..)?)?;
        if !tail.is_empty() {
            return None;
        }
        (header.get(..i)?.as_bytes().to_vec(), new)
    };
    Some((String::from_utf8(old).ok()?, String::from_utf8(new).ok()?))
}

/// The name of a `diff --git a/X b/X` header whose two names are the same.
fn symmetric_header_name(header: &str) -> Option<String> {
    if let Some((old, new)) = quoted_header_names(header) {
        let (old, new) = (strip(&old, "a/"), strip(&new, "b/"));
        return (old == new).then_some(old);
    }
    let mid = header.len() / 2;
    if header.len().is_multiple_of(2) || header.as_bytes().get(mid) != Some(&b' ') {
        return None;
    }
    let (old, new) = (
        strip(header.get(..mid)?, "a/"),
        strip(header.get(mid + 1..)?, "b/"),
    );
    (old == new).then_some(old)
}

fn header_matches(header: &str, old: &str, new: &str) -> bool {
    if let Some((h_old, h_new)) = quoted_header_names(header)
        && strip(&h_old, "a/") == old
        && strip(&h_new, "b/") == new
    {
        return true;
    }
    [("a/", "b/"), ("", "")].iter().any(|(a, b)| {
        header
            .strip_prefix(a)
            .and_then(|r| r.strip_prefix(old))
            .and_then(|r| r.strip_prefix(' '))
            .and_then(|r| r.strip_prefix(b))
            == Some(new)
    })
}

/// Parses the name of a `---`/`+++` line: `None` for `/dev/null`, else the
/// name without `prefix`, quoting and any tab-separated timestamp.
fn parse_name(field: &str, prefix: &str, number: usize) -> Result<Option<String>, PatchError> {
    let name = if field.starts_with('"') {
        let (bytes, _) =
            unquote_c(field).ok_or_else(|| malformed(number, "a file name is badly quoted"))?;
        name_from_bytes(bytes)?
    } else {
        field
            .split_once('\t')
            .map_or(field, |(name, _)| name)
            .to_string()
    };
    if name == "/dev/null" {
        return Ok(None);
    }
    Ok(Some(strip(&name, prefix)))
}

/// Parses the name of a `rename from`/`copy to`-style line.
fn parse_bare_name(field: &str, number: usize) -> Result<String, PatchError> {
    if !field.starts_with('"') {
        return Ok(field.to_string());
    }
    match unquote_c(field) {
        Some((bytes, tail)) if tail.trim().is_empty() => name_from_bytes(bytes),
        _ => Err(malformed(number, "a file name is badly quoted")),
    }
}

fn name_from_bytes(bytes: Vec<u8>) -> Result<String, PatchError> {
    String::from_utf8(bytes).map_err(|e| PatchError::UnsafePath {
        path: shown(&String::from_utf8_lossy(e.as_bytes())),
        reason: "it is not valid UTF-8",
    })
}

/// Unquotes a C-style quoted string as git writes it (`"a/caf\303\251"`);
/// returns the bytes and what follows the closing quote.
fn unquote_c(s: &str) -> Option<(Vec<u8>, &str)> {
    let body = s.strip_prefix('"')?;
    let mut out = Vec::new();
    let mut bytes = body.bytes().enumerate();
    while let Some((i, b)) = bytes.next() {
        match b {
            b'"' => return Some((out, body.get(i + 1..)?)),
            b'\\' => {
                let (_, escape) = bytes.next()?;
                out.push(match escape {
                    b'a' => 7,
                    b'b' => 8,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'v' => 11,
                    b'f' => 12,
                    b'r' => b'\r',
                    b'"' | b'\\' => escape,
                    b'0'..=b'3' => {
                        let mut value = u32::from(escape - b'0');
                        for _ in 0..2 {
                            let digit = char::from(bytes.next()?.1).to_digit(8)?;
                            value = value * 8 + digit;
                        }
                        u8::try_from(value).ok()?
                    }
                    _ => return None,
                });
            }
            _ => out.push(b),
        }
    }
    None
}

/// A hunk being read: the lines its header still promises.
struct Hunk {
    line: usize,
    old: usize,
    new: usize,
}

impl Hunk {
    /// Consumes one line of the hunk; false if the line does not fit.
    fn take(&mut self, text: &str) -> bool {
        let (old, new) = match text.as_bytes().first() {
            // git accepts an empty line as an empty context line
            None | Some(b' ') => (1, 1),
            Some(b'-') => (1, 0),
            Some(b'+') => (0, 1),
            Some(b'\\') => (0, 0),
            _ => return false,
        };
        match (self.old.checked_sub(old), self.new.checked_sub(new)) {
            (Some(o), Some(n)) => {
                (self.old, self.new) = (o, n);
                true
            }
            _ => false,
        }
    }

    fn truncated(&self, section: Option<&Section<'_>>) -> PatchError {
        let file = section.map_or_else(|| "(unknown file)".to_string(), Section::display_name);
        malformed(
            self.line,
            format!(
                "the hunk for `{file}` is truncated or does not match its `@@` header \
                 ({} old and {} new lines are missing)",
                self.old, self.new
            ),
        )
    }
}

/// `@@ -a[,b] +c[,d] @@...` -> (b, d)
fn parse_hunk_header(text: &str) -> Option<(usize, usize)> {
    fn count(range: &str) -> Option<usize> {
        let (start, count) = range.split_once(',').unwrap_or((range, "1"));
        let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !number(start) || !number(count) {
            return None;
        }
        start.parse::<usize>().ok()?;
        count.parse().ok()
    }
    let rest = text.strip_prefix("@@ -")?;
    let (old, rest) = rest.split_once(" +")?;
    let (new, rest) = rest.split_once(' ')?;
    if !rest.starts_with("@@") {
        return None;
    }
    Some((count(old)?, count(new)?))
}

/// Walks the diff from its first line; returns where it ends (before any
/// signature) and the paths it touches.
fn scan_diff(mut lines: Lines<'_>, text_len: usize) -> Result<(usize, Vec<String>), PatchError> {
    let mut files = FileList::default();
    let mut section: Option<Section<'_>> = None;
    let mut hunk: Option<Hunk> = None;
    let mut after_hunk = false;
    let finish = |section: Option<Section<'_>>, files: &mut FileList| match section {
        Some(s) => s.finish(files),
        None => Ok(()),
    };
    while let Some(line) = lines.next() {
        let text = line.text;
        if let Some(h) = hunk.as_mut() {
            if !h.take(text) {
                return Err(h.truncated(section.as_ref()));
            }
            if h.old == 0 && h.new == 0 {
                hunk = None;
                after_hunk = true;
            }
            continue;
        }
        let follows_hunk = std::mem::take(&mut after_hunk);
        if text == "-- " || text == "--" {
            // The mail signature: `-- \n2.42.0\n`.
            finish(section, &mut files)?;
            check_after_signature(lines)?;
            return Ok((line.start, files.list));
        }
        if follows_hunk
            && ((text.starts_with('+') && !text.starts_with("+++"))
                || (text.starts_with('-') && !text.starts_with("--")))
        {
            let file = section
                .as_ref()
                .map_or_else(String::new, Section::display_name);
            return Err(malformed(
                line.number,
                format!("the hunk for `{file}` has more lines than its `@@` header says"),
            ));
        }
        if let Some(rest) = text.strip_prefix("diff --git ") {
            finish(section.take(), &mut files)?;
            section = Some(Section {
                line: line.number,
                git_header: Some(rest),
                ..Section::default()
            });
        } else if text.starts_with("diff --cc ") || text.starts_with("diff --combined ") {
            return Err(malformed(
                line.number,
                "combined (merge) diffs are not supported",
            ));
        } else if text.starts_with("diff -") {
            finish(section.take(), &mut files)?;
            section = Some(Section {
                line: line.number,
                hg_path: hg_diff_path(text).map(str::to_string),
                ..Section::default()
            });
        } else if let Some(path) = text.strip_prefix("Index: ") {
            finish(section.take(), &mut files)?;
            section = Some(Section {
                line: line.number,
                index_path: Some(path.trim().to_string()),
                ..Section::default()
            });
        } else if text.starts_with("***************")
            || (text.starts_with("*** ")
                && lines.peek().is_some_and(|n| n.text.starts_with("--- ")))
        {
            return Err(malformed(
                line.number,
                "context diffs are not supported; submit a unified diff (`diff -u`)",
            ));
        } else if let Some(old) = text.strip_prefix("--- ")
            && let Some(next) = lines.peek()
            && let Some(new) = next.text.strip_prefix("+++ ")
        {
            lines.next();
            if section.as_ref().is_none_or(|s| s.minus.is_some()) {
                finish(section.take(), &mut files)?;
            }
            let current = section.get_or_insert_with(|| Section {
                line: line.number,
                ..Section::default()
            });
            current.minus = Some(parse_name(old, "a/", line.number)?);
            current.plus = Some(parse_name(new, "b/", next.number)?);
        } else if text.starts_with("@@") {
            if section.as_ref().is_none_or(|s| s.minus.is_none()) {
                return Err(malformed(
                    line.number,
                    "a hunk (`@@`) without a `---`/`+++` file header",
                ));
            }
            let (old, new) = parse_hunk_header(text).ok_or_else(|| {
                malformed(
                    line.number,
                    format!("malformed hunk header `{}`", shown(text)),
                )
            })?;
            if old == 0 && new == 0 {
                return Err(malformed(
                    line.number,
                    "empty hunk (its header promises no lines)",
                ));
            }
            hunk = Some(Hunk {
                line: line.number,
                old,
                new,
            });
        } else if is_from_line(text) || text.trim_end() == HG_MARKER {
            return Err(malformed(
                line.number,
                "this is a series of several patches; submit each patch separately",
            ));
        } else if let Some(current) = section.as_mut() {
            current.extended_header(text, line.number)?;
        }
    }
    if let Some(h) = hunk {
        return Err(h.truncated(section.as_ref()));
    }
    finish(section, &mut files)?;
    Ok((text_len, files.list))
}

/// Only the version of git may follow the signature, not another patch.
fn check_after_signature(mut lines: Lines<'_>) -> Result<(), PatchError> {
    while let Some(line) = lines.peek() {
        if at_diff_start(&lines)
            || is_from_line(line.text)
            || line.text.trim_end() == HG_MARKER
            || line.text.starts_with("@@ -")
        {
            return Err(malformed(
                line.number,
                "the patch continues after its `-- ` signature; submit each patch separately",
            ));
        }
        lines.next();
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Trailers

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

    const FORMAT_PATCH: &str = concat!(
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

    const HG_GIT: &str = r#"# HG changeset patch
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

    const HG_PLAIN: &str = "# HG changeset patch
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

    const PLAIN: &str = "Hi, here is the fix we discussed on IRC. It applies on top of
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

    const QUOTED: &str = r#"diff --git "a/caf\303\251 menu.txt" "b/caf\303\251 menu.txt"
index 1111111..2222222 100644
--- "a/caf\303\251 menu.txt"
+++ "b/caf\303\251 menu.txt"
@@ -1 +1 @@
-old
+new
"#;

    fn ok(patch: &str) -> ParsedPatch {
        parse(patch.as_bytes(), &Limits::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(patch: &str) -> PatchError {
        parse(patch.as_bytes(), &Limits::default()).expect_err("the patch should be rejected")
    }

    fn unsafe_reason(patch: &str) -> (String, &'static str) {
        match err(patch) {
            PatchError::UnsafePath { path, reason } => (path, reason),
            other => panic!("expected UnsafePath, got {other:?}"),
        }
    }

    fn malformed_at(patch: &str) -> (usize, String) {
        match err(patch) {
            PatchError::Malformed { line, reason } => (line, reason),
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    fn plain_for(path: &str) -> String {
        format!("--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-a\n+b\n")
    }

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
    fn format_patch_rfc2047_headers_are_decoded() {
        let patch = FORMAT_PATCH
            .replace(
                "From: Jane Doe <jane@example.com>",
                "From: =?UTF-8?q?Ren=C3=A9_Descartes?= <rene@example.com>",
            )
            .replace(
                "Subject: [PATCH 1/2] landing: retry pushes when the remote rejects them\n because of a race",
                "Subject: [PATCH v2 1/2] =?UTF-8?q?Fix=20caf=C3?=\n =?UTF-8?q?=A9=20menu?= and =?utf-8?b?w6k=?=",
            );
        let p = ok(&patch);
        assert_eq!(
            p.author.as_deref(),
            Some("René Descartes <rene@example.com>")
        );
        let message = p.message.unwrap_or_default();
        assert!(
            message.starts_with("Fix café menu and é\n\n"),
            "{message:?}"
        );
    }

    #[test]
    fn format_patch_odd_headers_do_not_break_parsing() {
        let patch = FORMAT_PATCH
            .replace(
                "Date: Tue, 14 Nov 2023 22:13:20 +0100",
                "Date: sometime last week",
            )
            .replace(
                "Subject: [PATCH 1/2]",
                "Subject: [PATCH 1/2] =?x?q?oops =?UTF-8?z?a?= =?",
            );
        let p = ok(&patch);
        assert_eq!(p.date, None);
        assert!(
            p.message
                .unwrap_or_default()
                .starts_with("=?x?q?oops =?UTF-8?z?a?= =?")
        );
        let quoted = FORMAT_PATCH.replace("From: Jane Doe", "From: \"Doe, Jane\"");
        assert_eq!(
            ok(&quoted).author.as_deref(),
            Some("Doe, Jane <jane@example.com>")
        );
    }

    #[test]
    fn format_patch_signature_is_not_confused_with_a_removed_line() {
        let patch = "From 8f2a4c1e9b7d3a5f6e0c2b4d8a1f3e5c7b9d0a2e Mon Sep 17 00:00:00 2001\n\
                     From: a@example.com\nSubject: [PATCH] drop a bullet\n\n---\n\
                     diff --git a/list.md b/list.md\n--- a/list.md\n+++ b/list.md\n\
                     @@ -1,2 +1 @@\n keep\n-- \n-- \n2.40.1\n";
        let p = ok(patch);
        assert_eq!(p.message.as_deref(), Some("drop a bullet"));
        assert_eq!(
            p.diff,
            "diff --git a/list.md b/list.md\n--- a/list.md\n+++ b/list.md\n@@ -1,2 +1 @@\n keep\n-- \n"
        );
    }

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

    #[test]
    fn hg_export_path_in_diff_r_line_is_checked() {
        let patch = HG_PLAIN.replace("5b2c8f0e1a3d docs/manual of style.txt", "5b2c8f0e1a3d ../x");
        assert_eq!(unsafe_reason(&patch).0, "../x");
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
    fn plain_diff_with_index_prelude_and_crlf() {
        let svn = "Index: src/foo.c\n===================================================================\n\
                   --- src/foo.c\t(revision 1234)\n+++ src/foo.c\t(working copy)\n\
                   @@ -1,2 +1,2 @@\n int a;\n-int b;\n+int c;";
        let p = ok(svn);
        assert_eq!(p.files, ["src/foo.c"]);
        assert!(p.diff.starts_with("Index: src/foo.c\n"));
        assert!(p.diff.ends_with("+int c;\n"), "a final newline is added");

        let crlf = plain_for("win.txt").replace('\n', "\r\n");
        let p = ok(&crlf);
        assert_eq!(p.files, ["win.txt"]);
        assert_eq!(p.diff, crlf);
    }

    #[test]
    fn quoted_paths_are_unquoted() {
        assert_eq!(ok(QUOTED).files, ["café menu.txt"]);
        let mixed = "diff --git a/plain.txt \"b/tab\\there.txt\"\nsimilarity index 100%\n\
                     rename from plain.txt\nrename to \"tab\\there.txt\"\n";
        let (path, reason) = unsafe_reason(mixed);
        assert_eq!(path, "tab\\there.txt");
        assert!(reason.contains("control"));
        let latin1 = "--- \"a/caf\\351\"\n+++ \"b/caf\\351\"\n@@ -1 +1 @@\n-a\n+b\n";
        assert!(unsafe_reason(latin1).1.contains("UTF-8"));
        let (line, _) = malformed_at("--- \"a/oops\n+++ b/oops\n@@ -1 +1 @@\n-a\n+b\n");
        assert_eq!(line, 1);
    }

    #[test]
    fn renames_mode_changes_and_empty_files_need_no_hunks() {
        let rename = "diff --git a/old name.txt b/new name.txt\nsimilarity index 100%\n\
                      rename from old name.txt\nrename to new name.txt\n";
        assert_eq!(ok(rename).files, ["old name.txt", "new name.txt"]);
        let mode = "diff --git a/my script.sh b/my script.sh\nold mode 100644\nnew mode 100755\n";
        assert_eq!(ok(mode).files, ["my script.sh"]);
        let empty = "diff --git a/empty b/empty\nnew file mode 100644\nindex 0000000..e69de29\n";
        assert_eq!(ok(empty).files, ["empty"]);
        let deleted = "diff --git a/gone.txt b/gone.txt\ndeleted file mode 100644\n\
                       --- a/gone.txt\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-a\n-b\n";
        assert_eq!(ok(deleted).files, ["gone.txt"]);
        let copy = "diff --git a/a.txt b/b.txt\nsimilarity index 90%\ncopy from a.txt\ncopy to b.txt\n\
                    --- a/a.txt\n+++ b/b.txt\n@@ -1 +1 @@\n-x\n+y\n";
        assert_eq!(ok(copy).files, ["a.txt", "b.txt"]);
    }

    #[test]
    fn git_header_must_agree_with_the_names_that_follow() {
        let (line, reason) =
            malformed_at("diff --git a/x b/x\n--- a/y\n+++ b/y\n@@ -1 +1 @@\n-a\n+b\n");
        assert_eq!(line, 1);
        assert!(reason.contains("does not match"));
        let (line, _) =
            malformed_at("diff --git a/x b/.hg/hgrc\nold mode 100644\nnew mode 100755\n");
        assert_eq!(line, 1);
        let (line, _) = malformed_at(
            "diff --git a/x b/y\nrename from x\nrename to y\n--- a/x\n+++ b/z\n@@ -1 +1 @@\n-a\n+b\n",
        );
        assert_eq!(line, 1);
        let hidden = "diff --git a/x b/.git/hooks/post-checkout\nrename from x\nrename to .git/hooks/post-checkout\n";
        assert!(unsafe_reason(hidden).1.contains(".git"));
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
    fn binary_changes_are_rejected() {
        let git_binary = "diff --git a/logo.png b/logo.png\nnew file mode 100644\n\
            index 0000000000000000000000000000000000000000..1111111111111111111111111111111111111111\n\
            GIT binary patch\nliteral 5\nMc${NkU|?VX00RI30RR91\n\nliteral 0\nHcmV?d00001\n\n";
        assert_eq!(
            err(git_binary),
            PatchError::Binary {
                path: "logo.png".into()
            }
        );
        let differ = "diff --git a/doc.pdf b/doc.pdf\nindex 1111111..2222222 100644\n\
                      Binary files a/doc.pdf and b/doc.pdf differ\n";
        assert_eq!(
            err(differ),
            PatchError::Binary {
                path: "doc.pdf".into()
            }
        );
        let gnu = "diff -ru old/x.bin new/x.bin\nBinary files old/x.bin and new/x.bin differ\n";
        assert_eq!(
            err(gnu),
            PatchError::Binary {
                path: "old/x.bin".into()
            }
        );
        let hg = "diff -r 000000000000 -r 111111111111 img.png\nBinary file img.png has changed\n";
        assert_eq!(
            err(hg),
            PatchError::Binary {
                path: "img.png".into()
            }
        );
        let delta =
            "diff --git a/a.bin b/a.bin\nindex 1111111..2222222 100644\ndelta 12\nzcmV?d00001\n";
        assert_eq!(
            err(delta),
            PatchError::Binary {
                path: "a.bin".into()
            }
        );
    }

    #[test]
    fn symlinks_are_rejected() {
        let cases = [
            "diff --git a/link b/link\nnew file mode 120000\nindex 0000000..1111111\n--- /dev/null\n+++ b/link\n@@ -0,0 +1 @@\n+target\n\\ No newline at end of file\n",
            "diff --git a/link b/link\nindex 1111111..2222222 120000\n--- a/link\n+++ b/link\n@@ -1 +1 @@\n-a\n+b\n",
            "diff --git a/link b/link\nold mode 100644\nnew mode 120000\n",
            "diff --git a/link b/link\nold mode 120000\nnew mode 100644\n",
            "diff --git a/link b/link\ndeleted file mode 120000\n--- a/link\n+++ /dev/null\n@@ -1 +0,0 @@\n-target\n",
            "diff --git a/link b/link\nnew file mode 120644\nindex 0000000..1111111\n--- /dev/null\n+++ b/link\n@@ -0,0 +1 @@\n+target\n",
            "diff --git a/link b/link\nnew file mode 0120000\nindex 0000000..1111111\n--- /dev/null\n+++ b/link\n@@ -0,0 +1 @@\n+target\n",
        ];
        for case in cases {
            assert_eq!(
                err(case),
                PatchError::Symlink {
                    path: "link".into()
                },
                "{case}"
            );
        }
    }

    #[test]
    fn submodules_are_rejected() {
        let gitlink = "diff --git a/third_party/lib b/third_party/lib\nnew file mode 160000\n\
            index 0000000..abcdef1\n--- /dev/null\n+++ b/third_party/lib\n@@ -0,0 +1 @@\n\
            +Subproject commit abcdef1234567890abcdef1234567890abcdef12\n";
        let (path, reason) = unsafe_reason(gitlink);
        assert_eq!(path, "third_party/lib");
        assert!(reason.contains("submodule"));
        let bump = "diff --git a/sub b/sub\nindex 1111111..2222222 160000\n";
        assert!(unsafe_reason(bump).1.contains("submodule"));
    }

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
    fn malformed_hunk_headers() {
        for header in [
            "@@ -1,x +1 @@",
            "@@ -1 +1",
            "@@ 1 1 @@",
            "@@ -1,2 +1,99999999999999999999999 @@",
            "@@ --1 +1 @@",
        ] {
            let patch = format!("--- a/x\n+++ b/x\n{header}\n-a\n+b\n");
            let (line, reason) = malformed_at(&patch);
            assert_eq!(line, 3, "{header}");
            assert!(reason.contains("hunk header"), "{reason}");
        }
        let (line, reason) = malformed_at("--- a/x\n+++ b/x\n@@ -0,0 +0,0 @@\n");
        assert_eq!(line, 3);
        assert!(reason.contains("empty hunk"));
    }

    #[test]
    fn truncated_hunks_are_reported_with_their_file() {
        let cut = FORMAT_PATCH.replace("     Ok(())\n }\n", "");
        let (line, reason) = malformed_at(&cut);
        assert_eq!(line, 29, "the line of the `@@` header");
        assert!(
            reason.contains("src/land.rs") && reason.contains("truncated"),
            "{reason}"
        );
        let eof = "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n";
        assert!(malformed_at(eof).1.contains("`x`"));
        let next_file = "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-a\n+b\ndiff --git a/y b/y\n";
        assert_eq!(malformed_at(next_file).0, 3);
        let (line, reason) = malformed_at("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n+c\n");
        assert_eq!(line, 6);
        assert!(reason.contains("more lines"));
    }

    #[test]
    fn no_newline_markers_and_empty_context_lines() {
        let patch = "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n";
        assert_eq!(ok(patch).files, ["x"]);
    }

    #[test]
    fn series_and_combined_diffs_are_rejected() {
        let twice = format!("{FORMAT_PATCH}{FORMAT_PATCH}");
        assert!(malformed_at(&twice).1.contains("separately"));
        let no_signature = FORMAT_PATCH.replace("-- \n2.42.0\n", "");
        let twice = format!("{no_signature}{no_signature}");
        assert_eq!(malformed_at(&twice).0, 38);
        let hg_twice = format!("{HG_GIT}{HG_GIT}");
        assert!(malformed_at(&hg_twice).1.contains("separately"));
        let cc =
            "diff --cc file.c\nindex 1,2..3\n--- a/file.c\n+++ b/file.c\n@@@ -1,1 -1,1 +1,1 @@@\n";
        assert!(malformed_at(cc).1.contains("combined"));
    }

    #[test]
    fn context_diffs_are_rejected() {
        let context = "diff -c a/x b/x\n*** a/x\n--- b/x\n***************\n*** 1 ****\n! a\n--- 1 ----\n! b\n";
        let (line, reason) = malformed_at(context);
        assert_eq!(line, 2);
        assert!(reason.contains("context diff"));
        let hidden = format!("{}*** a/.hg/hgrc\n--- b/.hg/hgrc\n", plain_for("ok.txt"));
        assert_eq!(malformed_at(&hidden).0, 6);
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

    #[test]
    fn quoted_printable_mails_are_rejected() {
        let qp = FORMAT_PATCH.replace(
            "Transfer-Encoding: 8bit",
            "Transfer-Encoding: quoted-printable",
        );
        assert_eq!(malformed_at(&qp).0, 8);
    }

    #[test]
    fn rfc2822_dates() {
        let date = |s: &str| PatchDate::from_rfc2822(s).map(|d| (d.seconds, d.offset_minutes));
        assert_eq!(
            date("Tue, 14 Nov 2023 22:13:20 +0100"),
            Some((1_699_996_400, 60))
        );
        assert_eq!(
            date("14 Nov 2023 22:13:20 +0100"),
            Some((1_699_996_400, 60))
        );
        assert_eq!(
            date("Tue,14 November 2023 21:13:20 GMT"),
            Some((1_699_996_400, 0))
        );
        assert_eq!(
            date("Tue, 4 Jul 2023 09:05 -0530"),
            Some((1_688_481_300, -330))
        );
        assert_eq!(date("Thu, 1 Jan 1970 00:00:00 +0000 (UTC)"), Some((0, 0)));
        // Before the epoch git refuses the date: it is ignored rather than failing the landing.
        assert_eq!(date("Wed, 31 Dec 1969 23:59:59 +0000"), None);
        assert_eq!(date("Mon, 1 Jan 1900 00:00:00 +0000"), None);
        assert_eq!(PatchDate::from_hg("-5 0"), None);
        assert_eq!(PatchDate::from_hg("99999999999 0"), None);
        assert_eq!(
            date("Thu, 29 Feb 2024 12:00:00 +0000"),
            Some((1_709_208_000, 0))
        );
        for bad in [
            "",
            "yesterday",
            "Wed, 29 Feb 2023 12:00:00 +0000",
            "Tue, 14 Nov 23 22:13:20 +0100",
            "Tue, 14 Nov 2023 22:13:20",
            "Tue, 14 Nov 2023 24:00:00 +0000",
            "Tue, 14 Nov 2023 22:13:20 +01",
            "Tue, 14 Nov 2023 22:13:20 +0160",
            "Tue, 14 Foo 2023 22:13:20 +0100",
            "Tue, 0 Nov 2023 22:13:20 +0100",
            "Tue, 14 Nov 2023 22:13:20:11 +0100",
        ] {
            assert_eq!(date(bad), None, "{bad}");
        }
    }

    #[test]
    fn hg_dates_and_formatting() {
        let d = PatchDate::from_hg("1700000000 -3600");
        assert_eq!(
            d,
            Some(PatchDate {
                seconds: 1_700_000_000,
                offset_minutes: 60
            })
        );
        assert_eq!(
            PatchDate::from_hg("1700000000 0").map(|d| d.offset_minutes),
            Some(0)
        );
        assert_eq!(
            PatchDate::from_hg("1700000000 19800").map(|d| d.offset_minutes),
            Some(-330)
        );
        assert_eq!(PatchDate::from_hg("1700000000 30"), None);
        assert_eq!(PatchDate::from_hg("abc 0"), None);
        assert_eq!(PatchDate::from_hg("1700000000"), None);
        assert_eq!(PatchDate::from_hg("1 -9223372036854775808"), None);
        let east = PatchDate {
            seconds: 1_700_000_000,
            offset_minutes: 60,
        };
        assert_eq!(east.to_git(), "1700000000 +0100");
        assert_eq!(east.to_hg(), "1700000000 -3600");
        let west = PatchDate {
            seconds: 1_700_000_000,
            offset_minutes: -330,
        };
        assert_eq!(west.to_git(), "1700000000 -0530");
        assert_eq!(west.to_hg(), "1700000000 19800");
        let utc = PatchDate {
            seconds: 0,
            offset_minutes: 0,
        };
        assert_eq!(
            (utc.to_git(), utc.to_hg()),
            ("0 +0000".into(), "0 0".into())
        );
        let bad_date = HG_GIT.replace("# Date 1700000000 -3600", "# Date tomorrow");
        assert_eq!(ok(&bad_date).date, None);
    }

    #[test]
    fn serde_names_are_snake_case() {
        let json = serde_json::to_string(&PatchFormat::GitFormatPatch).unwrap_or_default();
        assert_eq!(json, "\"git_format_patch\"");
        let back: Result<PatchFormat, _> = serde_json::from_str("\"hg_export\"");
        assert_eq!(back.ok(), Some(PatchFormat::HgExport));
    }

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

    /// A tiny deterministic xorshift generator.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
        }
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

    fn mutate(data: &mut Vec<u8>, rng: &mut Rng) {
        let len = data.len();
        let pos = rng.below(len + 1);
        match rng.below(6) {
            0 if len > 0 => {
                if let Some(b) = data.get_mut(pos.min(len - 1)) {
                    *b = u8::try_from(rng.below(256)).unwrap_or(0);
                }
            }
            1 => data.insert(pos, b"\n-+ @\\\"\t\r0aZ\xc3\xff"[rng.below(14)]),
            2 => {
                let end = (pos + rng.below(40)).min(len);
                data.drain(pos..end);
            }
            3 => data.truncate(pos),
            4 => {
                let end = (pos + rng.below(200)).min(len);
                let copy = data[pos..end].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, copy);
            }
            _ => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                data.splice(pos..pos, token.iter().copied());
            }
        }
    }

    #[test]
    fn fuzzed_inputs_never_panic() {
        let fixtures = [FORMAT_PATCH, HG_GIT, HG_PLAIN, PLAIN, QUOTED];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut accepted = 0;
        for i in 0..6000 {
            let mut data = fixtures[i % fixtures.len()].as_bytes().to_vec();
            for _ in 0..=rng.below(4) {
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
            let data: String = (0..rng.below(30))
                .map(|_| TOKENS[rng.below(TOKENS.len())])
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
