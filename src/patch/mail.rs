//! The header of a `git format-patch` mail: `From:`, `Date:` and `Subject:`
//! (with RFC 2047 encoded words), the `[PATCH n/m]` prefix, and the body up to
//! the `---` line that precedes the diffstat.

use super::date::PatchDate;
use super::error::{PatchError, malformed};
use super::header::{Header, check_author, check_message};
use super::lines::{Lines, at_diff_start, is_from_line};

/// Reads the mail header and the commit message body, leaving `lines` at the diff.
pub(super) fn parse_mail_header(lines: &mut Lines<'_>) -> Result<Header, PatchError> {
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

#[cfg(test)]
mod tests {
    use crate::patch::fixtures::{FORMAT_PATCH, malformed_at, ok};

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
    fn quoted_printable_mails_are_rejected() {
        let qp = FORMAT_PATCH.replace(
            "Transfer-Encoding: 8bit",
            "Transfer-Encoding: quoted-printable",
        );
        assert_eq!(malformed_at(&qp).0, 8);
    }
}
