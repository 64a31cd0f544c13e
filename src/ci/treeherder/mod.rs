//! Treeherder (its read-only REST API): `adapter.rs`.

mod adapter;

pub use adapter::Treeherder;
