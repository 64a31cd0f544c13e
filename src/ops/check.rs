//! `autoland check`: a Nagios/Icinga plugin following the Monitoring Plugins development
//! guidelines. It reads the service's database directly (so it works while the web server
//! is down), judges the module heartbeats, the queue depth and the age of the oldest open
//! request against thresholds in the standard range syntax, and prints one status line:
//! `AUTOLAND <STATE> - <what is wrong first> | <perfdata>`.
//!
//! Everything here but [`run`] and the database read it drives is a pure function:
//! range parsing and evaluation, the verdict on a [`Snapshot`], and the output format.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;
use crate::request::Stage;
use crate::secrets::scrub;
use crate::store::{Heartbeat, Store, StoreError};

/// The service name that starts every status line.
pub const SERVICE: &str = "AUTOLAND";

/// Shown after the options in `autoland check --help`.
pub const HELP: &str = "\
States (exit status):
  OK (0)        every module reports, no threshold is crossed
  WARNING (1)   a warning threshold is crossed, a module is degraded (its reason is
                shown), or a module was stopped (graceful shutdown) while others run
  CRITICAL (2)  a critical threshold is crossed, no module has ever reported, every
                module is stopped (nothing can land), or the database cannot be read
                or does not answer within --timeout: the service cannot work without
                its database
  UNKNOWN (3)   bad options, or the configuration file is missing or unreadable

Thresholds use the Monitoring Plugins range syntax. The check alerts when the value is
outside the range, or inside it when the range starts with @:
  10        alert below 0 or above 10
  10:       alert below 10
  ~:10      alert above 10
  10:20     alert below 10 or above 20
  @10:20    alert from 10 to 20, inclusive
The queue depth counts open requests (not landed, failed or cancelled); ages are in
seconds. Heartbeat thresholds apply to every module that has not stopped. A module
running in several processes is as healthy as its healthiest instance.

Output: one line, `AUTOLAND <STATE> - <summary> | <perfdata>`, with the perfdata labels
'queue', 'oldest_age' (s) and 'hb_<module>' (s, seconds since the module's heartbeat).
-v adds one line per module instance and the requests by stage. The check reads only
`database_url` and `data_dir` from the configuration file, and the database directly:
it works while the web server is down. See docs/monitoring.md.";

/// The options of `autoland check`. Values are taken as text and checked here, so that a
/// bad one ends as UNKNOWN (exit 3) with a status line.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// The service's configuration file: only `database_url` and `data_dir` are read.
    #[arg(long, env = "AUTOLAND_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// WARNING range for the queue depth (open requests); none by default.
    #[arg(long, value_name = "RANGE", allow_hyphen_values = true)]
    pub queue_warning: Option<String>,
    /// CRITICAL range for the queue depth; none by default.
    #[arg(long, value_name = "RANGE", allow_hyphen_values = true)]
    pub queue_critical: Option<String>,
    /// WARNING range for the oldest open request's age in seconds; none by default.
    #[arg(long, value_name = "RANGE", allow_hyphen_values = true)]
    pub age_warning: Option<String>,
    /// CRITICAL range for the oldest open request's age in seconds; none by default.
    #[arg(long, value_name = "RANGE", allow_hyphen_values = true)]
    pub age_critical: Option<String>,
    /// WARNING range for the seconds since a module's last heartbeat (written every 5 s).
    #[arg(
        long,
        value_name = "RANGE",
        default_value = "15",
        allow_hyphen_values = true
    )]
    pub heartbeat_warning: String,
    /// CRITICAL range for the seconds since a module's last heartbeat.
    #[arg(
        long,
        value_name = "RANGE",
        default_value = "30",
        allow_hyphen_values = true
    )]
    pub heartbeat_critical: String,
    /// Give up after this many seconds: CRITICAL (the database does not answer).
    #[arg(long, short = 't', value_name = "SECONDS", default_value = "10")]
    pub timeout: String,
    /// Anything else (`-w 10`, a typo): caught here to end as UNKNOWN with a status line
    /// rather than as clap's usage error (exit status 2, which means CRITICAL).
    #[arg(
        hide = true,
        num_args = 0..,
        allow_hyphen_values = true,
        trailing_var_arg = true
    )]
    pub unexpected: Vec<String>,
}

/// A plugin state, with its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// 0.
    Ok,
    /// 1.
    Warning,
    /// 2.
    Critical,
    /// 3.
    Unknown,
}

impl State {
    /// The exit status.
    pub fn code(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Warning => 1,
            State::Critical => 2,
            State::Unknown => 3,
        }
    }

    /// How bad it is, to combine states: CRITICAL > WARNING > UNKNOWN > OK (as the
    /// Monitoring Plugins' `max_state`).
    fn severity(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Unknown => 1,
            State::Warning => 2,
            State::Critical => 3,
        }
    }

    /// The worse of two states.
    pub fn worst(self, other: State) -> State {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        })
    }
}

/// A threshold range: `[@]start:end`, where a missing start is 0, `~` is minus
/// infinity and a missing end is infinity.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    /// Lower bound; `None` is minus infinity.
    pub start: Option<f64>,
    /// Upper bound; `None` is infinity.
    pub end: Option<f64>,
    /// `@`: alert inside the range instead of outside.
    pub inside: bool,
    text: String,
}

/// A range that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid range `{text}`: {reason}")]
pub struct RangeError {
    /// What was given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Range {
    /// Parses the Monitoring Plugins range syntax (`10`, `10:`, `~:10`, `10:20`,
    /// `@10:20`).
    pub fn parse(text: &str) -> Result<Range, RangeError> {
        let err = |reason: String| RangeError {
            text: text.to_owned(),
            reason,
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(err("it is empty".to_owned()));
        }
        let (inside, body) = match trimmed.strip_prefix('@') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let (start, end) = match body.split_once(':') {
            None => (Some(0.0), Some(number(body).map_err(err)?)),
            Some((start, end)) => {
                let start = match start {
                    "~" => None,
                    "" => Some(0.0),
                    s => Some(number(s).map_err(err)?),
                };
                let end = match end {
                    "" => None,
                    e => Some(number(e).map_err(err)?),
                };
                (start, end)
            }
        };
        if let (Some(s), Some(e)) = (start, end)
            && s > e
        {
            return Err(err(format!("its start {s} is greater than its end {e}")));
        }
        Ok(Range {
            start,
            end,
            inside,
            text: trimmed.to_owned(),
        })
    }

    /// True if `value` should raise an alert: outside the range, or inside with `@`
    /// (bounds belong to the range).
    pub fn alerts(&self, value: f64) -> bool {
        let below = self.start.is_some_and(|s| value < s);
        let above = self.end.is_some_and(|e| value > e);
        (below || above) != self.inside
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A finite decimal number (no `inf`, `nan` or exponents, which `f64` would accept).
fn number(text: &str) -> Result<f64, String> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let plain = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.chars().any(|c| c.is_ascii_digit());
    match text.parse::<f64>() {
        Ok(n) if plain && n.is_finite() => Ok(n),
        _ if text.is_empty() => Err("a bound is empty".to_owned()),
        _ => Err(format!("`{text}` is not a number")),
    }
}

/// A pair of optional WARNING and CRITICAL ranges for one measurement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thresholds {
    /// WARNING range.
    pub warning: Option<Range>,
    /// CRITICAL range.
    pub critical: Option<Range>,
}

impl Thresholds {
    /// The state for `value` (CRITICAL wins over WARNING) and the range it crossed.
    pub fn evaluate(&self, value: f64) -> (State, Option<&Range>) {
        if let Some(range) = self.critical.as_ref().filter(|r| r.alerts(value)) {
            return (State::Critical, Some(range));
        }
        if let Some(range) = self.warning.as_ref().filter(|r| r.alerts(value)) {
            return (State::Warning, Some(range));
        }
        (State::Ok, None)
    }
}

/// `" (crit 30)"` after a value that crossed a threshold, empty otherwise.
fn crossed(state: State, range: Option<&Range>) -> String {
    match (state, range) {
        (State::Critical, Some(r)) => format!(" (crit {r})"),
        (State::Warning, Some(r)) => format!(" (warn {r})"),
        _ => String::new(),
    }
}

/// One performance data item: `'label'=value[UOM];warn;crit;min;max`.
#[derive(Debug, Clone, PartialEq)]
pub struct Perfdata {
    /// Label (quoted on output).
    pub label: String,
    /// Value.
    pub value: i64,
    /// Unit: `""` (a count) or `"s"`.
    pub uom: &'static str,
    /// WARNING range.
    pub warning: Option<Range>,
    /// CRITICAL range.
    pub critical: Option<Range>,
    /// Minimum.
    pub min: Option<i64>,
    /// Maximum.
    pub max: Option<i64>,
}

impl Perfdata {
    fn new(label: impl Into<String>, value: i64, uom: &'static str, t: &Thresholds) -> Perfdata {
        Perfdata {
            label: label.into(),
            value,
            uom,
            warning: t.warning.clone(),
            critical: t.critical.clone(),
            min: Some(0),
            max: None,
        }
    }
}

impl fmt::Display for Perfdata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Quotes in a label are doubled; `=` would end it and whitespace is kept by the
        // quotes, so only `=` is replaced.
        let label = self.label.replace('\'', "''").replace('=', "_");
        let text = |v: &Option<Range>| v.as_ref().map(Range::to_string).unwrap_or_default();
        let num = |v: &Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
        let fields = [
            text(&self.warning),
            text(&self.critical),
            num(&self.min),
            num(&self.max),
        ];
        // Trailing empty fields may be dropped.
        let used = fields
            .iter()
            .rposition(|f| !f.is_empty())
            .map_or(0, |i| i + 1);
        write!(f, "'{label}'={}{}", self.value, self.uom)?;
        for field in &fields[..used] {
            write!(f, ";{field}")?;
        }
        Ok(())
    }
}

/// The options, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Queue depth.
    pub queue: Thresholds,
    /// Oldest open request's age (s).
    pub age: Thresholds,
    /// Seconds since each module's heartbeat.
    pub heartbeat: Thresholds,
    /// Give up after.
    pub timeout: Duration,
}

impl Options {
    /// Checks the options; the error is the message for an UNKNOWN status line.
    pub fn from_args(args: &CheckArgs) -> Result<Options, String> {
        if let Some(first) = args.unexpected.first() {
            return Err(format!(
                "unexpected argument `{}`; see autoland check --help",
                clip(first, 40)
            ));
        }
        let range = |flag: &str, text: Option<&str>| -> Result<Option<Range>, String> {
            text.map(Range::parse).transpose().map_err(|e| {
                format!("--{flag}: {e}; ranges look like 10, 10:, ~:10, 10:20 or @10:20")
            })
        };
        let timeout = match args.timeout.trim().parse::<u64>() {
            Ok(n) if n > 0 => Duration::from_secs(n),
            _ => {
                return Err(format!(
                    "--timeout: `{}` is not a positive number of seconds",
                    args.timeout
                ));
            }
        };
        Ok(Options {
            queue: Thresholds {
                warning: range("queue-warning", args.queue_warning.as_deref())?,
                critical: range("queue-critical", args.queue_critical.as_deref())?,
            },
            age: Thresholds {
                warning: range("age-warning", args.age_warning.as_deref())?,
                critical: range("age-critical", args.age_critical.as_deref())?,
            },
            heartbeat: Thresholds {
                warning: range("heartbeat-warning", Some(&args.heartbeat_warning))?,
                critical: range("heartbeat-critical", Some(&args.heartbeat_critical))?,
            },
            timeout,
        })
    }
}

/// What the check read from the database.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When it was read (ms).
    pub now_ms: i64,
    /// Every module instance's last heartbeat.
    pub heartbeats: Vec<Heartbeat>,
    /// Requests per stage.
    pub stage_counts: Vec<(Stage, i64)>,
    /// Creation time of the oldest open request (ms).
    pub oldest_open_ms: Option<i64>,
}

/// The verdict: a state, a summary (what is wrong first), perfdata, and the lines `-v`
/// adds.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// State.
    pub state: State,
    /// Summary.
    pub summary: String,
    /// Performance data.
    pub perfdata: Vec<Perfdata>,
    /// Extra lines for `-v`.
    pub details: Vec<String>,
}

impl Outcome {
    /// An outcome without measurements (errors).
    pub fn bare(state: State, summary: impl Into<String>) -> Outcome {
        Outcome {
            state,
            summary: summary.into(),
            perfdata: Vec::new(),
            details: Vec::new(),
        }
    }

    /// The plugin output: the status line, then with `verbose` one line per detail.
    /// Text is made safe on the way out: one line, no `|` (it starts the perfdata), no
    /// passwords in URLs.
    pub fn render(&self, verbose: bool) -> String {
        let mut out = format!("{SERVICE} {} - {}", self.state, one_line(&self.summary));
        if !self.perfdata.is_empty() {
            out.push_str(" |");
            for p in &self.perfdata {
                out.push(' ');
                out.push_str(&p.to_string());
            }
        }
        if verbose {
            for line in &self.details {
                out.push('\n');
                out.push_str(&one_line(line));
            }
        }
        out
    }
}

/// One statement in the summary.
#[derive(Debug, Clone)]
struct Fact {
    state: State,
    text: String,
}

impl Fact {
    fn new(state: State, text: impl Into<String>) -> Fact {
        Fact {
            state,
            text: text.into(),
        }
    }
}

/// Seconds from `then_ms` to `now_ms`, never negative (clocks of other hosts may be
/// ahead).
fn age_seconds(now_ms: i64, then_ms: i64) -> i64 {
    now_ms.saturating_sub(then_ms).max(0) / 1000
}

/// The verdict on one module instance.
struct InstanceHealth<'a> {
    beat: &'a Heartbeat,
    state: State,
    age: i64,
    facts: Vec<Fact>,
}

fn instance_health<'a>(beat: &'a Heartbeat, now_ms: i64, t: &Thresholds) -> InstanceHealth<'a> {
    let age = age_seconds(now_ms, beat.beat_at);
    let module = &beat.module;
    let mut facts = Vec::new();
    if beat.state == "stopped" {
        // A graceful shutdown: not running, but nothing crashed.
        facts.push(Fact::new(
            State::Warning,
            format!("{module} stopped {age}s ago"),
        ));
    } else {
        let (state, range) = t.evaluate(age as f64);
        if state != State::Ok {
            facts.push(Fact::new(
                state,
                format!("{module} heartbeat {age}s old{}", crossed(state, range)),
            ));
        }
        match beat.state.as_str() {
            // A standby waits to take over a singleton from the leading process.
            "running" | "standby" => {}
            "degraded" => facts.push(Fact::new(
                State::Warning,
                format!("{module} degraded: {}", clip(&beat.detail, 160)),
            )),
            other => facts.push(Fact::new(
                State::Warning,
                format!("{module} in unknown state `{}`", clip(other, 40)),
            )),
        }
    }
    let state = facts
        .iter()
        .fold(State::Ok, |acc, fact| acc.worst(fact.state));
    InstanceHealth {
        beat,
        state,
        age,
        facts,
    }
}

/// Judges a snapshot. Modules are judged by their healthiest instance (the freshest
/// among equals), so an instance left behind by a restart (a new pid) does not alert
/// while its successor runs.
pub fn evaluate(snapshot: &Snapshot, options: &Options) -> Outcome {
    let now = snapshot.now_ms;
    let mut by_module: BTreeMap<&str, Vec<&Heartbeat>> = BTreeMap::new();
    for beat in &snapshot.heartbeats {
        by_module.entry(&beat.module).or_default().push(beat);
    }
    let modules: Vec<InstanceHealth<'_>> = by_module
        .values()
        .filter_map(|beats| {
            let healths: Vec<InstanceHealth<'_>> = beats
                .iter()
                .map(|beat| instance_health(beat, now, &options.heartbeat))
                .collect();
            // A singleton is fine on standby in some processes, not in all of them.
            // Any live instance that is not waiting counts, degraded or not (its own
            // facts say what is wrong with it).
            let someone_runs = healths.iter().any(|h| {
                !matches!(h.beat.state.as_str(), "standby" | "stopped")
                    && h.state != State::Critical
            });
            let mut best = healths
                .into_iter()
                .min_by_key(|h| (h.state.severity(), Reverse(h.beat.beat_at)))?;
            if !someone_runs && best.beat.state == "standby" {
                best.facts.push(Fact::new(
                    State::Warning,
                    format!(
                        "{} runs nowhere: every instance is on standby (no serve process leads)",
                        best.beat.module
                    ),
                ));
                best.state = best.state.worst(State::Warning);
            }
            Some(best)
        })
        .collect();

    let mut facts = Vec::new();
    if modules.is_empty() {
        facts.push(Fact::new(State::Critical, "no module has ever reported"));
    }
    for module in &modules {
        facts.extend(module.facts.iter().cloned());
    }
    // Every module stopped (no instance of any runs anywhere): nothing can land. One
    // stopped module is a warning; while another instance of it runs, not even that.
    if !modules.is_empty() && modules.iter().all(|m| m.beat.state == "stopped") {
        facts.push(Fact::new(
            State::Critical,
            "every module is stopped: nothing can land",
        ));
    }
    let total = modules.len();
    let ok = modules.iter().filter(|m| m.state == State::Ok).count();
    if total > 0 {
        let noun = if total == 1 { "module" } else { "modules" };
        facts.push(Fact::new(
            State::Ok,
            if ok == total {
                format!("{total} {noun} ok")
            } else {
                format!("{ok} of {total} {noun} ok")
            },
        ));
    }

    let depth: i64 = snapshot
        .stage_counts
        .iter()
        .filter(|(stage, _)| !stage.is_terminal())
        .map(|(_, n)| n)
        .sum();
    let (state, range) = options.queue.evaluate(depth as f64);
    facts.push(Fact::new(
        state,
        format!("queue {depth}{}", crossed(state, range)),
    ));
    // With nothing open, the oldest open request is 0 s old and not judged.
    let oldest = snapshot
        .oldest_open_ms
        .map(|created| age_seconds(now, created));
    if let Some(age) = oldest {
        let (state, range) = options.age.evaluate(age as f64);
        facts.push(Fact::new(
            state,
            format!("oldest {age}s{}", crossed(state, range)),
        ));
    }

    // What is wrong first; the order is otherwise kept (the sort is stable).
    facts.sort_by_key(|f| Reverse(f.state.severity()));
    let state = facts.iter().fold(State::Ok, |acc, f| acc.worst(f.state));
    let summary = facts
        .iter()
        .map(|f| f.text.as_str())
        .collect::<Vec<_>>()
        .join("; ");

    let mut perfdata = vec![
        Perfdata::new("queue", depth, "", &options.queue),
        Perfdata::new("oldest_age", oldest.unwrap_or(0), "s", &options.age),
    ];
    for module in &modules {
        perfdata.push(Perfdata::new(
            format!("hb_{}", module.beat.module),
            module.age,
            "s",
            &options.heartbeat,
        ));
    }

    let mut details: Vec<String> = snapshot
        .heartbeats
        .iter()
        .map(|b| {
            format!(
                "{} {} (pid {} on {}): {}, beat {}s ago, up {}s, {} restarts: {}",
                b.module,
                b.instance,
                b.pid,
                b.host,
                b.state,
                age_seconds(now, b.beat_at),
                age_seconds(now, b.started_at),
                b.restarts,
                clip(&b.detail, 200)
            )
        })
        .collect();
    let stages: Vec<String> = Stage::ALL
        .into_iter()
        .filter_map(|stage| {
            let n: i64 = snapshot
                .stage_counts
                .iter()
                .filter(|(s, _)| *s == stage)
                .map(|(_, n)| n)
                .sum();
            (n > 0).then(|| format!("{stage} {n}"))
        })
        .collect();
    details.push(if stages.is_empty() {
        "requests by stage: none".to_owned()
    } else {
        format!("requests by stage: {}", stages.join(", "))
    });

    Outcome {
        state,
        summary,
        perfdata,
        details,
    }
}

/// At most `max` characters of `text`, with `...` when cut.
fn clip(text: &str, max: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Text fit for the status line: secrets removed, one line, no `|`.
fn one_line(text: &str) -> String {
    scrub(text)
        .chars()
        .map(|c| match c {
            '|' => '/',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// The database URL a configuration file names, reading only `database_url` and
/// `data_dir`: the check needs none of the secrets (token variables, the Bugzilla key)
/// that loading the whole configuration would require. Errors are UNKNOWN messages.
pub fn database_url_from_toml(text: &str, path: &Path) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct DatabaseSettings {
        #[serde(default)]
        database_url: Option<String>,
        #[serde(default)]
        data_dir: Option<PathBuf>,
    }
    let settings: DatabaseSettings = toml::from_str(text).map_err(|e| {
        // Only toml's message and the line: its excerpt of the file could show a password.
        let line = e
            .span()
            .map(|span| format!(" at line {}", text[..span.start].matches('\n').count() + 1))
            .unwrap_or_default();
        format!(
            "configuration file {} is invalid{line}: {}",
            path.display(),
            e.message().trim()
        )
    })?;
    let mut config = Config::default();
    let data_dir = settings.data_dir.unwrap_or(config.data_dir.clone());
    // Relative paths are relative to the file, as for `serve`.
    config.data_dir = match path.parent() {
        Some(dir) if data_dir.is_relative() => dir.join(data_dir),
        _ => data_dir,
    };
    config.database_url = settings.database_url;
    Ok(config.database_url())
}

/// Runs the check and prints its output; the exit status is the state's.
pub async fn run(args: CheckArgs, verbose: u8) -> ExitCode {
    let outcome = check(&args).await;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", outcome.render(verbose > 0));
    let _ = stdout.flush();
    ExitCode::from(outcome.state.code())
}

/// The whole check: options, configuration, the database read (under the timeout),
/// the verdict.
pub async fn check(args: &CheckArgs) -> Outcome {
    let options = match Options::from_args(args) {
        Ok(options) => options,
        Err(message) => return Outcome::bare(State::Unknown, message),
    };
    let Some(path) = &args.config else {
        return Outcome::bare(
            State::Unknown,
            "no configuration file: pass --config FILE or set AUTOLAND_CONFIG",
        );
    };
    let url = match std::fs::read_to_string(path) {
        Ok(text) => match database_url_from_toml(&text, path) {
            Ok(url) => url,
            Err(message) => return Outcome::bare(State::Unknown, message),
        },
        Err(e) => {
            return Outcome::bare(
                State::Unknown,
                format!("cannot read configuration file {}: {e}", path.display()),
            );
        }
    };
    let shown = scrub(&url);
    match tokio::time::timeout(options.timeout, read(&url)).await {
        Err(_) => Outcome::bare(
            State::Critical,
            format!(
                "database {shown} did not answer within {}s",
                options.timeout.as_secs()
            ),
        ),
        Ok(Err(StoreError::UnsupportedUrl(_))) => Outcome::bare(
            State::Unknown,
            format!("unsupported database_url {shown}: use sqlite://PATH or postgres://..."),
        ),
        Ok(Err(StoreError::Db(e))) => Outcome::bare(
            State::Critical,
            format!("cannot read database {shown}: {e}"),
        ),
        Ok(Err(e)) => Outcome::bare(
            State::Critical,
            format!("cannot read database {shown}: {e}"),
        ),
        Ok(Ok(snapshot)) => evaluate(&snapshot, &options),
    }
}

/// Reads what the check judges, without changing the database.
async fn read(url: &str) -> Result<Snapshot, StoreError> {
    let store = Store::open_existing(url).await?;
    let snapshot = async {
        let heartbeats = store.heartbeats().await?;
        let stage_counts = store.stage_counts().await?;
        let oldest_open_ms = store.oldest_open_request_ms().await?;
        Ok(Snapshot {
            now_ms: store.clock_ms().await?,
            heartbeats,
            stage_counts,
            oldest_open_ms,
        })
    }
    .await;
    store.close().await;
    snapshot
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> Range {
        Range::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn bounds(text: &str) -> (Option<f64>, Option<f64>, bool) {
        let r = range(text);
        (r.start, r.end, r.inside)
    }

    #[test]
    fn every_range_form_parses() {
        assert_eq!(bounds("10"), (Some(0.0), Some(10.0), false));
        assert_eq!(bounds("10:"), (Some(10.0), None, false));
        assert_eq!(bounds("~:10"), (None, Some(10.0), false));
        assert_eq!(bounds("10:20"), (Some(10.0), Some(20.0), false));
        assert_eq!(bounds("@10:20"), (Some(10.0), Some(20.0), true));
        assert_eq!(bounds("@10"), (Some(0.0), Some(10.0), true));
        assert_eq!(bounds(":10"), (Some(0.0), Some(10.0), false));
        assert_eq!(bounds("-5:-1"), (Some(-5.0), Some(-1.0), false));
        assert_eq!(bounds("0.5:1.5"), (Some(0.5), Some(1.5), false));
        assert_eq!(bounds("~:"), (None, None, false));
        assert_eq!(bounds(" 15 "), (Some(0.0), Some(15.0), false));
        assert_eq!(range("@10:20").to_string(), "@10:20");
    }

    #[test]
    fn ranges_alert_outside_or_inside_with_at() {
        let r = range("10");
        assert!(!r.alerts(0.0) && !r.alerts(10.0) && !r.alerts(5.0));
        assert!(r.alerts(-1.0) && r.alerts(10.5) && r.alerts(11.0));
        let r = range("10:");
        assert!(r.alerts(9.0) && !r.alerts(10.0) && !r.alerts(1e9));
        let r = range("~:10");
        assert!(!r.alerts(-1e9) && !r.alerts(10.0) && r.alerts(11.0));
        let r = range("10:20");
        assert!(r.alerts(9.0) && !r.alerts(10.0) && !r.alerts(20.0) && r.alerts(21.0));
        let r = range("@10:20");
        assert!(!r.alerts(9.0) && r.alerts(10.0) && r.alerts(15.0) && r.alerts(20.0));
        assert!(!r.alerts(21.0));
        assert!(!range("~:").alerts(1e12));
    }

    #[test]
    fn invalid_ranges_are_refused_with_a_reason() {
        for (text, reason) in [
            ("", "empty"),
            ("abc", "`abc` is not a number"),
            ("20:10", "start 20 is greater than its end 10"),
            ("10:abc", "`abc` is not a number"),
            ("1:2:3", "`2:3` is not a number"),
            ("inf", "`inf` is not a number"),
            ("NaN", "`NaN` is not a number"),
            ("1e3", "`1e3` is not a number"),
            ("@", "empty"),
            ("~", "`~` is not a number"),
            ("-10", "start 0 is greater than its end -10"),
            ("10x", "`10x` is not a number"),
        ] {
            let err = Range::parse(text).expect_err(text);
            assert!(err.reason.contains(reason), "{text}: {err}");
            assert!(err.to_string().starts_with("invalid range"), "{err}");
        }
    }

    fn args(extra: &[(&str, &str)]) -> CheckArgs {
        let mut args = CheckArgs {
            config: None,
            queue_warning: None,
            queue_critical: None,
            age_warning: None,
            age_critical: None,
            heartbeat_warning: "15".into(),
            heartbeat_critical: "30".into(),
            timeout: "10".into(),
            unexpected: vec![],
        };
        for (name, value) in extra {
            let value = (*value).to_owned();
            match *name {
                "queue-warning" => args.queue_warning = Some(value),
                "queue-critical" => args.queue_critical = Some(value),
                "age-warning" => args.age_warning = Some(value),
                "age-critical" => args.age_critical = Some(value),
                "heartbeat-warning" => args.heartbeat_warning = value,
                "heartbeat-critical" => args.heartbeat_critical = value,
                "timeout" => args.timeout = value,
                other => panic!("no option {other}"),
            }
        }
        args
    }

    fn options(extra: &[(&str, &str)]) -> Options {
        Options::from_args(&args(extra)).unwrap()
    }

    #[test]
    fn bad_options_become_unknown_messages() {
        let err = Options::from_args(&args(&[("queue-warning", "abc")])).unwrap_err();
        assert!(
            err.starts_with("--queue-warning: invalid range `abc`"),
            "{err}"
        );
        assert!(err.contains("10:20"), "the message shows the syntax: {err}");
        let err = Options::from_args(&args(&[("heartbeat-critical", "9:1")])).unwrap_err();
        assert!(err.starts_with("--heartbeat-critical:"), "{err}");
        for timeout in ["0", "-1", "ten", ""] {
            let err = Options::from_args(&args(&[("timeout", timeout)])).unwrap_err();
            assert!(err.starts_with("--timeout:"), "{err}");
        }
        let ok = options(&[("timeout", "3"), ("age-critical", "@0:60")]);
        assert_eq!(ok.timeout, Duration::from_secs(3));
        assert!(ok.age.critical.unwrap().inside);
        assert_eq!(
            Outcome::bare(State::Unknown, "--queue-warning: bad").render(false),
            "AUTOLAND UNKNOWN - --queue-warning: bad"
        );
    }

    #[test]
    fn thresholds_critical_wins() {
        let t = options(&[]).heartbeat;
        assert_eq!(t.evaluate(3.0).0, State::Ok);
        assert_eq!(t.evaluate(16.0).0, State::Warning);
        let (state, crossed_range) = t.evaluate(31.0);
        assert_eq!(state, State::Critical);
        assert_eq!(crossed_range.unwrap().to_string(), "30");
        assert_eq!(Thresholds::default().evaluate(1e9).0, State::Ok);
    }

    #[test]
    fn perfdata_format() {
        let t = options(&[]).heartbeat;
        let p = Perfdata::new("hb_pusher-1", 4, "s", &t);
        assert_eq!(p.to_string(), "'hb_pusher-1'=4s;15;30;0");
        let p = Perfdata::new("queue", 3, "", &Thresholds::default());
        assert_eq!(p.to_string(), "'queue'=3;;;0");
        let p = Perfdata {
            label: "it's=odd".into(),
            value: 7,
            uom: "s",
            warning: None,
            critical: Some(range("@10:20")),
            min: None,
            max: Some(100),
        };
        assert_eq!(p.to_string(), "'it''s_odd'=7s;;@10:20;;100");
        let p = Perfdata {
            min: None,
            ..Perfdata::new("x", 1, "", &Thresholds::default())
        };
        assert_eq!(p.to_string(), "'x'=1");
    }

    const NOW: i64 = 1_700_000_000_000;

    fn beat(module: &str, instance: &str, state: &str, age_s: i64) -> Heartbeat {
        Heartbeat {
            module: module.into(),
            instance: instance.into(),
            host: "host".into(),
            pid: 42,
            state: state.into(),
            detail: "working".into(),
            restarts: 0,
            started_at: NOW - 3_600_000,
            beat_at: NOW - age_s * 1000,
        }
    }

    fn snapshot(heartbeats: Vec<Heartbeat>, open: i64, oldest_s: Option<i64>) -> Snapshot {
        Snapshot {
            now_ms: NOW,
            heartbeats,
            stage_counts: vec![(Stage::Landed, 9), (Stage::AwaitingTry, open)],
            oldest_open_ms: oldest_s.map(|s| NOW - s * 1000),
        }
    }

    #[test]
    fn healthy() {
        let s = snapshot(
            vec![
                beat("ci-runner", "h:1", "running", 2),
                beat("pusher-1", "h:1", "running", 4),
            ],
            3,
            Some(120),
        );
        let out = evaluate(&s, &options(&[]));
        assert_eq!(
            out.render(false),
            "AUTOLAND OK - 2 modules ok; queue 3; oldest 120s | 'queue'=3;;;0 \
             'oldest_age'=120s;;;0 'hb_ci-runner'=2s;15;30;0 'hb_pusher-1'=4s;15;30;0"
        );
        assert_eq!(out.state.code(), 0);
    }

    #[test]
    fn stale_heartbeat_comes_first() {
        let s = snapshot(
            vec![
                beat("ci-runner", "h:1", "running", 2),
                beat("pusher-1", "h:1", "running", 94),
            ],
            3,
            Some(120),
        );
        let out = evaluate(&s, &options(&[]));
        assert_eq!(out.state, State::Critical);
        assert_eq!(
            out.summary,
            "pusher-1 heartbeat 94s old (crit 30); 1 of 2 modules ok; queue 3; oldest 120s"
        );
        let s = snapshot(vec![beat("pusher-1", "h:1", "running", 20)], 0, None);
        let out = evaluate(&s, &options(&[]));
        assert_eq!(out.state, State::Warning);
        assert_eq!(
            out.summary,
            "pusher-1 heartbeat 20s old (warn 15); 0 of 1 module ok; queue 0"
        );
        assert!(out.perfdata.contains(&Perfdata::new(
            "oldest_age",
            0,
            "s",
            &Thresholds::default()
        )));
    }

    #[test]
    fn degraded_stopped_and_unknown_states_warn() {
        let mut degraded = beat("bugzilla-poller", "h:1", "degraded", 1);
        degraded.detail = "Bugzilla rejects Autoland's API key (code 306)".into();
        let s = snapshot(
            vec![
                degraded,
                beat("pusher-1", "h:1", "stopped", 500),
                beat("pusher-2", "h:1", "dreaming", 1),
            ],
            0,
            None,
        );
        let out = evaluate(&s, &options(&[]));
        assert_eq!(out.state, State::Warning);
        assert_eq!(
            out.summary,
            "bugzilla-poller degraded: Bugzilla rejects Autoland's API key (code 306); \
             pusher-1 stopped 500s ago; pusher-2 in unknown state `dreaming`; \
             0 of 3 modules ok; queue 0"
        );
    }

    #[test]
    fn every_module_stopped_is_critical() {
        let all = snapshot(
            (1..=5)
                .map(|n| beat(&format!("pusher-{n}"), "h:1", "stopped", 30))
                .collect(),
            0,
            None,
        );
        let out = evaluate(&all, &options(&[]));
        assert_eq!(out.state, State::Critical, "{}", out.summary);
        assert!(
            out.summary
                .contains("every module is stopped: nothing can land")
                && out.summary.contains("0 of 5 modules ok"),
            "{}",
            out.summary
        );
        // One still running elsewhere: a warning, as before.
        let mut some = all.clone();
        some.heartbeats.push(beat("pusher-1", "h:2", "running", 1));
        assert_eq!(evaluate(&some, &options(&[])).state, State::Warning);
    }

    #[test]
    fn a_singleton_on_standby_everywhere_warns() {
        // One leads: fine.
        let s = snapshot(
            vec![
                beat("bugzilla-poller", "a:1", "running", 2),
                beat("bugzilla-poller", "b:2", "standby", 1),
            ],
            0,
            None,
        );
        assert_eq!(evaluate(&s, &options(&[])).state, State::Ok);
        // The leader went silent: its stale row is not a leader.
        let s = snapshot(
            vec![
                beat("bugzilla-poller", "a:1", "running", 40),
                beat("bugzilla-poller", "b:2", "standby", 1),
            ],
            0,
            None,
        );
        let out = evaluate(&s, &options(&[]));
        assert_eq!(out.state, State::Warning, "{}", out.summary);
        assert!(out.summary.contains("runs nowhere"), "{}", out.summary);
        // A degraded leader still leads: its own problem is what the check reports.
        let mut degraded = beat("bugzilla-poller", "a:1", "degraded", 2);
        degraded.detail = "Bugzilla answers 503".to_owned();
        let s = snapshot(
            vec![degraded, beat("bugzilla-poller", "b:2", "standby", 1)],
            0,
            None,
        );
        let out = evaluate(&s, &options(&[]));
        assert!(!out.summary.contains("runs nowhere"), "{}", out.summary);
    }

    #[test]
    fn a_module_is_as_healthy_as_its_healthiest_instance() {
        // An instance left by a crash (stale) and one by a graceful restart (stopped)
        // do not alert while a successor runs.
        let s = snapshot(
            vec![
                beat("pusher-1", "h:1", "running", 5000),
                beat("pusher-1", "h:2", "stopped", 4000),
                beat("pusher-1", "h:3", "running", 3),
            ],
            0,
            None,
        );
        let out = evaluate(&s, &options(&[]));
        assert_eq!(out.state, State::Ok, "{}", out.summary);
        assert!(out.render(false).contains("'hb_pusher-1'=3s;15;30;0"));
        assert_eq!(
            out.details.len(),
            4,
            "one line per instance, then the stages"
        );
        // Among unhealthy instances, the freshest speaks.
        let s = snapshot(
            vec![
                beat("pusher-1", "h:1", "running", 5000),
                beat("pusher-1", "h:2", "running", 40),
            ],
            0,
            None,
        );
        let out = evaluate(&s, &options(&[]));
        assert!(
            out.summary
                .starts_with("pusher-1 heartbeat 40s old (crit 30)")
        );
    }

    #[test]
    fn no_heartbeat_at_all_is_critical() {
        let out = evaluate(&snapshot(vec![], 0, None), &options(&[]));
        assert_eq!(out.state, State::Critical);
        assert_eq!(out.summary, "no module has ever reported; queue 0");
    }

    #[test]
    fn queue_and_age_thresholds() {
        let s = snapshot(vec![beat("pusher-1", "h:1", "running", 1)], 12, Some(4000));
        let out = evaluate(
            &s,
            &options(&[
                ("queue-warning", "10"),
                ("queue-critical", "50"),
                ("age-warning", "600"),
                ("age-critical", "3600"),
            ]),
        );
        assert_eq!(out.state, State::Critical);
        assert_eq!(
            out.summary,
            "oldest 4000s (crit 3600); queue 12 (warn 10); 1 module ok"
        );
        assert!(
            out.render(false)
                .contains("'queue'=12;10;50;0 'oldest_age'=4000s;600;3600;0")
        );
    }

    #[test]
    fn output_is_one_safe_line() {
        let mut b = beat("pusher-1", "h:1", "degraded", 1);
        b.detail =
            "push failed | see\nhttps://bob:hunter2@hg.example.com/try?x=1&api_key=k3y".into();
        let out = evaluate(&snapshot(vec![b], 0, None), &options(&[]));
        let line = out.render(false);
        assert_eq!(line.lines().count(), 1);
        assert_eq!(line.matches('|').count(), 1, "{line}");
        assert!(!line.contains("hunter2") && !line.contains("k3y"), "{line}");
        assert!(line.contains("https://bob:***@hg.example.com/try?x=1&api_key=***"));
        let verbose = out.render(true);
        assert_eq!(verbose.lines().count(), 3, "{verbose}");
        assert!(!verbose.contains("hunter2"), "{verbose}");
    }

    #[test]
    fn the_database_url_comes_from_the_file() {
        let path = Path::new("/etc/autoland/autoland.toml");
        assert_eq!(
            database_url_from_toml("", path).unwrap(),
            "sqlite:///etc/autoland/autoland-data/autoland.db?mode=rwc"
        );
        assert_eq!(
            database_url_from_toml("data_dir = \"/var/lib/autoland\"\n", path).unwrap(),
            "sqlite:///var/lib/autoland/autoland.db?mode=rwc"
        );
        // Everything else, secrets included, is not looked at.
        let text = "database_url = \"postgres://a@db/x\"\n[bugzilla]\napi_key_env = \"UNSET\"\n";
        assert_eq!(
            database_url_from_toml(text, path).unwrap(),
            "postgres://a@db/x"
        );
        let err = database_url_from_toml(
            "listen = \"x\"\ndatabase_url = \"postgres://u:secret@db/x\" oops\n",
            path,
        )
        .unwrap_err();
        assert!(
            err.contains("/etc/autoland/autoland.toml is invalid at line 2"),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");
    }
}
