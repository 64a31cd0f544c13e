//! The handle tests and the demo drive the simulator with: start it, seed projects, pushes
//! and jobs, move jobs along, read what clients asked.

use std::sync::{Arc, Mutex, MutexGuard};

use super::http;
use super::state::{self, Shared, State};
use super::types::{Error, Fault, JobResult, JobSpec, JobState, LoggedRequest, NewPush};

/// A running Treeherder simulator. Cloning gives another handle on the same server; the
/// server runs until the tokio runtime that started it shuts down.
#[derive(Clone)]
pub struct Simulator {
    inner: Shared,
    url: String,
}

impl Simulator {
    /// Binds 127.0.0.1 on a free port and serves in a tokio task.
    pub async fn start() -> Result<Simulator, Error> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let mut state = State::new();
        state.base_url = url.clone();
        let inner: Shared = Arc::new(Mutex::new(state));
        let router = axum::Router::new()
            .fallback(http::serve)
            .with_state(inner.clone());
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::warn!(%error, "the Treeherder simulator stopped");
            }
        });
        Ok(Simulator { inner, url })
    }

    /// The base URL, "http://127.0.0.1:PORT": what `TreeherderClient(server_url=...)` takes.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        state::lock(&self.inner)
    }

    /// Makes a project (a Treeherder repository) known, so that its lists answer empty
    /// rather than 404; returns its `repository_id` (the existing one if known). Pushes
    /// make their project known by themselves.
    pub fn add_project(&self, name: &str) -> Result<i64, Error> {
        self.lock().add_project(name)
    }

    /// Adds a push of `revision` by `author` (an email) to `project` with one commit, the
    /// tip, by the same author; returns the push id (ids start at 1, across projects).
    pub fn add_push(&self, project: &str, revision: &str, author: &str) -> Result<i64, Error> {
        self.add_push_with(
            project,
            NewPush {
                revision: revision.to_owned(),
                author: author.to_owned(),
                commits: Vec::new(),
            },
        )
    }

    /// Adds a push with its commits; returns the push id. Each push is timed at least a
    /// second after the previous one, so the push list (newest first) follows the order
    /// of the calls.
    pub fn add_push_with(&self, project: &str, push: NewPush) -> Result<i64, Error> {
        self.lock().add_push(project, push)
    }

    /// Adds a job to a push; returns the job id (ids start at 1). Its submit time is now,
    /// and its start and end times are now or 0 as its state says.
    pub fn add_job(&self, push_id: i64, job: JobSpec) -> Result<i64, Error> {
        self.lock().add_job(push_id, job)
    }

    /// Moves a job to `state` with `result`, as Treeherder's ingestion of a task event
    /// would: starting sets the start time (if unset), completing the end time;
    /// `last_modified` is bumped.
    pub fn update_job(&self, job_id: i64, state: JobState, result: JobResult) -> Result<(), Error> {
        self.lock().update_job(job_id, state, result)
    }

    /// The URL of a job's log as `job-log-url` lists it once the job completes (hosted
    /// logs are under this simulator's URL), `None` for a job without a log.
    pub fn log_url(&self, job_id: i64) -> Option<String> {
        let state = self.lock();
        let job = state.jobs.get(&job_id)?;
        Some(job.log.as_ref()?.url(job_id, &self.url))
    }

    /// Every request answered since the start (or the last [`Simulator::clear_requests`]),
    /// in order; includes failed ones and fetches of hosted logs.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    /// How many requests for `path` (exactly, e.g. "/api/project/try/jobs/") were
    /// answered: how a test sees that a client paged.
    pub fn request_count(&self, path: &str) -> usize {
        self.lock().log.iter().filter(|r| r.path == path).count()
    }

    /// Forgets the requests answered so far.
    pub fn clear_requests(&self) {
        self.lock().log.clear();
    }

    /// Injects a fault into the following requests ([`Fault::None`] clears it).
    pub fn set_fault(&self, fault: Fault) {
        self.lock().fault = fault;
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        self.lock().fault.clone()
    }
}
