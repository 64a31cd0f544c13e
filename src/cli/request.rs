//! `autoland request ...`: the JSON API from the command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::{ApiClient, event_line};
use crate::request::Stage;

/// `autoland request ...`.
#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// Submit patch files as one request.
    Submit {
        /// Patch files, in the order they apply (`git format-patch`, `hg export`, or diffs).
        #[arg(required = true)]
        patches: Vec<PathBuf>,
        /// Destination repository (repeat: `--to try --to central`).
        #[arg(long = "to", required = true)]
        destinations: Vec<String>,
        /// Try syntax, e.g. "-b o -p linux64".
        #[arg(long, allow_hyphen_values = true)]
        try_syntax: Option<String>,
        /// Bug number.
        #[arg(long)]
        bug: Option<i64>,
        /// Request on behalf of someone else (service tokens only).
        #[arg(long)]
        requester: Option<String>,
        /// Author for plain diffs ("Name <email>").
        #[arg(long)]
        author: Option<String>,
        /// Commit message for plain diffs.
        #[arg(long, short)]
        message: Option<String>,
        /// Reviewer (review+) of every patch; repeatable.
        #[arg(long)]
        reviewer: Vec<String>,
        /// Wait until the request is finished, printing its progress.
        #[arg(long)]
        wait: bool,
    },
    /// Show one request with its history.
    Show {
        /// Request id.
        id: i64,
    },
    /// List the queue (open requests), or every request with --all.
    List {
        /// Include finished requests.
        #[arg(long)]
        all: bool,
    },
    /// Cancel a request.
    Cancel {
        /// Request id.
        id: i64,
    },
    /// Retry a failed request from the stage it failed in (operator token).
    Retry {
        /// Request id.
        id: i64,
        /// Test on try again even if the same patches on the same base passed recently.
        #[arg(long)]
        fresh_try: bool,
    },
    /// Close a repository: landings on it wait until it is reopened (operator token).
    Close {
        /// Repository name.
        repository: String,
        /// Why (shown on the status page and in the requests that wait).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reopen a closed repository (operator token).
    Reopen {
        /// Repository name.
        repository: String,
    },
    /// Pause a module or group (`pusher`, `pusher-2`, `ci-runner`...) until resumed
    /// (operator token).
    Pause {
        /// Module or group.
        module: String,
    },
    /// Resume a paused module (operator token).
    Resume {
        /// Module or group.
        module: String,
    },
    /// Restart a module (operator token).
    Kick {
        /// Module or group.
        module: String,
    },
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
        RequestCommand::Retry { id, fresh_try } => {
            let answer = client
                .post(
                    &format!("/api/requests/{id}/retry"),
                    &json!({ "fresh_try": fresh_try }),
                )
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
