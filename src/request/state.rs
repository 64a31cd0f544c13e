//! The request state machine: every stage, every allowed transition and every failure
//! category, in one place. Nothing else decides what the next stage is; the store calls
//! [`next_stage`] inside the transaction that writes the new stage and its event.
//!
//! ```text
//! received ─► gathering ─► authorizing ─► applying ─► pushing_try ─► awaiting_try ─► landing ─► landed
//!     │            │             │            │             │               │            │
//!     └────────────┴─────────────┴────────────┴─────────────┴───────────────┴────────────┴─► failed / cancelled
//! ```
//! A try-only request goes from `awaiting_try` straight to `landed` when try passes.
//!
//! A request for a gated destination (`gate = "serial" | "speculative"`) goes through the
//! destination's landing gate instead of its own try run:
//!
//! ```text
//! authorizing ─► gated ─► gate_landing ─► landed
//!                  ▲            │
//!                  └────────────┘ (the destination moved: queued again)
//! ```
//! `gated` ends in `failed` (`gate_failed`, or `apply_conflict`) when the gate ejects it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Stored, not yet looked at.
    Received,
    /// Collecting and validating the patches.
    Gathering,
    /// Checking commit permissions.
    Authorizing,
    /// Applying the patches on the base repository's tip.
    Applying,
    /// Pushing the applied patches to the try repository.
    PushingTry,
    /// Waiting for the CI results of the try push.
    AwaitingTry,
    /// Try passed; landing on each final destination in turn.
    Landing,
    /// In the landing gate of its destination: queued, or tested in a candidate.
    Gated,
    /// Its gate candidate passed and is being pushed to the destination.
    GateLanding,
    /// Done: every destination has the commits (for a try-only request: try passed).
    Landed,
    /// Landed, then backed out by the sheriff: its landing turned the destination red.
    BackedOut,
    /// Stopped with a [`FailureCategory`] and a detail.
    Failed,
    /// Cancelled by a person.
    Cancelled,
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCategory {
    /// The request itself cannot be acted on (bad patch, unknown repository...).
    InvalidRequest,
    /// Nobody involved holds the level a destination requires.
    PermissionDenied,
    /// A patch does not apply on the tip.
    ApplyConflict,
    /// The try push's CI run failed.
    TryFailed,
    /// A push was refused, or a repository could not be reached, after every retry.
    PushFailed,
    /// Something took longer than its configured limit.
    TimedOut,
    /// The landing gate tested it on the destination's tip (with the requests ahead of
    /// it) and that failed: it was ejected.
    GateFailed,
}

/// Something that happened to a request and moves it to another stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// A worker started gathering the patches.
    StartGathering,
    /// Patches gathered and valid.
    Gathered,
    /// Every destination's level is held by the people involved.
    Authorized,
    /// The patches applied on `base`, the base repository's tip.
    Applied,
    /// The try push is on the try repository as `revision`.
    PushedToTry,
    /// Try passed; `land` says whether final destinations remain.
    TryPassed { land: bool },
    /// One destination landed; `last` says whether it was the last one.
    DestinationLanded { last: bool },
    /// Permission granted for a gated destination: the request joins its gate.
    EnterGate,
    /// The gate is pushing the candidate that holds the request.
    GateLanding,
    /// The gate's push was refused (the destination moved): back in the queue.
    GateRequeued,
    /// The gate pushed the candidate that holds the request: landed.
    GateLanded,
    /// The sheriff backed the landed request out (its landing turned the tip red).
    BackedOut,
    /// The request failed.
    Fail(FailureCategory),
    /// Someone cancelled it.
    Cancel,
    /// An operator retries a failed request from `to`, the stage it failed in.
    Retry {
        /// Where to start again.
        to: Stage,
    },
}

/// A transition that the state machine does not allow from the current stage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a request in stage `{from}` cannot take transition {transition:?}")]
pub struct IllegalTransition {
    /// The stage the request was in.
    pub from: Stage,
    /// What was attempted.
    pub transition: Transition,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 13] = [
        Stage::Received,
        Stage::Gathering,
        Stage::Authorizing,
        Stage::Applying,
        Stage::PushingTry,
        Stage::AwaitingTry,
        Stage::Landing,
        Stage::Gated,
        Stage::GateLanding,
        Stage::Landed,
        Stage::BackedOut,
        Stage::Failed,
        Stage::Cancelled,
    ];

    /// Stages in which a pusher worker has something to do.
    pub const WORKABLE: [Stage; 6] = [
        Stage::Received,
        Stage::Gathering,
        Stage::Authorizing,
        Stage::Applying,
        Stage::PushingTry,
        Stage::Landing,
    ];

    /// True once nothing more will happen to the request.
    pub fn is_terminal(self) -> bool {
        match self {
            Stage::Landed | Stage::BackedOut | Stage::Failed | Stage::Cancelled => true,
            Stage::Received
            | Stage::Gathering
            | Stage::Authorizing
            | Stage::Applying
            | Stage::PushingTry
            | Stage::AwaitingTry
            | Stage::Landing
            | Stage::Gated
            | Stage::GateLanding => false,
        }
    }

    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Received => "received",
            Stage::Gathering => "gathering",
            Stage::Authorizing => "authorizing",
            Stage::Applying => "applying",
            Stage::PushingTry => "pushing_try",
            Stage::AwaitingTry => "awaiting_try",
            Stage::Landing => "landing",
            Stage::Gated => "gated",
            Stage::GateLanding => "gate_landing",
            Stage::Landed => "landed",
            Stage::BackedOut => "backed_out",
            Stage::Failed => "failed",
            Stage::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored value that is not a known stage or category.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a known value")]
pub struct UnknownValue(pub String);

impl FromStr for Stage {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.as_str() == s)
            .ok_or_else(|| UnknownValue(s.to_owned()))
    }
}

impl FailureCategory {
    /// Every category.
    pub const ALL: [FailureCategory; 7] = [
        FailureCategory::InvalidRequest,
        FailureCategory::PermissionDenied,
        FailureCategory::ApplyConflict,
        FailureCategory::TryFailed,
        FailureCategory::PushFailed,
        FailureCategory::TimedOut,
        FailureCategory::GateFailed,
    ];

    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCategory::InvalidRequest => "invalid_request",
            FailureCategory::PermissionDenied => "permission_denied",
            FailureCategory::ApplyConflict => "apply_conflict",
            FailureCategory::TryFailed => "try_failed",
            FailureCategory::PushFailed => "push_failed",
            FailureCategory::TimedOut => "timed_out",
            FailureCategory::GateFailed => "gate_failed",
        }
    }
}

impl fmt::Display for FailureCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FailureCategory {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FailureCategory::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownValue(s.to_owned()))
    }
}

impl Transition {
    /// The event kind recorded in the event log for this transition.
    pub fn event_kind(&self) -> &'static str {
        match self {
            Transition::StartGathering => "gathering_started",
            Transition::Gathered => "gathered",
            Transition::Authorized => "authorized",
            Transition::Applied => "applied",
            Transition::PushedToTry => "pushed_to_try",
            Transition::TryPassed { .. } => "try_passed",
            Transition::DestinationLanded { .. } => "destination_landed",
            Transition::EnterGate => "entered_gate",
            Transition::GateLanding => "gate_landing",
            Transition::GateRequeued => "gate_requeued",
            Transition::GateLanded => "destination_landed",
            Transition::BackedOut => "backed_out",
            Transition::Fail(_) => "failed",
            Transition::Cancel => "cancelled",
            Transition::Retry { .. } => "retried",
        }
    }
}

/// The stage a request in `from` moves to on `transition`, or why it may not.
pub fn next_stage(from: Stage, transition: &Transition) -> Result<Stage, IllegalTransition> {
    use Stage as S;
    let to = match (transition, from) {
        (Transition::StartGathering, S::Received) => Some(S::Gathering),
        (Transition::Gathered, S::Gathering) => Some(S::Authorizing),
        (Transition::Authorized, S::Authorizing) => Some(S::Applying),
        (Transition::Applied, S::Applying) => Some(S::PushingTry),
        (Transition::PushedToTry, S::PushingTry) => Some(S::AwaitingTry),
        (Transition::TryPassed { land: true }, S::AwaitingTry) => Some(S::Landing),
        (Transition::TryPassed { land: false }, S::AwaitingTry) => Some(S::Landed),
        (Transition::DestinationLanded { last: false }, S::Landing) => Some(S::Landing),
        (Transition::DestinationLanded { last: true }, S::Landing) => Some(S::Landed),
        (Transition::EnterGate, S::Authorizing) => Some(S::Gated),
        (Transition::GateLanding, S::Gated) => Some(S::GateLanding),
        (Transition::GateRequeued, S::GateLanding) => Some(S::Gated),
        (Transition::GateLanded, S::GateLanding) => Some(S::Landed),
        (Transition::BackedOut, S::Landed) => Some(S::BackedOut),
        (Transition::Fail(category), from) if !from.is_terminal() => {
            failure_allowed(*category, from).then_some(S::Failed)
        }
        // Once landing has started, pushes to final repositories may be under way: a
        // cancel then could leave commits landed on a "cancelled" request.
        (Transition::Cancel, from)
            if !from.is_terminal() && !matches!(from, S::Landing | S::GateLanding) =>
        {
            Some(S::Cancelled)
        }
        (Transition::Retry { to }, S::Failed) if S::WORKABLE.contains(to) => Some(*to),
        _ => None,
    };
    to.ok_or_else(|| IllegalTransition {
        from,
        transition: transition.clone(),
    })
}

/// Which failures make sense in which stage: a try failure can only come while awaiting
/// try, a conflict only while applying something.
fn failure_allowed(category: FailureCategory, from: Stage) -> bool {
    use Stage as S;
    match category {
        // Also later: a repository removed from the configuration mid-flight.
        FailureCategory::InvalidRequest => true,
        FailureCategory::PermissionDenied => matches!(from, S::Authorizing),
        FailureCategory::ApplyConflict => {
            matches!(from, S::Applying | S::PushingTry | S::Landing | S::Gated)
        }
        FailureCategory::TryFailed => matches!(from, S::AwaitingTry),
        FailureCategory::PushFailed => {
            matches!(
                from,
                S::Applying | S::PushingTry | S::Landing | S::GateLanding
            )
        }
        FailureCategory::TimedOut => true,
        FailureCategory::GateFailed => matches!(from, S::Gated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn happy_path_to_landed() {
        let steps = [
            Transition::StartGathering,
            Transition::Gathered,
            Transition::Authorized,
            Transition::Applied,
            Transition::PushedToTry,
            Transition::TryPassed { land: true },
            Transition::DestinationLanded { last: false },
            Transition::DestinationLanded { last: true },
        ];
        let mut stage = Stage::Received;
        for step in &steps {
            stage = next_stage(stage, step).unwrap();
        }
        assert_eq!(stage, Stage::Landed);
    }

    #[test]
    fn try_only_lands_after_try() {
        assert_eq!(
            next_stage(Stage::AwaitingTry, &Transition::TryPassed { land: false }),
            Ok(Stage::Landed)
        );
    }

    #[test]
    fn terminal_stages_accept_nothing() {
        for stage in [Stage::Landed, Stage::Failed, Stage::Cancelled] {
            assert!(next_stage(stage, &Transition::Cancel).is_err());
            assert!(next_stage(stage, &Transition::Fail(FailureCategory::TimedOut)).is_err());
        }
    }

    #[test]
    fn skipping_a_stage_is_refused() {
        let err = next_stage(Stage::Received, &Transition::PushedToTry).unwrap_err();
        assert_eq!(err.from, Stage::Received);
        assert!(next_stage(Stage::Applying, &Transition::TryPassed { land: true }).is_err());
    }

    #[test]
    fn failures_only_where_they_can_happen() {
        assert!(
            next_stage(
                Stage::Applying,
                &Transition::Fail(FailureCategory::TryFailed)
            )
            .is_err()
        );
        assert_eq!(
            next_stage(
                Stage::AwaitingTry,
                &Transition::Fail(FailureCategory::TryFailed)
            ),
            Ok(Stage::Failed)
        );
        assert_eq!(
            next_stage(
                Stage::Authorizing,
                &Transition::Fail(FailureCategory::PermissionDenied)
            ),
            Ok(Stage::Failed)
        );
    }

    #[test]
    fn only_failed_requests_are_retried_into_workable_stages() {
        let retry = |to| Transition::Retry { to };
        assert_eq!(
            next_stage(Stage::Failed, &retry(Stage::Landing)),
            Ok(Stage::Landing)
        );
        assert!(next_stage(Stage::Failed, &retry(Stage::AwaitingTry)).is_err());
        assert!(next_stage(Stage::Landed, &retry(Stage::Landing)).is_err());
        assert!(next_stage(Stage::Cancelled, &retry(Stage::Applying)).is_err());
    }

    #[test]
    fn landing_cannot_be_cancelled() {
        assert!(next_stage(Stage::Landing, &Transition::Cancel).is_err());
        assert_eq!(
            next_stage(Stage::AwaitingTry, &Transition::Cancel),
            Ok(Stage::Cancelled)
        );
    }

    #[test]
    fn a_gated_request_lands_through_its_gate_and_is_never_cancelled_while_pushed() {
        let mut stage = Stage::Authorizing;
        for step in [
            Transition::EnterGate,
            Transition::GateLanding,
            Transition::GateRequeued,
            Transition::GateLanding,
            Transition::GateLanded,
        ] {
            stage = next_stage(stage, &step).unwrap();
        }
        assert_eq!(stage, Stage::Landed);
        assert_eq!(
            next_stage(Stage::Gated, &Transition::Cancel),
            Ok(Stage::Cancelled)
        );
        assert!(next_stage(Stage::GateLanding, &Transition::Cancel).is_err());
        assert_eq!(
            next_stage(Stage::Gated, &Transition::Fail(FailureCategory::GateFailed)),
            Ok(Stage::Failed)
        );
        // Ejected only while queued, never from the try path or mid-push.
        assert!(
            next_stage(
                Stage::AwaitingTry,
                &Transition::Fail(FailureCategory::GateFailed)
            )
            .is_err()
        );
        assert!(
            next_stage(
                Stage::GateLanding,
                &Transition::Fail(FailureCategory::GateFailed)
            )
            .is_err()
        );
        // The gate's transitions only from the gate's stages.
        assert!(next_stage(Stage::Applying, &Transition::GateLanding).is_err());
        assert!(next_stage(Stage::Landing, &Transition::GateLanded).is_err());
        assert!(!Stage::WORKABLE.contains(&Stage::Gated));
        assert!(!Stage::WORKABLE.contains(&Stage::GateLanding));
    }

    #[test]
    fn names_round_trip() {
        for stage in Stage::ALL {
            assert_eq!(stage.as_str().parse::<Stage>(), Ok(stage));
        }
        for category in FailureCategory::ALL {
            assert_eq!(category.as_str().parse::<FailureCategory>(), Ok(category));
        }
        assert!("landing_soon".parse::<Stage>().is_err());
    }
}
