//! Buildbot's HTTP interfaces as Autoland uses them: the force scheduler over JSON-RPC
//! and the data API (`/api/v2`). Shapes as a Buildbot 4.3 master answers them (its JSON
//! comes as `text/plain`, times are whole epoch seconds, results are codes).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::super::adapter::{CiError, tail_of};

/// A buildset (what one force call creates).
#[derive(Debug, Clone, Deserialize)]
pub struct Buildset {
    /// Its id.
    pub bsid: i64,
    /// The reason given (Buildbot prefixes who forced it).
    #[serde(default)]
    pub reason: Option<String>,
}

/// A build request: one builder's share of a buildset.
#[derive(Debug, Clone, Deserialize)]
pub struct BuildRequest {
    /// Its id.
    pub buildrequestid: i64,
    /// A worker has it.
    #[serde(default)]
    pub claimed: bool,
    /// It has its result.
    #[serde(default)]
    pub complete: bool,
    /// The result code (-1 or null while not complete).
    #[serde(default)]
    pub results: Option<i64>,
}

/// One build of a build request (a request can have several: retries).
#[derive(Debug, Clone, Deserialize)]
pub struct Build {
    /// Its id.
    pub buildid: i64,
    /// Its number within its builder.
    pub number: i64,
    /// Its builder.
    pub builderid: i64,
    /// Started (epoch seconds).
    #[serde(default)]
    pub started_at: Option<i64>,
    /// Finished (epoch seconds).
    #[serde(default)]
    pub complete_at: Option<i64>,
    /// Finished.
    #[serde(default)]
    pub complete: bool,
    /// What it is doing or how it ended, in words.
    #[serde(default)]
    pub state_string: Option<String>,
}

/// A step of a build.
#[derive(Debug, Clone, Deserialize)]
pub struct Step {
    /// Its id.
    pub stepid: i64,
    /// Its name.
    pub name: String,
    /// Result code once complete.
    #[serde(default)]
    pub results: Option<i64>,
}

/// A log of a step.
#[derive(Debug, Clone, Deserialize)]
pub struct Log {
    /// Its id.
    pub logid: i64,
    /// Its name (`stdio`).
    pub name: String,
}

/// A Buildbot master.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// A client of the master at `base` (`http://host:8010`).
    pub fn new(base: &str, timeout: Duration, user_agent: &str) -> Result<Client, CiError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(user_agent)
            .build()
            .map_err(|e| CiError::Unreachable(format!("cannot build an HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// The master's address.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn get(&self, path: &str) -> Result<Value, CiError> {
        self.get_opt(path).await?.ok_or_else(|| {
            CiError::Unreachable(format!(
                "Buildbot at {} answered 404 to GET /api/v2/{path}",
                self.base
            ))
        })
    }

    /// GET; `None` when Buildbot says there is no such thing (404).
    async fn get_opt(&self, path: &str) -> Result<Option<Value>, CiError> {
        let url = format!("{}/api/v2/{path}", self.base);
        let response = self.http.get(&url).send().await.map_err(|e| {
            CiError::Unreachable(format!("Buildbot at {} is unreachable: {e}", self.base))
        })?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| CiError::Unreachable(format!("Buildbot at {}: {e}", self.base)))?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(CiError::Unreachable(format!(
                "Buildbot at {} answered {status} to GET /api/v2/{path}: {}",
                self.base,
                first_line(&body)
            )));
        }
        serde_json::from_str(&body).map(Some).map_err(|e| {
            CiError::Unreachable(format!(
                "Buildbot at {} sent something that is not JSON for /api/v2/{path}: {e}",
                self.base
            ))
        })
    }

    fn list<T: for<'de> Deserialize<'de>>(value: Value, key: &str) -> Result<Vec<T>, CiError> {
        let items = value.get(key).cloned().unwrap_or(Value::Array(Vec::new()));
        serde_json::from_value(items)
            .map_err(|e| CiError::Unreachable(format!("unexpected Buildbot `{key}` list: {e}")))
    }

    /// Every buildset whose reason contains `token` (searched by the master, over all
    /// buildsets; Buildbot filters only on selected fields, hence the `field`s).
    pub async fn buildsets_with(&self, token: &str) -> Result<Vec<Buildset>, CiError> {
        let token: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
        Self::list(
            self.get(&format!(
                "buildsets?field=bsid&field=reason&reason__contains={token}"
            ))
            .await?,
            "buildsets",
        )
    }

    /// The build requests of a buildset.
    pub async fn buildrequests_of(&self, bsid: i64) -> Result<Vec<BuildRequest>, CiError> {
        Self::list(
            self.get(&format!("buildrequests?buildsetid={bsid}"))
                .await?,
            "buildrequests",
        )
    }

    /// A build request.
    pub async fn buildrequest(&self, id: i64) -> Result<Option<BuildRequest>, CiError> {
        let Some(answer) = self.get_opt(&format!("buildrequests/{id}")).await? else {
            return Ok(None);
        };
        let list: Vec<BuildRequest> = Self::list(answer, "buildrequests")?;
        Ok(list.into_iter().next())
    }

    /// The builds of a build request, oldest first.
    pub async fn builds_of(&self, buildrequest: i64) -> Result<Vec<Build>, CiError> {
        let mut builds: Vec<Build> = Self::list(
            self.get(&format!("builds?buildrequestid={buildrequest}"))
                .await?,
            "builds",
        )?;
        builds.sort_by_key(|b| b.buildid);
        Ok(builds)
    }

    /// The steps of a build.
    pub async fn steps(&self, build: i64) -> Result<Vec<Step>, CiError> {
        Self::list(self.get(&format!("builds/{build}/steps")).await?, "steps")
    }

    /// The logs of a step.
    pub async fn logs(&self, step: i64) -> Result<Vec<Log>, CiError> {
        Self::list(self.get(&format!("steps/{step}/logs")).await?, "logs")
    }

    /// The last `lines` lines of a log (read as a stream, keeping only its end).
    pub async fn log_tail(&self, log: i64, lines: usize) -> Result<Option<String>, CiError> {
        let url = format!("{}/api/v2/logs/{log}/raw", self.base);
        let response = self.http.get(&url).send().await.map_err(|e| {
            CiError::Unreachable(format!("Buildbot at {} is unreachable: {e}", self.base))
        })?;
        if !response.status().is_success() {
            return Ok(None);
        }
        Ok(Some(tail_of(response, lines).await))
    }

    /// Forces `builder` through the force scheduler `scheduler`; returns the buildset and
    /// the build request.
    pub async fn force(
        &self,
        scheduler: &str,
        builder: &str,
        repository: &str,
        branch: &str,
        revision: &str,
        reason: &str,
    ) -> Result<(i64, i64), CiError> {
        let body = json!({
            "jsonrpc": "2.0",
            "method": "force",
            "id": 1,
            "params": {
                "builderNames": [builder],
                "repository": repository,
                "branch": branch,
                "revision": revision,
                "reason": reason,
            }
        });
        let url = format!("{}/api/v2/forceschedulers/{scheduler}", self.base);
        let response = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| {
                CiError::Unreachable(format!("Buildbot at {} is unreachable: {e}", self.base))
            })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| CiError::Unreachable(format!("Buildbot at {}: {e}", self.base)))?;
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if let Some(error) = answer.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            let text = format!(
                "Buildbot refused to force builder `{builder}` with scheduler `{scheduler}` \
                 (HTTP {status}): {message}. Check `buildbot.builders` and \
                 `buildbot.scheduler` of the try repository against the master's \
                 configuration"
            );
            // A 5xx is the master failing (it may even have made the buildset): ask again,
            // after looking for it. Only a call that can never succeed is refused: a bad
            // request, or a scheduler or builder the master does not have.
            let never = status.is_client_error()
                || message.contains("builderNames")
                || message.contains("no such scheduler")
                || message.contains("not found");
            return Err(if never {
                CiError::Refused(text)
            } else {
                CiError::Unreachable(text)
            });
        }
        if !status.is_success() {
            return Err(CiError::Unreachable(format!(
                "Buildbot at {} answered {status} to the force call: {}",
                self.base,
                first_line(&text)
            )));
        }
        let result = answer.get("result").cloned().unwrap_or(Value::Null);
        let bsid = result.get(0).and_then(Value::as_i64);
        let brid = result
            .get(1)
            .and_then(Value::as_object)
            .and_then(|m| m.values().next())
            .and_then(Value::as_i64);
        match (bsid, brid) {
            (Some(bsid), Some(brid)) => Ok((bsid, brid)),
            _ => Err(CiError::Unreachable(format!(
                "unexpected answer to the force call: {}",
                first_line(&text)
            ))),
        }
    }
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("");
    line.get(..300).unwrap_or(line)
}
