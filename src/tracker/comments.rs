//! Every bug comment Autoland writes, worded in one place, and which reports each state
//! change produces. The developer who reads a comment should know what happened, what it
//! means for their patch, and what to do next.

use crate::config::Config;
use crate::request::{FailureCategory, Request, Transition};
use crate::store::{Effects, NewReport, ReportKind};

/// Longest comment text; tool output beyond it is cut (Bugzilla allows 65,535).
const MAX_COMMENT: usize = 20_000;

fn link(config: &Config, repo: &str, revision: &str) -> String {
    match config.repo(repo).and_then(|r| r.revision_url.as_deref()) {
        Some(template) => template.replace("{rev}", revision),
        None => format!("{repo} revision {revision}"),
    }
}

fn request_url(config: &Config, request: &Request) -> String {
    format!("{}/api/requests/{}", config.public_url(), request.id)
}

fn trimmed(text: &str) -> String {
    if text.len() <= MAX_COMMENT {
        return text.to_owned();
    }
    let mut end = MAX_COMMENT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[... cut; the full text is in the request history]",
        &text[..end]
    )
}

fn plan(request: &Request) -> String {
    let finals: Vec<&str> = request
        .destinations
        .iter()
        .map(|d| d.repo.as_str())
        .collect();
    if finals.is_empty() {
        format!("push them to {}", request.try_repo)
    } else {
        format!(
            "push them to {}, and if the try run passes, land them on {}",
            request.try_repo,
            finals.join(", ")
        )
    }
}

/// The comment when a request is taken up.
pub fn accepted(config: &Config, request: &Request) -> String {
    let syntax = request
        .try_syntax
        .as_deref()
        .map(|s| format!("\nTry syntax: {s}"))
        .unwrap_or_default();
    format!(
        "Autoland accepted the landing request from {requester} (request {id}). It will gather \
         the patches, check commit permissions, {plan}.{syntax}\nProgress: {url}",
        requester = request.requester,
        id = request.id,
        plan = plan(request),
        url = request_url(config, request)
    )
}

/// The comment when a whiteboard tag cannot be read.
pub fn malformed_tag(tag_text: &str, error: &str) -> String {
    format!(
        "Autoland could not read the whiteboard tag {tag_text}: {error}\n\n{}\n\nThe tag has been \
         removed so it is not read again; fix it and put it back on the whiteboard.",
        super::tag::grammar_help()
    )
}

/// The comment for a state change, if it deserves one.
fn for_transition(
    config: &Config,
    request: &Request,
    transition: &Transition,
    detail: &str,
    effects: &Effects,
) -> Option<String> {
    let id = request.id;
    match transition {
        Transition::PushedToTry => {
            let revision = effects.try_revision.as_deref().unwrap_or("?");
            Some(format!(
                "Autoland pushed request {id} to {}: {}\nWaiting for the try results.",
                request.try_repo,
                link(config, &request.try_repo, revision)
            ))
        }
        Transition::TryPassed { land } => {
            let first = detail.lines().next().unwrap_or(detail);
            let next = if *land {
                format!(
                    "Landing on {} next.",
                    request
                        .destinations
                        .iter()
                        .map(|d| d.repo.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                "This was a try-only request: nothing more to do.".to_owned()
            };
            let how = first.trim_start_matches("try passed: ");
            let how = how.split(';').next().unwrap_or(how);
            Some(format!(
                "Try results for request {id}: 1 job, 1 passed, 0 failed ({how}).\nLog: {}/ci-log\n{next}",
                request_url(config, request)
            ))
        }
        Transition::DestinationLanded { last: true } => {
            let mut lines = Vec::new();
            for dest in &request.destinations {
                let revision = match (&dest.landed_revision, &effects.landed) {
                    (Some(rev), _) => Some(rev.clone()),
                    (None, Some((position, rev))) if *position == dest.position => {
                        Some(rev.clone())
                    }
                    _ => None,
                };
                if let Some(rev) = revision {
                    lines.push(format!("{}: {}", dest.repo, link(config, &dest.repo, &rev)));
                }
            }
            Some(format!(
                "Autoland landed request {id}:\n{}",
                lines.join("\n")
            ))
        }
        Transition::DestinationLanded { last: false } => None,
        Transition::Fail(category) => Some(trimmed(&failed(request, *category, detail))),
        Transition::Cancel => Some(format!("Autoland request {id} was {detail}.")),
        Transition::StartGathering => Some(accepted(config, request)),
        Transition::Gathered | Transition::Authorized | Transition::Applied => None,
    }
}

fn failed(request: &Request, category: FailureCategory, detail: &str) -> String {
    let id = request.id;
    let (headline, advice) = match category {
        FailureCategory::InvalidRequest => (
            "could not act on this request",
            "Fix what is described above and put the autoland tag back.",
        ),
        FailureCategory::PermissionDenied => (
            "may not land these patches",
            "A patch lands when its author or a reviewer (review+ or feedback+) holds the level \
             the repository requires. Ask someone with that level to review the patch, then try again.",
        ),
        FailureCategory::ApplyConflict => (
            "could not apply the patches on the tip of the repository",
            "Rebase the patch on the current tip, attach the new version (mark the old one \
             obsolete) and put the autoland tag back.",
        ),
        FailureCategory::TryFailed => (
            "stopped because the try run failed; nothing was landed",
            "Look at the log, fix the patch, and try again.",
        ),
        FailureCategory::PushFailed => (
            "could not push",
            "The repository could not be reached or kept changing. Putting the tag back retries.",
        ),
        FailureCategory::TimedOut => ("gave up waiting", "Putting the tag back retries."),
    };
    format!("Autoland {headline} (request {id}, {category}).\n\n{detail}\n\n{advice}")
}

/// The reports a state change of a tracker request produces: a comment when there is
/// something to say, and removing the tag when the request ends.
pub fn reports_for(
    config: &Config,
    request: &Request,
    transition: &Transition,
    detail: &str,
    effects: &Effects,
) -> Vec<NewReport> {
    let Some(bug) = request.bug else {
        return Vec::new();
    };
    let mut reports = Vec::new();
    if let Some(text) = for_transition(config, request, transition, detail, effects) {
        reports.push(NewReport {
            bug,
            kind: ReportKind::Comment,
            body: text,
        });
    }
    let ends = match transition {
        Transition::TryPassed { land } => !land,
        Transition::DestinationLanded { last } => *last,
        Transition::Fail(_) | Transition::Cancel => true,
        Transition::StartGathering
        | Transition::Gathered
        | Transition::Authorized
        | Transition::Applied
        | Transition::PushedToTry => false,
    };
    if ends {
        reports.push(NewReport {
            bug,
            kind: ReportKind::RemoveTag,
            body: String::new(),
        });
    }
    reports
}
