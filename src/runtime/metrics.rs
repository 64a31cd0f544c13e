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
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot install the metrics recorder");
                    None
                }
            }
        })
        .as_ref()
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
        metrics::gauge!("autoland_module_restarts", &labels).set(module.restarts as f64);
        metrics::gauge!("autoland_module_heartbeat_age_seconds", &labels)
            .set(module.heartbeat_age_seconds as f64);
    }
    metrics::gauge!("autoland_up").set(match overview.verdict {
        Verdict::Down => 0.0,
        Verdict::Up | Verdict::Degraded => 1.0,
    });
    handle.render()
}
