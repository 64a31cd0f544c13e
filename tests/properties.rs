//! Property tests (proptest) of the parsers that read hostile input: the whiteboard tag
//! parser, the patch parser and trailer handling. Arbitrary input never panics; where a
//! round trip is defined (a tag written by the grammar, a git diff made of a path and
//! lines, a trailer added twice), it holds.

use autoland::patch::{Limits, parse, with_trailer};
use autoland::request::{TRAILER_KEY, claims_trailer};
use autoland::tracker::bugzilla::tag::{Found, find, replace};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        ..ProptestConfig::default()
    }
}

/// Any string, with the tag's own punctuation over-represented.
fn whiteboard() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\[\\]a-z0-9:,\\- \t\u{7f}\u{200b}é]{0,80}",
        "(prefix )?\\[autoland-[a-z0-9,:\\- \\[\\]]{0,40}\\]?( suffix)?",
    ]
}

fn destination() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9_.]{0,11}".prop_filter("reserved", |d| d != "in-queue")
}

proptest! {
    #![proptest_config(config())]

    /// Whatever the whiteboard, `find` answers without panicking, and every span it
    /// returns (a tag, or the part an error is about) lies on char boundaries inside it,
    /// so `replace` can cut it out.
    #[test]
    fn the_tag_parser_never_panics_and_spans_are_sound(text in whiteboard()) {
        let span = match find(&text) {
            Ok(Found::None) => None,
            Ok(Found::InQueue(span)) => Some(span),
            Ok(Found::Request(tag)) => {
                prop_assert!(text[tag.span.clone()].starts_with('['));
                prop_assert!(text[tag.span.clone()].ends_with(']'));
                Some(tag.span)
            }
            Err(e) => Some(e.span()),
        };
        if let Some(span) = span {
            prop_assert!(span.start <= span.end && span.end <= text.len());
            prop_assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
            // Cutting it out leaves at most the rest (spaces around it are tidied).
            let cut = replace(&text, span.clone(), "");
            prop_assert!(cut.len() <= text.len() - (span.end - span.start));
        }
    }

    /// `replace` accepts any span, even one that is out of range or splits a character.
    #[test]
    fn replace_never_panics(text in any::<String>(), a in 0usize..200, b in 0usize..200, with in "[a-z\\[\\]-]{0,10}") {
        let _ = replace(&text, a..b, &with);
    }

    /// A tag written by the grammar reads back as written (destinations lowercased and
    /// deduplicated, ids deduplicated), wherever it stands on the whiteboard.
    #[test]
    fn a_tag_written_by_the_grammar_reads_back(
        destinations in prop::collection::vec(destination(), 1..5),
        ids in prop::collection::vec(1i64..2_000_000_000, 0..6),
        syntax in prop::option::of("-[a-z0-9 ,\\-]{0,30}"),
        before in "[a-z ]{0,10}",
        after in "[a-z ]{0,10}",
    ) {
        let mut tag = format!("[autoland-{}", destinations.join(","));
        if !ids.is_empty() {
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            tag.push(':');
            tag.push_str(&ids.join(","));
        }
        if let Some(s) = &syntax {
            tag.push(':');
            tag.push_str(s);
        }
        tag.push(']');
        let text = format!("{before}{tag}{after}");
        let Ok(Found::Request(found)) = find(&text) else {
            return Err(TestCaseError::fail(format!("not read: {text:?} -> {:?}", find(&text))));
        };
        let mut want_destinations: Vec<String> = Vec::new();
        for d in &destinations {
            if !want_destinations.contains(d) {
                want_destinations.push(d.clone());
            }
        }
        let mut want_ids: Vec<i64> = Vec::new();
        for id in &ids {
            if !want_ids.contains(id) {
                want_ids.push(*id);
            }
        }
        prop_assert_eq!(found.destinations, want_destinations);
        prop_assert_eq!(found.attachment_ids, want_ids);
        prop_assert_eq!(found.try_syntax, syntax.map(|s| s.trim().to_owned()));
        prop_assert_eq!(&text[found.span.clone()], tag.as_str());
    }

    /// Arbitrary bytes (and arbitrary text that looks like a diff) never panic the
    /// patch parser; what it accepts names only paths inside the repository.
    #[test]
    fn the_patch_parser_never_panics(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2000),
        "(From [a-z@.]{0,20}\n)?(Subject: [ -~]{0,20}\n)?(diff --git a/[a-z./]{0,20} b/[a-z./]{0,20}\n)?(--- [a-z/.]{0,20}\n\\+\\+\\+ [a-z/.]{0,20}\n)?(@@ -[0-9],[0-9] \\+[0-9],[0-9] @@\n)?([ +\\-][ -~]{0,20}\n){0,10}".prop_map(String::into_bytes),
    ]) {
        if let Ok(patch) = parse(&bytes, &Limits::default()) {
            for file in &patch.files {
                prop_assert!(!file.starts_with('/') && !file.split('/').any(|p| p == ".."), "{file}");
            }
        }
    }

    /// A git diff that adds one file with some lines parses to exactly that path.
    #[test]
    fn a_new_file_diff_parses_to_its_path(
        path in "[a-z]{1,8}(/[a-z]{1,8}){0,3}\\.txt",
        lines in prop::collection::vec("[ -~]{0,40}", 1..20),
    ) {
        let mut diff = format!(
            "diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{} @@\n",
            lines.len()
        );
        for line in &lines {
            diff.push('+');
            diff.push_str(line);
            diff.push('\n');
        }
        let patch = parse(diff.as_bytes(), &Limits::default());
        prop_assert!(patch.is_ok(), "{:?}\n{diff}", patch.err());
        let patch = patch.unwrap();
        prop_assert_eq!(patch.files, vec![path]);
    }

    /// Adding a trailer never panics, ends the message with one newline, is idempotent,
    /// and Autoland's own trailer is then claimed by the message.
    #[test]
    fn trailers_are_added_once(message in any::<String>(), value in "[A-Za-z0-9_-]{1,24}") {
        let once = with_trailer(&message, TRAILER_KEY, &value);
        prop_assert!(once.ends_with('\n') && !once.ends_with("\n\n"), "{once:?}");
        let line = format!("{TRAILER_KEY}: {value}");
        prop_assert!(once.lines().any(|l| l == line), "{once:?}");
        prop_assert_eq!(with_trailer(&once, TRAILER_KEY, &value), once.clone());
        prop_assert!(claims_trailer(&once));
    }

    /// Arbitrary keys and values (line breaks included) never panic, and the message
    /// still ends with one newline.
    #[test]
    fn any_key_and_value_are_taken(message in any::<String>(), key in any::<String>(), value in any::<String>()) {
        let out = with_trailer(&message, &key, &value);
        prop_assert!(out.ends_with('\n'));
    }
}
