//! Trackers as the core sees them: a tracker owns the requests of one `source` (a bug
//! tracker's bugs, say), gathers their patches, and subscribes to their state changes, turning each
//! into the reports it writes back (comments, whiteboard edits). The core records a
//! transition and its detail; which words go to which bug is the tracker's business.
//! Requests from Autoland's own API ([`crate::request::API_SOURCE`]) carry their patches
//! and have no tracker.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::Config;
use crate::request::{Patch, Request, Transition};
use crate::store::{Effects, NewReport};

/// Why gathering a request's patches from its tracker stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatherError {
    /// The request cannot go on (the message says why, to the requester).
    #[error("{0}")]
    Invalid(String),
    /// The tracker could not be reached; try again later.
    #[error("{0}")]
    Transient(String),
}

/// A request's patches, as its tracker gathered them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gathered {
    /// The patches, in landing order.
    pub patches: Vec<Patch>,
    /// One line saying what was chosen (the event's detail).
    pub detail: String,
}

/// A source of requests and the destination of reports about them.
#[async_trait]
pub trait Tracker: Any + Send + Sync {
    /// The `source` of the requests it owns.
    fn source(&self) -> &'static str;

    /// What it writes back when one of its requests goes through `transition`: queued in
    /// the same transaction as the change, delivered by the tracker's outbox sender.
    fn reports(
        &self,
        config: &Config,
        request: &Request,
        transition: &Transition,
        detail: &str,
        effects: &Effects,
    ) -> Vec<NewReport>;

    /// Fetches the patches of `request` (`requested`: the attachments it named, in order;
    /// empty for "the current ones").
    async fn gather(
        &self,
        config: &Config,
        request: &Request,
        requested: &[i64],
    ) -> Result<Gathered, GatherError>;
}

/// The trackers configured in this process, by source.
#[derive(Clone, Default)]
pub struct Trackers {
    all: Vec<Arc<dyn Tracker>>,
}

impl Trackers {
    /// The given trackers (one per source).
    pub fn new(all: Vec<Arc<dyn Tracker>>) -> Trackers {
        Trackers { all }
    }

    /// The tracker that owns requests from `source`, if it is configured.
    pub fn for_source(&self, source: &str) -> Option<&dyn Tracker> {
        self.all
            .iter()
            .find(|t| t.source() == source)
            .map(|t| t.as_ref())
    }

    /// The configured tracker of type `T` (for the tracker's own modules).
    pub fn find<T: Tracker>(&self) -> Option<Arc<T>> {
        self.all.iter().find_map(|t| {
            let any: Arc<dyn Any + Send + Sync> = t.clone();
            any.downcast::<T>().ok()
        })
    }
}

impl std::fmt::Debug for Trackers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.all.iter().map(|t| t.source()))
            .finish()
    }
}
