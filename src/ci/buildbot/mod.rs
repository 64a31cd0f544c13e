//! Buildbot (a real master's force scheduler and data API): `adapter.rs` is the CI
//! adapter, `client.rs` the HTTP calls and the shapes of the answers.

mod adapter;
mod client;

pub use adapter::Buildbot;
