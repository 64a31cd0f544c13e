//! The status page and request pages: server-rendered HTML (askama), readable without
//! JavaScript and on a phone, refreshing themselves.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Html;

use super::AppState;
use super::error::ApiError;
use crate::request::{Patch, Request, RequestId};
use crate::service::status::{Overview, overview};
use crate::store::CiRun;

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    instance: String,
    refresh: bool,
    o: Overview,
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
    events: Vec<EventLine>,
}

fn render<T: Template>(page: &T) -> Result<Html<String>, ApiError> {
    page.render()
        .map(Html)
        .map_err(|e| ApiError::Internal(format!("template: {e}")))
}

fn timestamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

pub(super) async fn status(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    let o = overview(&state.ctx).await?;
    render(&StatusPage {
        instance: state.ctx.instance.clone(),
        refresh: true,
        o,
    })
}

pub(super) async fn request(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(RequestId)
        .ok_or_else(|| ApiError::BadRequest("not a request id".to_owned()))?;
    let store = &state.ctx.store;
    let Some(r) = store.request(id).await? else {
        return Err(ApiError::NotFound(format!("there is no request {id}")));
    };
    let events = store
        .events(id)
        .await?
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
    render(&RequestPage {
        instance: state.ctx.instance.clone(),
        refresh: !r.stage.is_terminal(),
        patches: store.patches(id).await?,
        ci: store.ci_run_for(id).await?,
        r,
        events,
    })
}
