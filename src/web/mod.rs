//! The web server: Autoland's JSON API (intake, queue, history, cancel) and health.

mod api;
mod auth;
mod bugs;
pub mod error;
mod limits;
mod pages;
pub mod session;
mod state;

pub use state::AppState;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt as _;

use crate::runtime::Context;

/// Every route of the service.
pub fn router(ctx: Arc<Context>) -> Router {
    let limit = ctx.config.limits.max_body_bytes;
    let state = AppState {
        tokens: Arc::new(ctx.config.token_entries()),
        sessions: Arc::new(session::Sessions::default()),
        bug_pages: Arc::default(),
        limiter: Arc::default(),
        ctx,
    };
    Router::new()
        .route("/", get(pages::status))
        .route("/requests/{id}", get(pages::request))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/bugs/{id}", get(bugs::show))
        .route("/bugs/{id}/land", post(bugs::land))
        .route("/static/autoland.css", get(pages::stylesheet))
        .route("/static/bug.js", get(pages::bug_script))
        .route("/ops/requests/{id}/retry", post(pages::retry))
        .route("/ops/requests/{id}/cancel", post(pages::cancel))
        .route("/ops/requests/{id}/promote", post(pages::promote))
        .route("/ops/repositories/{name}/{action}", post(pages::repository))
        .route("/ops/modules/{name}/{action}", post(pages::module))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/api/status", get(api::status))
        .route("/api/requests", get(api::list).post(api::create))
        .route("/api/requests/{id}", get(api::show))
        .route("/api/requests/{id}/ci-log", get(api::ci_log))
        .route("/api/ci/runs/{run}/log", get(api::run_log))
        .route("/api/requests/{id}/cancel", post(api::cancel))
        .route("/api/requests/{id}/retry", post(api::retry))
        .route("/api/requests/{id}/promote", post(api::promote))
        .route("/api/bugs/{id}", get(bugs::api))
        .route(
            "/api/repositories/{name}/close",
            post(api::close_repository),
        )
        .route(
            "/api/repositories/{name}/reopen",
            post(api::reopen_repository),
        )
        .route("/api/modules/{name}/pause", post(api::pause_module))
        .route("/api/modules/{name}/resume", post(api::resume_module))
        .route("/api/modules/{name}/kick", post(api::kick_module))
        .route("/api/bugzilla/requests", post(api::create_for_bug))
        .route("/api/ci/results", post(api::ci_results))
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::writes_need_a_token,
        ))
        .layer(axum::middleware::from_fn_with_state(
            limit,
            refuse_oversized,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Headers every answer carries: no framing (clickjacking), scripts and styles only from
/// Autoland itself (no inline script runs, so markup smuggled in from a bug cannot
/// execute), no MIME sniffing, no referrer to other sites; HTML pages are not cached.
async fn security_headers(request: Request, next: Next) -> Response {
    use axum::http::HeaderValue;
    use axum::http::header::{
        CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
    };
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    // Pages carry a session's CSRF token and who is signed in: never from a cache.
    let html = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html {
        headers.insert(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
    }
    response
}

/// How much of an oversized body is read and thrown away so that the client gets the 413
/// instead of a reset connection; beyond it the connection is simply closed.
const DRAIN_MAX: u64 = 128 * 1024 * 1024;

/// Answers 413 to a body declared larger than the limit, before any handler buffers it.
async fn refuse_oversized(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => {
            let mut body = request.into_body();
            let mut drained = 0u64;
            while drained <= DRAIN_MAX {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        drained += frame.data_ref().map_or(0, |d| d.len() as u64);
                    }
                    _ => break,
                }
            }
            error::ApiError::TooLarge(format!(
                "the request body is too large: {length} bytes, the limit is {limit} \
                 (limits.max_body_bytes)"
            ))
            .into_response()
        }
        _ => next.run(request).await,
    }
}
