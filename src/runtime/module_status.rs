//! What a module is doing (running, degraded, standby, paused), as its supervisor writes it
//! to the module's heartbeat.

use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub(super) struct StatusInner {
    pub(super) state: String,
    pub(super) detail: String,
    pub(super) restarts: i64,
}

/// What a module is doing, written to its heartbeat.
#[derive(Debug, Clone)]
pub struct ModuleStatus {
    inner: Arc<Mutex<StatusInner>>,
}

impl ModuleStatus {
    pub(super) fn new() -> ModuleStatus {
        ModuleStatus {
            inner: Arc::new(Mutex::new(StatusInner {
                state: "running".to_owned(),
                detail: "starting".to_owned(),
                restarts: 0,
            })),
        }
    }

    /// Running, doing `detail`.
    pub fn set(&self, detail: impl Into<String>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.state = "running".to_owned();
            inner.detail = detail.into();
        }
    }

    /// Degraded by an error (the module keeps trying).
    pub fn error(&self, detail: impl Into<String>) {
        let detail = detail.into();
        tracing::warn!(%detail, "module degraded");
        if let Ok(mut inner) = self.inner.lock() {
            inner.state = "degraded".to_owned();
            inner.detail = detail;
        }
    }

    /// Waiting to take over from another process (a singleton module).
    pub fn standby(&self, detail: impl Into<String>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.state = "standby".to_owned();
            inner.detail = detail.into();
        }
    }

    /// Paused by an operator.
    pub(super) fn paused(&self, detail: String) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.state = "paused".to_owned();
            inner.detail = detail;
        }
    }

    /// Counts a restart after a crash, with the reason.
    pub(super) fn restarted(&self, reason: String) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.restarts += 1;
            inner.state = "degraded".to_owned();
            inner.detail = reason;
        }
    }

    pub(super) fn snapshot(&self) -> StatusInner {
        self.inner
            .lock()
            .map(|i| i.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}
