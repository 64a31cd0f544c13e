//! A small client of Autoland's JSON API, for the `request` commands and the demo.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

/// Why a call to the API failed. The cause (`source`) is chained, not repeated in the
/// message: the command line prints the whole chain.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
    /// The server did not answer (down, wrong address, timeout).
    #[error("cannot reach the Autoland server at {base}")]
    Unreachable {
        /// The server's base URL.
        base: String,
        /// What the connection said.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error; `message` is its explanation.
    #[error("the server answered {status}: {message}")]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The `message` of the error body.
        message: String,
    },
}

/// An API client.
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl ApiClient {
    /// A client of the server at `base`.
    pub fn new(base: &str, token: Option<&str>) -> Result<ApiClient, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(ClientError::Build)?;
        Ok(ApiClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.map(str::to_owned),
        })
    }

    async fn send(&self, builder: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let builder = match &self.token {
            Some(t) => builder.bearer_auth(t),
            None => builder,
        };
        let response = builder
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                base: self.base.clone(),
                source,
            })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body["message"].as_str().unwrap_or("(no message)");
            return Err(ClientError::Refused {
                status,
                message: message.to_owned(),
            });
        }
        Ok(body)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }
}

/// One line for an event.
pub fn event_line(event: &Value) -> String {
    let stage = match (event["from_stage"].as_str(), event["to_stage"].as_str()) {
        (Some(from), Some(to)) if from != to => format!("{from} → {to}"),
        (_, Some(to)) => to.to_owned(),
        _ => event["kind"].as_str().unwrap_or("?").to_owned(),
    };
    let detail = event["detail"].as_str().unwrap_or("");
    let mut lines = detail.lines();
    let first = lines.next().unwrap_or("");
    let rest: Vec<&str> = lines.collect();
    if rest.is_empty() {
        format!("{stage}: {first}")
    } else {
        format!("{stage}: {first}\n      {}", rest.join("\n      "))
    }
}
