//! A simulator of the Bugzilla 5 REST API, faithful to what real servers do (see
//! `docs/bugzilla-simulator.md` and the observations it is built on), for the test suite and
//! `autoland demo`.
//!
//! It serves the subset Autoland uses: version and whoami, bug search (whiteboard matching,
//! boolean charts, `last_change_time`), bug get and update (whiteboard, comment), attachments
//! with flags, comments, and history. Two flavors reproduce the differences between upstream
//! 5.2 ([`Flavor::V52`]: API key header ignored, 0/1 booleans on attachments, numeric error
//! codes, no `whoami`) and 5.3.3 / bugzilla.mozilla.org ([`Flavor::V53`]). [`Fault`]s make it
//! fail or slow down on demand, and every request is logged with its API key redacted.
//!
//! Tests and the demo drive it in-process: set users, keys, bugs and attachments up with the
//! methods of [`Simulator`], [`Simulator::start`] it, and point a client at the returned URL.

mod api;
mod rest;
mod search;
mod state;
#[cfg(test)]
mod tests;
mod types;

use std::sync::MutexGuard;
use std::time::Duration;

use state::State;
pub use types::{Comment, Fault, Flavor, LoggedRequest, NewAttachment, NewBug, NewFlag};

/// The Bugzilla simulator. Cloning it gives another handle on the same server state.
#[derive(Clone)]
pub struct Simulator {
    inner: state::Shared,
}

impl Simulator {
    pub fn new(flavor: Flavor) -> Simulator {
        Simulator {
            inner: std::sync::Arc::new(std::sync::Mutex::new(State::new(flavor))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        state::lock(&self.inner)
    }

    /// The HTTP service: everything under `/rest` (and `/rest.cgi`).
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .fallback(api::serve)
            .with_state(self.inner.clone())
    }

    /// Binds 127.0.0.1:0, serves in a tokio task, returns the base URL "http://127.0.0.1:PORT".
    pub async fn start(&self) -> std::io::Result<String> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let router = self.router();
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::warn!(%error, "the Bugzilla simulator stopped");
            }
        });
        Ok(format!("http://{address}"))
    }

    /// Adds a user, or updates the name and insider status of an existing one. Insiders see
    /// private bugs, attachments and comments.
    pub fn add_user(&self, email: &str, real_name: &str, insider: bool) {
        self.lock().add_user(email, real_name, insider);
    }

    /// Makes `key` log in as `email` (made a user if unknown).
    pub fn add_api_key(&self, key: &str, email: &str) {
        self.lock().add_api_key(key, email);
    }

    /// Files a bug (ids start at 1). Its comment 0, the description, is the summary.
    pub fn create_bug(&self, bug: NewBug) -> i64 {
        self.lock().create_bug(bug)
    }

    /// Sets a bug's whiteboard as `who`, recording the change in its history and bumping its
    /// last change time (nothing happens if the value is the same).
    ///
    /// # Panics
    /// If the bug does not exist.
    pub fn set_whiteboard(&self, bug: i64, whiteboard: &str, who: &str) {
        let done = self.lock().update_bug(
            bug,
            who,
            &[(state::BugField::Whiteboard, whiteboard.to_owned())],
            None,
        );
        assert!(done.is_some(), "set_whiteboard: no bug {bug}");
    }

    /// Attaches a file to a bug (attachment ids start at 1001), with a "Created attachment"
    /// comment as Bugzilla adds; bumps the bug's last change time.
    ///
    /// # Panics
    /// If the bug does not exist.
    pub fn add_attachment(&self, bug: i64, a: NewAttachment) -> i64 {
        match self.lock().add_attachment(bug, a) {
            Some(id) => id,
            None => panic!("add_attachment: no bug {bug}"),
        }
    }

    /// Marks an attachment obsolete (or not), recorded in the bug's history.
    ///
    /// # Panics
    /// If the attachment does not exist.
    pub fn set_obsolete(&self, attachment: i64, obsolete: bool) {
        let found = self.lock().set_obsolete(attachment, obsolete);
        assert!(found, "set_obsolete: no attachment {attachment}");
    }

    /// A bug's whiteboard, `None` if there is no such bug.
    pub fn whiteboard(&self, bug: i64) -> Option<String> {
        self.lock().bugs.get(&bug).map(|b| b.whiteboard.clone())
    }

    /// All comments of a bug (private ones too), oldest first; empty for an unknown bug.
    pub fn comments(&self, bug: i64) -> Vec<Comment> {
        self.lock().comments_of(bug)
    }

    /// A bug's last change time as the API shows it, `None` if there is no such bug.
    pub fn last_change_time(&self, bug: i64) -> Option<String> {
        self.lock()
            .bugs
            .get(&bug)
            .map(|b| state::format_time(b.last_change_time))
    }

    /// The simulator's clock (the time of the latest change, or of the start).
    pub fn now(&self) -> String {
        state::format_time(self.lock().now())
    }

    /// Every request answered since the start (or the last [`Simulator::clear_log`]).
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    pub fn clear_log(&self) {
        self.lock().log.clear();
    }

    pub fn set_fault(&self, fault: Fault) {
        self.lock().fault = fault;
    }

    pub fn fault(&self) -> Fault {
        self.lock().fault.clone()
    }

    pub fn set_flavor(&self, flavor: Flavor) {
        self.lock().flavor = flavor;
    }

    pub fn flavor(&self) -> Flavor {
        self.lock().flavor
    }

    /// Advance the simulator's clock (it starts at the real time); lets tests control
    /// last_change_time ordering. Later changes are stamped after the advanced time.
    pub fn advance_clock(&self, by: Duration) {
        self.lock().advance(by);
    }
}
