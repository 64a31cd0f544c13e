//! The landing gate: what a gated destination's queue does (`lane.rs`, pure scheduling,
//! run by the service and by the queue simulator alike). See `docs/gate.md`.

mod lane;

pub use lane::{
    Action, CandidateId, CandidateView, Change, ChangeId, Lane, LaneConfig, Strategy, Verdict,
};

#[cfg(test)]
mod tests;
