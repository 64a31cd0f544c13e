//! Landings through the service, as `landing.rs` (git) and `hg_landing.rs` (hg) measure
//! them: every VCS command recorded with its end time (from the commands' debug events),
//! one-patch try-only submissions through the API, and the pieces of their timelines.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use super::repo::{file_path, patch_for};
use super::{TOKEN, epoch_ms, ms, stats};

pub const LANDING_LIMIT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------
// Recording every VCS command with its end time.

/// Installs the process's tracing: a `Recorder` of the debug events of `target` (the VCS
/// commands) and, when `RUST_LOG` is set, a log on stderr filtered by it.
pub fn install_recorder(target: &str) -> Recorder {
    let recorder = Recorder::default();
    let log = std::env::var_os("RUST_LOG").map(|_| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(EnvFilter::from_default_env())
    });
    tracing_subscriber::registry()
        .with(
            recorder
                .clone()
                .with_filter(Targets::new().with_target(target, tracing::Level::DEBUG)),
        )
        .with(log)
        .init();
    recorder
}

#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Ran>>>);

#[derive(Clone, Debug)]
pub struct Ran {
    pub end: Instant,
    pub duration: Duration,
    pub command: String,
    /// The event's message (e.g. `hg command (server)`).
    pub message: String,
}

impl Ran {
    pub fn start(&self) -> Instant {
        self.end.checked_sub(self.duration).unwrap_or(self.end)
    }

    /// `git -c a=b -c c=d fetch --quiet -- /path ...` → `fetch --quiet -- …/path ...`:
    /// without the program and the settings before the subcommand, paths and hashes
    /// shortened, newlines (`hg log -T {node}\n`) escaped, for the timeline.
    pub fn short(&self) -> String {
        let command = self.command.replace('\n', "\\n");
        let mut words = command.split(' ').skip(1).peekable();
        while words.peek() == Some(&"-c") {
            words.next();
            words.next();
        }
        words
            .map(|w| {
                if w.starts_with('/') {
                    w.rsplit('/')
                        .next()
                        .map(|last| format!("…/{last}"))
                        .unwrap_or_default()
                } else if w.len() >= 40 && w.chars().all(|c| c.is_ascii_hexdigit()) {
                    format!("{}…", &w[..8])
                } else {
                    w.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Recorder {
    pub fn len(&self) -> usize {
        self.0.lock().map(|v| v.len()).unwrap_or(0)
    }

    pub fn since(&self, from: usize) -> Vec<Ran> {
        self.0
            .lock()
            .map(|v| v.get(from..).unwrap_or_default().to_vec())
            .unwrap_or_default()
    }
}

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let end = Instant::now();
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let (Some(command), Some(duration)) = (fields.command, fields.duration)
            && let Ok(mut all) = self.0.lock()
        {
            all.push(Ran {
                end,
                duration,
                command,
                message: fields.message,
            });
        }
    }
}

#[derive(Default)]
struct Fields {
    command: Option<String>,
    duration: Option<Duration>,
    message: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        match field.name() {
            "command" => self.command = Some(format!("{value:?}")),
            "duration" => self.duration = parse_duration(&format!("{value:?}")),
            "message" => self.message = format!("{value:?}"),
            _ => {}
        }
    }
}

/// Parses `Duration`'s `Debug` text (`1.5s`, `12.3ms`, `4.5µs`, `100ns`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => number,
        "ms" => number / 1e3,
        "µs" | "us" => number / 1e6,
        "ns" => number / 1e9,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

// ---------------------------------------------------------------------------------------
// Landing through the API.

pub struct Api {
    http: reqwest::Client,
    base: String,
    poll: Duration,
}

/// One measured landing through the service. (What its overhead is, each bench says in
/// an `impl Landing` of its own.)
pub struct Landing {
    /// From just before the POST until the client saw `landed`.
    pub total: Duration,
    /// The VCS (git or hg) commands run meanwhile: how many, and their time.
    pub vcs_count: u64,
    pub vcs_time: Duration,
    /// The commands the recorder saw, in order.
    pub commands: Vec<Ran>,
    pub t0: Instant,
    /// Events: kind and milliseconds after the POST started.
    pub events: Vec<(String, f64)>,
    /// When the `landed` event was recorded, ms after the POST started (±0.5: events have
    /// millisecond timestamps).
    pub landed_at: f64,
    pub polls: u32,
    /// Each GET: sent and answered, ms after the POST started.
    pub gets: Vec<(f64, f64)>,
}

impl Landing {
    /// From the `landed` event to the client seeing it: the cost of observing by polling.
    pub fn observation(&self) -> f64 {
        (ms(self.total) - self.landed_at).max(0.0)
    }
}

impl Api {
    /// A client of the service at `addr` that asks for a request every `poll`.
    pub fn new(addr: SocketAddr, poll: Duration) -> anyhow::Result<Api> {
        Ok(Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            base: format!("http://{addr}"),
            poll,
        })
    }

    /// Submits a patch to file `file` for try and waits, polling, until it is `landed`.
    pub async fn land(
        &self,
        recorder: &Recorder,
        file: usize,
        label: &str,
    ) -> anyhow::Result<Landing> {
        let body = json!({
            "patches": [{
                "name": format!("bench-{}.patch", label.replace(' ', "-")),
                "content": patch_for(file, label),
                "message": format!("Bench: change {} ({label})", file_path(file)),
            }],
            "destinations": ["try"],
        });
        let (count_before, time_before) = autoland::vcs::command::totals();
        let first_record = recorder.len();
        let wall_before = epoch_ms();
        let t0 = Instant::now();
        let response = self
            .http
            .post(format!("{}/api/requests", self.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let answer: Value = response.json().await?;
        ensure!(
            status.as_u16() == 201,
            "submission refused ({status}): {answer}"
        );
        let id = answer["id"].as_i64().context("no id in the answer")?;
        let mut polls = 0;
        let mut gets = Vec::new();
        let detail = loop {
            polls += 1;
            let sent = ms(t0.elapsed());
            let detail: Value = self
                .http
                .get(format!("{}/api/requests/{id}", self.base))
                .bearer_auth(TOKEN)
                .send()
                .await?
                .json()
                .await?;
            gets.push((sent, ms(t0.elapsed())));
            match detail["request"]["stage"].as_str() {
                Some("landed") => break detail,
                Some(stage @ ("failed" | "cancelled")) => {
                    bail!("request {id} ({label}) ended {stage}: {detail:#}")
                }
                _ => {}
            }
            if t0.elapsed() > LANDING_LIMIT {
                bail!("request {id} ({label}) did not land within {LANDING_LIMIT:?}: {detail:#}");
            }
            tokio::time::sleep(self.poll).await;
        };
        let observed = Instant::now();
        let (count_after, time_after) = autoland::vcs::command::totals();
        let events: Vec<(String, f64)> = detail["events"]
            .as_array()
            .map(|events| {
                events
                    .iter()
                    .map(|e| {
                        let kind = match e["to_stage"].as_str() {
                            Some(to) => format!("→ {to}"),
                            None => e["kind"].as_str().unwrap_or("?").to_owned(),
                        };
                        // `at` is whole milliseconds: take the middle of that millisecond.
                        let at = e["at"].as_f64().unwrap_or(f64::NAN) + 0.5;
                        (kind, at - wall_before)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let landed_at = events
            .iter()
            .rev()
            .find(|(kind, _)| kind == "→ landed")
            .map_or(f64::NAN, |(_, at)| *at);
        Ok(Landing {
            total: observed - t0,
            vcs_count: count_after - count_before,
            vcs_time: time_after.saturating_sub(time_before),
            commands: recorder.since(first_record),
            t0,
            events,
            landed_at,
            polls,
            gets,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Pieces of a timeline: medians, position by position, of every command and of the gap
// before it (one request's commands run one after another).

/// The first landing's commands, shortened, and whether every landing ran the same ones
/// (compared by subcommand); `None` without landings.
pub fn command_shape(landings: &[Landing]) -> Option<(Vec<String>, bool)> {
    let first = landings.first()?;
    let shape: Vec<String> = first.commands.iter().map(Ran::short).collect();
    let same = landings.iter().all(|l| {
        l.commands.len() == shape.len()
            && l.commands
                .iter()
                .zip(&shape)
                .all(|(r, s)| r.short().split(' ').next() == s.split(' ').next())
    });
    Some((shape, same))
}

/// Medians over `landings` (of the same shape) of the gap before command `i` (since the
/// previous command's end, or the POST) and of command `i` itself, ms.
pub fn step_medians(landings: &[Landing], i: usize) -> (f64, f64) {
    let gaps: Vec<f64> = landings
        .iter()
        .map(|l| {
            let before = if i == 0 { l.t0 } else { l.commands[i - 1].end };
            ms(l.commands[i].start().saturating_duration_since(before))
        })
        .collect();
    let runs: Vec<f64> = landings
        .iter()
        .map(|l| ms(l.commands[i].duration))
        .collect();
    (stats(&gaps).median, stats(&runs).median)
}

/// Medians over `landings` of the time from the last command's end to the `landed`
/// event, and of `Landing::observation`, ms.
pub fn end_medians(landings: &[Landing]) -> (f64, f64) {
    let last_end = |l: &Landing| ms(l.commands.last().map_or(l.t0, |r| r.end) - l.t0);
    let tails: Vec<f64> = landings
        .iter()
        .map(|l| (l.landed_at - last_end(l)).max(0.0))
        .collect();
    let seen: Vec<f64> = landings.iter().map(Landing::observation).collect();
    (stats(&tails).median, stats(&seen).median)
}

/// The landing in the middle when ordered by `key` (of two, the later).
pub fn median_landing(landings: &[Landing], key: impl Fn(&Landing) -> f64) -> &Landing {
    let mut order: Vec<usize> = (0..landings.len()).collect();
    order.sort_by(|a, b| key(&landings[*a]).total_cmp(&key(&landings[*b])));
    &landings[order[order.len() / 2]]
}

/// The events and commands of `landing`, ms after the POST started; `describe` says what
/// a command is.
pub fn timeline_lines(landing: &Landing, describe: impl Fn(&Ran) -> String) -> Vec<(f64, String)> {
    let mut lines: Vec<(f64, String)> = landing
        .events
        .iter()
        .map(|(kind, at)| (*at, format!("event {kind}")))
        .collect();
    for r in &landing.commands {
        lines.push((
            ms(r.start().saturating_duration_since(landing.t0)),
            describe(r),
        ));
    }
    lines
}

/// Prints `lines` in time order in a code block, then a blank line.
pub fn print_timeline_lines(mut lines: Vec<(f64, String)>) {
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!("```");
    for (at, what) in lines {
        println!("{at:8.1}  {what}");
    }
    println!("```");
    println!();
}
