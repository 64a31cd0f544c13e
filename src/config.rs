//! Configuration: one TOML file, every field documented in the README, with embedded
//! defaults so `autoland serve` runs without one. Validation happens here, once, so the
//! rest of the service can trust what it gets.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Anything wrong with the configuration, said precisely.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid TOML or has unknown/mistyped fields.
    #[error("configuration file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml said, with the line.
        message: String,
    },
    /// The values don't fit together.
    #[error("configuration is invalid: {0}")]
    Invalid(String),
}

/// Kind of version control system of a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoKind {
    /// git, through the `git` command.
    Git,
    /// Mercurial (not supported yet: a later issue).
    Hg,
}

/// A configured repository.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// Name used in requests and tags (`try`, `central`).
    pub name: String,
    /// `git` or `hg`.
    pub kind: RepoKind,
    /// Where to pull from (URL or path).
    pub pull_url: String,
    /// Where to push to; defaults to `pull_url`.
    #[serde(default)]
    pub push_url: Option<String>,
    /// Branch to land on: default `main` for git, `default` for hg.
    #[serde(default)]
    pub branch: Option<String>,
    /// Permission level required to land here.
    pub level: String,
    /// Whether this is a try repository (pushes run CI, results gate landing).
    #[serde(default, rename = "try")]
    pub is_try: bool,
    /// For a try repository: the repository whose tip a try-only push is built on.
    #[serde(default)]
    pub base: Option<String>,
    /// For a final repository: which try repository to test on first (default: the only one).
    #[serde(default)]
    pub try_repo: Option<String>,
    /// For a try repository: the CI command run by the built-in runner (through `sh -c`).
    #[serde(default)]
    pub ci_command: Option<String>,
    /// CI command timeout in seconds (default 1800).
    #[serde(default = "default_ci_timeout")]
    pub ci_timeout_seconds: u64,
    /// A tree status URL (Mozilla treestatus JSON: `{"result": {"status": "open" |
    /// "closed" | ..., "reason": "..."}}`, or the same object without `result`): while it
    /// says anything but `open`, the repository is closed and landings wait.
    #[serde(default)]
    pub tree_status_url: Option<String>,
    /// Link to a revision for bug comments, with `{rev}` in it
    /// (e.g. `https://hg.mozilla.org/try/rev/{rev}`).
    #[serde(default)]
    pub revision_url: Option<String>,
    /// For a try repository: which CI tests its pushes (`local`, the default, runs
    /// `ci_command`; `buildbot`, `treeherder` and `webhook` need their own table).
    #[serde(default)]
    pub ci: CiKind,
    /// `ci = "buildbot"`: the master and the builders.
    #[serde(default)]
    pub buildbot: Option<BuildbotConfig>,
    /// `ci = "treeherder"`: where the results are read.
    #[serde(default)]
    pub treeherder: Option<TreeherderConfig>,
    /// `ci = "webhook"`: how results posted to `/api/ci/results` are checked.
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    /// Times a job that failed is run again before the run fails (default 1; 0 for the
    /// built-in runner, whose behaviour stays as it was unless this is set).
    #[serde(default)]
    pub retry_failed_jobs: Option<u32>,
    /// Times a job that hit an infrastructure failure (exception, retry, busted, timeout,
    /// cancelled by a master shutdown) is run again (default 2; 0 for the built-in runner).
    #[serde(default)]
    pub retry_infra: Option<u32>,
    /// Most retries one request may use, over all its runs (default 4).
    #[serde(default = "default_retry_quota_request")]
    pub retry_quota_per_request: u32,
    /// Most retries this try repository may use in 24 hours (default 50).
    #[serde(default = "default_retry_quota_day")]
    pub retry_quota_per_day: u32,
    /// A run that passed for the same patches on the same base within this many hours is
    /// reused instead of testing again (default 24; 0 turns reuse off).
    #[serde(default = "default_reuse_hours")]
    pub reuse_hours: u64,
    /// For a final repository: how landings are tested (`off`, the default: each request
    /// on try on its own base, then applied on the tip; `serial` or `speculative`: the
    /// landing gate tests exactly what lands, see `docs/gate.md`).
    #[serde(default)]
    pub gate: GateMode,
    /// Gate: the most candidates under test at once (speculative; default 20).
    #[serde(default = "default_max_window")]
    pub max_window: usize,
    /// Gate: the most requests tested in one candidate (speculative; default 2).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Gate: named lanes, each a list of path globs (`docs = ["docs/**", "*.md"]`);
    /// requests whose files fall in different lanes are queued independently (and land
    /// without being tested together). Without lanes, one queue.
    #[serde(default)]
    pub lanes: std::collections::BTreeMap<String, Vec<String>>,
    /// Gate, without `lanes`: requests whose file sets are disjoint get lanes of their
    /// own (default false). A semantic conflict across disjoint files is then not caught.
    #[serde(default)]
    pub lanes_by_files: bool,
    /// For a final repository: test landed tips with this repository's own CI settings
    /// (`ci`, `ci_command`, the CI tables) and back out Autoland's landings that turn
    /// them red (`docs/sheriff.md`). Default false.
    #[serde(default)]
    pub post_land_ci: bool,
    /// With `post_land_ci`: close the repository from a red tip until a green one.
    #[serde(default)]
    pub close_on_red: bool,
    /// With `post_land_ci`: how often the destination is fetched to see pushes made
    /// outside Autoland (its own landings are seen at once). Default 30.
    #[serde(default = "default_post_land_poll")]
    pub post_land_poll_seconds: u64,
}

fn default_post_land_poll() -> u64 {
    30
}

/// How a destination's landings are tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GateMode {
    /// No gate: try on the request's own base, then apply on the tip and push.
    #[default]
    Off,
    /// One candidate at a time, one request each (bors).
    Serial,
    /// Candidates in parallel up to a window, in batches, bisected on failure (Zuul).
    Speculative,
}

impl GateMode {
    /// The configured word.
    pub fn as_str(self) -> &'static str {
        match self {
            GateMode::Off => "off",
            GateMode::Serial => "serial",
            GateMode::Speculative => "speculative",
        }
    }
}

fn default_max_window() -> usize {
    20
}
fn default_batch_size() -> usize {
    2
}

/// Which CI tests a try repository's pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CiKind {
    /// The built-in runner (`ci_command` on a checkout).
    #[default]
    Local,
    /// A Buildbot master: builds forced over JSON-RPC, results read from the data API.
    Buildbot,
    /// Treeherder: results of the CI that reports there, read from its REST API.
    Treeherder,
    /// Any CI that posts signed results to `POST /api/ci/results`.
    Webhook,
}

impl CiKind {
    /// The name stored with each run.
    pub fn as_str(self) -> &'static str {
        match self {
            CiKind::Local => "local",
            CiKind::Buildbot => "buildbot",
            CiKind::Treeherder => "treeherder",
            CiKind::Webhook => "webhook",
        }
    }
}

fn default_retry_quota_request() -> u32 {
    4
}
fn default_retry_quota_day() -> u32 {
    50
}
fn default_reuse_hours() -> u64 {
    24
}

/// A Buildbot master that tests a try repository.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildbotConfig {
    /// The master's web address (`http://buildbot.example.com:8010`).
    pub url: String,
    /// The force scheduler that may start the builders (default `autoland`).
    #[serde(default = "default_force_scheduler")]
    pub scheduler: String,
    /// The builders that make up a try run; one job each.
    pub builders: Vec<String>,
    /// The repository URL the builders fetch from (default: the try repository's
    /// push URL).
    #[serde(default)]
    pub repository: Option<String>,
    /// How often running jobs are read (milliseconds, default 500).
    #[serde(default = "default_buildbot_poll_ms")]
    pub poll_ms: u64,
    /// Timeout of one HTTP call (seconds, default 30).
    #[serde(default = "default_http_timeout")]
    pub timeout_seconds: u64,
}

fn default_force_scheduler() -> String {
    "autoland".to_owned()
}
fn default_buildbot_poll_ms() -> u64 {
    500
}
fn default_http_timeout() -> u64 {
    30
}

/// A Treeherder instance whose results decide a try repository's runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeherderConfig {
    /// Treeherder's address (`https://treeherder.mozilla.org`).
    pub url: String,
    /// The Treeherder project (repository name there, e.g. `try`).
    pub project: String,
    /// How often a run's push and jobs are read (milliseconds, default 30000).
    #[serde(default = "default_treeherder_poll_ms")]
    pub poll_ms: u64,
    /// A push is complete when it has jobs, none is pending or running, and none
    /// appeared or changed for this long (seconds, default 300).
    #[serde(default = "default_settle_seconds")]
    pub settle_seconds: u64,
    /// A run whose push is not complete after this long fails as timed out (seconds,
    /// default 21600).
    #[serde(default = "default_treeherder_timeout")]
    pub complete_within_seconds: u64,
    /// Timeout of one HTTP call (seconds, default 30).
    #[serde(default = "default_http_timeout")]
    pub timeout_seconds: u64,
}

fn default_treeherder_poll_ms() -> u64 {
    30_000
}
fn default_settle_seconds() -> u64 {
    300
}
fn default_treeherder_timeout() -> u64 {
    6 * 3600
}

/// How results posted to `POST /api/ci/results` for a try repository are checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Environment variable holding the shared HMAC secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// File holding the shared HMAC secret (alternative to `secret_env`).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// The jobs a run is made of: when each has a final result, the run is complete.
    /// Without it, a post with `"complete": true` completes the run.
    #[serde(default)]
    pub jobs: Vec<String>,
    /// How far a delivery's timestamp may be from now (seconds, default 300).
    #[serde(default = "default_max_skew")]
    pub max_skew_seconds: u64,
}

fn default_max_skew() -> u64 {
    300
}

impl WebhookConfig {
    /// The shared secret, from the environment variable or the file.
    pub fn secret(&self, repo: &str) -> Result<String, ConfigError> {
        let secret = read_secret(
            &format!("repository `{repo}`: webhook"),
            "secret_env",
            "secret_file",
            self.secret_env.as_deref(),
            self.secret_file.as_deref(),
        )?;
        if secret.len() < 16 {
            return Err(ConfigError::Invalid(format!(
                "repository `{repo}`: the webhook secret must be at least 16 characters \
                 (e.g. `openssl rand -hex 32`)"
            )));
        }
        Ok(secret)
    }
}

/// A credential from exactly one of an environment variable and a file, trimmed. `what`
/// names the table in messages, `env_field` and `file_field` its two fields.
fn read_secret(
    what: &str,
    env_field: &str,
    file_field: &str,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<String, ConfigError> {
    let text = match (env, file) {
        (Some(var), None) => std::env::var(var).map_err(|_| {
            ConfigError::Invalid(format!(
                "{what}.{env_field}: environment variable `{var}` is not set"
            ))
        })?,
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?,
        _ => {
            return Err(ConfigError::Invalid(format!(
                "{what} needs exactly one of `{env_field}` and `{file_field}`"
            )));
        }
    };
    Ok(text.trim().to_owned())
}

/// Whether `url` is an http(s) URL.
fn is_http(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// The retry rules of one try repository, defaults resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryRules {
    /// Retries of a job that failed.
    pub failed: u32,
    /// Retries of a job that hit an infrastructure failure.
    pub infra: u32,
    /// Retries one request may use.
    pub per_request: u32,
    /// Retries the repository may use in 24 hours.
    pub per_day: u32,
}

impl RepoConfig {
    /// A repository with every optional setting at its default.
    pub fn new(name: &str, kind: RepoKind, pull_url: &str, level: &str) -> RepoConfig {
        RepoConfig {
            name: name.to_owned(),
            kind,
            pull_url: pull_url.to_owned(),
            push_url: None,
            branch: None,
            level: level.to_owned(),
            is_try: false,
            base: None,
            try_repo: None,
            ci_command: None,
            ci_timeout_seconds: default_ci_timeout(),
            tree_status_url: None,
            revision_url: None,
            ci: CiKind::Local,
            buildbot: None,
            treeherder: None,
            webhook: None,
            retry_failed_jobs: None,
            retry_infra: None,
            retry_quota_per_request: default_retry_quota_request(),
            retry_quota_per_day: default_retry_quota_day(),
            reuse_hours: default_reuse_hours(),
            gate: GateMode::Off,
            max_window: default_max_window(),
            batch_size: default_batch_size(),
            lanes: std::collections::BTreeMap::new(),
            lanes_by_files: false,
            post_land_ci: false,
            close_on_red: false,
            post_land_poll_seconds: default_post_land_poll(),
        }
    }

    /// Whether its pushes are tested by its own CI settings (`ci`, `ci_command`, the CI
    /// tables): a try repository, or a destination tested after landing.
    pub fn runs_ci(&self) -> bool {
        self.is_try || self.post_land_ci
    }

    /// The branch landed on.
    pub fn branch(&self) -> &str {
        match (&self.branch, self.kind) {
            (Some(branch), _) => branch,
            (None, RepoKind::Git) => "main",
            (None, RepoKind::Hg) => "default",
        }
    }

    /// The URL pushes go to.
    pub fn push_url(&self) -> &str {
        self.push_url.as_deref().unwrap_or(&self.pull_url)
    }

    /// The retry rules, with the defaults of this repository's CI.
    pub fn retry_rules(&self) -> RetryRules {
        let (failed, infra) = match self.ci {
            CiKind::Local => (0, 0),
            _ => (1, 2),
        };
        RetryRules {
            failed: self.retry_failed_jobs.unwrap_or(failed),
            infra: self.retry_infra.unwrap_or(infra),
            per_request: self.retry_quota_per_request,
            per_day: self.retry_quota_per_day,
        }
    }
}

/// How the Bugzilla API key is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// `X-BUGZILLA-API-KEY` header (5.3, bugzilla.mozilla.org).
    Header,
    /// `api_key` query parameter / body field (5.0, 5.2: they ignore the header).
    Param,
    /// Ask `GET /rest/version` and choose.
    Auto,
}

/// The Bugzilla instance requests come from and reports go to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BugzillaConfig {
    /// Base URL, e.g. `https://bugzilla.mozilla.org`.
    pub url: String,
    /// Environment variable holding Autoland's API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// File holding Autoland's API key (alternative to `api_key_env`).
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// How the key is sent: `header` (5.3, BMO), `param` (5.0, 5.2) or `auto` (ask
    /// `/rest/version`).
    #[serde(default = "default_auth")]
    pub auth: AuthMode,
    /// Poll for tagged bugs (false: only the push intake endpoint creates requests).
    #[serde(default = "default_true")]
    pub poll: bool,
    /// Seconds between polls.
    #[serde(default = "default_poll_seconds")]
    pub poll_interval_seconds: u64,
    /// Each poll re-reads changes this many seconds before the last one seen.
    #[serde(default = "default_overlap_seconds")]
    pub poll_overlap_seconds: u64,
    /// Timeout of every Bugzilla call (seconds).
    #[serde(default = "default_bugzilla_timeout")]
    pub timeout_seconds: u64,
    /// Longest wait between attempts to deliver a report (seconds); waits double from 1 s.
    #[serde(default = "default_retry_max")]
    pub retry_max_seconds: u64,
}

fn default_retry_max() -> u64 {
    300
}

fn default_auth() -> AuthMode {
    AuthMode::Auto
}
fn default_true() -> bool {
    true
}
fn default_poll_seconds() -> u64 {
    60
}
fn default_overlap_seconds() -> u64 {
    30
}
fn default_bugzilla_timeout() -> u64 {
    30
}

impl BugzillaConfig {
    /// The API key, from the environment variable or the file.
    pub fn api_key(&self) -> Result<String, ConfigError> {
        let key = read_secret(
            "bugzilla",
            "api_key_env",
            "api_key_file",
            self.api_key_env.as_deref(),
            self.api_key_file.as_deref(),
        )?;
        if key.is_empty() {
            return Err(ConfigError::Invalid(
                "the Bugzilla API key is empty".to_owned(),
            ));
        }
        Ok(key)
    }
}

/// An API token. The secret itself is never in the file: either its SHA-256 or the name of
/// an environment variable that holds it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A label for logs and events (never the secret).
    pub name: String,
    /// The identity requests made with this token are made as.
    pub user: String,
    /// Hex SHA-256 of the secret (`autoland token hash` prints it).
    #[serde(default)]
    pub sha256: Option<String>,
    /// Name of an environment variable holding the secret.
    #[serde(default)]
    pub env: Option<String>,
    /// May submit on behalf of another requester: `true` (any request, patches included:
    /// a review tool), `"bugs"` (only bug requests, `POST /api/bugzilla/requests`, whose
    /// patches and reviews come from the bug: the Bugzilla extension), `false` (default).
    #[serde(default)]
    pub service: Service,
    /// What the token may do: `read` (nothing that changes state), `submit` (submit and
    /// cancel requests; the default) or `operator` (also retry requests and close or reopen
    /// repositories).
    #[serde(default)]
    pub scope: Scope,
    /// When the token stops working: an RFC 3339 time (`"2027-01-31T18:00:00Z"`, or a
    /// TOML date-time) or a date (`"2027-01-31"`: from that day's start, UTC).
    #[serde(default)]
    pub expires: Option<Expiry>,
}

/// A token's expiry as written in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Expiry {
    /// A quoted date or time.
    Text(String),
    /// A TOML date or date-time, unquoted.
    Toml(toml::value::Datetime),
}

impl Expiry {
    /// The moment, in milliseconds since the epoch, or why it is not one.
    pub fn millis(&self) -> Result<i64, String> {
        let text = match self {
            Expiry::Text(t) => t.trim().to_owned(),
            Expiry::Toml(d) => d.to_string(),
        };
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&text) {
            return Ok(t.timestamp_millis());
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
            return Ok(d
                .and_time(chrono::NaiveTime::MIN)
                .and_utc()
                .timestamp_millis());
        }
        Err(format!(
            "`{text}` is neither a date (2027-01-31) nor an RFC 3339 time (2027-01-31T18:00:00Z)"
        ))
    }
}

/// Whom a token may act for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum Service {
    /// Only its own user.
    #[default]
    No,
    /// Anyone, but only in requests for a bug (patches and reviews from the tracker).
    Bugs,
    /// Anyone, in any request.
    Any,
}

impl Service {
    /// May name another requester (for a bug request when `for_bug`).
    pub fn may_act_for_others(self, for_bug: bool) -> bool {
        match self {
            Service::No => false,
            Service::Bugs => for_bug,
            Service::Any => true,
        }
    }
}

impl<'de> Deserialize<'de> for Service {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Service, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Word(String),
        }
        match Raw::deserialize(d)? {
            Raw::Flag(false) => Ok(Service::No),
            Raw::Flag(true) => Ok(Service::Any),
            Raw::Word(w) if w == "bugs" => Ok(Service::Bugs),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "service must be true, false or \"bugs\", not \"{w}\""
            ))),
        }
    }
}

/// What a token may do, each scope including the ones before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read only.
    Read,
    /// Submit and cancel requests.
    #[default]
    Submit,
    /// Operate the service.
    Operator,
}

/// Permission levels and who holds them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionsConfig {
    /// Levels from lowest to highest; holding one implies holding those before it.
    #[serde(default = "default_levels")]
    pub levels: Vec<String>,
    /// Email → level.
    #[serde(default)]
    pub users: BTreeMap<String, String>,
    /// Optional TOML file with a `[users]` table, merged over `users`.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Where levels come from: `static` (the `users` table, the default) or `ldap` (the
    /// directory of `[permissions.ldap]`, with `users` layered over it for accounts the
    /// directory does not hold).
    #[serde(default)]
    pub source: PermissionSourceKind,
    /// The directory, for `source = "ldap"`.
    #[serde(default)]
    pub ldap: Option<LdapConfig>,
}

impl Default for PermissionsConfig {
    fn default() -> Self {
        PermissionsConfig {
            levels: default_levels(),
            users: BTreeMap::new(),
            file: None,
            source: PermissionSourceKind::Static,
            ldap: None,
        }
    }
}

/// Where levels come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PermissionSourceKind {
    /// The `users` table (and its file).
    #[default]
    Static,
    /// An LDAP directory.
    Ldap,
}

/// How a person's groups are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupLookup {
    /// The person's `memberOf` attribute (OpenLDAP's memberof overlay, Active Directory).
    #[default]
    MemberOf,
    /// A search of groups naming the person in `member`/`uniqueMember`, then the groups
    /// naming those (nested groups), up to five levels.
    Search,
}

/// `[permissions.ldap]`: the directory levels come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS (default false).
    #[serde(default)]
    pub starttls: bool,
    /// PEM file of the CA certificates to trust for `ldaps://` and StartTLS (default: the
    /// system's).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The DN Autoland binds as.
    pub bind_dn: String,
    /// Environment variable holding the bind password.
    #[serde(default)]
    pub bind_password_env: Option<String>,
    /// File holding the bind password.
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// Where people are searched (subtree).
    pub base_dn: String,
    /// Where groups are searched (`group_lookup = "search"`; default `base_dn`).
    #[serde(default)]
    pub group_base_dn: Option<String>,
    /// The attribute holding a person's email (default `mail`).
    #[serde(default = "default_mail_attribute")]
    pub mail_attribute: String,
    /// A second attribute that may hold the address people use in Bugzilla (Mozilla's
    /// directory kept the Bugzilla login in its own attribute), e.g. `bugzillaEmail`.
    #[serde(default)]
    pub login_attribute: Option<String>,
    /// `memberof` (default) or `search`.
    #[serde(default)]
    pub group_lookup: GroupLookup,
    /// Group → level: a group's full DN, or its `cn`.
    pub groups: BTreeMap<String, String>,
    /// Connect, bind and each search time out after this (default 5).
    #[serde(default = "default_ldap_timeout")]
    pub timeout_seconds: u64,
    /// How long a person found with a level is remembered (default 300).
    #[serde(default = "default_ldap_cache")]
    pub cache_seconds: u64,
    /// How long "not found" or "no level" is remembered (default 60).
    #[serde(default = "default_ldap_negative_cache")]
    pub negative_cache_seconds: u64,
    /// How often the directory module binds to show whether the directory answers
    /// (default 30).
    #[serde(default = "default_ldap_health")]
    pub health_seconds: u64,
}

fn default_mail_attribute() -> String {
    "mail".to_owned()
}
fn default_ldap_timeout() -> u64 {
    5
}
fn default_ldap_cache() -> u64 {
    300
}
fn default_ldap_negative_cache() -> u64 {
    60
}
fn default_ldap_health() -> u64 {
    30
}

impl LdapConfig {
    /// The level a group gives, by its DN or its `cn` (case-insensitive).
    pub fn mapped_level(&self, group_dn: &str) -> Option<&str> {
        let dn = group_dn.trim().to_lowercase();
        let cn = dn
            .split(',')
            .next()
            .and_then(|rdn| rdn.strip_prefix("cn="))
            .map(str::trim);
        self.groups.iter().find_map(|(key, level)| {
            let key = key.trim().to_lowercase();
            let hit = if key.contains('=') {
                key.replace(", ", ",") == dn.replace(", ", ",")
            } else {
                Some(key.as_str()) == cn
            };
            hit.then_some(level.as_str())
        })
    }

    /// The bind password, from its environment variable or file.
    pub fn bind_password(&self) -> Result<String, ConfigError> {
        read_secret(
            "permissions.ldap",
            "bind_password_env",
            "bind_password_file",
            self.bind_password_env.as_deref(),
            self.bind_password_file.as_deref(),
        )
    }
}

/// Timeouts and intervals.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsConfig {
    /// Any single git command (seconds).
    pub vcs_command_seconds: u64,
    /// How long a claim on a request lasts without renewal (seconds).
    pub lease_seconds: u64,
    /// How often idle modules look for work (milliseconds).
    pub poll_interval_ms: u64,
    /// How long a request may wait for try results before failing as timed out (seconds).
    pub try_results_seconds: u64,
    /// How often tree status URLs are read (seconds).
    pub tree_status_seconds: u64,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        TimeoutsConfig {
            vcs_command_seconds: 600,
            lease_seconds: 60,
            poll_interval_ms: 500,
            try_results_seconds: 6 * 3600,
            tree_status_seconds: 60,
        }
    }
}

/// The pusher modules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PusherConfig {
    /// How many requests are worked on at once.
    pub concurrency: usize,
    /// Push attempts on one destination when it keeps moving, before failing.
    pub push_attempts: u32,
    /// First backoff between push attempts (milliseconds); doubles each time.
    pub push_backoff_ms: u64,
    /// Attempts at a stage after transient errors (network, VCS host down) before failing.
    pub max_transient_attempts: i64,
    /// Built-in CI runners in this process (each runs one CI run at a time).
    pub ci_runners: usize,
}

impl Default for PusherConfig {
    fn default() -> Self {
        PusherConfig {
            concurrency: 2,
            ci_runners: 1,
            push_attempts: 5,
            push_backoff_ms: 500,
            max_transient_attempts: 8,
        }
    }
}

/// Limits on what the API accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body (bytes).
    pub max_body_bytes: usize,
    /// Largest single patch (bytes).
    pub max_patch_bytes: usize,
    /// Most patches in one request.
    pub max_patches: usize,
    /// Most files one patch may touch.
    pub max_files_per_patch: usize,
    /// Most write calls (POST and the like) one token may make per minute, in bursts of
    /// up to as many; more get 429 with `Retry-After` (0: no limit).
    pub writes_per_minute: u32,
    /// Service tokens (`service = true` or `"bugs"`: a review tool, the Bugzilla
    /// extension, speaking for many people) are not limited.
    pub unlimited_service_tokens: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 16 * 1024 * 1024,
            max_patch_bytes: 5 * 1024 * 1024,
            max_patches: 100,
            max_files_per_patch: 2000,
            writes_per_minute: 120,
            unlimited_service_tokens: false,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the web server listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where working copies, CI checkouts and logs live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; default: `autoland.db` in the data dir.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Name of this process in heartbeats and leases; default `host:pid`.
    #[serde(default)]
    pub instance_name: Option<String>,
    /// On PostgreSQL, wake other processes with LISTEN/NOTIFY when there is new work.
    /// Turn off behind a transaction-pooling PgBouncer (where LISTEN does not work):
    /// processes then find work at their poll interval.
    #[serde(default = "default_true")]
    pub listen_notify: bool,
    /// Identity used as committer (authors are the patch authors).
    #[serde(default = "default_committer")]
    pub committer: String,
    /// Repositories.
    #[serde(default)]
    pub repositories: Vec<RepoConfig>,
    /// API tokens.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Permission levels.
    #[serde(default)]
    pub permissions: PermissionsConfig,
    /// Pushers.
    #[serde(default)]
    pub pusher: PusherConfig,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// Limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Bugzilla, if requests come from bugs.
    #[serde(default)]
    pub bugzilla: Option<BugzillaConfig>,
    /// Base URL people reach this server at, for links in bug comments
    /// (default `http://<listen>`).
    #[serde(default)]
    pub public_url: Option<String>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("autoland-data")
}
fn default_ci_timeout() -> u64 {
    1800
}
fn default_committer() -> String {
    "Autoland <autoland@localhost>".to_owned()
}
fn default_levels() -> Vec<String> {
    vec![
        "scm_level_1".to_owned(),
        "scm_level_2".to_owned(),
        "scm_level_3".to_owned(),
    ]
}

impl Default for Config {
    fn default() -> Self {
        // An empty document takes every default; this cannot fail.
        toml::from_str("").unwrap_or_else(|_| unreachable!("empty config parses"))
    }
}

/// A token as the server holds it: only the hash of the secret.
#[derive(Debug, Clone)]
pub struct TokenEntry {
    /// Label.
    pub name: String,
    /// Identity.
    pub user: String,
    /// SHA-256 of the secret.
    pub hash: [u8; 32],
    /// What it may do.
    pub scope: Scope,
    /// Whom it may act for.
    pub service: Service,
    /// When it stops working (ms since the epoch).
    pub expires_at: Option<i64>,
}

/// A new random token secret.
pub fn new_token() -> String {
    let bytes: [u8; 24] = rand::random();
    format!("al_{}", hex::encode(bytes))
}

/// Checks a try repository's CI settings: the table its `ci` needs, and only that one.
fn validate_ci(repo: &RepoConfig) -> Result<(), ConfigError> {
    let invalid = |m: String| Err(ConfigError::Invalid(m));
    let name = &repo.name;
    let tables = [
        (CiKind::Buildbot, repo.buildbot.is_some()),
        (CiKind::Treeherder, repo.treeherder.is_some()),
        (CiKind::Webhook, repo.webhook.is_some()),
    ];
    for (kind, present) in tables {
        if present && kind != repo.ci {
            return invalid(format!(
                "try repository `{name}` has a `[{}]` table but `ci = \"{}\"`",
                kind.as_str(),
                repo.ci.as_str()
            ));
        }
    }
    let http = |what: &str, url: &str| {
        if is_http(url) {
            Ok(())
        } else {
            invalid(format!(
                "try repository `{name}`: {what} `{url}` must start with http:// or https://"
            ))
        }
    };
    match repo.ci {
        CiKind::Local => {
            if repo.ci_command.is_none() {
                return invalid(format!(
                    "try repository `{name}` needs `ci_command` (the built-in CI runner runs it), or another `ci`"
                ));
            }
        }
        CiKind::Buildbot => {
            let Some(b) = &repo.buildbot else {
                return invalid(format!(
                    "try repository `{name}` has `ci = \"buildbot\"` but no `[repositories.buildbot]` table (url, builders)"
                ));
            };
            http("buildbot.url", &b.url)?;
            if b.builders.is_empty() || b.builders.iter().any(|x| x.trim().is_empty()) {
                return invalid(format!(
                    "try repository `{name}`: buildbot.builders must list at least one builder, none empty"
                ));
            }
            let unique: HashSet<&String> = b.builders.iter().collect();
            if unique.len() != b.builders.len() {
                return invalid(format!(
                    "try repository `{name}`: buildbot.builders lists a builder twice"
                ));
            }
            if b.poll_ms == 0 || b.timeout_seconds == 0 {
                return invalid(format!(
                    "try repository `{name}`: buildbot.poll_ms and buildbot.timeout_seconds must be positive"
                ));
            }
        }
        CiKind::Treeherder => {
            let Some(t) = &repo.treeherder else {
                return invalid(format!(
                    "try repository `{name}` has `ci = \"treeherder\"` but no `[repositories.treeherder]` table (url, project)"
                ));
            };
            http("treeherder.url", &t.url)?;
            if t.project.is_empty()
                || !t
                    .project
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            {
                return invalid(format!(
                    "try repository `{name}`: treeherder.project `{}` must be a plain name",
                    t.project
                ));
            }
            if t.poll_ms == 0 || t.timeout_seconds == 0 || t.complete_within_seconds == 0 {
                return invalid(format!(
                    "try repository `{name}`: treeherder.poll_ms, timeout_seconds and complete_within_seconds must be positive"
                ));
            }
        }
        CiKind::Webhook => {
            let Some(w) = &repo.webhook else {
                return invalid(format!(
                    "try repository `{name}` has `ci = \"webhook\"` but no `[repositories.webhook]` table (secret_env or secret_file)"
                ));
            };
            w.secret(name)?;
        }
    }
    Ok(())
}

/// Hex SHA-256 of a token secret.
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        // Relative paths in the file are relative to the file.
        if let Some(dir) = path.parent() {
            if config.data_dir.is_relative() {
                config.data_dir = dir.join(&config.data_dir);
            }
            if let Some(file) = config
                .bugzilla
                .as_mut()
                .and_then(|b| b.api_key_file.as_mut())
                && file.is_relative()
            {
                *file = dir.join(&*file);
            }
            for repo in &mut config.repositories {
                if let Some(file) = repo.webhook.as_mut().and_then(|w| w.secret_file.as_mut())
                    && file.is_relative()
                {
                    *file = dir.join(&*file);
                }
            }
            if let Some(file) = &config.permissions.file
                && file.is_relative()
            {
                config.permissions.file = Some(dir.join(file));
            }
        }
        config.load_permissions_file()?;
        config.validate()?;
        Ok(config)
    }

    fn load_permissions_file(&mut self) -> Result<(), ConfigError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct UsersFile {
            #[serde(default)]
            users: BTreeMap<String, String>,
        }
        let Some(path) = self.permissions.file.clone() else {
            return Ok(());
        };
        let text = std::fs::read_to_string(&path).map_err(|error| ConfigError::Read {
            path: path.clone(),
            error,
        })?;
        let file: UsersFile = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path,
            message: e.to_string(),
        })?;
        self.permissions.users.extend(file.users);
        Ok(())
    }

    /// Checks `[permissions.ldap]` against `permissions.source`, and that its bind
    /// password can be read.
    fn validate_ldap(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let ldap = match (self.permissions.source, &self.permissions.ldap) {
            (PermissionSourceKind::Static, None) => return Ok(()),
            (PermissionSourceKind::Static, Some(_)) => {
                return invalid(
                    "permissions.ldap is set but permissions.source is not \"ldap\": set \
                     source = \"ldap\" to use the directory, or remove the table"
                        .to_owned(),
                );
            }
            (PermissionSourceKind::Ldap, None) => {
                return invalid(
                    "permissions.source = \"ldap\" needs a [permissions.ldap] table (url, bind_dn, \
                     bind_password_env or bind_password_file, base_dn, groups)"
                        .to_owned(),
                );
            }
            (PermissionSourceKind::Ldap, Some(ldap)) => ldap,
        };
        let ldaps = ldap.url.starts_with("ldaps://");
        if !ldaps && !ldap.url.starts_with("ldap://") {
            return invalid(format!(
                "permissions.ldap.url `{}` must start with ldap:// or ldaps://",
                ldap.url
            ));
        }
        if ldaps && ldap.starttls {
            return invalid(
                "permissions.ldap: starttls upgrades an ldap:// connection; ldaps:// is TLS already \
                 (drop starttls, or use ldap://)"
                    .to_owned(),
            );
        }
        if ldap.groups.is_empty() {
            return invalid(
                "permissions.ldap.groups maps no group to a level: nobody could land; map at \
                 least one group (its DN or cn) to a level"
                    .to_owned(),
            );
        }
        for (group, level) in &ldap.groups {
            if !self.permissions.levels.contains(level) {
                return invalid(format!(
                    "permissions.ldap.groups: `{group}` maps to `{level}`, which is not in \
                     permissions.levels {:?}",
                    self.permissions.levels
                ));
            }
        }
        for (what, value) in [
            ("bind_dn", &ldap.bind_dn),
            ("base_dn", &ldap.base_dn),
            ("mail_attribute", &ldap.mail_attribute),
        ] {
            if value.trim().is_empty() {
                return invalid(format!("permissions.ldap.{what} is empty"));
            }
        }
        let attribute_ok =
            |a: &str| !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !attribute_ok(&ldap.mail_attribute)
            || ldap
                .login_attribute
                .as_deref()
                .is_some_and(|a| !attribute_ok(a))
        {
            return invalid(
                "permissions.ldap: mail_attribute and login_attribute must be attribute names \
                 (letters, digits and '-', such as mail or bugzillaEmail)"
                    .to_owned(),
            );
        }
        ldap.bind_password()?;
        Ok(())
    }

    /// Checks that the values fit together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let mut names = HashSet::new();
        for repo in &self.repositories {
            if repo.name.is_empty()
                || !repo
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            {
                return invalid(format!(
                    "repository name `{}` must be non-empty and use only letters, digits, '-', '_', '.'",
                    repo.name
                ));
            }
            if !names.insert(repo.name.as_str()) {
                return invalid(format!("repository `{}` is configured twice", repo.name));
            }
            if !self.permissions.levels.contains(&repo.level) {
                return invalid(format!(
                    "repository `{}` requires level `{}`, which is not in permissions.levels {:?}",
                    repo.name, repo.level, self.permissions.levels
                ));
            }
            let branch = repo.branch();
            if branch.is_empty()
                || branch.starts_with('-')
                || branch.contains("..")
                || branch.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                return invalid(format!(
                    "repository `{}`: branch `{}` is not a valid branch name",
                    repo.name, branch
                ));
            }
            if let Some(url) = &repo.tree_status_url
                && !is_http(url)
            {
                return invalid(format!(
                    "repository `{}`: tree_status_url `{url}` must start with http:// or https://",
                    repo.name
                ));
            }
            if repo.lanes_by_files && !repo.lanes.is_empty() {
                return invalid(format!(
                    "repository `{}`: set `lanes` or `lanes_by_files`, not both",
                    repo.name
                ));
            }
            if repo.gate != GateMode::Off || !repo.lanes.is_empty() || repo.lanes_by_files {
                if repo.is_try {
                    return invalid(format!(
                        "try repository `{}`: `gate` and `lanes` apply to final repositories",
                        repo.name
                    ));
                }
                if repo.max_window == 0 || repo.batch_size == 0 {
                    return invalid(format!(
                        "repository `{}`: max_window and batch_size must be at least 1",
                        repo.name
                    ));
                }
                let lanes: Vec<(String, Vec<String>)> = repo
                    .lanes
                    .iter()
                    .map(|(name, globs)| (name.clone(), globs.clone()))
                    .collect();
                if let Err(e) = crate::gate::Router::new(&lanes) {
                    return invalid(format!(
                        "repository `{}`: lane `{}`: {}",
                        repo.name, e.lane, e.message
                    ));
                }
            }
            if repo.is_try {
                validate_ci(repo)?;
                if repo.try_repo.is_some() {
                    return invalid(format!(
                        "try repository `{}` cannot itself name a `try_repo`",
                        repo.name
                    ));
                }
            } else if repo.post_land_ci {
                if repo.base.is_some() {
                    return invalid(format!(
                        "repository `{}`: `base` only applies to try repositories",
                        repo.name
                    ));
                }
                validate_ci(repo)?;
            } else if repo.close_on_red {
                return invalid(format!(
                    "repository `{}`: `close_on_red` needs `post_land_ci = true` (a red tip is \
                     what its post-landing CI finds)",
                    repo.name
                ));
            } else if repo.base.is_some()
                || repo.ci_command.is_some()
                || repo.ci != CiKind::Local
                || repo.buildbot.is_some()
                || repo.treeherder.is_some()
                || repo.webhook.is_some()
            {
                return invalid(format!(
                    "repository `{}`: `base`, `ci`, `ci_command` and the CI tables only apply to try repositories (try = true), or with `post_land_ci = true`",
                    repo.name
                ));
            }
        }
        for repo in &self.repositories {
            if let Some(base) = &repo.base {
                match self.repo(base) {
                    Some(b) if !b.is_try => {}
                    _ => {
                        return invalid(format!(
                            "try repository `{}` has base `{base}`, which is not a configured non-try repository",
                            repo.name
                        ));
                    }
                }
            }
            if !repo.is_try && self.try_repo_for(repo).is_none() {
                return invalid(format!(
                    "repository `{}` has no try repository: set `try_repo`, or configure exactly one repository with try = true",
                    repo.name
                ));
            }
        }
        for (user, level) in &self.permissions.users {
            if !self.permissions.levels.contains(level) {
                return invalid(format!(
                    "user `{user}` has level `{level}`, which is not in permissions.levels"
                ));
            }
        }
        for token in &self.tokens {
            if let Some(expires) = &token.expires
                && let Err(why) = expires.millis()
            {
                return invalid(format!("token `{}`: expires: {why}", token.name));
            }
            match (&token.sha256, &token.env) {
                (Some(h), None) => {
                    if h.len() != 64 || hex::decode(h).is_err() {
                        return invalid(format!(
                            "token `{}`: sha256 must be 64 hex digits (see `autoland token hash`)",
                            token.name
                        ));
                    }
                }
                (None, Some(var)) => {
                    if std::env::var(var).map(|v| v.is_empty()).unwrap_or(true) {
                        return invalid(format!(
                            "token `{}`: environment variable `{var}` is not set or empty",
                            token.name
                        ));
                    }
                }
                _ => {
                    return invalid(format!(
                        "token `{}` needs exactly one of `sha256` and `env`",
                        token.name
                    ));
                }
            }
        }
        if let Some(bugzilla) = &self.bugzilla {
            if !is_http(&bugzilla.url) {
                return invalid(format!(
                    "bugzilla.url `{}` must start with http:// or https://",
                    bugzilla.url
                ));
            }
            bugzilla.api_key()?;
            if bugzilla.poll_interval_seconds == 0 || bugzilla.timeout_seconds == 0 {
                return invalid(
                    "bugzilla.poll_interval_seconds and bugzilla.timeout_seconds must be positive"
                        .to_owned(),
                );
            }
        }
        if self.pusher.concurrency == 0 {
            return invalid("pusher.concurrency must be at least 1".to_owned());
        }
        self.validate_ldap()?;
        if self.pusher.ci_runners == 0 {
            return invalid("pusher.ci_runners must be at least 1".to_owned());
        }
        if self.timeouts.lease_seconds == 0 || self.timeouts.poll_interval_ms == 0 {
            return invalid(
                "timeouts.lease_seconds and timeouts.poll_interval_ms must be positive".to_owned(),
            );
        }
        Ok(())
    }

    /// The database URL, defaulting to a SQLite file in the data dir.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("autoland.db").display()
            ),
        }
    }

    /// A repository by name.
    pub fn repo(&self, name: &str) -> Option<&RepoConfig> {
        self.repositories.iter().find(|r| r.name == name)
    }

    /// Whether `name` is a destination with a landing gate.
    pub fn is_gated(&self, name: &str) -> bool {
        self.repo(name).is_some_and(|r| r.gate != GateMode::Off)
    }

    /// The try repository that tests `repo`'s landings.
    pub fn try_repo_for(&self, repo: &RepoConfig) -> Option<&RepoConfig> {
        match &repo.try_repo {
            Some(name) => self.repo(name).filter(|r| r.is_try),
            None => {
                let mut tries = self.repositories.iter().filter(|r| r.is_try);
                match (tries.next(), tries.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        }
    }

    /// Tokens with their hashes resolved (secrets from the environment are hashed here).
    pub fn token_entries(&self) -> Vec<TokenEntry> {
        self.tokens
            .iter()
            .filter_map(|t| {
                let hex_hash = match (&t.sha256, &t.env) {
                    (Some(h), _) => h.to_ascii_lowercase(),
                    (None, Some(var)) => hash_token(&std::env::var(var).ok()?),
                    (None, None) => return None,
                };
                let bytes = hex::decode(hex_hash).ok()?;
                let hash: [u8; 32] = bytes.try_into().ok()?;
                Some(TokenEntry {
                    name: t.name.clone(),
                    user: t.user.clone(),
                    hash,
                    service: t.service,
                    scope: t.scope,
                    expires_at: t.expires.as_ref().and_then(|e| e.millis().ok()),
                })
            })
            .collect()
    }

    /// Where people read a CI run's log: `GET /api/ci/runs/{run}/log` under the public
    /// URL (never the file's path on the server).
    pub fn run_log_url(&self, run: i64) -> String {
        format!("{}/api/ci/runs/{run}/log", self.public_url())
    }

    /// Base URL for links to this server.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }

    /// Timeout of one VCS command.
    pub fn vcs_timeout(&self) -> Duration {
        Duration::from_secs(self.timeouts.vcs_command_seconds)
    }

    /// Lease length.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.timeouts.lease_seconds)
    }

    /// Poll interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.timeouts.poll_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "t.toml".into(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    const GOOD: &str = r#"
        [[repositories]]
        name = "central"
        kind = "git"
        pull_url = "/srv/central.git"
        level = "scm_level_3"

        [[repositories]]
        name = "try"
        kind = "git"
        pull_url = "/srv/try.git"
        level = "scm_level_1"
        try = true
        base = "central"
        ci_command = "make test"
    "#;

    #[test]
    fn the_example_file_is_valid() {
        // The example names an environment variable for one token; swap in a hash so the
        // test does not depend on the environment.
        let text = include_str!("../autoland.example.toml").replace(
            "env = \"AUTOLAND_BUGZILLA_TOKEN\"",
            &format!("sha256 = \"{}\"", hash_token("x")),
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.repositories.len(), 2);
        assert_eq!(config.tokens.len(), 2);
        assert_eq!(config.pusher.concurrency, 2);
    }

    #[test]
    fn defaults_are_embedded() {
        let config = Config::default();
        assert_eq!(config.pusher.concurrency, 2);
        assert_eq!(config.listen.port(), 8080);
        assert!(config.database_url().starts_with("sqlite://"));
    }

    #[test]
    fn a_good_file_resolves_try_repos() {
        let config = parse(GOOD).unwrap();
        let central = config.repo("central").unwrap();
        assert_eq!(config.try_repo_for(central).unwrap().name, "try");
        assert_eq!(central.push_url(), "/srv/central.git");
    }

    #[test]
    fn unknown_fields_are_errors_with_a_line() {
        let err = parse("listen = \"127.0.0.1:1\"\npushers = 3\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("pushers"), "{text}");
        assert!(text.contains("line 2"), "{text}");
    }

    #[test]
    fn inconsistent_values_are_named() {
        let err = parse(&GOOD.replace("scm_level_3", "level_9")).unwrap_err();
        assert!(err.to_string().contains("level_9"), "{err}");
        let err = parse(&GOOD.replace("ci_command = \"make test\"", "")).unwrap_err();
        assert!(err.to_string().contains("ci_command"), "{err}");
        let err = parse(&GOOD.replace("base = \"central\"", "base = \"nowhere\"")).unwrap_err();
        assert!(err.to_string().contains("nowhere"), "{err}");
        let err = parse(&GOOD.replace("name = \"try\"", "name = \"central\"")).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[test]
    fn service_tokens_act_for_others_everywhere_or_only_for_bugs() {
        let with = |service: &str| {
            parse(&format!(
                "{GOOD}\n[[tokens]]\nname = \"t\"\nuser = \"a@b\"\nsha256 = \"{}\"\nservice = {service}\n",
                hash_token("s3cret")
            ))
        };
        let service_of = |service: &str| with(service).unwrap().token_entries()[0].service;
        assert_eq!(service_of("true"), Service::Any);
        assert_eq!(service_of("false"), Service::No);
        assert_eq!(service_of("\"bugs\""), Service::Bugs);
        assert!(Service::Bugs.may_act_for_others(true) && !Service::Bugs.may_act_for_others(false));
        assert!(Service::Any.may_act_for_others(false) && !Service::No.may_act_for_others(true));
        let err = with("\"everyone\"").unwrap_err().to_string();
        assert!(
            err.contains("service must be true, false or \"bugs\""),
            "{err}"
        );
    }

    #[test]
    fn tokens_need_a_hash_or_an_env_var() {
        let with_token = format!(
            "{GOOD}\n[[tokens]]\nname = \"t\"\nuser = \"a@b\"\nsha256 = \"{}\"\n",
            hash_token("s3cret")
        );
        let config = parse(&with_token).unwrap();
        let entries = config.token_entries();
        assert_eq!(entries.len(), 1);
        assert_eq!(hex::encode(entries[0].hash), hash_token("s3cret"));
        let err = parse(&format!(
            "{GOOD}\n[[tokens]]\nname = \"t\"\nuser = \"a@b\"\nsha256 = \"xyz\"\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("64 hex"), "{err}");
        let err = parse(&format!(
            "{GOOD}\n[[tokens]]\nname = \"t\"\nuser = \"a@b\"\nenv = \"AUTOLAND_TEST_UNSET_VAR\"\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("AUTOLAND_TEST_UNSET_VAR"), "{err}");
    }

    #[test]
    fn a_try_repository_needs_the_table_of_its_ci_and_only_that() {
        let with = |extra: &str| {
            parse(&GOOD.replace(
                "ci_command = \"make test\"",
                &format!("ci_command = \"make test\"\n{extra}"),
            ))
        };
        let err = with("ci = \"buildbot\"").unwrap_err().to_string();
        assert!(err.contains("no `[repositories.buildbot]` table"), "{err}");
        let err = with(
            "ci = \"webhook\"\n[repositories.treeherder]\nurl = \"http://t\"\nproject = \"try\"",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`[treeherder]` table but `ci = \"webhook\"`"),
            "{err}"
        );
        let err = with(
            "ci = \"buildbot\"\n[repositories.buildbot]\nurl = \"ftp://b\"\nbuilders = [\"a\"]",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("must start with http"), "{err}");
        let err =
            with("ci = \"buildbot\"\n[repositories.buildbot]\nurl = \"http://b\"\nbuilders = []")
                .unwrap_err()
                .to_string();
        assert!(err.contains("at least one builder"), "{err}");
        let err = with(
            "ci = \"webhook\"\n[repositories.webhook]\nsecret_env = \"AUTOLAND_TEST_UNSET_SECRET\"",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("AUTOLAND_TEST_UNSET_SECRET"), "{err}");
        let config = with("ci = \"buildbot\"\n[repositories.buildbot]\nurl = \"http://b:8010\"\nbuilders = [\"a\", \"b\"]").unwrap();
        let rules = config.repo("try").unwrap().retry_rules();
        assert_eq!((rules.failed, rules.infra), (1, 2));
        let local = parse(GOOD).unwrap();
        let rules = local.repo("try").unwrap().retry_rules();
        assert_eq!(
            (rules.failed, rules.infra),
            (0, 0),
            "the built-in runner is unchanged"
        );
        // CI settings on a destination are refused.
        let err = parse(&GOOD.replace(
            "level = \"scm_level_3\"",
            "level = \"scm_level_3\"\nci = \"webhook\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("only apply to try repositories"), "{err}");
    }

    #[test]
    fn gate_settings_are_checked() {
        let central = |extra: &str| {
            parse(&GOOD.replace(
                "level = \"scm_level_3\"",
                &format!("level = \"scm_level_3\"\n{extra}"),
            ))
        };
        let config = central("gate = \"speculative\"").unwrap();
        let repo = config.repo("central").unwrap();
        assert_eq!(
            (repo.gate, repo.max_window, repo.batch_size),
            (GateMode::Speculative, 20, 2)
        );
        assert!(config.is_gated("central") && !config.is_gated("try"));
        assert!(!parse(GOOD).unwrap().is_gated("central"), "off by default");
        let err = central("gate = \"speculative\"\nmax_window = 0")
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 1"), "{err}");
        let err = central("gate = \"serial\"\nlanes = { docs = [\"docs/[\"] }")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lane `docs`") && err.contains("not a glob"),
            "{err}"
        );
        let err = central("gate = \"serial\"\nlanes = { main = [\"x/**\"] }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lane `main`"), "{err}");
        let err = central("gate = \"serial\"\nlanes_by_files = true\nlanes = { a = [\"a/**\"] }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not both"), "{err}");
        let err = central("gate = \"sometimes\"").unwrap_err().to_string();
        assert!(err.contains("sometimes"), "{err}");
        let err = parse(&GOOD.replace("try = true", "try = true\ngate = \"serial\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("apply to final repositories"), "{err}");
    }

    #[test]
    fn ldap_settings_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("pw");
        std::fs::write(&password, "secret\n").unwrap();
        let ldap = |extra: &str| {
            format!(
                "{GOOD}\n[permissions]\nsource = \"ldap\"\n[permissions.ldap]\n\
                 url = \"ldap://127.0.0.1:389\"\nbind_dn = \"cn=autoland,dc=example,dc=com\"\n\
                 bind_password_file = \"{}\"\nbase_dn = \"dc=example,dc=com\"\n{extra}\n",
                password.display()
            )
        };
        let groups = "groups = { scm_level_3 = \"scm_level_3\" }";
        let config = parse(&ldap(groups)).unwrap();
        let l = config.permissions.ldap.as_ref().unwrap();
        assert_eq!(l.bind_password().unwrap(), "secret");
        assert_eq!(
            l.mapped_level("CN=scm_level_3, OU=groups,DC=example,DC=com"),
            Some("scm_level_3")
        );
        assert_eq!(l.mapped_level("cn=other,dc=example,dc=com"), None);
        for (extra, expect) in [
            ("groups = {}", "maps no group"),
            (
                "groups = { g = \"scm_level_9\" }",
                "not in permissions.levels",
            ),
            (
                &format!("{groups}\nstarttls = true\nurl = \"ldaps://h\""),
                "duplicate key",
            ),
            (
                &format!("{groups}\nmail_attribute = \"mail)(uid=*\""),
                "attribute names",
            ),
        ] {
            let err = parse(&ldap(extra)).unwrap_err().to_string();
            assert!(err.contains(expect), "{extra}: {err}");
        }
        let text = ldap(groups).replace("ldap://127.0.0.1:389", "http://x");
        assert!(parse(&text).unwrap_err().to_string().contains("ldap://"));
        let text = ldap(groups)
            .replace("\nurl = ", "\nstarttls = true\nurl = ")
            .replace("ldap://", "ldaps://");
        assert!(
            parse(&text)
                .unwrap_err()
                .to_string()
                .contains("ldaps:// is TLS already")
        );
        let text = ldap(groups).replace(&password.display().to_string(), "/nonexistent/pw");
        assert!(
            parse(&text)
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/pw")
        );
        let text = ldap(groups).replace("source = \"ldap\"", "");
        assert!(
            parse(&text)
                .unwrap_err()
                .to_string()
                .contains("source is not")
        );
    }

    #[test]
    fn token_expiry_takes_dates_and_times() {
        let at = |text: &str| Expiry::Text(text.to_owned()).millis();
        assert_eq!(at("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(at("1970-01-01T00:00:01Z").unwrap(), 1000);
        assert_eq!(at("1970-01-01T01:00:00+01:00").unwrap(), 0);
        assert!(at("next week").unwrap_err().contains("neither a date"));
        let text = format!(
            "{GOOD}\n[[tokens]]\nname = \"t\"\nuser = \"a@example.com\"\nsha256 = \"{}\"\nexpires = \"soon\"\n",
            hash_token("x")
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("token `t`: expires"), "{err}");
    }
}
