//! Bugzilla: requests found on bugs (the whiteboard tag), their patches fetched from the
//! bug's attachments, and reports back as comments and whiteboard edits.

pub mod client;

/// The `source` of requests that come from Bugzilla.
pub const SOURCE: &str = "bugzilla";
