//! CI systems that produce try results. The durable record of a try run is a `ci_runs` row
//! (queued together with the `pushed_to_try` transition); a CI adapter fills in its result
//! and the result watcher (`pipeline::watcher`) moves the request on.
//!
//! Adapters: [`local`](crate::ci::local), the built-in runner (the embedded default).
//! Treeherder and webhooks come later and write the same rows.

pub mod local;
