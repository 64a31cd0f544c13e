//! Requests, their patches and destinations, the event log, and claiming work.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::ci::{CiJob, CiRun, NewCiRun, insert_ci_run};
use super::db::{Store, StoreError, col, now_ms, parse_col, parse_opt_col};
use super::outbox::{NewReport, insert_reports};
use crate::fault;
use crate::patch::PatchDate;
use crate::request::{
    Destination, Event, FailureCategory, NewRequest, Patch, Request, RequestId, Review, ReviewKind,
    Stage, Transition, next_stage,
};

/// A request with its history, read so that they agree ([`Store::request_with_history`]).
#[derive(Debug, Clone)]
pub struct RequestHistory {
    /// The request.
    pub request: Request,
    /// Its events, oldest first.
    pub events: Vec<Event>,
    /// Its patches.
    pub patches: Vec<Patch>,
    /// Its latest CI run.
    pub ci_run: Option<CiRun>,
    /// Every attempt of every job of that run.
    pub ci_jobs: Vec<CiJob>,
}

/// Facts recorded together with a transition, in the same transaction.
#[derive(Debug, Default, Clone)]
pub struct Effects {
    /// The base the try push is built on.
    pub try_base: Option<String>,
    /// The revision pushed to try.
    pub try_revision: Option<String>,
    /// A CI run to queue.
    pub ci_run: Option<NewCiRun>,
    /// The finished try run and its jobs (for the try report).
    pub ci_report: Option<super::ci::RunReport>,
    /// A destination (by position) that landed as a revision.
    pub landed: Option<(i64, String)>,
    /// Reports to the tracker about this change.
    pub reports: Vec<NewReport>,
    /// Patches gathered from the tracker.
    pub patches: Vec<Patch>,
    /// Whose levels granted the request (when it is authorized).
    pub decisions: Vec<crate::permissions::Decision>,
}

/// Which requests [`Store::list_requests`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFilter {
    /// Every request, newest first.
    All,
    /// Requests not in a terminal stage, newest first.
    Open,
    /// Finished requests (landed, failed, cancelled), most recently finished first.
    Finished,
}

const REQUEST_COLUMNS: &str = "id, uid, source, bug, requester, try_repo, base_repo, try_syntax, \
     stage, failure, failure_detail, try_base, try_revision, attempts, created_at, updated_at";

fn random_uid() -> String {
    let bytes: [u8; 8] = rand::random();
    hex::encode(bytes)
}

fn request_from_row(row: &AnyRow) -> Result<Request, StoreError> {
    Ok(Request {
        id: RequestId(col(row, "id")?),
        uid: col(row, "uid")?,
        source: col(row, "source")?,
        bug: col(row, "bug")?,
        requester: col(row, "requester")?,
        try_repo: col(row, "try_repo")?,
        base_repo: col(row, "base_repo")?,
        try_syntax: col(row, "try_syntax")?,
        stage: parse_col(row, "stage", "requests")?,
        failure: parse_opt_col::<FailureCategory>(row, "failure", "requests")?,
        failure_detail: col(row, "failure_detail")?,
        try_base: col(row, "try_base")?,
        try_revision: col(row, "try_revision")?,
        attempts: col(row, "attempts")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
        destinations: Vec::new(),
    })
}

fn event_from_row(row: &AnyRow) -> Result<Event, StoreError> {
    Ok(Event {
        id: col(row, "id")?,
        at: col(row, "at")?,
        kind: col(row, "kind")?,
        from_stage: parse_opt_col(row, "from_stage", "events")?,
        to_stage: parse_opt_col(row, "to_stage", "events")?,
        actor: col(row, "actor")?,
        detail: col(row, "detail")?,
    })
}

fn destination_from_row(row: &AnyRow) -> Result<Destination, StoreError> {
    Ok(Destination {
        position: col(row, "position")?,
        repo: col(row, "repo")?,
        attempt_base: col(row, "attempt_base")?,
        landed_revision: col(row, "landed_revision")?,
    })
}

async fn insert_event(
    tx: &mut Transaction<'_, Any>,
    id: RequestId,
    kind: &str,
    stages: Option<(Stage, Stage)>,
    actor: &str,
    detail: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO events (request_id, at, kind, from_stage, to_stage, actor, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id.0)
    .bind(now_ms())
    .bind(kind)
    .bind(stages.map(|(from, _)| from.as_str()))
    .bind(stages.map(|(_, to)| to.as_str()))
    .bind(actor)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_patches(
    tx: &mut Transaction<'_, Any>,
    id: RequestId,
    patches: &[Patch],
) -> Result<(), StoreError> {
    for patch in patches {
        sqlx::query(
            "INSERT INTO patches (request_id, position, name, format, author, submitter, \
                 date_seconds, date_offset, message, diff) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id.0)
        .bind(patch.position)
        .bind(&patch.name)
        .bind(format_name(patch.format))
        .bind(&patch.author)
        .bind(patch.submitter.as_deref())
        .bind(patch.date.map(|d| d.seconds))
        .bind(patch.date.map(|d| i64::from(d.offset_minutes)))
        .bind(&patch.message)
        .bind(&patch.diff)
        .execute(&mut **tx)
        .await?;
        let mut seen = std::collections::HashSet::new();
        for path in patch.files.iter().filter(|p| seen.insert(p.as_str())) {
            sqlx::query("INSERT INTO patch_files (request_id, position, path) VALUES ($1, $2, $3)")
                .bind(id.0)
                .bind(patch.position)
                .bind(path)
                .execute(&mut **tx)
                .await?;
        }
        let mut seen = std::collections::HashSet::new();
        for review in patch
            .reviews
            .iter()
            .filter(|r| seen.insert((r.who.clone(), r.kind)))
        {
            sqlx::query(
                "INSERT INTO patch_reviews (request_id, position, reviewer, kind) \
                     VALUES ($1, $2, $3, $4)",
            )
            .bind(id.0)
            .bind(patch.position)
            .bind(&review.who)
            .bind(review.kind.as_str())
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

impl Store {
    /// Stores a new request with its patches and destinations and its `received` event,
    /// all or nothing.
    pub async fn insert_request(
        &self,
        new: &NewRequest,
        actor: &str,
        reports: &[NewReport],
    ) -> Result<RequestId, StoreError> {
        self.insert(new, actor, reports, None).await
    }

    /// Stores a request that is refused from the start (a malformed tag), failed with
    /// `invalid_request` and `detail`, with its reports, all in one transaction: the
    /// refusal is on record and the comment explaining it goes out exactly once.
    pub async fn insert_rejected_request(
        &self,
        new: &NewRequest,
        actor: &str,
        detail: &str,
        reports: &[NewReport],
    ) -> Result<RequestId, StoreError> {
        self.insert(new, actor, reports, Some(detail)).await
    }

    async fn insert(
        &self,
        new: &NewRequest,
        actor: &str,
        reports: &[NewReport],
        rejection: Option<&str>,
    ) -> Result<RequestId, StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO requests (uid, source, bug, requester, try_repo, base_repo, try_syntax, \
             stage, attempts, next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 0, $9, $9) RETURNING id",
        )
        .bind(random_uid())
        .bind(&new.source)
        .bind(new.bug)
        .bind(&new.requester)
        .bind(&new.try_repo)
        .bind(&new.base_repo)
        .bind(new.try_syntax.as_deref())
        .bind(Stage::Received.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let id = RequestId(col(&row, "id")?);
        insert_patches(&mut tx, id, &new.patches).await?;
        for (position, attachment) in new.attachment_ids.iter().enumerate() {
            sqlx::query(
                "INSERT INTO request_attachments (request_id, position, attachment_id) \
                 VALUES ($1, $2, $3)",
            )
            .bind(id.0)
            .bind(i64::try_from(position).unwrap_or(i64::MAX) + 1)
            .bind(*attachment)
            .execute(&mut *tx)
            .await?;
        }
        for (index, repo) in new.destinations.iter().enumerate() {
            sqlx::query(
                "INSERT INTO request_destinations (request_id, position, repo) VALUES ($1, $2, $3)",
            )
            .bind(id.0)
            .bind(i64::try_from(index).unwrap_or(i64::MAX) + 1)
            .bind(repo)
            .execute(&mut *tx)
            .await?;
        }
        let patches = match (new.patches.len(), new.bug) {
            (0, Some(bug)) => format!("patches to gather from bug {bug}"),
            (1, _) => "1 patch".to_owned(),
            (n, _) => format!("{n} patches"),
        };
        let detail = format!(
            "request from {} ({patches}) via {}: try on `{}`{}",
            new.requester,
            new.source,
            new.try_repo,
            if new.destinations.is_empty() {
                String::new()
            } else {
                format!(", then land on {}", new.destinations.join(", "))
            }
        );
        insert_event(&mut tx, id, "received", None, actor, &detail).await?;
        if let Some(why) = rejection {
            let transition = Transition::Fail(FailureCategory::InvalidRequest);
            let to = next_stage(Stage::Received, &transition)?;
            sqlx::query(
                "UPDATE requests SET stage = $1, failure = $2, failure_detail = $3 WHERE id = $4",
            )
            .bind(to.as_str())
            .bind(FailureCategory::InvalidRequest.as_str())
            .bind(why)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
            insert_event(
                &mut tx,
                id,
                transition.event_kind(),
                Some((Stage::Received, to)),
                actor,
                why,
            )
            .await?;
        }
        insert_reports(&mut tx, id, reports).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// One request with its destinations.
    pub async fn request(&self, id: RequestId) -> Result<Option<Request>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM requests WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut request = request_from_row(&row)?;
        request.destinations = self.destinations(id).await?;
        Ok(Some(request))
    }

    async fn destinations(&self, id: RequestId) -> Result<Vec<Destination>, StoreError> {
        let rows = sqlx::query(
            "SELECT position, repo, attempt_base, landed_revision FROM request_destinations \
             WHERE request_id = $1 ORDER BY position",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(destination_from_row).collect()
    }

    /// The destinations of many requests in one query (listing without an N+1).
    async fn destinations_of(
        &self,
        ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, Vec<Destination>>, StoreError> {
        let mut by_request: std::collections::HashMap<i64, Vec<Destination>> =
            std::collections::HashMap::new();
        if ids.is_empty() {
            return Ok(by_request);
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT request_id, position, repo, attempt_base, landed_revision \
             FROM request_destinations WHERE request_id IN ({}) ORDER BY request_id, position",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for id in ids {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&self.pool).await? {
            let id: i64 = col(&row, "request_id")?;
            by_request
                .entry(id)
                .or_default()
                .push(destination_from_row(&row)?);
        }
        Ok(by_request)
    }

    /// Requests from their rows, each with its destinations (one more query for all).
    async fn requests_with_destinations(
        &self,
        rows: &[AnyRow],
    ) -> Result<Vec<Request>, StoreError> {
        let mut out = rows
            .iter()
            .map(request_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<i64> = out.iter().map(|r| r.id.0).collect();
        let mut destinations = self.destinations_of(&ids).await?;
        for request in &mut out {
            request.destinations = destinations.remove(&request.id.0).unwrap_or_default();
        }
        Ok(out)
    }

    /// Requests, by `filter`; at most `limit` of them (100 when not positive).
    pub async fn list_requests(
        &self,
        filter: ListFilter,
        limit: i64,
    ) -> Result<Vec<Request>, StoreError> {
        let limit = if limit <= 0 { 100 } else { limit };
        let sql = match filter {
            ListFilter::Open => format!(
                "SELECT {REQUEST_COLUMNS} FROM requests \
                 WHERE stage NOT IN ('landed', 'failed', 'cancelled') ORDER BY id DESC LIMIT $1"
            ),
            ListFilter::Finished => format!(
                "SELECT {REQUEST_COLUMNS} FROM requests \
                 WHERE stage IN ('landed', 'failed', 'cancelled') \
                 ORDER BY updated_at DESC, id DESC LIMIT $1"
            ),
            ListFilter::All => {
                format!("SELECT {REQUEST_COLUMNS} FROM requests ORDER BY id DESC LIMIT $1")
            }
        };
        let rows = sqlx::query(&sql).bind(limit).fetch_all(&self.pool).await?;
        self.requests_with_destinations(&rows).await
    }

    /// The requests of one bug of `source`, newest first (at most 50).
    pub async fn requests_for_bug(
        &self,
        source: &str,
        bug: i64,
    ) -> Result<Vec<Request>, StoreError> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM requests WHERE source = $1 AND bug = $2 \
             ORDER BY id DESC LIMIT 50"
        );
        let rows = sqlx::query(&sql)
            .bind(source)
            .bind(bug)
            .fetch_all(&self.pool)
            .await?;
        self.requests_with_destinations(&rows).await
    }

    /// The patches of a request, in order, with their files and reviews.
    pub async fn patches(&self, id: RequestId) -> Result<Vec<Patch>, StoreError> {
        let rows = sqlx::query(
            "SELECT position, name, format, author, submitter, date_seconds, date_offset, message, diff \
             FROM patches WHERE request_id = $1 ORDER BY position",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        let files = sqlx::query(
            "SELECT position, path FROM patch_files WHERE request_id = $1 ORDER BY position, path",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        let reviews = sqlx::query(
            "SELECT position, reviewer, kind FROM patch_reviews WHERE request_id = $1 \
             ORDER BY position, reviewer",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        let mut patches = Vec::with_capacity(rows.len());
        for row in &rows {
            let position: i64 = col(row, "position")?;
            let seconds: Option<i64> = col(row, "date_seconds")?;
            let offset: Option<i64> = col(row, "date_offset")?;
            let format_text: String = col(row, "format")?;
            let format = parse_format(&format_text).ok_or_else(|| StoreError::Corrupt {
                table: "patches",
                detail: format!("unknown format `{format_text}`"),
            })?;
            let mut patch_files = Vec::new();
            for f in &files {
                if col::<i64>(f, "position")? == position {
                    patch_files.push(col(f, "path")?);
                }
            }
            let mut patch_reviews = Vec::new();
            for r in &reviews {
                if col::<i64>(r, "position")? == position {
                    let kind_text: String = col(r, "kind")?;
                    let kind = match kind_text.as_str() {
                        "review" => ReviewKind::Review,
                        "feedback" => ReviewKind::Feedback,
                        other => {
                            return Err(StoreError::Corrupt {
                                table: "patch_reviews",
                                detail: format!("unknown kind `{other}`"),
                            });
                        }
                    };
                    patch_reviews.push(Review {
                        who: col(r, "reviewer")?,
                        kind,
                    });
                }
            }
            patches.push(Patch {
                position,
                name: col(row, "name")?,
                format,
                author: col(row, "author")?,
                submitter: col(row, "submitter")?,
                date: match (seconds, offset) {
                    (Some(seconds), Some(offset)) => Some(PatchDate {
                        seconds,
                        offset_minutes: i32::try_from(offset).unwrap_or(0),
                    }),
                    _ => None,
                },
                message: col(row, "message")?,
                diff: col(row, "diff")?,
                files: patch_files,
                reviews: patch_reviews,
            });
        }
        Ok(patches)
    }

    /// The attachments a request named explicitly, in order.
    pub async fn requested_attachments(&self, id: RequestId) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT attachment_id FROM request_attachments WHERE request_id = $1 ORDER BY position",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| col(r, "attachment_id")).collect()
    }

    /// A request and its history (events, patches, latest CI run and its jobs), agreeing
    /// with each other. The reads are separate statements; a transition writes the request
    /// row and its event in one transaction, so the row is read before and after the rest,
    /// and everything is read again (up to 5 times) while it changed in between.
    pub async fn request_with_history(
        &self,
        id: RequestId,
    ) -> Result<Option<RequestHistory>, StoreError> {
        let Some(mut request) = self.request(id).await? else {
            return Ok(None);
        };
        let mut reads = 0;
        loop {
            reads += 1;
            let events = self.events(id).await?;
            let patches = self.patches(id).await?;
            let ci_run = self.ci_run_for(id).await?;
            let ci_jobs = match &ci_run {
                Some(run) => self.ci_jobs(run.id).await?,
                None => Vec::new(),
            };
            match self.request(id).await? {
                Some(again) if again != request && reads < 5 => request = again,
                _ => {
                    return Ok(Some(RequestHistory {
                        request,
                        events,
                        patches,
                        ci_run,
                        ci_jobs,
                    }));
                }
            }
        }
    }

    /// The event history of a request, oldest first.
    pub async fn events(&self, id: RequestId) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, kind, from_stage, to_stage, actor, detail FROM events \
             WHERE request_id = $1 ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Whether a request has an event of `kind`.
    pub async fn has_event(&self, id: RequestId, kind: &str) -> Result<bool, StoreError> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM events WHERE request_id = $1 AND kind = $2")
                .bind(id.0)
                .bind(kind)
                .fetch_one(&self.pool)
                .await?;
        Ok(col::<i64>(&row, "n")? > 0)
    }

    /// A request's latest event.
    pub async fn last_event(&self, id: RequestId) -> Result<Option<Event>, StoreError> {
        let row = sqlx::query(
            "SELECT id, at, kind, from_stage, to_stage, actor, detail FROM events \
             WHERE request_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(event_from_row).transpose()
    }

    /// Moves a request from `from` through `transition`: the state machine decides the new
    /// stage; the new stage, its event and `effects` commit in one transaction. Fails with
    /// [`StoreError::StageChanged`] if the request is no longer in `from`.
    pub async fn transition(
        &self,
        id: RequestId,
        from: Stage,
        transition: &Transition,
        actor: &str,
        detail: &str,
        effects: Effects,
    ) -> Result<Stage, StoreError> {
        let to = next_stage(from, transition)?;
        let now = now_ms();
        let failure = match transition {
            Transition::Fail(category) => Some(*category),
            _ => None,
        };
        let mut tx = self.pool.begin().await?;
        // The compare-and-set on the stage is the first statement, so SQLite takes the
        // write lock before anything is read.
        let updated = sqlx::query(
            "UPDATE requests SET stage = $1, updated_at = $2, attempts = 0, next_attempt_at = 0, \
             failure = COALESCE($3, failure), failure_detail = COALESCE($4, failure_detail), \
             try_revision = COALESCE($5, try_revision), try_base = COALESCE($8, try_base) \
             WHERE id = $6 AND stage = $7",
        )
        .bind(to.as_str())
        .bind(now)
        .bind(failure.map(|f| f.as_str()))
        .bind(failure.map(|_| detail))
        .bind(effects.try_revision.as_deref())
        .bind(id.0)
        .bind(from.as_str())
        .bind(effects.try_base.as_deref())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::StageChanged {
                id: id.0,
                expected: from,
            });
        }
        if matches!(transition, Transition::Retry { .. }) {
            sqlx::query("UPDATE requests SET failure = NULL, failure_detail = NULL WHERE id = $1")
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
        }
        if to.is_terminal() {
            sqlx::query("UPDATE requests SET lease_owner = NULL, lease_until = NULL WHERE id = $1")
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
        }
        if let Some((position, revision)) = &effects.landed {
            sqlx::query(
                "UPDATE request_destinations SET landed_revision = $1 \
                 WHERE request_id = $2 AND position = $3",
            )
            .bind(revision)
            .bind(id.0)
            .bind(*position)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(run) = &effects.ci_run {
            insert_ci_run(&mut tx, id, run).await?;
        }
        insert_patches(&mut tx, id, &effects.patches).await?;
        insert_reports(&mut tx, id, &effects.reports).await?;
        for d in &effects.decisions {
            sqlx::query(
                "INSERT INTO permission_decisions (request_id, repo, level, role, identity, \
                 holds, source, decided_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id.0)
            .bind(&d.repo)
            .bind(&d.level)
            .bind(&d.role)
            .bind(&d.identity)
            .bind(&d.holds)
            .bind(&d.source)
            .bind(d.decided_at)
            .execute(&mut *tx)
            .await?;
        }
        insert_event(
            &mut tx,
            id,
            transition.event_kind(),
            Some((from, to)),
            actor,
            detail,
        )
        .await?;
        fault::point_at("transition.before_commit", to.as_str());
        tx.commit().await?;
        fault::point_at("transition.after_commit", to.as_str());
        Ok(to)
    }

    /// Records an event that does not change the stage (a retry, a reclaimed lease...).
    pub async fn note(
        &self,
        id: RequestId,
        kind: &str,
        actor: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.note_with_reports(id, kind, actor, detail, &[]).await
    }

    /// The permission decisions of a request, in the order they were made (a retry
    /// authorizes again and adds its own).
    pub async fn decisions(
        &self,
        id: RequestId,
    ) -> Result<Vec<crate::permissions::Decision>, StoreError> {
        let rows = sqlx::query(
            "SELECT repo, level, role, identity, holds, source, decided_at \
             FROM permission_decisions WHERE request_id = $1 ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::permissions::Decision {
                    repo: col(r, "repo")?,
                    level: col(r, "level")?,
                    role: col(r, "role")?,
                    identity: col(r, "identity")?,
                    holds: col(r, "holds")?,
                    source: col(r, "source")?,
                    decided_at: col(r, "decided_at")?,
                })
            })
            .collect()
    }

    /// [`Store::note`], unless the request's last event is this same note: something
    /// seen at every look (a wait) is said once, until it changes.
    pub async fn note_unless_repeated(
        &self,
        id: RequestId,
        kind: &str,
        actor: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        let last = self.last_event(id).await?;
        if last.is_some_and(|e| e.kind == kind && e.detail == detail) {
            return Ok(());
        }
        self.note(id, kind, actor, detail).await
    }

    /// [`Store::note`] with reports to the tracker, in one transaction.
    pub async fn note_with_reports(
        &self,
        id: RequestId,
        kind: &str,
        actor: &str,
        detail: &str,
        reports: &[NewReport],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_event(&mut tx, id, kind, None, actor, detail).await?;
        super::outbox::insert_reports(&mut tx, id, reports).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims the oldest workable request whose lease is free and whose retry time has
    /// come, for `lease_ms`. Returns it, or `None` when there is no work.
    pub async fn claim_request(
        &self,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Option<Request>, StoreError> {
        let stages = Stage::WORKABLE
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let row = sqlx::query(&format!(
            "UPDATE requests SET lease_owner = $1, lease_until = {now} + $2 \
             WHERE id = (SELECT id FROM requests WHERE stage IN ({stages}) \
                         AND next_attempt_at <= {now} \
                         AND (lease_until IS NULL OR lease_until < {now}) \
                         ORDER BY id LIMIT 1{skip}) \
             AND (lease_until IS NULL OR lease_until < {now}) \
             RETURNING {REQUEST_COLUMNS}, lease_owner",
            skip = self.skip_locked(),
            now = self.now_sql(),
        ))
        .bind(owner)
        .bind(lease_ms)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut request = request_from_row(&row)?;
        request.destinations = self.destinations(request.id).await?;
        Ok(Some(request))
    }

    /// Extends a lease this owner holds. False if it no longer holds it.
    pub async fn renew_lease(
        &self,
        id: RequestId,
        owner: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE requests SET lease_until = {} + $1 WHERE id = $2 AND lease_owner = $3",
            self.now_sql()
        ))
        .bind(lease_ms)
        .bind(id.0)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a lease back. With `retry_after_ms`, the attempt counter goes up and the
    /// request is not claimable before that delay (a transient error).
    pub async fn release(
        &self,
        id: RequestId,
        owner: &str,
        retry_after_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let (bump, delay) = match retry_after_ms {
            Some(delay) => (1_i64, delay),
            None => (0, 0),
        };
        sqlx::query(&format!(
            "UPDATE requests SET lease_owner = NULL, lease_until = NULL, \
             attempts = attempts + $1, next_attempt_at = {} + $2 \
             WHERE id = $3 AND lease_owner = $4",
            self.now_sql()
        ))
        .bind(bump)
        .bind(delay)
        .bind(id.0)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the tip a push attempt on a destination starts from, before pushing.
    pub async fn set_attempt_base(
        &self,
        id: RequestId,
        position: i64,
        base: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE request_destinations SET attempt_base = $1 \
             WHERE request_id = $2 AND position = $3",
        )
        .bind(base)
        .bind(id.0)
        .bind(position)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Requests in `awaiting_try` whose try results came in (their CI run finished).
    pub async fn requests_with_finished_try(&self) -> Result<Vec<RequestId>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id FROM requests r JOIN ci_runs c ON c.request_id = r.id \
             WHERE r.stage = 'awaiting_try' AND c.state IN ('passed', 'failed', 'timed_out') \
             ORDER BY r.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(RequestId(col(r, "id")?))).collect()
    }

    /// Requests waiting for try results since before `before_ms` without a result.
    pub async fn requests_awaiting_try_since(
        &self,
        before_ms: i64,
    ) -> Result<Vec<RequestId>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM requests WHERE stage = 'awaiting_try' AND updated_at < $1 ORDER BY id",
        )
        .bind(before_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(RequestId(col(r, "id")?))).collect()
    }

    /// Number of requests per stage.
    pub async fn stage_counts(&self) -> Result<Vec<(Stage, i64)>, StoreError> {
        let rows = sqlx::query("SELECT stage, COUNT(*) AS n FROM requests GROUP BY stage")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    parse_col(r, "stage", "requests")?,
                    r.try_get::<i64, _>("n")?,
                ))
            })
            .collect()
    }
}

fn format_name(format: crate::patch::PatchFormat) -> &'static str {
    use crate::patch::PatchFormat;
    match format {
        PatchFormat::GitFormatPatch => "git_format_patch",
        PatchFormat::HgExport => "hg_export",
        PatchFormat::PlainDiff => "plain_diff",
    }
}

fn parse_format(text: &str) -> Option<crate::patch::PatchFormat> {
    use crate::patch::PatchFormat;
    [
        PatchFormat::GitFormatPatch,
        PatchFormat::HgExport,
        PatchFormat::PlainDiff,
    ]
    .into_iter()
    .find(|f| format_name(*f) == text)
}
