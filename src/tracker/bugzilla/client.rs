//! A Bugzilla 5.x REST client that works with what real servers do (see
//! `shared/bugzilla-notes.md`): the API key as a parameter (5.0/5.2) or a header
//! (5.3/BMO), 0/1 or booleans, numeric or string error codes. The key never appears in a
//! log line, an error message or the status page: every error is built without the URL.

use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::{Value, json};

use crate::config::AuthMode;

/// What went wrong talking to Bugzilla, classified for what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BugzillaError {
    /// Code 101: the bug does not exist.
    #[error("bug {0} does not exist")]
    BugNotFound(i64),
    /// Code 102 and friends: not allowed to see it (a private bug or attachment).
    #[error("Autoland's Bugzilla account may not access {0} (private or restricted)")]
    AccessDenied(String),
    /// Code 306: the API key is invalid. Operators must fix the configuration.
    #[error("Bugzilla rejects Autoland's API key (code 306): check bugzilla.api_key_env")]
    InvalidKey,
    /// Code 410 and friends: the request ran as anonymous.
    #[error("Bugzilla ran the call as anonymous (code {0}): the API key was not accepted")]
    NotLoggedIn(i64),
    /// Any other documented error.
    #[error("Bugzilla error {code} (HTTP {status}): {message}")]
    Api {
        /// Bugzilla's error code.
        code: i64,
        /// HTTP status.
        status: u16,
        /// Bugzilla's message.
        message: String,
    },
    /// 5xx, or a non-JSON answer.
    #[error("Bugzilla answered HTTP {status}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Server {
        /// HTTP status.
        status: u16,
        /// A short excerpt.
        detail: String,
    },
    /// Connection refused, timeout, TLS...
    #[error("cannot reach Bugzilla: {0}")]
    Transport(String),
    /// A 2xx answer that is not what the API documents.
    #[error("unexpected answer from Bugzilla: {0}")]
    Decode(String),
}

impl BugzillaError {
    /// Worth retrying with backoff (the server or the network is the problem).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BugzillaError::Server { .. } | BugzillaError::Transport(_)
        )
    }

    /// The configuration is wrong: the module is degraded until an operator fixes it.
    pub fn is_credentials(&self) -> bool {
        matches!(
            self,
            BugzillaError::InvalidKey | BugzillaError::NotLoggedIn(_)
        )
    }
}

/// Accepts `true`/`false`, `0`/`1` and `"0"`/`"1"`.
fn flexible_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Bool(b) => Ok(b),
        Value::Number(n) => Ok(n.as_i64().unwrap_or(0) != 0),
        Value::String(s) => Ok(s == "1" || s.eq_ignore_ascii_case("true")),
        Value::Null => Ok(false),
        other => Err(de::Error::custom(format!(
            "expected a boolean, got {other}"
        ))),
    }
}

fn flexible_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The fields of a bug Autoland uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Bug {
    /// Bug number.
    pub id: i64,
    /// Summary (title).
    #[serde(default)]
    pub summary: String,
    /// Status whiteboard.
    #[serde(default)]
    pub whiteboard: String,
    /// ISO 8601 UTC.
    #[serde(default)]
    pub last_change_time: String,
    /// The groups the bug is restricted to (empty: every user may see it).
    #[serde(default)]
    pub groups: Vec<String>,
}

/// A Bugzilla account, as `whoami` or `User.get` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The login (an email address).
    pub login: String,
    /// The real name, possibly empty.
    pub real_name: String,
}

/// A flag on an attachment (review, feedback).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Flag {
    /// `review`, `feedback`, ...
    pub name: String,
    /// `+`, `-`, `?`.
    pub status: String,
    /// Who set it.
    #[serde(default)]
    pub setter: String,
}

/// An attachment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Attachment {
    /// Attachment id.
    pub id: i64,
    /// Its bug.
    pub bug_id: i64,
    /// File name.
    #[serde(default)]
    pub file_name: String,
    /// Description.
    #[serde(default)]
    pub summary: String,
    /// MIME type.
    #[serde(default)]
    pub content_type: String,
    /// Marked as a patch.
    #[serde(deserialize_with = "flexible_bool", default)]
    pub is_patch: bool,
    /// Obsolete.
    #[serde(deserialize_with = "flexible_bool", default)]
    pub is_obsolete: bool,
    /// Private.
    #[serde(deserialize_with = "flexible_bool", default)]
    pub is_private: bool,
    /// Who attached it.
    #[serde(default)]
    pub creator: String,
    /// ISO 8601 UTC.
    #[serde(default)]
    pub creation_time: String,
    /// Base64 data, when asked for.
    #[serde(default)]
    pub data: Option<String>,
    /// Flags.
    #[serde(default)]
    pub flags: Vec<Flag>,
}

/// A comment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BugComment {
    /// Comment id.
    pub id: i64,
    /// Text.
    #[serde(default)]
    pub text: String,
    /// Author's login.
    #[serde(default)]
    pub creator: String,
}

/// One change in a bug's history.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HistoryChange {
    /// Field changed (`whiteboard`).
    pub field_name: String,
    /// Old text removed.
    #[serde(default)]
    pub removed: String,
    /// New text added.
    #[serde(default)]
    pub added: String,
}

/// A set of changes by one person at one time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HistoryEntry {
    /// When (ISO 8601).
    pub when: String,
    /// Who.
    pub who: String,
    /// What.
    pub changes: Vec<HistoryChange>,
}

/// A Bugzilla REST client.
#[derive(Clone)]
pub struct BugzillaClient {
    http: reqwest::Client,
    base: String,
    api_key: String,
    auth: AuthMode,
    detected: std::sync::Arc<tokio::sync::OnceCell<AuthMode>>,
}

impl std::fmt::Debug for BugzillaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BugzillaClient")
            .field("base", &self.base)
            .field("api_key", &"REDACTED")
            .field("auth", &self.auth)
            .finish()
    }
}

impl BugzillaClient {
    /// A client of the Bugzilla at `base` (e.g. `https://bugzilla.example.com`).
    pub fn new(
        base: &str,
        api_key: &str,
        auth: AuthMode,
        timeout: Duration,
        instance: &str,
    ) -> Result<BugzillaClient, BugzillaError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // Names the process, so a Bugzilla admin can tell several apart.
            .user_agent(format!(
                "autoland/{} ({instance})",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| BugzillaError::Transport(e.without_url().to_string()))?;
        Ok(BugzillaClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
            auth,
            detected: Default::default(),
        })
    }

    /// The auth mode in use: the configured one, or for [`AuthMode::Auto`] the one
    /// `GET /rest/version` implies (5.3 and later take the header, earlier versions only
    /// the parameter), asked once.
    pub async fn auth(&self) -> Result<AuthMode, BugzillaError> {
        if self.auth != AuthMode::Auto {
            return Ok(self.auth);
        }
        self.detected
            .get_or_try_init(|| async {
                let version = self.version().await?;
                Ok(if version_at_least(&version, 5, 3) {
                    AuthMode::Header
                } else {
                    AuthMode::Param
                })
            })
            .await
            .copied()
    }

    /// `GET /rest/version`.
    pub async fn version(&self) -> Result<String, BugzillaError> {
        let request = self.http.get(format!("{}/rest/version", self.base));
        let v = self.execute(request, "/rest/version").await?;
        v["version"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| BugzillaError::Decode("no `version` in /rest/version".to_owned()))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<Value, BugzillaError> {
        let mut query: Vec<(&str, String)> = query.to_vec();
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        let mut body = body;
        {
            match self.auth().await? {
                AuthMode::Header => request = request.header("X-BUGZILLA-API-KEY", &self.api_key),
                AuthMode::Param | AuthMode::Auto => {
                    // The documented place for writes is the body; reads take the query.
                    match body.as_mut().and_then(Value::as_object_mut) {
                        Some(obj) => {
                            obj.insert("api_key".to_owned(), json!(self.api_key));
                        }
                        None => query.push(("api_key", self.api_key.clone())),
                    }
                }
            }
        }
        if !query.is_empty() {
            request = request.query(&query);
        }
        if let Some(body) = &body {
            request = request.json(body);
        }
        self.execute(request, path).await
    }

    async fn execute(
        &self,
        request: reqwest::RequestBuilder,
        path: &str,
    ) -> Result<Value, BugzillaError> {
        let response = request
            .send()
            .await
            .map_err(|e| BugzillaError::Transport(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| BugzillaError::Transport(e.without_url().to_string()))?;
        let parsed: Result<Value, _> = serde_json::from_str(&text);
        match parsed {
            Ok(value) if value.get("error").and_then(Value::as_bool) == Some(true) => {
                Err(self.api_error(status, &value, path))
            }
            Ok(value) if (200..300).contains(&status) => Ok(value),
            Ok(value) if status >= 500 => Err(BugzillaError::Server {
                status,
                detail: excerpt(&value.to_string()),
            }),
            Ok(value) => Err(BugzillaError::Api {
                code: 0,
                status,
                message: excerpt(&value.to_string()),
            }),
            Err(_) if status >= 500 || status == 429 || status == 408 => {
                Err(BugzillaError::Server {
                    status,
                    detail: excerpt(&text),
                })
            }
            Err(_) => Err(BugzillaError::Decode(format!(
                "HTTP {status} with a body that is not JSON: {}",
                excerpt(&text)
            ))),
        }
    }

    fn api_error(&self, status: u16, value: &Value, path: &str) -> BugzillaError {
        let code = value.get("code").and_then(flexible_i64).unwrap_or(0);
        let message = value["message"]
            .as_str()
            .unwrap_or("")
            .replace(&self.api_key, "REDACTED");
        match code {
            101 => BugzillaError::BugNotFound(bug_from_path(path).unwrap_or(0)),
            102 | 105 | 113 | 304 => BugzillaError::AccessDenied(format!(
                "{} ({})",
                path.trim_start_matches("/rest/"),
                excerpt(&message)
            )),
            306 => BugzillaError::InvalidKey,
            410 | 300 | 301 | 305 => BugzillaError::NotLoggedIn(code),
            _ if status >= 500 => BugzillaError::Server {
                status,
                detail: format!("code {code}: {}", excerpt(&message)),
            },
            _ => BugzillaError::Api {
                code,
                status,
                message: excerpt(&message),
            },
        }
    }

    /// One search for bugs whose whiteboard contains `[autoland`, changed at or after
    /// `since` (ISO 8601), with only the fields Autoland needs.
    pub async fn search_tagged(&self, since: Option<&str>) -> Result<Vec<Bug>, BugzillaError> {
        let mut query = vec![
            ("f1", "status_whiteboard".to_owned()),
            ("o1", "substring".to_owned()),
            ("v1", "[autoland".to_owned()),
            (
                "include_fields",
                "id,summary,whiteboard,last_change_time".to_owned(),
            ),
        ];
        if let Some(since) = since {
            query.push(("last_change_time", since.to_owned()));
        }
        let v = self
            .call(reqwest::Method::GET, "/rest/bug", &query, None)
            .await?;
        decode(&v["bugs"], "bugs")
    }

    /// The same client acting as the owner of `api_key` (a person signing in), with the
    /// same connection pool and key placement.
    pub fn with_key(&self, api_key: &str) -> BugzillaClient {
        BugzillaClient {
            api_key: api_key.to_owned(),
            ..self.clone()
        }
    }

    /// `GET /rest/whoami` (5.3 and BMO): the account the key belongs to.
    pub async fn whoami(&self) -> Result<Account, BugzillaError> {
        let v = self
            .call(reqwest::Method::GET, "/rest/whoami", &[], None)
            .await?;
        let login = v["login"]
            .as_str()
            .or_else(|| v["name"].as_str())
            .filter(|l| !l.is_empty())
            .ok_or_else(|| BugzillaError::Decode("no `login` in /rest/whoami".to_owned()))?;
        Ok(Account {
            login: login.to_owned(),
            real_name: v["real_name"].as_str().unwrap_or("").to_owned(),
        })
    }

    /// `GET /rest/valid_login?login=` (5.0 and later): whether the key belongs to exactly
    /// `login`.
    pub async fn valid_login(&self, login: &str) -> Result<bool, BugzillaError> {
        let v = self
            .call(
                reqwest::Method::GET,
                "/rest/valid_login",
                &[("login", login.to_owned())],
                None,
            )
            .await?;
        match &v["result"] {
            Value::Bool(b) => Ok(*b),
            Value::Number(n) => Ok(n.as_i64() == Some(1)),
            other => Err(BugzillaError::Decode(format!(
                "/rest/valid_login answered {other}, not a boolean"
            ))),
        }
    }

    /// `GET /rest/user?names=`: the account named `login`.
    pub async fn user(&self, login: &str) -> Result<Account, BugzillaError> {
        let v = self
            .call(
                reqwest::Method::GET,
                "/rest/user",
                &[("names", login.to_owned())],
                None,
            )
            .await?;
        let user = &v["users"][0];
        let name = user["name"]
            .as_str()
            .ok_or_else(|| BugzillaError::Decode("no `users[0].name` in /rest/user".to_owned()))?;
        Ok(Account {
            login: name.to_owned(),
            real_name: user["real_name"].as_str().unwrap_or("").to_owned(),
        })
    }

    /// `GET /rest/bug/{id}`.
    pub async fn bug(&self, id: i64) -> Result<Bug, BugzillaError> {
        let query = [(
            "include_fields",
            "id,summary,whiteboard,last_change_time,groups".to_owned(),
        )];
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/rest/bug/{id}"),
                &query,
                None,
            )
            .await?;
        let bugs: Vec<Bug> = decode(&v["bugs"], "bugs")?;
        bugs.into_iter()
            .next()
            .ok_or(BugzillaError::BugNotFound(id))
    }

    /// A bug's attachments without their data, in creation order.
    pub async fn attachments(&self, bug: i64) -> Result<Vec<Attachment>, BugzillaError> {
        let query = [("exclude_fields", "data".to_owned())];
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/rest/bug/{bug}/attachment"),
                &query,
                None,
            )
            .await?;
        decode(&v["bugs"][bug.to_string()], "attachments")
    }

    /// One attachment with its data.
    pub async fn attachment(&self, id: i64) -> Result<Attachment, BugzillaError> {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/rest/bug/attachment/{id}"),
                &[],
                None,
            )
            .await?;
        // Bugzilla skips unknown ids silently: an empty map means "no such attachment".
        let found = &v["attachments"][id.to_string()];
        if found.is_null() {
            return Err(BugzillaError::Api {
                code: 100,
                status: 200,
                message: format!("attachment {id} does not exist"),
            });
        }
        decode(found, "attachment")
    }

    /// A bug's comments (optionally only those after `new_since`).
    pub async fn comments(
        &self,
        bug: i64,
        new_since: Option<&str>,
    ) -> Result<Vec<BugComment>, BugzillaError> {
        let query: Vec<(&str, String)> = new_since
            .map(|s| ("new_since", s.to_owned()))
            .into_iter()
            .collect();
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/rest/bug/{bug}/comment"),
                &query,
                None,
            )
            .await?;
        decode(&v["bugs"][bug.to_string()]["comments"], "comments")
    }

    /// A bug's change history.
    pub async fn history(&self, bug: i64) -> Result<Vec<HistoryEntry>, BugzillaError> {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/rest/bug/{bug}/history"),
                &[],
                None,
            )
            .await?;
        decode(&v["bugs"][0]["history"], "history")
    }

    /// Adds a comment; returns its id.
    pub async fn add_comment(&self, bug: i64, text: &str) -> Result<i64, BugzillaError> {
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/rest/bug/{bug}/comment"),
                &[],
                Some(json!({ "comment": text })),
            )
            .await?;
        v.get("id")
            .and_then(flexible_i64)
            .ok_or_else(|| BugzillaError::Decode("no comment `id` in the answer".to_owned()))
    }

    /// Sets the status whiteboard.
    pub async fn set_whiteboard(&self, bug: i64, whiteboard: &str) -> Result<(), BugzillaError> {
        self.call(
            reqwest::Method::PUT,
            &format!("/rest/bug/{bug}"),
            &[],
            Some(json!({ "whiteboard": whiteboard })),
        )
        .await?;
        Ok(())
    }
}

fn decode<T: for<'de> Deserialize<'de>>(value: &Value, what: &str) -> Result<T, BugzillaError> {
    if value.is_null() {
        return Err(BugzillaError::Decode(format!("no `{what}` in the answer")));
    }
    serde_json::from_value(value.clone()).map_err(|e| BugzillaError::Decode(format!("{what}: {e}")))
}

fn excerpt(text: &str) -> String {
    let trimmed: String = text.trim().chars().take(200).collect();
    trimmed.replace('\n', " ")
}

fn bug_from_path(path: &str) -> Option<i64> {
    path.strip_prefix("/rest/bug/")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// True if `version` ("5.3.3", "5.2", "20240101.1") is at least `major.minor`.
/// Unparsable or date-like versions (BMO) count as new.
pub fn version_at_least(version: &str, major: u64, minor: u64) -> bool {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty());
    let (Some(Ok(ma)), mi) = (
        parts.next().map(str::parse::<u64>),
        parts.next().map(str::parse::<u64>),
    ) else {
        return true;
    };
    let mi = mi.and_then(Result::ok).unwrap_or(0);
    (ma, mi) >= (major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_choose_the_auth_mode() {
        assert!(!version_at_least("5.2", 5, 3));
        assert!(!version_at_least("5.0.4", 5, 3));
        assert!(version_at_least("5.3.3", 5, 3));
        assert!(version_at_least("20240101.1", 5, 3));
        assert!(version_at_least("", 5, 3));
    }

    #[test]
    fn attachments_accept_ints_and_booleans() {
        let v52: Attachment = serde_json::from_value(
            json!({"id": 1, "bug_id": 2, "is_patch": 1, "is_obsolete": 0, "is_private": 0}),
        )
        .unwrap();
        let v53: Attachment = serde_json::from_value(json!({"id": 1, "bug_id": 2, "is_patch": true, "is_obsolete": false, "is_private": false})).unwrap();
        assert!(v52.is_patch && v53.is_patch);
        assert!(!v52.is_obsolete && !v53.is_obsolete);
    }

    #[test]
    fn error_codes_may_be_strings() {
        assert_eq!(flexible_i64(&json!("306")), Some(306));
        assert_eq!(flexible_i64(&json!(306)), Some(306));
    }

    #[test]
    fn debug_output_hides_the_key() {
        let client = BugzillaClient::new(
            "http://x",
            "sekrit-key",
            AuthMode::Param,
            Duration::from_secs(1),
            "test:1",
        )
        .unwrap();
        assert!(!format!("{client:?}").contains("sekrit"));
    }
}
