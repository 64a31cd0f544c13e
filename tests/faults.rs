//! The crash matrix: the real `autoland serve` process is aborted at every named fault
//! point (`src/fault.rs`) that two scenarios pass, on git and on hg, then restarted. Each
//! crashed run must end exactly as the same scenario ends without a crash: the same final
//! stage, the same commits on try and central (none twice, none missing), the same
//! comments on the Bugzilla simulator in the same order (none twice, none missing), the
//! same whiteboard.
//!
//! The scenarios, each from a `[autoland-central]` tag on a bug:
//! - `backout`: try, then central; central's post-landing tests fail, so the sheriff backs
//!   the landing out (transitions, try and destination pushes, every report, a CI run, a
//!   conviction and a backout push);
//! - `gate`: central is gated (serial): a candidate is pushed, tested and landed.
//!
//! The points come from the source: every `fault::point("…")`/`point_at("…"` literal
//! under `src/`. The test fails if one of them is walked by neither scenario.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use autoland::simulator::bugzilla::{Flavor, Simulator};
use common::bugzilla::{attach, autoland_comments, new_bug, request_for_bug, simulator};
use common::{Api, Change, Env, Kind, Options};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(90);
/// What `abort()` ends a process with.
const SIGABRT: i32 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Backout,
    Gate,
}

/// What a run of a scenario left behind, compared between a crashed run and a clean one.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    stage: String,
    try_commits: usize,
    central_commits: usize,
    backouts: usize,
    /// Autoland's comments, revisions and numbers masked.
    comments: Vec<String>,
    whiteboard: String,
}

/// The points named in the source.
fn points_in_source() -> BTreeSet<String> {
    fn walk(dir: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for call in ["fault::point(\"", "fault::point_at(\""] {
                    for (at, _) in text.match_indices(call) {
                        let rest = &text[at + call.len()..];
                        if let Some(end) = rest.find('"') {
                            found.insert(rest[..end].to_owned());
                        }
                    }
                }
            }
        }
    }
    let mut found = BTreeSet::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    found
}

/// `point[:qualifier]` of a trace line `point[:qualifier]#n`.
fn key_of(hit: &str) -> &str {
    hit.rsplit_once('#').map_or(hit, |(k, _)| k)
}

fn point_of(hit: &str) -> &str {
    let key = key_of(hit);
    key.split_once(':').map_or(key, |(p, _)| p)
}

/// A comment with its revisions and numbers masked; the remark a crash may add to a gate
/// landing ("found after a restart", "pushed after a restart") is dropped.
fn mask(text: &str) -> String {
    let text = text
        .replace(" (found after a restart)", "")
        .replace(" (pushed after a restart)", "");
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.is_empty() {
            return;
        }
        let hexish = run.len() >= 12 && run.chars().all(|c| c.is_ascii_hexdigit());
        if hexish {
            out.push_str("<rev>");
        } else if run.chars().all(|c| c.is_ascii_digit()) {
            out.push('N');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Central's post-landing tests fail on a file that says POSTLAND (try does not check).
fn environment(kind: Kind, scenario: Scenario, bugzilla: &str) -> Env {
    let central_extra = match scenario {
        Scenario::Backout => "post_land_ci = true\npost_land_poll_seconds = 1\n\
             ci_command = \"sh test.sh && ! grep -rq POSTLAND src\""
            .to_owned(),
        Scenario::Gate => "gate = \"serial\"\nmax_window = 1\nbatch_size = 1".to_owned(),
    };
    Env::new(Options {
        kind,
        central_extra,
        bugzilla: Some(bugzilla.to_owned()),
        ..Options::default()
    })
}

/// A bug with one reviewed patch and the tag; returns the bug.
fn file_bug(sim: &Simulator, env: &Env, scenario: Scenario) -> i64 {
    let content = match scenario {
        Scenario::Backout => "POSTLAND\n",
        Scenario::Gate => "gated\n",
    };
    let patch = env.patches(&[Change {
        author: "Alice <alice@example.com>",
        subject: "Bug 1 - Write src/matrix.txt",
        files: &[("src/matrix.txt", content)],
    }]);
    let bug = new_bug(sim, "Crash matrix");
    attach(sim, bug, "matrix.patch", &patch[0], false);
    sim.set_whiteboard(bug, "[autoland-central]", "alice@example.com");
    bug
}

fn final_stage(scenario: Scenario) -> &'static str {
    match scenario {
        Scenario::Backout => "backed_out",
        Scenario::Gate => "landed",
    }
}

/// Waits until the request is in its scenario's final stage with every report to the bug
/// delivered, and returns the request's detail.
async fn settled(env: &Env, api: &Api, id: i64, scenario: Scenario) -> Value {
    let deadline = Instant::now() + LIMIT;
    loop {
        let (_, detail) = api.get(&format!("/api/requests/{id}")).await;
        let reports = detail["reports"].as_array().cloned().unwrap_or_default();
        if detail["request"]["stage"] == final_stage(scenario)
            && !reports.is_empty()
            && reports.iter().all(|r| !r["sent_at"].is_null())
        {
            return detail;
        }
        assert!(
            Instant::now() < deadline,
            "request {id} did not settle in {LIMIT:?}: {detail:#}\n{}",
            env.process_logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn outcome(env: &Env, sim: &Simulator, bug: i64, detail: &Value) -> Outcome {
    let uid = detail["request"]["uid"].as_str().unwrap_or_default();
    Outcome {
        stage: detail["request"]["stage"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        try_commits: env.commits_with_trailer(&env.try_repo, uid),
        central_commits: env.commits_with_trailer(&env.central, uid),
        backouts: env
            .central_log()
            .iter()
            .filter(|(_, s)| s.starts_with("Backed out"))
            .count(),
        comments: autoland_comments(sim, bug)
            .iter()
            .map(|c| mask(c))
            .collect(),
        whiteboard: sim.whiteboard(bug).unwrap_or_default(),
    }
}

/// One run of `scenario`. With `at`, the first process must abort there; a second one,
/// without the fault, finishes the work. Returns the outcome (and the points the first
/// process passed, when `trace` is given).
async fn run(kind: Kind, scenario: Scenario, at: Option<&str>, trace: Option<&Path>) -> Outcome {
    let (sim, url) = simulator(Flavor::V53).await;
    let env = environment(kind, scenario, &url);
    let mut vars = Vec::new();
    if let Some(at) = at {
        vars.push(("AUTOLAND_FAULT_AT", at.to_owned()));
    }
    if let Some(trace) = trace {
        vars.push(("AUTOLAND_FAULT_TRACE", trace.display().to_string()));
    }
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (mut first, first_api) = env.serve_process_with(&vars).await;
    let bug = file_bug(&sim, &env, scenario);
    let (child, api) = match at {
        None => (first, first_api),
        Some(at) => {
            let deadline = Instant::now() + LIMIT;
            let status = loop {
                if let Some(status) = first.try_wait().unwrap() {
                    break status;
                }
                assert!(
                    Instant::now() < deadline,
                    "{kind:?} {scenario:?}: the process never reached {at}\n{}",
                    env.process_logs()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            assert_eq!(
                status.signal(),
                Some(SIGABRT),
                "{kind:?} {scenario:?} at {at}: the process ended otherwise: {status:?}\n{}",
                env.process_logs()
            );
            env.serve_process().await
        }
    };
    let process = common::fleet::Killed(child);
    let id = request_for_bug(&api, bug).await;
    let detail = settled(&env, &api, id, scenario).await;
    let outcome = outcome(&env, &sim, bug, &detail);
    drop(process);
    outcome
}

/// The comments of a crashed run next to a clean run's, where they differ.
fn difference(crashed: &[String], clean: &[String]) -> String {
    let mut out = String::new();
    for i in 0..crashed.len().max(clean.len()) {
        let (a, b) = (crashed.get(i), clean.get(i));
        if a != b {
            out.push_str(&format!(
                "#{i} after the crash: {a:?}\n#{i} without: {b:?}\n"
            ));
        }
    }
    out
}

/// Walks every point `scenario` passes on `kind` (each point and qualifier, at its first
/// hit) except those in `skip`; returns the keys walked.
async fn walk(kind: Kind, scenario: Scenario, skip: &BTreeSet<String>) -> BTreeSet<String> {
    let scratch = tempfile::tempdir().unwrap();
    let trace_path: PathBuf = scratch.path().join("trace");
    let clean = run(kind, scenario, None, Some(&trace_path)).await;
    assert_eq!(clean.stage, final_stage(scenario), "{clean:#?}");
    let trace = std::fs::read_to_string(&trace_path)
        .unwrap_or_else(|e| panic!("no fault trace at {}: {e}", trace_path.display()));
    let mut first_hits: BTreeMap<String, String> = BTreeMap::new();
    for hit in trace.lines().filter(|l| l.contains('#')) {
        first_hits
            .entry(key_of(hit).to_owned())
            .or_insert_with(|| hit.to_owned());
    }
    let mut walked = BTreeSet::new();
    for (key, hit) in first_hits {
        if skip.contains(&key) {
            continue;
        }
        if std::env::var("AUTOLAND_MATRIX_ONLY").is_ok_and(|only| !hit.contains(&only)) {
            continue;
        }
        let started = Instant::now();
        let mut crashed = run(kind, scenario, Some(&hit), None).await;
        if scenario == Scenario::Gate && crashed.try_commits == clean.try_commits + 1 {
            // A restarted gate tests again what it had in flight: a candidate pushed
            // before the crash is dropped and a new one pushed (one more commit on try,
            // unless the rebuilt commit happens to be byte-identical). Central must not
            // differ.
            crashed.try_commits = clean.try_commits;
        }
        assert_eq!(
            crashed,
            clean,
            "{kind:?} {scenario:?}: a crash at {hit} changed the outcome; comments:\n{}",
            difference(&crashed.comments, &clean.comments)
        );
        eprintln!(
            "{kind:?} {scenario:?}: crash at {hit}: same outcome ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        walked.insert(key);
    }
    walked
}

async fn the_crash_matrix(kind: Kind) {
    let mut walked = walk(kind, Scenario::Backout, &BTreeSet::new()).await;
    // The gate scenario walks only what the first did not.
    let gate = walk(kind, Scenario::Gate, &walked).await;
    walked.extend(gate);
    let walked_points: BTreeSet<String> = walked.iter().map(|k| point_of(k).to_owned()).collect();
    assert!(!walked.is_empty(), "{kind:?}: no crash point walked");
    if std::env::var("AUTOLAND_MATRIX_ONLY").is_ok() {
        return; // a partial walk, for debugging one point
    }
    let named = points_in_source();
    let missing: Vec<&String> = named.difference(&walked_points).collect();
    assert!(
        missing.is_empty(),
        "{kind:?}: fault points in the source that no scenario walks: {missing:?} \
         (add a scenario that passes them)"
    );
    eprintln!(
        "{kind:?}: {} crash points walked: {walked:#?}",
        walked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_a_crash_at_every_point_ends_as_without_one() {
    the_crash_matrix(Kind::Git).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hg_a_crash_at_every_point_ends_as_without_one() {
    the_crash_matrix(Kind::Hg).await;
}

#[test]
fn the_source_names_the_points_the_matrix_expects() {
    let points = points_in_source();
    for expected in [
        "transition.before_commit",
        "transition.after_commit",
        "push.try.before",
        "push.destination.after",
        "report.before_send",
        "ci.running",
        "gate.candidate_push.before",
        "sheriff.backout_push.after",
    ] {
        assert!(points.contains(expected), "{expected} not in {points:?}");
    }
    assert_eq!(
        mask("landed abcdef0123456789 in 12 s"),
        "landed <rev> in N s"
    );
}
