//! The "land this bug" page (`/bugs/{id}`) and its JSON (`/api/bugs/{id}`, also read by
//! the Bugzilla extension): the bug's current patches with their flags, the destinations
//! with the levels they need and whether the signed-in person holds them, and the bug's
//! requests with their live stage. Landing from the page makes the same request as a
//! whiteboard tag or `POST /api/bugzilla/requests`, with the signed-in person as requester.

use std::collections::BTreeSet;

use askama::Template;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::pages::render;
use super::session::{Session, same_token};
use super::state::AppState;
use crate::config::{Config, RepoConfig, Scope};
use crate::permissions::{self, PermissionSource, Voucher};
use crate::request::{Patch, Request, RequestId};
use crate::tracker::api::{Caller, SubmitBug, validate_bug};
use crate::tracker::bugzilla::client::BugzillaError;
use crate::tracker::bugzilla::page::{self, BugPage, PatchChoice};
use crate::tracker::bugzilla::{Bugzilla, SOURCE};

/// One patch row.
struct PatchRow {
    id: i64,
    description: String,
    file_name: String,
    creator: String,
    flags: Vec<String>,
    landed: bool,
    checked: bool,
}

/// One destination row.
struct RepoRow {
    name: String,
    is_try: bool,
    level: String,
    tested_on: String,
    /// `have`, `lack`, or empty when nobody is signed in.
    you: &'static str,
    closed: bool,
    checked: bool,
}

/// One of the bug's requests.
struct RequestRow {
    id: i64,
    stage: String,
    outcome: String,
    requester: String,
    destinations: String,
}

/// A message above the form: what happened when the person pressed Land.
struct Notice {
    ok: bool,
    lines: Vec<String>,
}

#[derive(Template)]
#[template(path = "bug.html")]
struct BugPageView {
    instance: String,
    refresh: bool,
    bug: i64,
    summary: String,
    restricted: String,
    unavailable: String,
    viewer: Option<Session>,
    patches: Vec<PatchRow>,
    repos: Vec<RepoRow>,
    requests: Vec<RequestRow>,
    notice: Option<Notice>,
    try_syntax: String,
    /// What the page's script needs to say what a choice will do (JSON, escaped by the
    /// template as an attribute value).
    plan: String,
}

fn parse_bug(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::BadRequest(format!("`{}` is not a bug number", short(text))))
}

fn short(text: &str) -> String {
    text.chars().take(40).collect()
}

fn bugzilla(state: &AppState) -> Result<std::sync::Arc<Bugzilla>, ApiError> {
    state
        .bugzilla()
        .ok_or_else(|| ApiError::NotFound("Bugzilla is not configured on this Autoland".into()))
}

/// What the person picked (or the defaults: every patch, the try repository).
#[derive(Default)]
struct Choice {
    attachments: Vec<i64>,
    destinations: Vec<String>,
    try_syntax: String,
}

/// `GET /bugs/{id}`.
pub(super) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(bug): Path<String>,
) -> Result<Response, ApiError> {
    let bug = parse_bug(&bug)?;
    let viewer = state.sessions.from_headers(&headers);
    let tracker = bugzilla(&state)?;
    let read = state.bug_pages.read(&tracker.client, bug).await;
    let view = build(&state, bug, &read, viewer, None, None).await?;
    Ok(render(&view)?.into_response())
}

/// The page for `bug` as `read` from Bugzilla (or why it could not be).
async fn build(
    state: &AppState,
    bug: i64,
    read: &Result<BugPage, BugzillaError>,
    viewer: Option<Session>,
    choice: Option<&Choice>,
    notice: Option<Notice>,
) -> Result<BugPageView, ApiError> {
    let config = &state.ctx.config;
    let (read, unavailable) = match read {
        Ok(read) => (read.clone(), String::new()),
        Err(e) => (BugPage::default(), e.to_string()),
    };
    let requests = state.ctx.store.requests_for_bug(SOURCE, bug).await?;
    let landed = landed_attachments(state, &requests).await?;
    let closed = closed_repositories(state).await?;
    let default_try = config
        .repositories
        .iter()
        .find(|r| r.is_try)
        .map(|r| r.name.clone());
    let viewer_user = viewer.as_ref().map(|v| v.user.clone());
    let everyone: Vec<Patch> = read.patches.iter().map(|p| p.as_patch(0)).collect();
    let mut people = permissions::people(viewer_user.as_deref().unwrap_or_default(), &everyone);
    people.retain(|p| !p.is_empty());
    let snapshot = match state.ctx.permissions.snapshot(people.iter().copied()).await {
        Ok(snapshot) => snapshot,
        Err(e) => state
            .ctx
            .permissions
            .offline_snapshot(people.iter().copied(), &e.to_string()),
    };
    let source: &dyn PermissionSource = &snapshot;
    let picked_patch = |id: i64| match choice {
        Some(c) => c.attachments.contains(&id),
        None => !landed.contains(&id),
    };
    let picked_repo = |name: &str| match choice {
        Some(c) => c.destinations.iter().any(|d| d == name),
        None => default_try.as_deref() == Some(name),
    };
    let repos: Vec<RepoRow> = config
        .repositories
        .iter()
        .map(|r| RepoRow {
            name: r.name.clone(),
            is_try: r.is_try,
            level: r.level.clone(),
            tested_on: tested_on(config, r).unwrap_or_default(),
            you: match viewer_user.as_deref() {
                Some(u) if permissions::holds(source, u, &r.level) => "have",
                Some(_) => "lack",
                None => "",
            },
            closed: closed.contains(&r.name),
            checked: picked_repo(&r.name),
        })
        .collect();
    let plan = plan_json(config, source, viewer_user.as_deref(), &read.patches);
    Ok(BugPageView {
        instance: state.ctx.instance.clone(),
        refresh: false,
        bug,
        summary: read.summary,
        restricted: read.restricted_to.join(", "),
        unavailable,
        patches: read
            .patches
            .iter()
            .map(|p| PatchRow {
                id: p.id,
                description: p.description.clone(),
                file_name: p.file_name.clone(),
                creator: p.creator.clone(),
                flags: p
                    .flags
                    .iter()
                    .map(|f| {
                        if f.setter.is_empty() {
                            format!("{}{}", f.name, f.status)
                        } else {
                            format!("{}{} by {}", f.name, f.status, f.setter)
                        }
                    })
                    .collect(),
                landed: landed.contains(&p.id),
                checked: picked_patch(p.id),
            })
            .collect(),
        repos,
        requests: requests.iter().map(request_row).collect(),
        notice,
        try_syntax: choice.map(|c| c.try_syntax.clone()).unwrap_or_default(),
        viewer,
        plan,
    })
}

fn request_row(r: &Request) -> RequestRow {
    RequestRow {
        id: r.id.0,
        stage: r.stage.to_string(),
        outcome: r.failure.map(|f| f.to_string()).unwrap_or_default(),
        requester: r.requester.clone(),
        destinations: std::iter::once(r.try_repo.clone())
            .chain(r.destinations.iter().map(|d| d.repo.clone()))
            .collect::<Vec<_>>()
            .join(" → "),
    }
}

/// The try repository a final repository is tested on (none for a try repository).
fn tested_on(config: &Config, repo: &RepoConfig) -> Option<String> {
    if repo.is_try {
        return None;
    }
    config.try_repo_for(repo).map(|t| t.name.clone())
}

/// Who makes a patch acceptable for a repository, in the permission rule's own terms,
/// for the page's summary.
fn vouch(source: &dyn PermissionSource, patch: &Patch, level: &str) -> Option<String> {
    permissions::voucher(source, patch, level).map(|v| match v {
        Voucher::Author(author) => format!("its author {author}"),
        Voucher::Reviewer(r) => format!("{} ({}+)", r.who, r.kind.as_str()),
    })
}

/// What the page's script needs: every repository (try or not, level, where it is
/// tested, whether the viewer holds its level) and, per patch and repository, who
/// vouches for it.
fn plan_json(
    config: &Config,
    source: &dyn PermissionSource,
    viewer: Option<&str>,
    patches: &[PatchChoice],
) -> String {
    let repos: serde_json::Map<String, Value> = config
        .repositories
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                json!({
                    "try": r.is_try,
                    "level": r.level,
                    "tested_on": tested_on(config, r),
                    "viewer_holds": viewer.map(|v| permissions::holds(source, v, &r.level)),
                }),
            )
        })
        .collect();
    let patches: serde_json::Map<String, Value> = patches
        .iter()
        .map(|p| {
            let patch = p.as_patch(0);
            let vouches: serde_json::Map<String, Value> = config
                .repositories
                .iter()
                .map(|r| (r.name.clone(), json!(vouch(source, &patch, &r.level))))
                .collect();
            (
                p.id.to_string(),
                json!({ "creator": p.creator, "vouch": vouches }),
            )
        })
        .collect();
    json!({ "viewer": viewer, "repos": repos, "patches": patches }).to_string()
}

/// The names of the repositories operators closed.
async fn closed_repositories(state: &AppState) -> Result<BTreeSet<String>, ApiError> {
    Ok(state
        .ctx
        .store
        .closed_repositories()
        .await?
        .into_iter()
        .map(|c| c.repo)
        .collect())
}

/// The attachments of the bug's landed requests.
async fn landed_attachments(
    state: &AppState,
    requests: &[Request],
) -> Result<BTreeSet<i64>, ApiError> {
    let mut landed = BTreeSet::new();
    for r in requests
        .iter()
        .filter(|r| r.stage == crate::request::Stage::Landed)
    {
        landed.extend(attachments_of(state, r.id).await?);
    }
    Ok(landed)
}

/// The attachments a request named, or (for "the current ones") those it gathered.
async fn attachments_of(state: &AppState, id: RequestId) -> Result<Vec<i64>, ApiError> {
    let named = state.ctx.store.requested_attachments(id).await?;
    if !named.is_empty() {
        return Ok(named);
    }
    Ok(state
        .ctx
        .store
        .patches(id)
        .await?
        .iter()
        .filter_map(|p| page::attachment_of(&p.name))
        .collect())
}

/// `GET /api/bugs/{id}`: the bug's requests and the destinations, for the page's live
/// view and the Bugzilla extension. It reads only Autoland's own records (no call to
/// Bugzilla), so it shows nothing the public request list does not.
pub(super) async fn api(
    State(state): State<AppState>,
    Path(bug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let bug = parse_bug(&bug)?;
    let config = &state.ctx.config;
    let requests = state.ctx.store.requests_for_bug(SOURCE, bug).await?;
    let closed = closed_repositories(&state).await?;
    let mut rows = Vec::with_capacity(requests.len());
    let mut landed = BTreeSet::new();
    for r in &requests {
        let attachments = attachments_of(&state, r.id).await?;
        if r.stage == crate::request::Stage::Landed {
            landed.extend(attachments.iter().copied());
        }
        rows.push(json!({
            "id": r.id,
            "stage": r.stage,
            "failure": r.failure,
            "failure_detail": r.failure_detail,
            "requester": r.requester,
            "try_repo": r.try_repo,
            "destinations": r.destinations.iter().map(|d| d.repo.clone()).collect::<Vec<_>>(),
            "attachments": attachments,
            "created_at": r.created_at,
            "updated_at": r.updated_at,
            "url": format!("/requests/{}", r.id),
        }));
    }
    let destinations: Vec<Value> = config
        .repositories
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "try": r.is_try,
                "level": r.level,
                "tested_on": tested_on(config, r),
                "closed": closed.contains(&r.name),
            })
        })
        .collect();
    Ok(Json(json!({
        "bug": bug,
        "destinations": destinations,
        "requests": rows,
        "landed_attachments": landed,
        "page": format!("/bugs/{bug}"),
    })))
}

/// The Land button's form, as sent (`attachment` and `destination` repeat).
fn parse_form(body: &[u8]) -> Result<(String, Choice), String> {
    let mut csrf = String::new();
    let mut choice = Choice::default();
    for (key, value) in url::form_urlencoded::parse(body) {
        match key.as_ref() {
            "csrf" => csrf = value.into_owned(),
            "attachment" => choice.attachments.push(
                value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("`{}` is not an attachment id", short(&value)))?,
            ),
            "destination" => choice.destinations.push(value.into_owned()),
            "try_syntax" => choice.try_syntax = value.trim().to_owned(),
            _ => {}
        }
        if choice.attachments.len() > 50 || choice.destinations.len() > 50 {
            return Err("too many attachments or destinations".to_owned());
        }
    }
    Ok((csrf, choice))
}

/// `POST /bugs/{id}/land`: the Land button. Refused with the reason on the page when the
/// person is not signed in, the form is forged or stale, the choice is invalid, or the
/// permission rule would refuse it (the same rule the request meets again after its
/// patches are fetched).
pub(super) async fn land(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(bug): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let bug = parse_bug(&bug)?;
    let Some(session) = state.sessions.from_headers(&headers) else {
        return Err(ApiError::Unauthorized(format!(
            "sign in first: /login?next=/bugs/{bug}"
        )));
    };
    let (csrf, choice) = parse_form(&body).map_err(ApiError::BadRequest)?;
    if !same_token(&session.csrf, &csrf) {
        return Err(ApiError::Forbidden(
            "the form is stale or forged (CSRF token mismatch): reload the page".to_owned(),
        ));
    }
    // A fresh read (not the page cache): what lands must be what the bug has now. The
    // page shown on a refusal is made from the same read.
    let tracker = bugzilla(&state)?;
    let read = page::read(&tracker.client, bug).await;
    match try_land(&state, bug, &read, &session, &choice).await {
        Ok(id) => {
            tracing::info!(request = %id, bug, user = %session.user, "landing asked from the bug page");
            Ok(Redirect::to(&format!("/bugs/{bug}")).into_response())
        }
        Err((status, lines)) => {
            let notice = Notice { ok: false, lines };
            let view = build(
                &state,
                bug,
                &read,
                Some(session),
                Some(&choice),
                Some(notice),
            )
            .await?;
            Ok((status, render(&view)?).into_response())
        }
    }
}

async fn try_land(
    state: &AppState,
    bug: i64,
    read: &Result<BugPage, BugzillaError>,
    session: &Session,
    choice: &Choice,
) -> Result<RequestId, (StatusCode, Vec<String>)> {
    let refuse = |status: StatusCode, line: String| (status, vec![line]);
    let read = read.as_ref().map_err(|e| {
        refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Autoland could not read bug {bug} from Bugzilla ({e}); try again in a moment"),
        )
    })?;
    if !read.restricted_to.is_empty() {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!(
                "bug {bug} is restricted ({}): land it from Bugzilla (the Autoland section of the bug) or with its whiteboard tag",
                read.restricted_to.join(", ")
            ),
        ));
    }
    if choice.attachments.is_empty() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "pick at least one patch".to_owned(),
        ));
    }
    let mut picked = Vec::new();
    for id in &choice.attachments {
        match read.patches.iter().find(|p| p.id == *id) {
            Some(p) => picked.push(p),
            None => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "attachment {id} is not a current patch of bug {bug} (obsolete, private, or not a patch): reload the page"
                    ),
                ));
            }
        }
    }
    let submit = SubmitBug {
        bug,
        attachments: choice.attachments.clone(),
        destinations: choice.destinations.clone(),
        try_syntax: Some(choice.try_syntax.clone()).filter(|s| !s.is_empty()),
        requester: None,
    };
    let caller = Caller {
        token: "bug page".to_owned(),
        user: session.user.clone(),
        service: crate::config::Service::No,
        scope: Scope::Submit,
    };
    let config = &state.ctx.config;
    // The same validation as any bug request; then the permission rule, before storing.
    let new =
        validate_bug(config, &submit, &caller).map_err(|e| refuse(StatusCode::BAD_REQUEST, e.0))?;
    let repos: Vec<_> = std::iter::once(&new.try_repo)
        .chain(&new.destinations)
        .filter_map(|name| config.repo(name))
        .collect();
    let patches: Vec<_> = picked
        .iter()
        .zip(1..)
        .map(|(p, position)| p.as_patch(position))
        .collect();
    // An unreachable directory is no refusal: the request is stored and waits for it.
    let snapshot = state
        .ctx
        .permissions
        .snapshot(permissions::people(&session.user, &patches))
        .await;
    if let Ok(snapshot) = snapshot
        && let Err(denial) = permissions::check(&snapshot, &session.user, &patches, &repos, false)
    {
        let mut lines = vec!["Autoland refuses this landing:".to_owned()];
        lines.extend(denial.problems);
        return Err((StatusCode::FORBIDDEN, lines));
    }
    let actor = format!("web:{} (bug page)", session.user);
    super::api::store_bug_request(state, &new, &actor)
        .await
        .map_err(|e| (e.status(), vec![e.message()]))
}
