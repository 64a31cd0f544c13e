//! Faithful, in-process simulators of external services, for tests and `autoland demo`.
pub mod bugzilla;
pub mod treeherder;
