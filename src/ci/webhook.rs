//! The signed webhook: any CI (Jenkins, GitHub Actions, GitLab CI, ...) posts its jobs'
//! results to `POST /api/ci/results` at the end of each job or of the run.
//!
//! - Signature: `X-Autoland-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`
//!   with the try repository's secret (from an environment variable or a file, never the
//!   configuration), compared in constant time, before the body is even parsed (the
//!   secret that verifies names the repository; the body must name the same one).
//! - Replays: `X-Autoland-Timestamp` (epoch seconds) must be within `max_skew_seconds`
//!   of now, and a signature is accepted once (remembered for that window).
//! - Body: `{"repo": "try", "revision": "<full hash>", "jobs": [{"name", "result",
//!   "state"?, "attempt"?, "log_url"?, "duration_seconds"?, "summary"?}], "complete"?: bool}`.
//!   The run is complete when `complete` is true, or when every job of the repository's
//!   `webhook.jobs` has a final result.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::config::CiKind;
use crate::runtime::Context;
use crate::store::{JobResult, JobState, JobUpdate, StoreError, now_ms};

use super::judge::{Judged, judge};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-autoland-signature";
/// The timestamp header.
pub const TIMESTAMP_HEADER: &str = "x-autoland-timestamp";

/// Why a delivery was refused; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The body is not what the webhook takes (400).
    #[error("{0}")]
    BadRequest(String),
    /// Missing or wrong signature, or a timestamp out of the window (401).
    #[error("{0}")]
    Unauthorized(String),
    /// No such run, or a repository that takes no webhook (404).
    #[error("{0}")]
    NotFound(String),
    /// A delivery already received, or a run that already has its verdict (409).
    #[error("{0}")]
    Conflict(String),
    /// The database failed (500).
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Delivery {
    repo: String,
    revision: String,
    #[serde(default)]
    jobs: Vec<JobReport>,
    #[serde(default)]
    complete: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobReport {
    name: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    attempt: Option<i64>,
    #[serde(default)]
    log_url: Option<String>,
    #[serde(default)]
    duration_seconds: Option<f64>,
    #[serde(default)]
    summary: Option<String>,
}

/// What an accepted delivery did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Accepted {
    /// The run it was for.
    pub run: i64,
    /// The run's state after it.
    pub state: String,
    /// Job attempts recorded or changed.
    pub recorded: usize,
}

/// Autoland's word for a CI's result word (Buildbot's, Treeherder's, GitHub's, Jenkins').
pub fn result_of(word: &str) -> Option<JobResult> {
    Some(match word.to_ascii_lowercase().as_str() {
        "success" | "passed" | "pass" | "warnings" | "unstable_passed" => JobResult::Success,
        "failure" | "failed" | "fail" | "testfailed" | "unstable" => JobResult::Failed,
        "exception" | "retry" | "busted" | "timeout" | "timed_out" | "infra" | "error"
        | "aborted" => JobResult::Infra,
        "cancelled" | "canceled" | "usercancel" => JobResult::Cancelled,
        "skipped" | "not_built" => JobResult::Skipped,
        _ => return None,
    })
}

/// The signature a sender computes (`sha256=<hex>`): used by tests and the README's
/// example.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> Result<String, WebhookError> {
    Ok(format!(
        "sha256={}",
        hex::encode(mac(secret, timestamp, body)?.finalize().into_bytes())
    ))
}

fn mac(secret: &str, timestamp: &str, body: &[u8]) -> Result<Hmac<Sha256>, WebhookError> {
    // HMAC takes keys of any length, so this does not fail in practice.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|e| WebhookError::Unauthorized(format!("unusable webhook secret: {e}")))?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

/// Checks and records one delivery.
pub async fn deliver(
    ctx: &Context,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
) -> Result<Accepted, WebhookError> {
    // Authenticate before reading anything else: the signature must be made with the
    // secret of a try repository that takes webhook results.
    let timestamp = timestamp
        .ok_or_else(|| WebhookError::Unauthorized(format!("missing {TIMESTAMP_HEADER} header")))?
        .trim();
    let sent: i64 = timestamp.parse().map_err(|_| {
        WebhookError::Unauthorized(format!("{TIMESTAMP_HEADER} must be epoch seconds"))
    })?;
    let signature = signature
        .ok_or_else(|| WebhookError::Unauthorized(format!("missing {SIGNATURE_HEADER} header")))?;
    let given = signature
        .trim()
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| {
            WebhookError::Unauthorized(format!("{SIGNATURE_HEADER} must be sha256=<hex>"))
        })?;
    let mut signer = None;
    for repo in ctx
        .config
        .repositories
        .iter()
        .filter(|r| r.is_try && r.ci == CiKind::Webhook)
    {
        let Some(settings) = &repo.webhook else {
            continue;
        };
        let secret = match settings.secret(&repo.name) {
            Ok(secret) => secret,
            Err(e) => {
                tracing::error!(repo = %repo.name, error = %e, "the webhook secret cannot be read");
                continue;
            }
        };
        // verify_slice compares in constant time.
        if mac(&secret, timestamp, body)?.verify_slice(&given).is_ok() {
            signer = Some((repo.clone(), settings.clone()));
            break;
        }
    }
    let (repo, settings) = signer.ok_or_else(|| {
        WebhookError::Unauthorized(
            "the signature does not match the secret of any try repository that takes \
             webhook results: sign \"<timestamp>.<body>\" with HMAC-SHA256 and the \
             repository's secret, as in the README"
                .to_owned(),
        )
    })?;
    let skew = (now_ms() / 1000).abs_diff(sent);
    let max_skew = settings.max_skew_seconds;
    if skew > max_skew {
        return Err(WebhookError::Unauthorized(format!(
            "the timestamp is {skew} s away from now (at most {max_skew} s): refused as a possible replay"
        )));
    }
    let delivery: Delivery = serde_json::from_slice(body)
        .map_err(|e| WebhookError::BadRequest(format!("the body is not a CI result: {e}")))?;
    if delivery.repo != repo.name {
        return Err(WebhookError::Unauthorized(format!(
            "signed with the secret of `{}` but about `{}`",
            repo.name, delivery.repo
        )));
    }
    // Everything that can refuse the delivery comes before it is remembered, so that a
    // CI resending after a 404 (a push whose run is not committed yet) or a 500 is heard.
    let run = ctx
        .store
        .ci_run_of_revision(&repo.name, &delivery.revision)
        .await?
        .ok_or_else(|| {
            WebhookError::NotFound(format!(
                "no CI run of revision `{}` on `{}`: send the full revision Autoland pushed \
                 (results of other pushes are not taken); a push made a moment ago may not \
                 be recorded yet, so sending again is safe",
                delivery.revision, repo.name
            ))
        })?;
    if run.state.is_final() {
        return Err(WebhookError::Conflict(format!(
            "CI run {} already has its verdict ({})",
            run.id,
            run.state.as_str()
        )));
    }
    let mut updates = Vec::new();
    for job in &delivery.jobs {
        updates.push(update_of(job)?);
    }
    let digest = hex::encode(&given);
    if !ctx
        .store
        .record_delivery(&digest, replay_window_ms(ctx))
        .await?
    {
        return Err(WebhookError::Conflict(
            "this delivery was already received (replay refused)".to_owned(),
        ));
    }
    match record(ctx, &repo, &settings, &run, &updates, delivery.complete).await {
        Ok(accepted) => Ok(accepted),
        Err(e) => {
            // Not taken: let the CI's retry of the same delivery in.
            if let Err(forget) = ctx.store.forget_delivery(&digest).await {
                tracing::warn!(error = %forget, "cannot forget a failed webhook delivery");
            }
            Err(e.into())
        }
    }
}

/// How long delivery signatures are remembered: twice the widest timestamp window of any
/// webhook repository (a delivery older than its window is refused by its timestamp).
fn replay_window_ms(ctx: &Context) -> i64 {
    let widest = ctx
        .config
        .repositories
        .iter()
        .filter_map(|r| r.webhook.as_ref())
        .map(|w| w.max_skew_seconds)
        .max()
        .unwrap_or(300);
    i64::try_from(widest)
        .unwrap_or(i64::MAX)
        .saturating_mul(2000)
}

/// Writes a checked delivery's jobs and judges the run.
async fn record(
    ctx: &Context,
    repo: &crate::config::RepoConfig,
    settings: &crate::config::WebhookConfig,
    run: &crate::store::CiRun,
    updates: &[JobUpdate],
    complete: bool,
) -> Result<Accepted, StoreError> {
    ctx.store.start_ci_run(run.id).await?;
    if complete {
        ctx.store.mark_ci_run_complete(run.id).await?;
    }
    let mut recorded = 0;
    for update in updates {
        if ctx.store.record_ci_job(run.id, update).await? {
            recorded += 1;
        }
    }
    // Read again: another delivery may have said `complete` meanwhile.
    let complete = complete
        || !settings.jobs.is_empty()
        || ctx
            .store
            .ci_run(run.id)
            .await?
            .is_some_and(|r| r.complete_at.is_some());
    let actor = format!("{}/webhook", ctx.instance);
    let judged = judge(ctx, repo, run, &settings.jobs, complete, false, &actor).await?;
    let state = match judged {
        Judged::Concluded(state) => state.as_str().to_owned(),
        Judged::Waiting(_) => "running".to_owned(),
        Judged::AlreadyFinal => "finished".to_owned(),
    };
    Ok(Accepted {
        run: run.id,
        state,
        recorded,
    })
}

fn update_of(job: &JobReport) -> Result<JobUpdate, WebhookError> {
    let bad = |m: String| Err(WebhookError::BadRequest(m));
    if job.name.trim().is_empty() || job.name.len() > 200 || job.name.chars().any(char::is_control)
    {
        return bad("a job name must be 1-200 printable characters".to_owned());
    }
    let attempt = job.attempt.unwrap_or(1);
    if !(1..=100).contains(&attempt) {
        return bad(format!("job `{}`: attempt must be 1-100", job.name));
    }
    let result = match &job.result {
        Some(word) => match result_of(word) {
            Some(r) => Some(r),
            None => {
                return bad(format!(
                    "job `{}`: unknown result `{word}` (success, failure, testfailed, \
                     exception, retry, busted, timeout, cancelled, skipped)",
                    job.name
                ));
            }
        },
        None => None,
    };
    let state = match (job.state.as_deref(), result) {
        (_, Some(_)) => JobState::Completed,
        (Some("pending") | Some("queued"), None) => JobState::Pending,
        (Some("running") | None, None) => JobState::Running,
        (Some("completed"), None) => {
            return bad(format!(
                "job `{}`: a completed job needs a result",
                job.name
            ));
        }
        (Some(other), None) => {
            return bad(format!(
                "job `{}`: unknown state `{other}` (pending, running, completed)",
                job.name
            ));
        }
    };
    if let Some(url) = &job.log_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return bad(format!(
            "job `{}`: log_url must be an http(s) URL",
            job.name
        ));
    }
    let summary = job.summary.as_ref().map(|s| {
        let lines: Vec<&str> = s.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        tail.chars().take(4000).collect::<String>()
    });
    Ok(JobUpdate {
        name: job.name.trim().to_owned(),
        attempt,
        state: Some(state),
        result,
        raw_result: job.result.clone(),
        external_id: None,
        log_url: job.log_url.clone(),
        duration_ms: job
            .duration_seconds
            .filter(|d| d.is_finite() && *d >= 0.0)
            .map(|d| (d * 1000.0) as i64),
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_dot_body() -> Result<(), WebhookError> {
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac 'a-secret-of-16chars'
        assert_eq!(
            sign("a-secret-of-16chars", "1700000000", b"{}")?,
            "sha256=d524d88618dfbe723b9a6306e13ddbc055bc05b4d939a23bbc2f5c108b2401f0"
        );
        assert_ne!(
            sign("a-secret-of-16chars", "1700000000", b"{}")?,
            sign("a-secret-of-16chars", "1700000001", b"{}")?
        );
        Ok(())
    }

    #[test]
    fn result_words_of_every_ci_are_understood() {
        assert_eq!(result_of("SUCCESS"), Some(JobResult::Success));
        assert_eq!(result_of("testfailed"), Some(JobResult::Failed));
        assert_eq!(result_of("busted"), Some(JobResult::Infra));
        assert_eq!(result_of("usercancel"), Some(JobResult::Cancelled));
        assert_eq!(result_of("maybe"), None);
    }
}
