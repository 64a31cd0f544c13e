//! Autoland lands patches for people: a request (from its API or from a Bugzilla bug) is
//! checked for permissions, applied on the tip, pushed to try, tested, and landed on its
//! destinations when try passes. Modules in reading order, lowest layer first; each
//! imports only modules listed above it (`docs/development.md` has the map).

// Test support every layer may mark (inert in release builds).
/// The data directory's disk: free space, and whether an error says it is full.
pub mod disk;
/// Fault injection: named crash points for the crash matrix.
pub mod fault;

// The domain: what a request is and how it may change.
/// The configuration file and its validation.
pub mod config;
/// The landing gate's scheduling rule (speculative windows, batches, lanes), pure.
pub mod gate;
/// Parsing and validating untrusted patches.
pub mod patch;
/// Commit permissions.
pub mod permissions;
/// The request, its patches and destinations; `request::state` is the state machine.
pub mod request;
/// Keeping secrets out of output (URL credentials, `password=` values).
pub mod secrets;
/// Version control: warm working copies (git, and hg through its command server).
pub mod vcs;

// Durable state.
/// All SQL: requests, events, CI runs, heartbeats, outbox (SQLite and PostgreSQL).
pub mod store;

// What every module runs on.
/// The context, wake-ups, supervision, leadership, status and metrics; the tracker trait.
pub mod runtime;

// The modules.
/// CI systems producing try results (the built-in runner).
pub mod ci;
/// Pushers and the result watcher: a request from intake to the landed commit.
pub mod pipeline;
/// Where requests come from and reports go: Autoland's API, Bugzilla.
pub mod tracker;
/// The tree-status watcher: closes a repository while its tree is closed.
pub mod treestatus;
/// The web server: JSON API, status page, health and metrics.
pub mod web;

// Starting and driving processes.
/// Command-line interface.
pub mod cli;
/// A client of Autoland's JSON API (the `request` commands and the demo use it).
pub mod client;
/// The first-run demonstration.
pub mod demo;
/// Operations: the Nagios/Icinga check (`autoland check`), read from the database.
pub mod ops;
/// Starting a process: the one place that lists the modules.
pub mod service;
/// The queue simulator: the gate's scheduling run on a simulated clock and CI.
pub mod simulate;
/// Faithful simulators of services that cannot run here (Bugzilla, Treeherder).
pub mod simulator;
