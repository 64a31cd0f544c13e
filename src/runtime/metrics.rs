//! Prometheus metrics. Counters and histograms are recorded where things happen (stage
//! changes, push retries, tracker errors, CI outcomes); gauges that describe stored state
//! (requests per stage, queue depth, modules) are set from the database at scrape time,
//! so every process reports the same facts.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::status::{Overview, Verdict};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Seconds buckets for stage durations: from a fraction of a second (bookkeeping) to
/// hours (waiting for try).
const STAGE_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
];

/// Installs the process-wide recorder once; later calls reuse it.
pub fn init() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), STAGE_BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot install the metrics recorder");
                    None
                }
            }
        })
        .as_ref()
}

/// The help text of every series (`# HELP`: Prometheus's linter wants one on each).
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "autoland_requests",
        "Requests in each stage, from the database."
    );
    describe_gauge!(
        "autoland_queue_depth",
        "Requests not yet in a terminal stage."
    );
    describe_gauge!(
        "autoland_reports_pending",
        "Reports (bug comments, whiteboard edits) not yet delivered to the tracker."
    );
    describe_gauge!(
        "autoland_up",
        "1 unless the service is down (no module running), from the status verdict."
    );
    describe_gauge!(
        "autoland_module_up",
        "1 while a module instance runs (running, degraded or standby), else 0."
    );
    describe_counter!(
        "autoland_module_restarts_total",
        "Restarts of a module instance after it crashed, since its process started."
    );
    describe_gauge!(
        "autoland_module_heartbeat_age_seconds",
        Unit::Seconds,
        "Seconds since a module instance's last heartbeat."
    );
    describe_histogram!(
        "autoland_stage_duration_seconds",
        Unit::Seconds,
        "Time requests spent in each stage before leaving it."
    );
    describe_counter!(
        "autoland_push_retries_total",
        "Pushes to a destination refused because it moved, and tried again."
    );
    describe_counter!(
        "autoland_tracker_errors_total",
        "Calls to the tracker that failed (credentials refused, or unavailable)."
    );
    describe_counter!("autoland_ci_runs_total", "CI runs that ended, by outcome.");
    describe_counter!(
        "autoland_ci_jobs_total",
        "CI job attempts that ended, by result."
    );
    describe_counter!("autoland_ci_retries_total", "CI jobs run again, by reason.");
    describe_counter!(
        "autoland_ci_intermittent_total",
        "CI jobs that failed and then passed."
    );
    describe_counter!(
        "autoland_ci_reused_total",
        "Try runs whose verdict was reused from an earlier run of the same patches."
    );
    describe_counter!(
        "autoland_backouts_total",
        "Backouts the sheriff pushed to a destination."
    );
    describe_counter!(
        "autoland_red_seconds_total",
        "Seconds a destination's tip was red (counted when it is green again)."
    );
    describe_counter!(
        "autoland_intermittent_tips_total",
        "Landed tips that failed and then passed when run again."
    );
}

/// Makes every documented series exist from the start, at zero, for the label values
/// known from the configuration, so that `rate()` and `absent()` work before the first
/// event.
pub fn register(config: &crate::config::Config) {
    if init().is_none() {
        return;
    }
    for stage in crate::request::Stage::ALL {
        // Registering without a sample: the histogram is exported with a count of 0.
        let _ = metrics::histogram!("autoland_stage_duration_seconds", "stage" => stage.as_str());
    }
    for kind in ["credentials", "unavailable"] {
        metrics::counter!("autoland_tracker_errors_total", "kind" => kind).increment(0);
    }
    for outcome in ["passed", "failed", "timed_out", "cancelled"] {
        metrics::counter!("autoland_ci_runs_total", "outcome" => outcome).increment(0);
    }
    for repo in &config.repositories {
        let name = repo.name.clone();
        if repo.is_try {
            for reason in ["failed", "infra"] {
                metrics::counter!("autoland_ci_retries_total", "repo" => name.clone(), "reason" => reason)
                    .increment(0);
            }
            metrics::counter!("autoland_ci_intermittent_total", "repo" => name.clone())
                .increment(0);
            metrics::counter!("autoland_ci_reused_total", "repo" => name.clone()).increment(0);
        } else {
            metrics::counter!("autoland_push_retries_total", "repo" => name.clone()).increment(0);
        }
        if repo.post_land_ci {
            metrics::counter!("autoland_backouts_total", "repo" => name.clone()).increment(0);
            metrics::counter!("autoland_red_seconds_total", "repo" => name.clone()).increment(0);
            metrics::counter!("autoland_intermittent_tips_total", "repo" => name).increment(0);
        }
    }
}

/// A stage was left after `seconds`.
pub fn stage_left(stage: &str, seconds: f64) {
    metrics::histogram!("autoland_stage_duration_seconds", "stage" => stage.to_owned())
        .record(seconds);
}

/// A push was refused because the destination moved.
pub fn push_retry(repo: &str) {
    metrics::counter!("autoland_push_retries_total", "repo" => repo.to_owned()).increment(1);
}

/// A call to the tracker failed.
pub fn tracker_error(kind: &'static str) {
    metrics::counter!("autoland_tracker_errors_total", "kind" => kind).increment(1);
}

/// A CI run ended.
pub fn ci_outcome(outcome: &'static str) {
    metrics::counter!("autoland_ci_runs_total", "outcome" => outcome).increment(1);
}

/// A CI job attempt finished with `result` on try repository `repo`.
pub fn ci_job(repo: &str, result: &'static str) {
    metrics::counter!("autoland_ci_jobs_total", "repo" => repo.to_owned(), "result" => result)
        .increment(1);
}

/// A CI job was run again (`reason`: failed or infra).
pub fn ci_retry(repo: &str, reason: &'static str) {
    metrics::counter!("autoland_ci_retries_total", "repo" => repo.to_owned(), "reason" => reason)
        .increment(1);
}

/// A CI job failed and then passed.
pub fn ci_intermittent(repo: &str) {
    metrics::counter!("autoland_ci_intermittent_total", "repo" => repo.to_owned()).increment(1);
}

/// A try run's verdict was reused from an earlier run.
pub fn ci_reused(repo: &str) {
    metrics::counter!("autoland_ci_reused_total", "repo" => repo.to_owned()).increment(1);
}

/// The sheriff pushed a backout on `repo`.
pub fn backout(repo: &str) {
    metrics::counter!("autoland_backouts_total", "repo" => repo.to_owned()).increment(1);
}

/// `repo`'s tip was red for `seconds` (counted when it is green again).
pub fn red_seconds(repo: &str, seconds: f64) {
    metrics::counter!("autoland_red_seconds_total", "repo" => repo.to_owned())
        .increment(seconds.round() as u64);
}

/// A tip failed, then passed when run again.
pub fn intermittent_tip(repo: &str) {
    metrics::counter!("autoland_intermittent_tips_total", "repo" => repo.to_owned()).increment(1);
}

/// The exposition text: the gauges set from `overview` (stored facts), then everything
/// rendered.
pub fn render(overview: &Overview) -> String {
    let Some(handle) = init() else {
        return String::new();
    };
    for stage in crate::request::Stage::ALL {
        let n = overview
            .requests_by_stage
            .get(stage.as_str())
            .copied()
            .unwrap_or(0);
        metrics::gauge!("autoland_requests", "stage" => stage.as_str()).set(n as f64);
    }
    metrics::gauge!("autoland_queue_depth").set(overview.queue.len() as f64);
    metrics::gauge!("autoland_reports_pending").set(overview.pending_reports as f64);
    for module in &overview.modules {
        let labels = [
            ("module", module.module.clone()),
            ("host", module.host.clone()),
        ];
        let up = if matches!(module.state.as_str(), "running" | "degraded" | "standby") {
            1.0
        } else {
            0.0
        };
        metrics::gauge!("autoland_module_up", &labels).set(up);
        metrics::counter!("autoland_module_restarts_total", &labels)
            .absolute(module.restarts.max(0) as u64);
        metrics::gauge!("autoland_module_heartbeat_age_seconds", &labels)
            .set(module.heartbeat_age_seconds as f64);
    }
    metrics::gauge!("autoland_up").set(match overview.verdict {
        Verdict::Down => 0.0,
        Verdict::Up | Verdict::Degraded => 1.0,
    });
    handle.render()
}
