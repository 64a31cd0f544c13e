//! The built-in CI runner (the embedded default): `runner.rs`.

mod runner;

pub use runner::run;
