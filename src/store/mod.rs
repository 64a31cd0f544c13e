//! The store: every SQL statement of the service lives under this folder, behind [`Store`](crate::store::Store).
//!
//! One code path serves SQLite and PostgreSQL (sqlx's `Any` driver, `$n` placeholders, SQL
//! both understand, times as BIGINT milliseconds). The only backend-specific pieces are the
//! migrations folders and the connection set-up (`db.rs`).

mod ci;
mod coordination;
mod db;
mod gate;
mod heartbeats;
mod outbox;
mod repositories;
mod requests;
mod sheriff;
mod status;

pub use ci::{
    CiJob, CiRun, CiState, JobOutcome, JobResult, JobState, JobUpdate, NewCiRun, RunReport, Tally,
    outcomes, tally,
};
pub use coordination::{DestinationLock, Leadership, WakeListener};
pub use db::{Backend, Store, StoreError, ms, now_ms};
pub use gate::{Candidate, CandidateRun, CandidateState, GatedRequest};
pub use heartbeats::Heartbeat;
pub use outbox::{NewReport, OutboxItem, ReportKind};
pub use repositories::{ClosedRepository, ModuleControl, OperatorAction};
pub use requests::{Effects, ListFilter, RequestHistory};
pub use sheriff::{Backout, BackoutState, Conviction, NewPush, Push, PushKind, TipVerdict};
