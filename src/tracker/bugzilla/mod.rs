//! Bugzilla: requests found on bugs (the whiteboard tag, [`tag`]), their patches fetched
//! from the bug's attachments ([`gather`]), and reports back as comments and whiteboard
//! edits, worded in [`comments`] and delivered by the [`reporter`]. [`Bugzilla`]
//! (`adapter.rs`) is the tracker the core sees; [`poller`] and [`reporter`] are its modules.

mod adapter;
pub mod client;
pub mod comments;
pub mod gather;
pub mod page;
pub mod poller;
pub mod reporter;
pub mod signin;
pub mod tag;

pub use adapter::{Bugzilla, SOURCE};
