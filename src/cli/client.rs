//! `autoland request ...`: a small client of the JSON API.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::RequestCommand;
use crate::request::Stage;

/// An API client.
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl ApiClient {
    /// A client of the server at `base`.
    pub fn new(base: &str, token: Option<&str>) -> anyhow::Result<ApiClient> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(ApiClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.map(str::to_owned),
        })
    }

    async fn send(&self, builder: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let builder = match &self.token {
            Some(t) => builder.bearer_auth(t),
            None => builder,
        };
        let response = builder
            .send()
            .await
            .with_context(|| format!("cannot reach the Autoland server at {}", self.base))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body["message"].as_str().unwrap_or("(no message)");
            bail!("the server answered {status}: {message}");
        }
        Ok(body)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
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

pub(super) async fn run(
    server: &str,
    token: Option<&str>,
    action: RequestCommand,
) -> anyhow::Result<ExitCode> {
    let client = ApiClient::new(server, token)?;
    match action {
        RequestCommand::Submit {
            patches,
            destinations,
            try_syntax,
            bug,
            requester,
            author,
            message,
            reviewer,
            wait,
        } => {
            if token.is_none() {
                bail!("submitting needs a token: set AUTOLAND_TOKEN or pass --token");
            }
            let mut list = Vec::new();
            for path in &patches {
                let content = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read patch {}", path.display()))?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| path.display().to_string());
                list.push(json!({
                    "name": name, "content": content, "author": author, "message": message,
                    "reviewers": reviewer,
                }));
            }
            let body = json!({
                "patches": list, "destinations": destinations, "try_syntax": try_syntax,
                "bug": bug, "requester": requester,
            });
            let created = client.post("/api/requests", &body).await?;
            let id = created["id"].as_i64().unwrap_or_default();
            println!("request {id} received");
            if wait {
                return follow(&client, id).await;
            }
            Ok(ExitCode::SUCCESS)
        }
        RequestCommand::Show { id } => {
            let detail = client.get(&format!("/api/requests/{id}")).await?;
            print_detail(&detail);
            Ok(ExitCode::SUCCESS)
        }
        RequestCommand::List { all } => {
            let list = client
                .get(if all {
                    "/api/requests?all=true"
                } else {
                    "/api/requests"
                })
                .await?;
            let requests = list["requests"].as_array().cloned().unwrap_or_default();
            if requests.is_empty() {
                println!("no requests");
            }
            for r in requests {
                println!(
                    "{:>6}  {:<13} {:<28} {}",
                    r["id"],
                    r["stage"].as_str().unwrap_or("?"),
                    r["requester"].as_str().unwrap_or("?"),
                    r["failure"].as_str().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RequestCommand::Cancel { id } => {
            if token.is_none() {
                bail!("cancelling needs a token: set AUTOLAND_TOKEN or pass --token");
            }
            let answer = client
                .post(&format!("/api/requests/{id}/cancel"), &json!({}))
                .await?;
            println!(
                "request {id} is {}",
                answer["stage"].as_str().unwrap_or("?")
            );
            Ok(ExitCode::SUCCESS)
        }
        RequestCommand::Retry { id } => {
            let answer = client
                .post(&format!("/api/requests/{id}/retry"), &json!({}))
                .await?;
            println!(
                "request {id} retried; it is {}",
                answer["stage"].as_str().unwrap_or("?")
            );
            Ok(ExitCode::SUCCESS)
        }
        RequestCommand::Close { repository, reason } => {
            let answer = client
                .post(
                    &format!("/api/repositories/{repository}/close"),
                    &json!({ "reason": reason }),
                )
                .await?;
            println!(
                "{repository} is closed: {}",
                answer["reason"].as_str().unwrap_or("")
            );
            Ok(ExitCode::SUCCESS)
        }
        RequestCommand::Reopen { repository } => {
            client
                .post(
                    &format!("/api/repositories/{repository}/reopen"),
                    &json!({}),
                )
                .await?;
            println!("{repository} is open");
            Ok(ExitCode::SUCCESS)
        }
        RequestCommand::Pause { module } => control(&client, &module, "pause").await,
        RequestCommand::Resume { module } => control(&client, &module, "resume").await,
        RequestCommand::Kick { module } => control(&client, &module, "kick").await,
    }
}

async fn control(client: &ApiClient, module: &str, action: &str) -> anyhow::Result<ExitCode> {
    client
        .post(&format!("/api/modules/{module}/{action}"), &json!({}))
        .await?;
    println!("{module}: {action} requested (supervisors act within a second)");
    Ok(ExitCode::SUCCESS)
}

fn print_detail(detail: &Value) {
    let r = &detail["request"];
    println!(
        "request {}: {}{}",
        r["id"],
        r["stage"].as_str().unwrap_or("?"),
        r["failure"]
            .as_str()
            .map(|f| format!(" ({f})"))
            .unwrap_or_default()
    );
    println!("  requester: {}", r["requester"].as_str().unwrap_or("?"));
    for p in detail["patches"].as_array().into_iter().flatten() {
        println!(
            "  patch {}: {} by {}",
            p["position"],
            p["name"].as_str().unwrap_or("?"),
            p["author"].as_str().unwrap_or("?")
        );
    }
    for e in detail["events"].as_array().into_iter().flatten() {
        println!("  - {}", event_line(e));
    }
}

async fn follow(client: &ApiClient, id: i64) -> anyhow::Result<ExitCode> {
    let mut seen = 0;
    loop {
        let detail = client.get(&format!("/api/requests/{id}")).await?;
        let events = detail["events"].as_array().cloned().unwrap_or_default();
        for e in events.iter().skip(seen) {
            println!("  {}", event_line(e));
        }
        seen = events.len();
        let stage: Option<Stage> = serde_json::from_value(detail["request"]["stage"].clone()).ok();
        match stage {
            Some(Stage::Landed) => return Ok(ExitCode::SUCCESS),
            Some(s) if s.is_terminal() => return Ok(ExitCode::FAILURE),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
