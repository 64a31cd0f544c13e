//! The web server: Autoland's JSON API (intake, queue, history, cancel) and health.

mod api;
mod auth;
pub mod error;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::config::TokenEntry;
use crate::service::Context;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// The service context.
    pub ctx: Arc<Context>,
    /// Accepted tokens (hashes only).
    pub tokens: Arc<Vec<TokenEntry>>,
}

/// Every route of the service.
pub fn router(ctx: Arc<Context>) -> Router {
    let limit = ctx.config.limits.max_body_bytes;
    let state = AppState {
        tokens: Arc::new(ctx.config.token_entries()),
        ctx,
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/status", get(api::status))
        .route("/api/requests", get(api::list).post(api::create))
        .route("/api/requests/{id}", get(api::show))
        .route("/api/requests/{id}/cancel", post(api::cancel))
        .route("/api/bugzilla/requests", post(api::create_for_bug))
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
