//! The header of a `git format-patch` mail: `From:`, `Date:` and `Subject:`
//! (with RFC 2047 encoded words), the `[PATCH n/m]` prefix, and the body up to
//! the `---` line that precedes the diffstat.

use std::borrow::Cow;

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use rfc2047_decoder::{Decoder, RecoverStrategy};

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
            "from" => header.author = check_author(&decode_header(value), *line)?,
            "date" => header.date = PatchDate::from_rfc2822(value),
            "subject" => {
                let decoded = decode_header(value).replace(|c: char| c.is_control(), " ");
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

/// Decodes the RFC 2047 encoded words of a header value (`=?UTF-8?q?Ren=C3=A9?=`)
/// with the rfc2047-decoder crate, after [`join_split_words`]. Never panics and
/// never fails: if the decoder refuses the value, it is kept as written.
///
/// Why rfc2047-decoder rather than mailparse: mailparse's header decoding
/// (`MailHeader::get_value`) rescans the line from its start at every `=?` and
/// `?=` it considers, so its time grows with the cube of the length on hostile
/// input (a 16 KiB `Subject:` of `=?a?q?b?=x ` took a second, 64 KiB over a
/// minute), and it mixes byte and character offsets, so it skips a word that
/// follows non-ASCII text. rfc2047-decoder is linear and, like git, decodes a
/// word wherever it stands (`caf=?UTF-8?q?=C3=A9?=`), where mailparse wants one
/// delimited by whitespace or `()<>",`. Both are maintained, and both get their
/// charsets from the `charset` crate (every WHATWG encoding, and UTF-7).
///
/// The costs: its dependencies are heavier (the chumsky parser library, whose
/// stacker dependency builds a little C with cc, as SQLite already does), and
/// it is all or nothing: one malformed word (an encoding other than B or Q,
/// invalid base64) makes the whole value fail, and it is then kept as written,
/// good words included; mailparse would have kept just the bad word. Words in a
/// charset it does not know are read as ASCII, other bytes becoming U+FFFD.
fn decode_header(value: &str) -> String {
    if !value.contains("=?") {
        return value.to_string();
    }
    Decoder::new()
        .too_long_encoded_word_strategy(RecoverStrategy::Decode)
        .decode(join_split_words(value).as_bytes())
        .unwrap_or_else(|_| value.to_string())
}

/// Joins adjacent encoded words of the same charset and encoding (separated only by
/// whitespace, which RFC 2047 drops between them) into one word.
///
/// RFC 2047 forbids splitting a character between two words, but some mailers
/// do (`=?UTF-8?q?caf=C3?= =?UTF-8?q?=A9?=`); git joins the bytes of adjacent
/// words before converting them, as the old decoder did, while rfc2047-decoder
/// decodes each word alone and would make two U+FFFD of the `é`. Q texts are simply
/// concatenated. B texts are decoded, concatenated and encoded again with the
/// base64 crate (each B text may end in padding), which also restores the
/// padding some mailers leave out and rfc2047-decoder requires. Anything else, and a
/// B text that is not base64, is left as it is.
fn join_split_words(value: &str) -> Cow<'_, str> {
    let words: Vec<EncodedWord<'_>> = tokens(value)
        .filter_map(|(start, token)| EncodedWord::parse(start, token))
        .collect();
    let mut out = String::new();
    let mut copied = 0;
    let adjacent = |a: &EncodedWord<'_>, b: &EncodedWord<'_>| {
        a.same_kind(b)
            && value
                .get(a.end..b.start)
                .is_some_and(|gap| gap.chars().all(char::is_whitespace))
    };
    for group in words.chunk_by(adjacent) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        if (group.len() > 1 || first.is_base64())
            && let Some(text) = EncodedWord::joined_text(group)
            && let Some(before) = value.get(copied..first.start)
        {
            out.push_str(before);
            out.push_str(&format!("=?{}?{}?{text}?=", first.charset, first.encoding));
            copied = last.end;
        }
    }
    if copied == 0 {
        return Cow::Borrowed(value);
    }
    out.push_str(value.get(copied..).unwrap_or_default());
    Cow::Owned(out)
}

/// The whitespace-separated tokens of `s`, with their byte offsets.
fn tokens(s: &str) -> impl Iterator<Item = (usize, &str)> {
    s.split_inclusive(char::is_whitespace)
        .scan(0, |offset, piece| {
            let start = *offset;
            *offset += piece.len();
            Some((start, piece.trim_end_matches(char::is_whitespace)))
        })
        .filter(|(_, token)| !token.is_empty())
}

/// A token of the form `=?charset?encoding?text?=`, and where it is in the header.
struct EncodedWord<'a> {
    start: usize,
    end: usize,
    charset: &'a str,
    encoding: &'a str,
    text: &'a str,
}

impl<'a> EncodedWord<'a> {
    fn parse(start: usize, token: &'a str) -> Option<Self> {
        let inner = token.strip_prefix("=?")?.strip_suffix("?=")?;
        let (charset, rest) = inner.split_once('?')?;
        let (encoding, text) = rest.split_once('?')?;
        let known = ["q", "b"].iter().any(|e| encoding.eq_ignore_ascii_case(e));
        (known && !charset.is_empty() && !text.contains('?')).then_some(EncodedWord {
            start,
            end: start + token.len(),
            charset,
            encoding,
            text,
        })
    }

    fn is_base64(&self) -> bool {
        self.encoding.eq_ignore_ascii_case("b")
    }

    fn same_kind(&self, other: &EncodedWord<'_>) -> bool {
        self.charset.eq_ignore_ascii_case(other.charset)
            && self.encoding.eq_ignore_ascii_case(other.encoding)
    }

    /// The encoded text of `words` (all of the same kind) as one word.
    fn joined_text(words: &[EncodedWord<'_>]) -> Option<String> {
        if !words.first()?.is_base64() {
            return Some(words.iter().map(|w| w.text).collect());
        }
        const LENIENT: GeneralPurpose = GeneralPurpose::new(
            &alphabet::STANDARD,
            GeneralPurposeConfig::new()
                .with_decode_padding_mode(DecodePaddingMode::Indifferent)
                .with_decode_allow_trailing_bits(true),
        );
        let mut bytes = Vec::new();
        for word in words {
            bytes.extend(LENIENT.decode(word.text).ok()?);
        }
        Some(STANDARD.encode(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::decode_header;
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

    // Where rfc2047-decoder (with join_split_words) and the hand-written decoder
    // it replaced disagree. git format-patch only writes UTF-8 Q words split
    // between characters, which both decode alike; these come from other mailers
    // or hand edits. None of them fails a patch.

    #[test]
    fn rfc2047_split_characters_are_joined_as_git_does() {
        // A character split between two B words, the first padded: joined like Q words.
        assert_eq!(
            decode_header("=?UTF-8?b?Rml4IGNhZsM=?= =?utf-8?B?qSBtZW51?="),
            "Fix café menu"
        );
        // Missing base64 padding is restored (rfc2047-decoder requires it; git does not).
        assert_eq!(decode_header("=?UTF-8?B?w6k?="), "é");
        // Split between a Q and a B word: not joined (the old decoder and git join the
        // bytes of any adjacent words); no mailer mixes encodings inside a character.
        assert_eq!(
            decode_header("=?UTF-8?Q?=E2=80?= =?UTF-8?B?lA==?="),
            "\u{fffd}\u{fffd}"
        );
    }

    #[test]
    fn rfc2047_charsets_beyond_utf8_and_latin1_are_decoded() {
        // Any WHATWG charset is decoded now (the old decoder kept these words as
        // written; git converts them with iconv).
        assert_eq!(decode_header("=?ISO-8859-15?Q?=A4uro?="), "€uro");
        assert_eq!(decode_header("=?KOI8-R?B?7sHUwczY0Q==?="), "Наталья");
        // WHATWG reads the ISO-8859-1 and US-ASCII labels as windows-1252, as mail
        // readers do: 0x80 is `€`, not the C1 control U+0080 (the old result, which
        // made the author check reject the whole patch), and 0xE9 is `é`, not U+FFFD.
        assert_eq!(decode_header("=?ISO-8859-1?Q?=80?="), "€");
        assert_eq!(decode_header("=?us-ascii?Q?=E9?="), "é");
        let euro = FORMAT_PATCH.replace("From: Jane Doe", "From: =?ISO-8859-1?Q?Jane_=80?=");
        assert_eq!(
            ok(&euro).author.as_deref(),
            Some("Jane € <jane@example.com>")
        );
    }

    #[test]
    fn rfc2047_unknown_charsets_are_read_as_ascii() {
        // RFC 2047 section 6.2 allows a best effort: ASCII stays, other bytes become
        // U+FFFD. The old decoder kept the word as written; git refuses the mail.
        assert_eq!(
            decode_header("=?x-unknown?Q?caf=C3=A9?="),
            "caf\u{fffd}\u{fffd}"
        );
    }

    #[test]
    fn rfc2047_a_malformed_word_keeps_the_whole_header_as_written() {
        // rfc2047-decoder decodes all or nothing; the old decoder still decoded `ok`.
        for header in [
            "=?UTF-8?q?ok?= =?UTF-8?z?a?=",
            "=?UTF-8?q?ok?= =?UTF-8?B?invalid!base64?=",
        ] {
            assert_eq!(decode_header(header), header);
            let patch = FORMAT_PATCH.replace("[PATCH 1/2] landing", &format!("{header} landing"));
            assert!(ok(&patch).message.is_some_and(|m| m.starts_with(header)));
        }
        // `?` cannot be part of an encoded text (RFC 2047 section 5); the old decoder
        // and git read `x?`.
        assert_eq!(decode_header("=?utf-8?Q?x??="), "=?utf-8?Q?x??=");
    }

    #[test]
    fn rfc2047_q_encoding_details() {
        // `_` is a space in Q encoding, as before.
        assert_eq!(decode_header("=?utf8?q?a_b?="), "a b");
        // A bad `=XY` escape is kept literally, as git does (the old decoder kept the word).
        assert_eq!(decode_header("=?UTF-8?Q?bad=ZZhex?="), "bad=ZZhex");
        // A space ending the last word before plain text is lost (rfc2047-decoder
        // trims it like quoted-printable line ends); the old decoder gave "a  b".
        assert_eq!(decode_header("=?UTF-8?q?a_?= b"), "a b");
    }

    #[test]
    fn rfc2047_whitespace_and_word_boundaries() {
        // Whitespace between adjacent encoded words is dropped (RFC 2047 section 6.2),
        // whitespace next to plain text is kept, as before.
        assert_eq!(decode_header("=?UTF-8?Q?a?= \t =?ISO-8859-1?Q?=E9?="), "aé");
        assert_eq!(decode_header("=?UTF-8?Q?a?= b =?UTF-8?Q?c?="), "a b c");
        // Words glued to text are decoded, as git and the old decoder do.
        assert_eq!(decode_header("caf=?UTF-8?Q?=C3=A9?=!"), "café!");
        assert_eq!(decode_header("Ünï =?UTF-8?Q?=C3=A9?="), "Ünï é");
    }
}
