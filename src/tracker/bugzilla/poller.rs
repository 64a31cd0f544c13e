//! The Bugzilla poller: one search per interval for bugs whose whiteboard carries an
//! autoland tag, changed since a persisted cursor (minus a small overlap). A new tag
//! becomes a request (and `[autoland-in-queue]` on the whiteboard), in one transaction; a
//! malformed tag becomes a refused request with one comment explaining the grammar, and
//! the tag is removed so it is not read again.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio_util::sync::CancellationToken;

use super::adapter::{Bugzilla, SOURCE};
use super::client::{Bug, BugzillaClient, BugzillaError, HistoryEntry};
use super::{comments, tag};
use crate::config::BugzillaConfig;
use crate::request::NewRequest;
use crate::runtime::{Context, ModuleStatus, Work, metrics};
use crate::store::{NewReport, ReportKind};
use crate::tracker::api;

/// Where the cursor is kept in `tracker_state`.
pub const CURSOR: &str = "bugzilla.cursor";

/// What one poll did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollOutcome {
    /// Bugs the search returned.
    pub seen: usize,
    /// New requests created.
    pub claimed: usize,
    /// Malformed tags refused.
    pub refused: usize,
}

/// Polls until `shutdown`.
pub async fn run(ctx: Arc<Context>, status: ModuleStatus, shutdown: CancellationToken) {
    let (Some(config), Some(bugzilla)) =
        (ctx.config.bugzilla.clone(), ctx.trackers.find::<Bugzilla>())
    else {
        return;
    };
    let client = &bugzilla.client;
    let interval = Duration::from_secs(config.poll_interval_seconds);
    let mut backoff = Duration::from_secs(1);
    loop {
        let wait = match poll_once(&ctx, client, &config).await {
            Ok(outcome) => {
                backoff = Duration::from_secs(1);
                status.set(format!(
                    "last poll: {} tagged bug(s) changed, {} claimed, {} refused",
                    outcome.seen, outcome.claimed, outcome.refused
                ));
                interval
            }
            Err(e) if e.is_credentials() => {
                metrics::tracker_error("credentials");
                // An operator must fix the key; keep trying, slowly.
                status.error(format!(
                    "{e}; retrying every {:?}",
                    interval.max(Duration::from_secs(300))
                ));
                interval.max(Duration::from_secs(300))
            }
            Err(e) => {
                metrics::tracker_error("unavailable");
                status.error(format!("poll failed: {e}; retrying in {backoff:?}"));
                let wait = backoff;
                backoff = (backoff * 2).min(interval.max(Duration::from_secs(1)));
                wait
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One poll: one search, then a claim for each new tag.
pub async fn poll_once(
    ctx: &Context,
    client: &BugzillaClient,
    config: &BugzillaConfig,
) -> Result<PollOutcome, BugzillaError> {
    let cursor = ctx
        .store
        .tracker_value(CURSOR)
        .await
        .map_err(|e| BugzillaError::Transport(format!("database: {e}")))?
        .and_then(|c| DateTime::parse_from_rfc3339(&c).ok())
        .map(|c| c.with_timezone(&Utc));
    let overlap =
        chrono::Duration::seconds(i64::try_from(config.poll_overlap_seconds).unwrap_or(0));
    let since = cursor.map(|c| (c - overlap).to_rfc3339_opts(SecondsFormat::Secs, true));
    let bugs = client.search_tagged(since.as_deref()).await?;
    let mut outcome = PollOutcome {
        seen: bugs.len(),
        ..PollOutcome::default()
    };
    let mut newest = cursor;
    for bug in &bugs {
        match claim(ctx, client, bug).await? {
            Claim::Claimed => outcome.claimed += 1,
            Claim::Refused => outcome.refused += 1,
            Claim::Skipped => {}
        }
        if let Ok(changed) = DateTime::parse_from_rfc3339(&bug.last_change_time) {
            let changed = changed.with_timezone(&Utc);
            if newest.is_none_or(|n| changed > n) {
                newest = Some(changed);
            }
        }
    }
    if let Some(newest) = newest
        && Some(newest) != cursor
    {
        ctx.store
            .set_tracker_value(CURSOR, &newest.to_rfc3339_opts(SecondsFormat::Secs, true))
            .await
            .map_err(|e| BugzillaError::Transport(format!("database: {e}")))?;
    }
    if outcome.claimed + outcome.refused > 0 {
        ctx.wake(Work::Pushers).await;
        ctx.wake(Work::Outbox).await;
    }
    Ok(outcome)
}

enum Claim {
    Claimed,
    Refused,
    Skipped,
}

async fn claim(ctx: &Context, client: &BugzillaClient, bug: &Bug) -> Result<Claim, BugzillaError> {
    let db = |e: crate::store::StoreError| BugzillaError::Transport(format!("database: {e}"));
    if ctx.store.bug_is_busy(SOURCE, bug.id).await.map_err(db)? {
        return Ok(Claim::Skipped);
    }
    let actor = format!("{}/bugzilla-poller", ctx.instance);
    let parsed = tag::find(&bug.whiteboard);
    let Some(span) = claimed_span(&parsed) else {
        return Ok(Claim::Skipped);
    };
    let claimed = bug.whiteboard.get(span).unwrap_or("");
    let (tag, tag_text) = match parsed {
        Ok(tag::Found::Request(tag)) => (Ok(tag), claimed.to_owned()),
        Ok(_) => return Ok(Claim::Skipped),
        Err(e) => (Err(e.to_string()), claimed.chars().take(80).collect()),
    };
    let requester = requester_of(client, bug.id, claimed).await?;
    let mut new = NewRequest {
        source: SOURCE.to_owned(),
        bug: Some(bug.id),
        requester,
        try_repo: String::new(),
        base_repo: String::new(),
        destinations: Vec::new(),
        try_syntax: None,
        patches: Vec::new(),
        attachment_ids: Vec::new(),
    };
    let resolved = tag.and_then(|tag| {
        api::resolve_destinations(&ctx.config, &tag.destinations)
            .map(|resolved| (tag, resolved))
            .map_err(|e| e.0)
    });
    match resolved {
        Ok((tag, (try_repo, base_repo, destinations))) => {
            new.try_repo = try_repo;
            new.base_repo = base_repo;
            new.destinations = destinations;
            new.try_syntax = tag.try_syntax;
            new.attachment_ids = tag.attachment_ids;
            let reports = [NewReport {
                bug: bug.id,
                kind: ReportKind::MarkInQueue,
                body: String::new(),
            }];
            let id = ctx
                .store
                .insert_request(&new, &actor, &reports)
                .await
                .map_err(db)?;
            tracing::info!(bug = bug.id, request = %id, tag = %tag_text, "claimed a bug");
            Ok(Claim::Claimed)
        }
        Err(message) => {
            let shown = if tag_text.is_empty() {
                "(empty)".to_owned()
            } else {
                format!("`{tag_text}`")
            };
            let reports = [
                NewReport {
                    bug: bug.id,
                    kind: ReportKind::Comment,
                    body: comments::malformed_tag(&shown, &message),
                },
                NewReport {
                    bug: bug.id,
                    kind: ReportKind::RemoveTag,
                    body: String::new(),
                },
            ];
            let detail = format!("the whiteboard tag {shown} cannot be used: {message}");
            let id = ctx
                .store
                .insert_rejected_request(&new, &actor, &detail, &reports)
                .await
                .map_err(db)?;
            tracing::info!(bug = bug.id, request = %id, "refused a malformed tag");
            Ok(Claim::Refused)
        }
    }
}

/// Who put the tag `tag_text` on the whiteboard. Their Bugzilla account is the requester;
/// nobody's (an account that holds no level) when the history does not say.
async fn requester_of(
    client: &BugzillaClient,
    bug: i64,
    tag_text: &str,
) -> Result<String, BugzillaError> {
    let history = match client.history(bug).await {
        Ok(h) => h,
        Err(e) if e.is_transient() || e.is_credentials() => return Err(e),
        Err(_) => Vec::new(),
    };
    Ok(tag_adder(&history, tag_text)
        .unwrap_or("unknown@bugzilla.invalid")
        .to_owned())
}

/// Where the tag the whiteboard grammar claims is (the first one, malformed or not; none
/// for no tag or the in-queue marker).
fn claimed_span(parsed: &Result<tag::Found, tag::TagError>) -> Option<std::ops::Range<usize>> {
    match parsed {
        Ok(tag::Found::Request(found)) => Some(found.span.clone()),
        Ok(tag::Found::None | tag::Found::InQueue(_)) => None,
        Err(e) => Some(e.span()),
    }
}

/// The text of the tag the whiteboard grammar claims from `whiteboard`.
fn first_tag(whiteboard: &str) -> Option<&str> {
    whiteboard.get(claimed_span(&tag::find(whiteboard))?)
}

/// The latest whiteboard change that made `tag_text` the whiteboard's tag: its new text's
/// tag (as the grammar reads it) is `tag_text` and its old text's was not. Bugzilla
/// records a whiteboard edit as the whole old and new text, so someone who edits another
/// part of a whiteboard that already holds the tag is not its author.
fn tag_adder<'h>(history: &'h [HistoryEntry], tag_text: &str) -> Option<&'h str> {
    history
        .iter()
        .rev()
        .find(|entry| {
            entry.changes.iter().any(|c| {
                c.field_name == "whiteboard"
                    && first_tag(&c.added) == Some(tag_text)
                    && first_tag(&c.removed) != Some(tag_text)
            })
        })
        .map(|entry| entry.who.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::bugzilla::client::HistoryChange;

    fn edit(who: &str, removed: &str, added: &str) -> HistoryEntry {
        HistoryEntry {
            when: "2026-11-30T08:00:00Z".to_owned(),
            who: who.to_owned(),
            changes: vec![HistoryChange {
                field_name: "whiteboard".to_owned(),
                removed: removed.to_owned(),
                added: added.to_owned(),
            }],
        }
    }

    #[test]
    fn the_requester_is_who_added_the_tag_not_who_edited_the_whiteboard_after() {
        let history = [
            edit("bob@example.com", "", "[autoland-central]"),
            edit(
                "carol@example.com",
                "[autoland-central]",
                "[autoland-central] [perf]",
            ),
        ];
        assert_eq!(
            tag_adder(&history, "[autoland-central]"),
            Some("bob@example.com")
        );
        // A changed tag is a new request by whoever changed it.
        let history = [
            edit("bob@example.com", "", "[autoland-try]"),
            edit("carol@example.com", "[autoland-try]", "[AUTOLAND-central]"),
        ];
        assert_eq!(
            tag_adder(&history, "[AUTOLAND-central]"),
            Some("carol@example.com")
        );
        assert_eq!(
            tag_adder(&[edit("x@example.com", "", "[perf]")], "[autoland-try]"),
            None
        );
    }

    #[test]
    fn a_tag_slipped_in_front_of_someone_elses_is_credited_to_who_slipped_it() {
        // Alice's try tag waits; Mallory puts a central tag first, in a spelling the
        // grammar accepts (a space after the bracket): the grammar takes Mallory's tag,
        // so Mallory is its requester, not Alice.
        let history = [
            edit("alice@example.com", "", "[autoland-try]"),
            edit(
                "mallory@example.com",
                "[autoland-try]",
                "[ autoland-central] [autoland-try]",
            ),
        ];
        let claimed = first_tag("[ autoland-central] [autoland-try]").unwrap();
        assert_eq!(claimed, "[ autoland-central]");
        assert_eq!(tag_adder(&history, claimed), Some("mallory@example.com"));
        // Brackets inside a tag are the grammar's business too.
        let history = [edit("eve@example.com", "", "[autoland-try:-b o [x]] tail")];
        let claimed = first_tag("[autoland-try:-b o [x]] tail").unwrap();
        assert_eq!(tag_adder(&history, claimed), Some("eve@example.com"));
    }
}
