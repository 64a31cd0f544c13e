//! The outbox sender for Bugzilla: delivers queued reports (comments, whiteboard edits)
//! in order per bug, exactly once as seen from the bug, never dropped for a transient
//! failure: 5xx, timeouts and connection errors are retried with backoff for as long as
//! it takes. A comment whose earlier attempt may have arrived (the process died, or the
//! answer was lost) is first looked for on the bug.

use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, TimeZone, Utc};
use tokio_util::sync::CancellationToken;

use super::adapter::Bugzilla;
use super::client::{BugzillaClient, BugzillaError};
use super::tag;
use crate::fault;
use crate::runtime::{Context, ModuleStatus, Work, metrics};
use crate::store::{OutboxItem, ReportKind, StoreError, ms};

/// Sends reports until `shutdown`.
pub async fn run(ctx: Arc<Context>, status: ModuleStatus, shutdown: CancellationToken) {
    let Some(bugzilla) = ctx.trackers.find::<Bugzilla>() else {
        return;
    };
    let client = &bugzilla.client;
    let actor = format!("{}/bugzilla-reporter", ctx.instance);
    loop {
        match send_due(&ctx, client, &actor, &status).await {
            Ok(0) => {}
            Ok(_) => continue,
            Err(e) => status.error(format!("cannot read the outbox: {e}")),
        }
        if !ctx.idle(Work::Outbox, &shutdown).await {
            return;
        }
    }
}

/// Sends every report that is due; returns how many were delivered.
pub async fn send_due(
    ctx: &Context,
    client: &BugzillaClient,
    actor: &str,
    status: &ModuleStatus,
) -> Result<usize, StoreError> {
    let max_retry = ctx
        .config
        .bugzilla
        .as_ref()
        .map(|b| b.retry_max_seconds)
        .unwrap_or(300);
    let mut delivered = 0;
    for item in ctx.store.due_reports(50).await? {
        match deliver(ctx, client, &item).await {
            Ok(what) => {
                fault::point_at("report.after_send", item.kind.as_str());
                ctx.store.report_sent(item.id).await?;
                ctx.store
                    .note(
                        item.request_id,
                        "reported",
                        actor,
                        &format!("{what} on bug {}", item.bug),
                    )
                    .await?;
                delivered += 1;
                status.set(format!("delivered report {} to bug {}", item.id, item.bug));
            }
            Err(e) if e.is_credentials() => {
                metrics::tracker_error("credentials");
                status.error(format!(
                    "{e}; {} report(s) waiting",
                    ctx.store.pending_report_count().await?
                ));
                ctx.store
                    .report_failed(item.id, &e.to_string(), 60_000, false)
                    .await?;
            }
            Err(e) if e.is_transient() => {
                metrics::tracker_error("unavailable");
                let delay = Duration::from_secs(
                    2_u64
                        .saturating_pow(u32::try_from(item.attempts).unwrap_or(16))
                        .min(max_retry.max(1)),
                );
                status.error(format!(
                    "report {} to bug {} failed ({e}); retrying in {delay:?}",
                    item.id, item.bug
                ));
                // A lost answer may hide a delivered comment: keep the attempt on record.
                ctx.store
                    .report_failed(item.id, &e.to_string(), ms(delay), true)
                    .await?;
            }
            Err(e) => {
                // The bug is gone or hidden from us: this report can never be delivered.
                ctx.store.report_abandoned(item.id, &e.to_string()).await?;
                ctx.store
                    .note(
                        item.request_id,
                        "report_abandoned",
                        actor,
                        &format!("could not report to bug {}: {e}", item.bug),
                    )
                    .await?;
            }
        }
    }
    Ok(delivered)
}

async fn deliver(
    ctx: &Context,
    client: &BugzillaClient,
    item: &OutboxItem,
) -> Result<&'static str, BugzillaError> {
    let db = |e: StoreError| BugzillaError::Transport(format!("database: {e}"));
    match item.kind {
        ReportKind::Comment => {
            if let Some(attempted) = item.attempted_at {
                // The earlier attempt may have arrived: look before posting again.
                let since = Utc
                    .timestamp_millis_opt(attempted - 10 * 60 * 1000)
                    .single()
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
                let comments = client.comments(item.bug, since.as_deref()).await?;
                if comments.iter().any(|c| c.text.trim() == item.body.trim()) {
                    return Ok("comment found (posted by an earlier attempt)");
                }
            }
            ctx.store.report_attempt(item.id).await.map_err(db)?;
            fault::point_at("report.before_send", item.kind.as_str());
            client.add_comment(item.bug, &item.body).await?;
            Ok("comment posted")
        }
        ReportKind::MarkInQueue => {
            let bug = client.bug(item.bug).await?;
            match tag::find(&bug.whiteboard) {
                Ok(tag::Found::Request(found)) => {
                    let new = tag::replace(&bug.whiteboard, found.span, tag::IN_QUEUE);
                    fault::point_at("report.before_send", item.kind.as_str());
                    client.set_whiteboard(item.bug, &new).await?;
                    Ok("tag replaced by [autoland-in-queue]")
                }
                _ => Ok("whiteboard left alone (no tag to mark)"),
            }
        }
        ReportKind::RemoveTag => {
            let bug = client.bug(item.bug).await?;
            let span = match tag::find(&bug.whiteboard) {
                Ok(tag::Found::Request(found)) => Some(found.span),
                Ok(tag::Found::InQueue(span)) => Some(span),
                Ok(tag::Found::None) => None,
                Err(e) => Some(malformed_span(&bug.whiteboard, e.span())),
            };
            match span {
                Some(span) => {
                    let new = tag::replace(&bug.whiteboard, span, "");
                    fault::point_at("report.before_send", item.kind.as_str());
                    client.set_whiteboard(item.bug, &new).await?;
                    Ok("tag removed from the whiteboard")
                }
                None => Ok("whiteboard left alone (no tag)"),
            }
        }
    }
}

/// A malformed tag that never closes runs to the end of the whiteboard; remove only its
/// first word then, so other people's text after it survives.
fn malformed_span(whiteboard: &str, span: std::ops::Range<usize>) -> std::ops::Range<usize> {
    let Some(text) = whiteboard.get(span.clone()) else {
        return span;
    };
    if text.ends_with(']') {
        return span;
    }
    match text.find(char::is_whitespace) {
        Some(end) => span.start..span.start + end,
        None => span,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unclosed_tag_loses_only_its_first_word() {
        let wb = "[foo] [autoland-try keep this";
        let span = 6..wb.len();
        assert_eq!(&wb[malformed_span(wb, span)], "[autoland-try");
        let closed = "[autoland-,]";
        assert_eq!(malformed_span(closed, 0..closed.len()), 0..closed.len());
    }
}
