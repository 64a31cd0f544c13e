//! Version control: a warm working copy per repository behind the [`WorkingCopy`](crate::vcs::WorkingCopy) trait,
//! with one implementation per VCS (git today, hg in a later issue), and the command
//! runner they share (argv only, never a shell; every command has a timeout).

pub mod command;
mod copies;
pub mod git;
pub mod hg;
pub mod hg_cmdserver;
mod interface;

pub use copies::{SharedWorkingCopy, WorkingCopies};
pub use interface::{
    CiCheckout, CommandRecord, CommitInfo, CommitSpec, PushTarget, VcsError, VcsSettings,
    WorkingCopy, split_identity,
};
