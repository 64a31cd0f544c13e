//! What the benchmarks share: reading the environment, the numbers of a report, the
//! service's configuration, and (in `repo` and `landings`) the generated repository and
//! the measured landings through the service of `landing.rs` and `hg_landing.rs`.
//!
//! Each bench includes it with `mod support;` (not `common`: `workers.rs` already has
//! `tests/common` under that name); not every bench uses every part.

#![allow(dead_code)]

pub mod landings;
pub mod repo;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use autoland::config::{Config, hash_token};

/// The API token of the benchmarks' configurations, for `USER`.
pub const TOKEN: &str = "bench-token-alice";
pub const USER: &str = "alice@example.com";

// ---------------------------------------------------------------------------------------
// The environment.

/// The number in the environment variable `name`, which must be in `range`; `default`
/// when the variable is not set.
pub fn env_number(
    name: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| range.contains(n))
            .with_context(|| {
                format!(
                    "{name} must be {} to {}, not `{text}`",
                    range.start(),
                    range.end()
                )
            }),
        Err(_) => Ok(default),
    }
}

/// The directory named by the environment variable `var` (else `default`), created if
/// need be, as an absolute path.
pub fn dir_from_env(var: &str, default: PathBuf) -> anyhow::Result<PathBuf> {
    let dir = std::env::var_os(var).map(PathBuf::from).unwrap_or(default);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir.canonicalize()?)
}

/// The machine's load averages over 1, 5 and 15 minutes (`?` where there is no
/// `/proc/loadavg`).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// The wall clock in milliseconds since the Unix epoch (as the service's event
/// timestamps are).
pub fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------
// Numbers.

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// Median, minimum and maximum of `values` (in any order; NaN when there are none).
pub fn stats(values: &[f64]) -> Stats {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Stats {
        median: median(&sorted),
        min: sorted.first().copied().unwrap_or(f64::NAN),
        max: sorted.last().copied().unwrap_or(f64::NAN),
    }
}

/// The median of sorted `values` (the mean of the middle two when their number is even;
/// NaN when there are none).
pub fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The value at fraction `p` (nearest rank) of sorted `values`; the type's default (zero)
/// when there are none.
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ---------------------------------------------------------------------------------------
// The service's configuration.

/// The service's configuration, as a file would say it (so fields added later with
/// defaults need no change here): repositories `central` and `try` of `kind` (`git` or
/// `hg`), try's CI command `true`; `users` at `scm_level_3`; the token `TOKEN` for `USER`;
/// then `extra`, more tables as a file would have them. Everything not named keeps its
/// default, notably `timeouts.poll_interval_ms` (500).
pub fn config(
    dir: &Path,
    kind: &str,
    central: &Path,
    try_repo: &Path,
    users: &[&str],
    extra: &str,
) -> anyhow::Result<Config> {
    let users: String = users
        .iter()
        .map(|u| format!("\"{u}\" = \"scm_level_3\"\n"))
        .collect();
    let text = format!(
        r#"
listen = "127.0.0.1:0"
data_dir = {data_dir}

[[repositories]]
name = "central"
kind = "{kind}"
pull_url = {central}
level = "scm_level_3"

[[repositories]]
name = "try"
kind = "{kind}"
pull_url = {try_repo}
level = "scm_level_1"
try = true
base = "central"
ci_command = "true"
ci_timeout_seconds = 60

[permissions.users]
{users}
[[tokens]]
name = "bench"
user = "{USER}"
sha256 = "{hash}"
{extra}"#,
        data_dir = toml_string(&dir.join("data")),
        central = toml_string(central),
        try_repo = toml_string(try_repo),
        hash = hash_token(TOKEN),
    );
    let config: Config = toml::from_str(&text).context("the benchmark's configuration")?;
    config.validate()?;
    Ok(config)
}

/// A path as a TOML string.
pub fn toml_string(path: &Path) -> String {
    toml::Value::String(path.to_string_lossy().into_owned()).to_string()
}
