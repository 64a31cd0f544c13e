//! Autoland lands patches for people: a request (from its API, later from Bugzilla) is
//! checked for permissions, applied on the tip, pushed to try, tested, and landed on its
//! destinations when try passes. Modules in reading order:

/// CI systems producing try results (the built-in runner).
pub mod ci;
/// Command-line interface.
pub mod cli;
/// The configuration file and its validation.
pub mod config;
/// The first-run demonstration.
pub mod demo;
/// Operations: health checks and monitoring.
pub mod ops;
/// Parsing and validating untrusted patches.
pub mod patch;
/// Commit permissions.
pub mod permissions;
/// The domain and the request state machine (`request::state`).
pub mod request;
/// Keeping secrets out of output (URL credentials, `password=` values).
pub mod secrets;
/// The long-running modules, their supervisor and the pipeline they drive.
pub mod service;
/// Faithful simulators of services that cannot run here (Bugzilla).
pub mod simulator;
/// All SQL: requests, events, CI runs, heartbeats, outbox (SQLite and PostgreSQL).
pub mod store;
/// Where requests come from: Autoland's own API.
pub mod tracker;
/// Version control: warm working copies (git).
pub mod vcs;
/// The web server: JSON API and health.
pub mod web;
