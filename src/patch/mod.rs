//! Parsing and validation of user-submitted patches.
//!
//! Every byte of a patch comes from an untrusted user, so this module never
//! panics: it only slices strings at positions of ASCII delimiters it found
//! itself, through checked accessors, and every loop is linear in the input.
//!
//! Three formats are understood: `git format-patch` mails, `hg export`
//! changesets and plain unified diffs. [`parse`](crate::patch::parse)
//! extracts the metadata (author, date, message), isolates the diff that is
//! later handed to `git apply` / `hg import`, and rejects everything Autoland
//! does not land: binary changes, symlinks, submodules, paths that leave the
//! repository or touch its metadata, and malformed or truncated hunks.
//!
//! Where things are (each file imports only files below it in this list,
//! never this one):
//! - `parser.rs`: `parse`, the overall flow and format detection, and the
//!   types it takes and returns (`Limits`, `ParsedPatch`, `PatchFormat`);
//! - `mail.rs`: the `git format-patch` mail header, RFC 2047 encoded words;
//! - `hg.rs`: the `hg export` header;
//! - `header.rs`: what both headers yield, and the author and message checks;
//! - `date.rs`: `PatchDate`, from a mail `Date:` or an hg `# Date`;
//! - `diff.rs`: the diff itself: file sections, quoted names, hunks;
//! - `lines.rs`: reading line by line, and the lines that start a mail, an
//!   hg changeset or a diff;
//! - `paths.rs`: which repository paths are safe (`validate_path`);
//! - `error.rs`: `PatchError`, why a patch is rejected;
//! - `trailers.rs`: `with_trailer`, used when landing, not when parsing.

mod date;
mod diff;
mod error;
mod header;
mod hg;
mod lines;
mod mail;
mod parser;
mod paths;
mod trailers;

#[cfg(test)]
mod fixtures;

pub use date::PatchDate;
pub use error::PatchError;
pub use header::{MAX_AUTHOR_BYTES, MAX_MESSAGE_BYTES};
pub use parser::{Limits, ParsedPatch, PatchFormat, parse};
pub use paths::{MAX_PATH_BYTES, validate_path};
pub use trailers::with_trailer;
