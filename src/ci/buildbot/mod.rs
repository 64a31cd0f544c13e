//! Buildbot (a real master's force scheduler and data API): `adapter.rs` is the CI
//! adapter, `client.rs` the HTTP calls and the shapes of the answers, `results.rs` the result codes.

mod adapter;
mod client;
pub mod results;

pub use adapter::Buildbot;
