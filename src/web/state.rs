//! What every handler shares.

use std::sync::Arc;

use super::session::Sessions;
use crate::config::TokenEntry;
use crate::runtime::Context;
use crate::tracker::bugzilla::Bugzilla;
use crate::tracker::bugzilla::page::PageCache;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// The service context.
    pub ctx: Arc<Context>,
    /// Accepted tokens (hashes only).
    pub tokens: Arc<Vec<TokenEntry>>,
    /// People signed in to the web pages.
    pub sessions: Arc<Sessions>,
    /// Recent bug reads of the bug page.
    pub bug_pages: Arc<PageCache>,
    /// Per-token allowances of write calls.
    pub limiter: Arc<super::limits::RateLimiter>,
}

impl AppState {
    /// The configured Bugzilla (for the bug page and signing in with an API key).
    pub fn bugzilla(&self) -> Option<Arc<Bugzilla>> {
        self.ctx.trackers.find::<Bugzilla>()
    }
}
