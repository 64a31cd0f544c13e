//! Fault injection for the crash matrix (`tests/faults.rs`, `docs/reliability.md`).
//!
//! A *point* is a named moment where a crash is interesting: before and after a request
//! transition's commit, before and after each push, before and after a tracker report is
//! sent, while a CI run's process runs, around the sheriff's conviction. Code marks one
//! with [`point`] (or [`point_at`], which adds a qualifier such as the stage entered).
//!
//! Only debug builds (the ones `cargo test` runs) look at the environment; in a release
//! build both functions are empty and the variables below are ignored:
//!
//! - `AUTOLAND_FAULT_AT=<point>[:<qualifier>]#<n>` aborts the process (`abort()`: no
//!   destructor, no flush, like `kill -9`) the `n`-th time that point is reached.
//! - `AUTOLAND_FAULT_TRACE=<file>` appends every point reached, one `<point>[:<q>]#<n>`
//!   per line, so a test learns which points a scenario passes.
//!
//! Point names are string literals at the call sites: the matrix test reads them from
//! the source and fails when one is never walked.

/// Marks a point.
#[inline]
pub fn point(name: &'static str) {
    point_at(name, "");
}

/// Marks a point with a qualifier (`transition.after_commit` at stage `trying` is
/// `transition.after_commit:trying`).
#[inline]
pub fn point_at(name: &'static str, qualifier: &str) {
    #[cfg(debug_assertions)]
    armed::reached(name, qualifier);
    #[cfg(not(debug_assertions))]
    let _ = (name, qualifier);
}

#[cfg(debug_assertions)]
mod armed {
    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::{Mutex, OnceLock};

    struct Armed {
        at: Option<String>,
        trace: Option<std::path::PathBuf>,
        counts: Mutex<HashMap<String, u64>>,
    }

    fn armed() -> Option<&'static Armed> {
        static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
        ARMED
            .get_or_init(|| {
                let at = std::env::var("AUTOLAND_FAULT_AT").ok();
                let trace = std::env::var_os("AUTOLAND_FAULT_TRACE").map(Into::into);
                (at.is_some() || trace.is_some()).then(|| Armed {
                    at,
                    trace,
                    counts: Mutex::new(HashMap::new()),
                })
            })
            .as_ref()
    }

    pub(super) fn reached(name: &str, qualifier: &str) {
        let Some(armed) = armed() else {
            return;
        };
        let key = if qualifier.is_empty() {
            name.to_owned()
        } else {
            format!("{name}:{qualifier}")
        };
        let hit = {
            let mut counts = armed
                .counts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = counts.entry(key.clone()).or_insert(0);
            *n += 1;
            format!("{key}#{n}")
        };
        if let Some(path) = &armed.trace
            && let Ok(mut file) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        {
            // One write per line: O_APPEND keeps lines whole between threads.
            let _ = file.write_all(format!("{hit}\n").as_bytes());
        }
        if armed.at.as_deref() == Some(hit.as_str()) {
            eprintln!("autoland: fault injected at {hit}: aborting");
            std::process::abort();
        }
    }
}
