//! Autoland lands patches for people: a request (from its API, later from Bugzilla) is
//! checked for permissions, applied on the tip, pushed to try, tested, and landed on its
//! destinations when try passes. Modules in reading order:

/// The configuration file and its validation.
pub mod config;
/// Parsing and validating untrusted patches.
#[path = "patch_stub.rs"]
pub mod patch;
/// The domain and the request state machine (`request::state`).
pub mod request;
/// All SQL: requests, events, CI runs, heartbeats, outbox (SQLite and PostgreSQL).
pub mod store;
/// Commit permissions.
pub mod permissions;
/// Version control: warm working copies (git).
pub mod vcs;
/// CI systems producing try results (the built-in runner).
pub mod ci;
/// Where requests come from: Autoland's own API.
pub mod tracker;
/// The long-running modules, their supervisor and the pipeline they drive.
pub mod service;
/// The web server: JSON API and health.
pub mod web;
/// Command-line interface.
pub mod cli;
/// The first-run demonstration.
pub mod demo;
