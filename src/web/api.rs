//! JSON API handlers.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::ApiError;
use super::state::AppState;
use crate::request::{Event, FRESH_TRY, NewRequest, Patch, Request, RequestId, Stage, Transition};
use crate::runtime::status::Verdict;
use crate::runtime::{Work, metrics};
use crate::store::{Effects, ListFilter, RequestHistory, StoreError};
use crate::tracker::api::{Caller, SubmitBug, SubmitRequest, validate, validate_bug};

/// A request with everything known about it.
#[derive(Debug, Serialize, Deserialize)]
pub struct RequestDetail {
    /// The request.
    pub request: Request,
    /// Its patches.
    pub patches: Vec<Patch>,
    /// Its history.
    pub events: Vec<Event>,
    /// Its latest CI run, as JSON.
    pub ci_run: Option<Value>,
    /// Every attempt of every job of that run.
    #[serde(default)]
    pub ci_jobs: Vec<Value>,
    /// Reports to its bug (comments, whiteboard edits) and whether they were delivered.
    pub reports: Vec<Value>,
    /// On a gated destination: the gate candidates it was tested in, newest first.
    #[serde(default)]
    pub candidates: Vec<Value>,
    /// Whose levels granted it: per repository and role, the identity, the level held,
    /// its source (static table, LDAP group) and when it was looked up.
    #[serde(default)]
    pub permissions: Vec<Value>,
}

pub(super) async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; see the README for the API".to_owned())
}

fn json_error(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let text = rejection.body_text();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(format!(
            "the request body is too large ({text}); limits.max_body_bytes sets the limit"
        ))
    } else {
        ApiError::BadRequest(format!("the body is not a valid request: {text}"))
    }
}

pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<SubmitRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(submit) = body.map_err(json_error)?;
    let new =
        validate(&state.ctx.config, &submit, &caller).map_err(|e| ApiError::BadRequest(e.0))?;
    let actor = format!("api:{} ({})", caller.user, caller.token);
    let id = state.ctx.store.insert_request(&new, &actor, &[]).await?;
    if submit.fresh_try {
        ask_fresh_try(&state, id, &actor).await?;
    }
    state.ctx.wake(Work::Pushers).await;
    tracing::info!(request = %id, requester = %new.requester, "request received through the API");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "stage": Stage::Received, "url": format!("/api/requests/{id}") })),
    ))
}

pub(super) async fn create_for_bug(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<SubmitBug>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(submit) = body.map_err(json_error)?;
    let actor = format!("api:{} ({})", caller.user, caller.token);
    let id = submit_bug(&state, &caller, &submit, &actor).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "stage": Stage::Received, "url": format!("/api/requests/{id}") })),
    ))
}

/// A landing request for a bug, from the API, the Bugzilla extension or the bug page: the
/// same validation as a whiteboard tag, refused while the bug has a request in progress.
pub(super) async fn submit_bug(
    state: &AppState,
    caller: &Caller,
    submit: &SubmitBug,
    actor: &str,
) -> Result<RequestId, ApiError> {
    let new =
        validate_bug(&state.ctx.config, submit, caller).map_err(|e| ApiError::BadRequest(e.0))?;
    store_bug_request(state, &new, actor).await
}

/// Stores a validated bug request, refused while its bug has one in progress.
pub(super) async fn store_bug_request(
    state: &AppState,
    new: &NewRequest,
    actor: &str,
) -> Result<RequestId, ApiError> {
    let bug = new.bug.unwrap_or_default();
    if state.ctx.store.bug_is_busy(&new.source, bug).await? {
        return Err(ApiError::Conflict(format!(
            "bug {bug} already has a landing request in progress"
        )));
    }
    let id = state.ctx.store.insert_request(new, actor, &[]).await?;
    state.ctx.wake(Work::Pushers).await;
    tracing::info!(request = %id, bug, requester = %new.requester, "bug request received");
    Ok(id)
}

pub(super) async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RequestDetail>, ApiError> {
    let id = parse_id(&id)?;
    let store = &state.ctx.store;
    let Some(history) = store.request_with_history(id).await? else {
        return Err(ApiError::NotFound(format!("there is no request {id}")));
    };
    let RequestHistory {
        request,
        events,
        patches,
        ci_run,
        ci_jobs,
    } = history;
    Ok(Json(RequestDetail {
        request,
        patches,
        events,
        ci_run: ci_run.and_then(|r| serde_json::to_value(r).ok()),
        ci_jobs: ci_jobs
            .into_iter()
            .filter_map(|j| serde_json::to_value(j).ok())
            .collect(),
        reports: store
            .reports_of(id)
            .await?
            .into_iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect(),
        candidates: store
            .gate_candidates_of(id)
            .await?
            .into_iter()
            .filter_map(|c| serde_json::to_value(c).ok())
            .collect(),
        permissions: store
            .decisions(id)
            .await?
            .into_iter()
            .filter_map(|d| serde_json::to_value(d).ok())
            .collect(),
    }))
}

/// The log of a request's latest CI run, as plain text (the last 5 MiB of it).
pub(super) async fn ci_log(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String), ApiError> {
    let id = parse_id(&id)?;
    let run = state.ctx.store.ci_run_for(id).await?;
    let Some(path) = run.and_then(|r| r.log_path).filter(|p| !p.is_empty()) else {
        return Err(ApiError::NotFound(format!(
            "request {id} has no CI log (yet)"
        )));
    };
    log_tail(path, &format!("request {id}")).await
}

/// The log of one CI run (a try run, a gate candidate's, a post-landing run's).
pub(super) async fn run_log(
    State(state): State<AppState>,
    Path(run): Path<String>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String), ApiError> {
    let run: i64 = run
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::BadRequest(format!("`{run}` is not a CI run number")))?;
    let found = state.ctx.store.ci_run(run).await?;
    let Some(path) = found.and_then(|r| r.log_path).filter(|p| !p.is_empty()) else {
        return Err(ApiError::NotFound(format!("CI run {run} has no log (yet)")));
    };
    log_tail(path, &format!("CI run {run}")).await
}

async fn log_tail(
    path: String,
    what: &str,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String), ApiError> {
    // Only the end is read, off the async runtime: a log can be gigabytes.
    let tail = tokio::task::spawn_blocking(move || read_tail(&path, 5 * 1024 * 1024))
        .await
        .map_err(|e| ApiError::Internal(format!("reading a CI log: {e}")))?
        .map_err(|e| ApiError::NotFound(format!("the CI log of {what} is gone: {e}")))?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        String::from_utf8_lossy(&tail).into_owned(),
    ))
}

/// The last `max` bytes of the file at `path`.
fn read_tail(path: &str, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(max)))?;
    let mut tail = Vec::new();
    file.take(max).read_to_end(&mut tail)?;
    Ok(tail)
}

/// Query of `GET /api/requests`.
#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    all: bool,
    #[serde(default)]
    limit: Option<i64>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let requests = state
        .ctx
        .store
        .list_requests(
            if query.all {
                ListFilter::All
            } else {
                ListFilter::Open
            },
            limit,
        )
        .await?;
    Ok(Json(json!({ "requests": requests })))
}

pub(super) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    cancel_request(&state, &caller, id).await
}

/// Cancels a request: by its requester, a service token or an operator.
pub(super) async fn cancel_request(
    state: &AppState,
    caller: &Caller,
    id: RequestId,
) -> Result<Json<Value>, ApiError> {
    let store = &state.ctx.store;
    // The stage can change under us (a pusher moving it on): read, then compare-and-set.
    for _ in 0..5 {
        let Some(request) = store.request(id).await? else {
            return Err(ApiError::NotFound(format!("there is no request {id}")));
        };
        let for_bug = request.source != crate::request::API_SOURCE;
        if request.requester != caller.user
            && !caller.service.may_act_for_others(for_bug)
            && caller.scope < crate::config::Scope::Operator
        {
            return Err(ApiError::Forbidden(format!(
                "request {id} belongs to {}; only they (or a service or operator token) may cancel it",
                request.requester
            )));
        }
        if request.stage.is_terminal() {
            return Err(ApiError::Conflict(format!(
                "request {id} is already {}; there is nothing to cancel",
                request.stage
            )));
        }
        if request.stage == Stage::Landing {
            return Err(ApiError::Conflict(format!(
                "request {id} passed try and is landing; it can no longer be cancelled"
            )));
        }
        let detail = format!("cancelled by {} in stage {}", caller.user, request.stage);

        match state
            .ctx
            .transition(
                &request,
                &Transition::Cancel,
                &format!("api:{}", caller.user),
                &detail,
                Effects::default(),
            )
            .await
        {
            Ok(stage) => {
                store
                    .record_action(&caller.user, "cancel", &format!("request {id}"), &detail)
                    .await?;
                return Ok(Json(json!({ "id": id, "stage": stage })));
            }
            Err(StoreError::StageChanged { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict(format!(
        "request {id} kept changing stage; try again"
    )))
}

pub(super) async fn status(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let overview = state.ctx.overview().await?;
    serde_json::to_value(overview)
        .map(Json)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Options of a retry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RetryOptions {
    /// Test on try again even if the same patches on the same base passed recently.
    #[serde(default)]
    fresh_try: bool,
}

pub(super) async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Option<Json<RetryOptions>>,
) -> Result<Json<Value>, ApiError> {
    caller.require(crate::config::Scope::Operator)?;
    let id = parse_id(&id)?;
    let options = body.map(|Json(o)| o).unwrap_or_default();
    if options.fresh_try && state.ctx.store.request(id).await?.is_some() {
        ask_fresh_try(&state, id, &format!("operator:{}", caller.user)).await?;
    }
    let stage = retry_request(&state, &caller.user, id).await?;
    Ok(Json(
        json!({ "id": id, "stage": stage, "fresh_try": options.fresh_try }),
    ))
}

/// `POST /api/requests/{id}/promote`: an operator moves a request waiting in a landing
/// gate to the front of its queue.
pub(super) async fn promote(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(crate::config::Scope::Operator)?;
    let id = parse_id(&id)?;
    let priority = promote_request(&state, &caller.user, id).await?;
    Ok(Json(json!({ "id": id, "priority": priority })))
}

/// Moves a gated request to the front of its gate (the highest priority in any gate);
/// `user` is recorded.
pub(super) async fn promote_request(
    state: &AppState,
    user: &str,
    id: RequestId,
) -> Result<i64, ApiError> {
    let store = &state.ctx.store;
    let Some(request) = store.request(id).await? else {
        return Err(ApiError::NotFound(format!("there is no request {id}")));
    };
    if request.stage != Stage::Gated {
        return Err(ApiError::Conflict(format!(
            "request {id} is {}; only a request waiting in a landing gate can be moved to \
             the front",
            request.stage
        )));
    }
    let priority = store.gate_promote(id).await?;
    let detail = format!("moved to the front of the landing gate by {user}");
    store
        .record_action(user, "promote", &format!("request {id}"), &detail)
        .await?;
    store
        .note(id, "gate_promoted", &format!("operator:{user}"), &detail)
        .await?;
    state.ctx.wake(crate::runtime::Work::Gate).await;
    Ok(priority)
}

/// Records that `id`'s next try push must be tested even if the same patches passed.
async fn ask_fresh_try(state: &AppState, id: RequestId, actor: &str) -> Result<(), ApiError> {
    state
        .ctx
        .store
        .note(
            id,
            FRESH_TRY,
            actor,
            "a fresh try run was asked for: no reuse",
        )
        .await?;
    Ok(())
}

/// `POST /api/ci/results`: a CI's signed job results (see `ci::webhook`).
pub(super) async fn ci_results(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    use crate::ci::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookError, deliver};
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match deliver(
        &state.ctx,
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
    )
    .await
    {
        Ok(accepted) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::to_value(accepted).unwrap_or(Value::Null)),
        )),
        Err(WebhookError::BadRequest(m)) => Err(ApiError::BadRequest(m)),
        Err(WebhookError::Unauthorized(m)) => Err(ApiError::Unauthorized(m)),
        Err(WebhookError::NotFound(m)) => Err(ApiError::NotFound(m)),
        Err(WebhookError::Conflict(m)) => Err(ApiError::Conflict(m)),
        Err(WebhookError::Store(e)) => Err(e.into()),
    }
}

/// Retries a failed request from the stage it failed in; `user` is recorded.
pub(super) async fn retry_request(
    state: &AppState,
    user: &str,
    id: RequestId,
) -> Result<Stage, ApiError> {
    let store = &state.ctx.store;
    let Some(request) = store.request(id).await? else {
        return Err(ApiError::NotFound(format!("there is no request {id}")));
    };
    if request.stage != Stage::Failed {
        return Err(ApiError::Conflict(format!(
            "request {id} is {}; only failed requests can be retried",
            request.stage
        )));
    }
    let failed_in = store.failed_from(id).await?.unwrap_or(Stage::Received);
    // A try failure is retried by pushing again (recognised if already there) and running
    // CI again; a refused request starts over.
    let to = match failed_in {
        Stage::AwaitingTry => Stage::PushingTry,
        Stage::Received
        | Stage::Gathering
        | Stage::Authorizing
        | Stage::Applying
        | Stage::PushingTry
        | Stage::Landing => failed_in,
        // Ejected by the gate, or its landing failed: checked again, then queued again.
        Stage::Gated | Stage::GateLanding => Stage::Authorizing,
        Stage::Landed | Stage::BackedOut | Stage::Failed | Stage::Cancelled => Stage::Received,
    };
    let detail = format!("retried by {user} from stage {to}");
    state
        .ctx
        .store
        .record_action(user, "retry", &format!("request {id}"), &detail)
        .await?;
    state
        .ctx
        .transition(
            &request,
            &Transition::Retry { to },
            &format!("operator:{user}"),
            &detail,
            Effects::default(),
        )
        .await
        .map_err(|e| match e {
            StoreError::StageChanged { .. } => {
                ApiError::Conflict(format!("request {id} changed; try again"))
            }
            other => other.into(),
        })
}

/// Body of close/reopen.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RepositoryChange {
    #[serde(default)]
    reason: Option<String>,
}

pub(super) async fn set_closed(
    state: &AppState,
    caller: &Caller,
    name: &str,
    closed: bool,
    body: Option<Json<RepositoryChange>>,
) -> Result<Json<Value>, ApiError> {
    caller.require(crate::config::Scope::Operator)?;
    if state.ctx.config.repo(name).is_none() {
        return Err(ApiError::NotFound(format!(
            "no repository `{name}` is configured"
        )));
    }
    let reason = body.and_then(|Json(b)| b.reason).unwrap_or_else(|| {
        if closed {
            "closed by an operator"
        } else {
            "reopened"
        }
        .to_owned()
    });
    if reason.len() > 500 || reason.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "reason must be one line of at most 500 characters".to_owned(),
        ));
    }
    state
        .ctx
        .store
        .set_repository_closed(name, closed, &reason, &caller.user)
        .await?;
    tracing::info!(repository = %name, closed, by = %caller.user, %reason, "repository state changed");
    if !closed {
        state.ctx.wake(Work::Pushers).await;
        state.ctx.wake(Work::Gate).await;
    }
    Ok(Json(
        json!({ "repository": name, "closed": closed, "reason": reason, "by": caller.user }),
    ))
}

pub(super) async fn close_repository(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Option<Json<RepositoryChange>>,
) -> Result<Json<Value>, ApiError> {
    set_closed(&state, &caller, &name, true, body).await
}

pub(super) async fn reopen_repository(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Option<Json<RepositoryChange>>,
) -> Result<Json<Value>, ApiError> {
    set_closed(&state, &caller, &name, false, body).await
}

/// Pause, resume or kick (restart) a module or a group of modules (`pusher`).
pub(super) async fn control_module(
    state: &AppState,
    caller: &Caller,
    name: &str,
    action: &str,
) -> Result<Json<Value>, ApiError> {
    caller.require(crate::config::Scope::Operator)?;
    let store = &state.ctx.store;
    let known: Vec<String> = store
        .heartbeats()
        .await?
        .into_iter()
        .map(|b| b.module)
        .collect();
    let covered = known.iter().any(|m| {
        m == name
            || m.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('-'))
    });
    if !covered {
        let mut names = known.clone();
        names.sort();
        names.dedup();
        return Err(ApiError::NotFound(format!(
            "no module `{name}`; modules: {}",
            names.join(", ")
        )));
    }
    match action {
        "pause" => store.set_module_paused(name, true, &caller.user).await?,
        "resume" => store.set_module_paused(name, false, &caller.user).await?,
        _ => store.kick_module(name, &caller.user).await?,
    }
    tracing::info!(module = %name, action, by = %caller.user, "module control");
    store.record_action(&caller.user, action, name, "").await?;
    Ok(Json(
        json!({ "module": name, "action": action, "by": caller.user }),
    ))
}

pub(super) async fn pause_module(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    control_module(&state, &caller, &name, "pause").await
}

pub(super) async fn resume_module(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    control_module(&state, &caller, &name, "resume").await
}

pub(super) async fn kick_module(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    control_module(&state, &caller, &name, "kick").await
}

/// Ready when the database answers and no module is down.
pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    match state.ctx.overview().await {
        Ok(o) if o.verdict != Verdict::Down => (StatusCode::OK, format!("ready: {}\n", o.reason)),
        Ok(o) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", o.reason),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the database does not answer\n".to_owned(),
            )
        }
    }
}

/// Prometheus exposition.
pub(super) async fn metrics(
    State(state): State<AppState>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String), ApiError> {
    let text = metrics::render(&state.ctx.overview().await?);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    ))
}

pub(super) fn parse_id(text: &str) -> Result<RequestId, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(RequestId)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "`{}` is not a request id",
                text.chars().take(40).collect::<String>()
            ))
        })
}
