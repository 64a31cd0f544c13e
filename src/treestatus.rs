//! The tree status watcher: for every repository with a `tree_status_url`, reads the
//! tree's status and closes the repository while the tree is not open (landings wait),
//! reopening it when the tree opens. It never reopens a repository an operator closed by
//! hand: it only undoes its own closures.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::runtime::{Context, ModuleStatus, Work};

/// The actor of closures made by this module.
pub const ACTOR: &str = "treestatus";

/// Polls until `shutdown`.
pub async fn run(ctx: Arc<Context>, status: ModuleStatus, shutdown: CancellationToken) {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            status.error(format!("cannot build an HTTP client: {e}"));
            return;
        }
    };
    let interval = Duration::from_secs(ctx.config.timeouts.tree_status_seconds.max(1));
    loop {
        let mut problems = Vec::new();
        for repo in ctx.config.repositories.iter() {
            let Some(url) = &repo.tree_status_url else {
                continue;
            };
            if let Err(e) = check(&ctx, &http, &repo.name, url).await {
                problems.push(format!("{}: {e}", repo.name));
            }
        }
        if problems.is_empty() {
            status.set("tree status read");
        } else {
            status.error(format!(
                "cannot read tree status (states left as they were): {}",
                problems.join("; ")
            ));
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// What a tree status document says: open, or closed with a reason.
pub fn parse(document: &Value) -> Option<(bool, String)> {
    let body = document.get("result").unwrap_or(document);
    let status = body.get("status")?.as_str()?.to_ascii_lowercase();
    let reason = body
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect::<String>();
    Some((status == "open", reason))
}

async fn check(ctx: &Context, http: &reqwest::Client, repo: &str, url: &str) -> Result<(), String> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let document: Value = response
        .json()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let (open, reason) = parse(&document).ok_or("no `status` in the answer")?;
    let store = &ctx.store;
    let current = store
        .repository_closed(repo)
        .await
        .map_err(|e| e.to_string())?;
    match (open, current) {
        (false, None) => {
            let why = if reason.is_empty() {
                "the tree is closed".to_owned()
            } else {
                format!("the tree is closed: {reason}")
            };
            store
                .set_repository_closed(repo, true, &why, ACTOR)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(repository = %repo, %why, "tree closed");
        }
        (true, Some(closed)) if closed.changed_by == ACTOR => {
            store
                .set_repository_closed(repo, false, "the tree is open", ACTOR)
                .await
                .map_err(|e| e.to_string())?;
            ctx.wake(Work::Pushers).await;
            tracing::info!(repository = %repo, "tree open");
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_both_document_shapes() {
        assert_eq!(
            parse(&json!({"result": {"status": "closed", "reason": "bustage"}})),
            Some((false, "bustage".to_owned()))
        );
        assert_eq!(
            parse(&json!({"status": "OPEN"})),
            Some((true, String::new()))
        );
        assert_eq!(
            parse(&json!({"status": "approval required"})),
            Some((false, String::new()))
        );
        assert_eq!(parse(&json!({"tree": "x"})), None);
    }
}
