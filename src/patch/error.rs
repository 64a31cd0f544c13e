//! Why a patch is rejected.

/// Why a patch was rejected. The messages are meant for the submitter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch is empty or only whitespace.
    #[error("the patch is empty")]
    Empty,
    /// The patch exceeds [`Limits::max_bytes`](crate::patch::Limits::max_bytes).
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
    /// The patch touches more than [`Limits::max_files`](crate::patch::Limits::max_files) paths.
    #[error("the patch touches {count} files; the limit is {limit}")]
    TooManyFiles { count: usize, limit: usize },
    /// The patch is structurally broken at the given 1-based line.
    #[error("line {line}: {reason}")]
    Malformed { line: usize, reason: String },
}

pub(super) fn malformed(line: usize, reason: impl Into<String>) -> PatchError {
    PatchError::Malformed {
        line,
        reason: reason.into(),
    }
}
