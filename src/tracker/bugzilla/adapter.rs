//! [`Bugzilla`], the tracker the core sees (`runtime::Tracker`): it owns the requests
//! whose source is [`SOURCE`], gathers their patches from the bug's attachments and words
//! what each state change writes back on the bug.

use std::time::Duration;

use async_trait::async_trait;

use super::client::BugzillaClient;
use super::{comments, gather};
use crate::config::{BugzillaConfig, Config, ConfigError};
use crate::request::{Request, Transition};
use crate::runtime::{GatherError, Gathered, Tracker};
use crate::store::{Effects, NewReport};

/// The `source` of requests that come from Bugzilla.
pub const SOURCE: &str = "bugzilla";

/// The configured Bugzilla, as a tracker.
pub struct Bugzilla {
    /// The REST client.
    pub client: BugzillaClient,
}

impl Bugzilla {
    /// A client for the configured Bugzilla; `instance` names this process in the
    /// User-Agent.
    pub fn new(config: &BugzillaConfig, instance: &str) -> Result<Bugzilla, ConfigError> {
        let client = BugzillaClient::new(
            &config.url,
            &config.api_key()?,
            config.auth,
            Duration::from_secs(config.timeout_seconds),
            instance,
        )
        .map_err(|e| ConfigError::Invalid(format!("bugzilla: {e}")))?;
        Ok(Bugzilla { client })
    }
}

#[async_trait]
impl Tracker for Bugzilla {
    fn source(&self) -> &'static str {
        SOURCE
    }

    fn reports(
        &self,
        config: &Config,
        request: &Request,
        transition: &Transition,
        detail: &str,
        effects: &Effects,
    ) -> Vec<NewReport> {
        comments::reports_for(config, request, transition, detail, effects)
    }

    fn notice(&self, config: &Config, request: &Request, text: &str) -> Vec<NewReport> {
        comments::notice(config, request, text)
    }

    async fn gather(
        &self,
        config: &Config,
        request: &Request,
        requested: &[i64],
    ) -> Result<Gathered, GatherError> {
        let Some(bug) = request.bug else {
            return Err(GatherError::Invalid(
                "this Bugzilla request names no bug, so there are no patches to take; \
                 ask again from the bug (its whiteboard tag or POST /api/bugzilla/requests)"
                    .to_owned(),
            ));
        };
        let (patches, detail) = gather::gather(&self.client, config, bug, requested).await?;
        Ok(Gathered { patches, detail })
    }
}
