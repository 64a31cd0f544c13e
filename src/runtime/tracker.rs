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

    /// What it writes back when a request waits on something outside it (the
    /// directory unreachable), said once per request. Nothing by default.
    fn notice(&self, _config: &Config, _request: &Request, _text: &str) -> Vec<NewReport> {
        Vec::new()
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A tracker known by its source; it writes nothing and gathers nothing. `K` makes
    /// `Fake<1>` and `Fake<2>` two types, as two trackers are.
    struct Fake<const K: u8>(&'static str);

    #[async_trait]
    impl<const K: u8> Tracker for Fake<K> {
        fn source(&self) -> &'static str {
            self.0
        }

        fn reports(
            &self,
            _: &Config,
            _: &Request,
            _: &Transition,
            _: &str,
            _: &Effects,
        ) -> Vec<NewReport> {
            Vec::new()
        }

        async fn gather(
            &self,
            _: &Config,
            _: &Request,
            _: &[i64],
        ) -> Result<Gathered, GatherError> {
            Err(GatherError::Transient(format!("{} is down", self.0)))
        }
    }

    #[test]
    fn each_source_has_its_own_tracker_and_api_requests_have_none() {
        let trackers = Trackers::new(vec![Arc::new(Fake::<1>("one")), Arc::new(Fake::<2>("two"))]);
        assert_eq!(trackers.for_source("one").map(|t| t.source()), Some("one"));
        assert_eq!(trackers.for_source("two").map(|t| t.source()), Some("two"));
        assert!(trackers.for_source(crate::request::API_SOURCE).is_none());
        assert!(trackers.for_source("gone").is_none());
        assert_eq!(format!("{trackers:?}"), r#"["one", "two"]"#);
    }

    #[test]
    fn a_trackers_modules_find_it_by_type() {
        let trackers = Trackers::new(vec![Arc::new(Fake::<2>("two")), Arc::new(Fake::<1>("one"))]);
        assert_eq!(trackers.find::<Fake<1>>().map(|t| t.0), Some("one"));
        assert_eq!(trackers.find::<Fake<2>>().map(|t| t.0), Some("two"));
        assert!(Trackers::default().find::<Fake<1>>().is_none());
    }
}
