//! Bugzilla: requests found on bugs (the whiteboard tag), their patches fetched from the
//! bug's attachments, and reports back as comments and whiteboard edits.

pub mod client;
pub mod gather;
pub mod poller;
pub mod reporter;

/// The `source` of requests that come from Bugzilla.
pub const SOURCE: &str = "bugzilla";

use std::time::Duration;

use crate::config::{BugzillaConfig, ConfigError};
use client::BugzillaClient;

/// A client for the configured Bugzilla.
/// `instance` names this process in the User-Agent.
pub fn client_from(config: &BugzillaConfig, instance: &str) -> Result<BugzillaClient, ConfigError> {
    BugzillaClient::new(
        &config.url,
        &config.api_key()?,
        config.auth,
        Duration::from_secs(config.timeout_seconds),
        instance,
    )
    .map_err(|e| ConfigError::Invalid(format!("bugzilla: {e}")))
}
