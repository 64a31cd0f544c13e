//! The shape of the generated central repository of `landing.rs` (git) and
//! `hg_landing.rs` (hg), and the patches their landings submit. Each bench generates the
//! repository its own way.

/// Shape of the generated repository.
pub const DIRS: usize = 100;
pub const FILES_PER_DIR: usize = 100;
pub const FILES: usize = DIRS * FILES_PER_DIR;
/// Commits of history unless `BENCH_COMMITS` says otherwise.
pub const DEFAULT_COMMITS: usize = 5_000;
/// The most commits `BENCH_COMMITS` may ask for.
pub const MAX_COMMITS: usize = 1_000_000;
pub const LINES_PER_FILE: usize = 10;
/// History commit k modifies file (k-1) % HISTORY_FILES; the benchmarks' patches modify
/// files from here on, so they always apply on central's tip (a try-only landing never
/// moves it).
pub const HISTORY_FILES: usize = 5_000;
pub const FIRST_PATCHED_FILE: usize = HISTORY_FILES;

/// Commits of the generated history: `BENCH_COMMITS`, default [`DEFAULT_COMMITS`].
pub fn commits() -> anyhow::Result<usize> {
    let n = super::env_number(
        "BENCH_COMMITS",
        DEFAULT_COMMITS as u64,
        2..=MAX_COMMITS as u64,
    )?;
    Ok(n as usize)
}

/// The file history commit `k` (from 1) changes.
pub fn history_file(k: usize) -> usize {
    (k - 1) % HISTORY_FILES
}

pub fn file_path(index: usize) -> String {
    format!(
        "d{:02}/f{:03}.txt",
        index / FILES_PER_DIR,
        index % FILES_PER_DIR
    )
}

pub fn original_content(index: usize) -> String {
    let path = file_path(index);
    (1..=LINES_PER_FILE)
        .map(|line| format!("{path} line {line}\n"))
        .collect()
}

/// A unified diff changing the last line of file `index` (never touched by history).
pub fn patch_for(index: usize, label: &str) -> String {
    let path = file_path(index);
    let keep = 3;
    let first = LINES_PER_FILE - keep + 1;
    let mut diff = format!("--- a/{path}\n+++ b/{path}\n@@ -{first},{keep} +{first},{keep} @@\n");
    for line in first..LINES_PER_FILE {
        diff.push_str(&format!(" {path} line {line}\n"));
    }
    diff.push_str(&format!("-{path} line {LINES_PER_FILE}\n"));
    diff.push_str(&format!(
        "+{path} line {LINES_PER_FILE}, changed by the benchmark ({label})\n"
    ));
    diff
}
