//! Trackers: where landing requests come from and where reports go back.
//! [`api`](crate::tracker::api) validates requests submitted to Autoland's own JSON API
//! (and bugs submitted for Bugzilla); [`bugzilla`](crate::tracker::bugzilla) is the
//! Bugzilla adapter (poller, gathering, comments, outbox sender). The core sees a tracker
//! only through `runtime::Tracker`.

pub mod api;
pub mod bugzilla;
