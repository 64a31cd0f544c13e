//! The landing gate: what a gated destination's queues do (`lane.rs`, pure scheduling,
//! run by the service and by the queue simulator alike) and which queue (lane) a request
//! joins (`router.rs`). See `docs/gate.md`.

mod lane;
mod router;

pub use lane::{Action, CandidateId, Change, ChangeId, Lane, LaneConfig, Strategy, Verdict};
pub use router::{LaneError, MAIN_LANE, Route, Router};

#[cfg(test)]
mod tests;
