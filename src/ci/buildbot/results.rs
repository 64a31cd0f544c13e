//! Buildbot's result codes (`buildbot.process.results`) and their names.

/// Passed.
pub const SUCCESS: i64 = 0;
/// Passed with warnings.
pub const WARNINGS: i64 = 1;
/// The build failed.
pub const FAILURE: i64 = 2;
/// Not run (collapsed, or skipped by a step condition).
pub const SKIPPED: i64 = 3;
/// An exception in the master or a step.
pub const EXCEPTION: i64 = 4;
/// The build is to be retried (lost worker, master killed).
pub const RETRY: i64 = 5;
/// Cancelled (by a person or a master shutdown).
pub const CANCELLED: i64 = 6;

/// The name of a result code.
pub fn result_name(code: i64) -> String {
    match code {
        SUCCESS => "SUCCESS".to_owned(),
        WARNINGS => "WARNINGS".to_owned(),
        FAILURE => "FAILURE".to_owned(),
        SKIPPED => "SKIPPED".to_owned(),
        EXCEPTION => "EXCEPTION".to_owned(),
        RETRY => "RETRY".to_owned(),
        CANCELLED => "CANCELLED".to_owned(),
        other => format!("result {other}"),
    }
}
