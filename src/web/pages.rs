//! The status page and request pages: server-rendered HTML (askama), readable without
//! JavaScript and on a phone, refreshing themselves.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::error::ApiError;
use super::session::{COOKIE_NAME, LIFETIME, Role, Session, same_token};
use super::state::AppState;
use crate::request::{Patch, Request, RequestId};
use crate::runtime::status::Overview;
use crate::store::{CiJob, CiRun};

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    instance: String,
    refresh: bool,
    o: Overview,
    operator: Option<Session>,
}

/// One row of a request's history, ready to show.
struct EventLine {
    when: String,
    what: String,
    actor: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "request.html")]
struct RequestPage {
    instance: String,
    refresh: bool,
    r: Request,
    patches: Vec<Patch>,
    ci: Option<CiRun>,
    jobs: Vec<JobLine>,
    events: Vec<EventLine>,
    /// The landing gate's candidates it was tested in, newest first.
    candidates: Vec<crate::store::Candidate>,
    /// Whose levels granted it.
    decisions: Vec<crate::permissions::Decision>,
    operator: Option<Session>,
}

/// One attempt of one CI job, as the request page shows it.
struct JobLine {
    name: String,
    attempt: i64,
    state: &'static str,
    result: String,
    duration: String,
    log_url: Option<String>,
}

impl JobLine {
    fn of(job: CiJob) -> JobLine {
        JobLine {
            state: job.state.as_str(),
            result: job
                .raw_result
                .clone()
                .or_else(|| job.result.map(|r| r.as_str().to_owned()))
                .unwrap_or_default(),
            duration: job
                .duration_ms
                .map(|d| format!("{:.1} s", d as f64 / 1000.0))
                .unwrap_or_default(),
            // Only web links: a CI's answer is not trusted to be one.
            log_url: job
                .log_url
                .filter(|u| u.starts_with("https://") || u.starts_with("http://")),
            name: job.name,
            attempt: job.attempt,
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    instance: String,
    refresh: bool,
    message: String,
    /// Where to go once signed in.
    next: String,
    /// Offer the Bugzilla sign-in.
    bugzilla: bool,
}

pub(super) fn render<T: Template>(page: &T) -> Result<Html<String>, ApiError> {
    page.render()
        .map(Html)
        .map_err(|e| ApiError::Internal(format!("template: {e}")))
}

fn timestamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

pub(super) async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Html<String>, ApiError> {
    let o = state.ctx.overview().await?;
    render(&StatusPage {
        instance: state.ctx.instance.clone(),
        refresh: true,
        o,
        operator: state
            .sessions
            .from_headers(&headers)
            .filter(|s| s.role == Role::Operator),
    })
}

pub(super) async fn request(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(RequestId)
        .ok_or_else(|| ApiError::BadRequest("not a request id".to_owned()))?;
    let store = &state.ctx.store;
    let Some(history) = store.request_with_history(id).await? else {
        return Err(ApiError::NotFound(format!("there is no request {id}")));
    };
    let events = history
        .events
        .into_iter()
        .map(|e| EventLine {
            when: timestamp(e.at),
            what: match (e.from_stage, e.to_stage) {
                (Some(from), Some(to)) if from != to => format!("{from} → {to}"),
                (_, Some(to)) => to.to_string(),
                _ => e.kind.clone(),
            },
            actor: e.actor,
            detail: e.detail,
        })
        .collect();
    let r = history.request;
    let ci = history.ci_run;
    render(&RequestPage {
        instance: state.ctx.instance.clone(),
        refresh: !r.stage.is_terminal(),
        patches: history.patches,
        jobs: history.ci_jobs.into_iter().map(JobLine::of).collect(),
        ci,
        candidates: store.gate_candidates_of(id).await?,
        decisions: store.decisions(id).await?,
        r,
        events,
        operator: state
            .sessions
            .from_headers(&headers)
            .filter(|s| s.role == Role::Operator),
    })
}

#[derive(Deserialize)]
pub(super) struct NextPage {
    #[serde(default)]
    next: Option<String>,
}

/// Where to go after signing in: a path on this site only (never `//host` or a URL).
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && p.len() <= 200
                && !p.chars().any(char::is_control) =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

pub(super) async fn login_form(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<NextPage>,
) -> Result<Html<String>, ApiError> {
    render(&LoginPage {
        instance: state.ctx.instance.clone(),
        refresh: false,
        message: String::new(),
        next: local_path(query.next.as_deref()),
        bugzilla: state.ctx.config.bugzilla.is_some(),
    })
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    next: Option<String>,
}

/// Signs a person in: with an operator-scope token, or as their Bugzilla account with an
/// API key that Bugzilla confirms (then forgotten: only the login is kept).
pub(super) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = local_path(form.next.as_deref());
    let refused = |status: StatusCode, message: String| {
        let page = LoginPage {
            instance: state.ctx.instance.clone(),
            refresh: false,
            message,
            next: next.clone(),
            bugzilla: state.ctx.config.bugzilla.is_some(),
        };
        match render(&page) {
            Ok(html) => (status, html).into_response(),
            Err(e) => e.into_response(),
        }
    };
    if let Some(key) = form.api_key.as_deref().filter(|k| !k.trim().is_empty()) {
        let Some(tracker) = state.bugzilla() else {
            return refused(
                StatusCode::NOT_FOUND,
                "Bugzilla is not configured on this Autoland".to_owned(),
            );
        };
        use crate::tracker::bugzilla::signin::{SignInError, identify};
        return match identify(&tracker.client, key, form.login.as_deref()).await {
            Ok(account) => {
                tracing::info!(user = %account.login, "signed in as a Bugzilla account");
                start_session(
                    &state,
                    &headers,
                    (&account.login, &account.real_name),
                    Role::Bugzilla,
                    &next,
                )
            }
            Err(e) => {
                tracing::info!(error = %e, "a Bugzilla sign-in was refused");
                let status = match e {
                    SignInError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::UNAUTHORIZED,
                };
                refused(status, e.to_string())
            }
        };
    }
    let entry = form
        .token
        .as_deref()
        .and_then(|t| super::auth::find_token(&state, t));
    match entry {
        Some(entry) if entry.scope == crate::config::Scope::Operator => {
            tracing::info!(user = %entry.user, "operator logged in");
            start_session(&state, &headers, (&entry.user, ""), Role::Operator, &next)
        }
        _ => refused(
            StatusCode::UNAUTHORIZED,
            "That is not an operator token: paste the secret of a token whose scope is \
             `operator` (see [[tokens]] in the configuration), or sign in with your Bugzilla \
             API key."
                .to_owned(),
        ),
    }
}

/// The session cookie's attributes: `Secure` when Autoland's public URL is HTTPS or the
/// browser reached it over HTTPS through a proxy that says so (`X-Forwarded-Proto:
/// https`), so the cookie never travels in clear after that.
fn cookie_attributes(state: &AppState, headers: &HeaderMap) -> &'static str {
    let https = state.ctx.config.public_url().starts_with("https://")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    if https {
        "HttpOnly; SameSite=Strict; Path=/; Secure"
    } else {
        "HttpOnly; SameSite=Strict; Path=/"
    }
}

fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    who: (&str, &str),
    role: Role,
    next: &str,
) -> Response {
    let id = state.sessions.create(who.0, who.1, role);
    let cookie = format!(
        "{COOKIE_NAME}={id}; {}; Max-Age={}",
        cookie_attributes(state, headers),
        LIFETIME.as_secs()
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(next)).into_response()
}

/// Signs out (the session ends on the server; the cookie is dropped).
pub(super) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ApiError> {
    let Some(session) = state.sessions.from_headers(&headers) else {
        return Ok(Redirect::to("/").into_response());
    };
    if !same_token(&session.csrf, &form.csrf) {
        return Err(ApiError::Forbidden(
            "the form is stale or forged (CSRF token mismatch)".to_owned(),
        ));
    }
    state.sessions.end(&headers);
    let cookie = format!(
        "{COOKIE_NAME}=; {}; Max-Age=0",
        cookie_attributes(&state, &headers)
    );
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response())
}

/// The pages' stylesheet (a file, so that the pages need no inline style).
pub(super) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("../../static/autoland.css"),
    )
        .into_response()
}

/// The bug page's script: says what a choice will do, refreshes the bug's requests.
pub(super) async fn bug_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("../../static/bug.js"),
    )
        .into_response()
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    csrf: String,
}

/// The retry button.
pub(super) async fn retry(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Redirect, ApiError> {
    let operator = form_operator(&state, &headers, &form.csrf)?;
    let id = super::api::parse_id(&id)?;
    super::api::retry_request(&state, &operator.user, id).await?;
    Ok(Redirect::to(&format!("/requests/{id}")))
}

/// Moves a gated request to the front of its gate's queue.
pub(super) async fn promote(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Redirect, ApiError> {
    let operator = form_operator(&state, &headers, &form.csrf)?;
    let id = super::api::parse_id(&id)?;
    super::api::promote_request(&state, &operator.user, id).await?;
    Ok(Redirect::to("/"))
}

/// The logged-in operator behind a form, after checking its CSRF token.
fn form_operator(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<crate::tracker::api::Caller, ApiError> {
    let Some(session) = state.sessions.from_headers(headers) else {
        return Err(ApiError::Unauthorized(
            "log in as an operator first".to_owned(),
        ));
    };
    if session.role != Role::Operator {
        return Err(ApiError::Forbidden(format!(
            "{} is signed in with a Bugzilla account, which may land bugs but not operate \
             Autoland; log in with an operator token",
            session.user
        )));
    }
    if !same_token(&session.csrf, csrf) {
        return Err(ApiError::Forbidden(
            "the form is stale or forged (CSRF token mismatch)".to_owned(),
        ));
    }
    Ok(crate::tracker::api::Caller {
        token: "web session".to_owned(),
        user: session.user,
        service: crate::config::Service::No,
        scope: crate::config::Scope::Operator,
    })
}

/// The cancel button.
pub(super) async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Redirect, ApiError> {
    let caller = form_operator(&state, &headers, &form.csrf)?;
    let id = super::api::parse_id(&id)?;
    let _answer = super::api::cancel_request(&state, &caller, id).await?;
    Ok(Redirect::to(&format!("/requests/{id}")))
}

/// Close and reopen buttons.
pub(super) async fn repository(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Redirect, ApiError> {
    let caller = form_operator(&state, &headers, &form.csrf)?;
    let closed = match action.as_str() {
        "close" => true,
        "reopen" => false,
        _ => return Err(ApiError::NotFound(format!("no action `{action}`"))),
    };
    let _answer = super::api::set_closed(&state, &caller, &name, closed, None).await?;
    Ok(Redirect::to("/"))
}

/// Pause, resume and kick buttons.
pub(super) async fn module(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Redirect, ApiError> {
    let caller = form_operator(&state, &headers, &form.csrf)?;
    if !matches!(action.as_str(), "pause" | "resume" | "kick") {
        return Err(ApiError::NotFound(format!("no action `{action}`")));
    }
    let _answer = super::api::control_module(&state, &caller, &name, &action).await?;
    Ok(Redirect::to("/"))
}
