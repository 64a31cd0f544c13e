//! CI systems that produce try results. The durable record of a try run is a `ci_runs`
//! row (queued together with the `pushed_to_try` transition) and its `ci_jobs` (every
//! attempt of every job); a CI adapter fills them in, the retry policy judges them, and
//! the result watcher (`pipeline::watcher`) moves the request on — the same for every CI.
//!
//! - `adapter.rs`: the [`CiAdapter`] trait an external CI implements, and the registry;
//! - `policy.rs`: the retry policy (pure); `judge.rs`: applying it to a stored run;
//! - `poller.rs`: drives the adapters' runs (ask for jobs, read them, retry, conclude);
//! - `webhook.rs`: signed results posted by any CI (`POST /api/ci/results`);
//! - one folder per CI: `local/` (the built-in runner, the embedded default), `buildbot/`,
//!   `treeherder/`.

mod adapter;
pub mod buildbot;
mod judge;
pub mod local;
mod policy;
pub mod poller;
pub mod treeherder;
pub mod webhook;

pub use adapter::{CiAdapter, CiAdapters, CiError, Observation};
