//! The built-in CI runner (the embedded default): `runner.rs`; its warm directories, one
//! per try repository and runner: `workspace.rs`.

mod runner;
pub mod workspace;

pub use runner::run;
