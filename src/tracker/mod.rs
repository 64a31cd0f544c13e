//! Trackers: where landing requests come from (and, later, where reports go back to).
//! [`api`] is Autoland's own JSON API; Bugzilla comes in a later issue.

pub mod api;
pub mod bugzilla;
pub mod comments;
pub mod tag;
