//! The diff part of a patch: its file sections (`diff --git`, hg `diff -r`,
//! `Index:`, bare `---`/`+++`), their extended headers, quoted file names and
//! hunks, checked line by line. Rejects binary changes, symlinks, submodules,
//! unsafe paths and malformed or truncated hunks.

use std::collections::HashSet;

use super::error::{PatchError, malformed};
use super::lines::{HG_MARKER, Lines, at_diff_start, is_from_line};
use super::paths::{shown, validate_path};

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
pub(super) fn scan_diff(
    mut lines: Lines<'_>,
    text_len: usize,
) -> Result<(usize, Vec<String>), PatchError> {
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

#[cfg(test)]
mod tests {
    use crate::patch::error::PatchError;
    use crate::patch::fixtures::{
        FORMAT_PATCH, HG_GIT, HG_PLAIN, QUOTED, err, malformed_at, ok, plain_for, unsafe_reason,
    };

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
    fn hg_export_path_in_diff_r_line_is_checked() {
        let patch = HG_PLAIN.replace("5b2c8f0e1a3d docs/manual of style.txt", "5b2c8f0e1a3d ../x");
        assert_eq!(unsafe_reason(&patch).0, "../x");
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
}
