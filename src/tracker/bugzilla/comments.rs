//! Every bug comment Autoland writes, worded in one place, and which reports each state
//! change produces. The developer who reads a comment should know what happened, what it
//! means for their patch, and what to do next.

use crate::config::Config;
use crate::request::{FailureCategory, Request, Transition};
use crate::store::{Effects, NewReport, ReportKind, RunReport, Tally, tally};

/// Most lines of one failed job's log in a comment.
const TAIL_LINES: usize = 15;

/// Most characters of one failed job's log in a comment.
const TAIL_CHARS: usize = 2_000;

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

fn plan(config: &Config, request: &Request) -> String {
    let finals: Vec<&str> = request
        .destinations
        .iter()
        .map(|d| d.repo.as_str())
        .collect();
    if let [only] = finals.as_slice()
        && config.is_gated(only)
    {
        format!(
            "test them in the landing gate of {only} (on its tip, together with the requests \
             ahead of them in its queue) and land them there exactly as tested"
        )
    } else if finals.is_empty() {
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
        plan = plan(config, request),
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
            let results = match &effects.ci_report {
                Some(report) => try_report(config, request, report),
                None => {
                    let first = detail.lines().next().unwrap_or(detail);
                    let how = first.trim_start_matches("try passed: ");
                    let how = how.split(';').next().unwrap_or(how);
                    format!(
                        "Try results for request {id}: 1 job, 1 passed, 0 failed ({how}).\nLog: {}/ci-log",
                        request_url(config, request)
                    )
                }
            };
            Some(trimmed(&format!("{results}\n{next}")))
        }
        Transition::Fail(FailureCategory::TryFailed) if effects.ci_report.is_some() => {
            let report = effects.ci_report.as_ref()?;
            Some(trimmed(&failed(
                request,
                FailureCategory::TryFailed,
                &try_report(config, request, report),
            )))
        }
        Transition::Fail(FailureCategory::GateFailed) if effects.ci_report.is_some() => {
            let report = effects.ci_report.as_ref()?;
            let what = detail.lines().next().unwrap_or(detail);
            Some(trimmed(&failed(
                request,
                FailureCategory::GateFailed,
                &format!("It was {what}\n{}", try_report(config, request, report)),
            )))
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
        Transition::Retry { .. } => Some(format!("Autoland request {id} was {detail}.")),
        Transition::StartGathering => Some(accepted(config, request)),
        Transition::Gathered | Transition::Authorized | Transition::Applied => None,
        Transition::EnterGate => Some(format!(
            "Autoland request {id} {detail}: it is tested on the tip together with the requests \
             ahead of it and lands exactly as tested.\nProgress: {}",
            request_url(config, request)
        )),
        Transition::GateLanding | Transition::GateRequeued => None,
        Transition::BackedOut => Some(trimmed(&format!(
            "Autoland backed out request {id}: {detail}\nProgress: {}",
            request_url(config, request)
        ))),
        Transition::GateLanded => {
            let (repo, revision) = match (&effects.landed, request.destinations.first()) {
                (Some((_, rev)), Some(dest)) => (dest.repo.as_str(), rev.as_str()),
                _ => ("?", "?"),
            };
            Some(format!(
                "Autoland landed request {id} through the landing gate:\n{repo}: {}\n{detail}",
                link(config, repo, revision)
            ))
        }
    }
}

/// The try report, as the 2012 service wrote it: counts, then each failed job with its
/// log link and last lines, each intermittent one with its attempts.
fn try_report(config: &Config, request: &Request, report: &RunReport) -> String {
    let id = request.id;
    let run = &report.run;
    let revision = link(config, &run.repo, &run.revision);
    if let Some(from) = run.reused_from {
        return format!(
            "Try results for request {id}: not tested again. The same patches on the same base \
             already passed on {} in run {from}, so that run was reused ({}).\nThis push: {revision}",
            run.repo,
            run.summary.clone().unwrap_or_default()
        );
    }
    let Tally {
        jobs,
        passed,
        failed,
        intermittent,
    } = tally(&report.jobs);
    let mut text = format!(
        "Try results for request {id}: {jobs} job{}, {passed} passed, {} failed",
        if jobs == 1 { "" } else { "s" },
        failed.len()
    );
    if !intermittent.is_empty() {
        text.push_str(&format!(", {} intermittent", intermittent.len()));
    }
    text.push_str(&format!(" ({revision}).\n"));
    if jobs == 0 {
        text.push_str(&format!("{}\n", run.summary.clone().unwrap_or_default()));
    }
    // One job that passed: its log (with one job, the last attempt is the newest row).
    if jobs == 1
        && failed.is_empty()
        && let Some(log) = report
            .jobs
            .iter()
            .max_by_key(|j| j.attempt)
            .and_then(|j| j.log_url.as_ref())
    {
        text.push_str(&format!("Log: {log}\n"));
    }
    let retries = report.jobs.iter().filter(|j| j.attempt > 1).count();
    if retries > 0 {
        text.push_str(&format!("Retries: {retries}.\n"));
    }
    if let Some(quota) = run
        .summary
        .as_deref()
        .and_then(|s| s.split("; not retried: ").nth(1))
    {
        text.push_str(&format!("Not retried: {quota}.\n"));
    }
    for outcome in &failed {
        let last = outcome.last;
        let word = last
            .raw_result
            .clone()
            .or_else(|| last.result.map(|r| r.as_str().to_owned()))
            .unwrap_or_else(|| "not finished".to_owned());
        text.push_str(&format!("\nFailed: {} ({word}", outcome.name));
        if outcome.attempts > 1 {
            text.push_str(&format!(", after {} attempts", outcome.attempts));
        }
        text.push(')');
        let log = last
            .log_url
            .clone()
            .unwrap_or_else(|| format!("{}/ci-log", request_url(config, request)));
        text.push_str(&format!("\nLog: {log}\n"));
        if let Some(tail) = &last.summary {
            let lines: Vec<&str> = tail.lines().collect();
            let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
            let mut cut: String = tail.chars().rev().take(TAIL_CHARS).collect();
            cut = cut.chars().rev().collect();
            for line in cut.lines() {
                text.push_str(&format!("  {line}\n"));
            }
        }
    }
    const MAX_INTERMITTENT: usize = 20;
    if intermittent.len() > MAX_INTERMITTENT {
        text.push_str(&format!(
            "\n{} intermittent jobs; the first {MAX_INTERMITTENT}:",
            intermittent.len()
        ));
    }
    for outcome in intermittent.iter().take(MAX_INTERMITTENT) {
        let earlier: Vec<String> = report
            .jobs
            .iter()
            .filter(|j| j.name == outcome.name && j.attempt < outcome.last.attempt)
            .map(|j| {
                j.raw_result
                    .clone()
                    .or_else(|| j.result.map(|r| r.as_str().to_owned()))
                    .unwrap_or_default()
            })
            .collect();
        text.push_str(&format!(
            "\nIntermittent: {} ({}, then passed on attempt {})",
            outcome.name,
            earlier.join(", "),
            outcome.last.attempt
        ));
        if let Some(url) = &outcome.last.log_url {
            text.push_str(&format!("\nLog: {url}"));
        }
        text.push('\n');
    }
    text.trim_end().to_owned()
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
        FailureCategory::GateFailed => (
            "ejected this request from the landing gate: the tests failed on the tip with it; \
             nothing of it was landed",
            "Look at the log, fix the patch, and put the autoland tag back.",
        ),
    };
    format!("Autoland {headline} (request {id}, {category}).\n\n{detail}\n\n{advice}")
}

/// A comment saying why a request waits (once per request).
pub fn notice(config: &Config, request: &Request, text: &str) -> Vec<NewReport> {
    let Some(bug) = request.bug else {
        return Vec::new();
    };
    vec![NewReport {
        bug,
        kind: ReportKind::Comment,
        body: trimmed(&format!(
            "Autoland request {} is waiting: {text}\nIt goes on by itself; progress: {}",
            request.id,
            request_url(config, request)
        )),
    }]
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
        Transition::GateLanded => true,
        Transition::BackedOut => true,
        Transition::EnterGate | Transition::GateLanding | Transition::GateRequeued => false,
        Transition::Fail(_) | Transition::Cancel => true,
        Transition::Retry { .. } => false,
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

#[cfg(test)]
mod tests {
    //! The wording of every comment, reviewed as wording: each test pins a whole text.
    use super::*;
    use crate::request::{Destination, RequestId, Stage};
    use crate::store::JobResult;

    fn config() -> Config {
        toml::from_str(
            r#"
            public_url = "https://autoland.example.com"
            [[repositories]]
            name = "central"
            kind = "git"
            pull_url = "/c"
            level = "scm_level_3"
            revision_url = "https://git.example.com/central/commit/{rev}"
            [[repositories]]
            name = "try"
            kind = "git"
            pull_url = "/t"
            level = "scm_level_1"
            try = true
            ci_command = "true"
            "#,
        )
        .unwrap()
    }

    fn request(stage: Stage) -> Request {
        Request {
            id: RequestId(7),
            uid: "u".into(),
            source: "bugzilla".into(),
            bug: Some(42),
            requester: "alice@example.com".into(),
            try_repo: "try".into(),
            base_repo: "central".into(),
            try_syntax: Some("-b o".into()),
            stage,
            failure: None,
            failure_detail: None,
            try_base: None,
            try_revision: None,
            attempts: 0,
            created_at: 0,
            updated_at: 0,
            destinations: vec![Destination {
                position: 1,
                repo: "central".into(),
                attempt_base: None,
                landed_revision: None,
            }],
        }
    }

    fn comment(stage: Stage, transition: Transition, detail: &str, effects: Effects) -> String {
        let reports = reports_for(&config(), &request(stage), &transition, detail, &effects);
        reports
            .into_iter()
            .find(|r| r.kind == ReportKind::Comment)
            .map(|r| r.body)
            .unwrap_or_default()
    }

    fn job(name: &str, attempt: i64, result: JobResult, raw: &str) -> crate::store::CiJob {
        crate::store::CiJob {
            id: attempt,
            run_id: 3,
            name: name.into(),
            attempt,
            state: crate::store::JobState::Completed,
            result: Some(result),
            raw_result: Some(raw.into()),
            external_id: None,
            log_url: Some(format!("https://ci.example.com/{name}/{attempt}")),
            duration_ms: Some(1000),
            summary: (!result.is_good()).then(|| {
                (1..=20)
                    .map(|i| format!("line {i}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }),
        }
    }

    fn report(jobs: Vec<crate::store::CiJob>, summary: &str) -> RunReport {
        RunReport {
            run: crate::store::CiRun {
                candidate_id: None,
                push_id: None,
                id: 3,
                request_id: RequestId(7),
                repo: "try".into(),
                revision: "abc123".into(),
                ref_name: "refs/heads/autoland/u".into(),
                ci: "buildbot".into(),
                state: crate::store::CiState::Failed,
                attempts: 1,
                exit_code: None,
                summary: Some(summary.into()),
                log_path: None,
                external_id: None,
                reused_from: None,
                created_at: 0,
                finished_at: None,
                last_change_at: None,
                complete_at: None,
            },
            jobs,
        }
    }

    #[test]
    fn a_try_failure_lists_each_job_like_the_2012_report() {
        let jobs = vec![
            job("build", 1, JobResult::Infra, "EXCEPTION"),
            job("build", 2, JobResult::Success, "SUCCESS"),
            job("lint", 1, JobResult::Success, "SUCCESS"),
            job("test", 1, JobResult::Failed, "FAILURE"),
            job("test", 2, JobResult::Failed, "FAILURE"),
        ];
        let text = comment(
            Stage::AwaitingTry,
            Transition::Fail(FailureCategory::TryFailed),
            "try failed",
            Effects {
                ci_report: Some(report(jobs, "3 jobs: 2 passed, 1 failed")),
                ..Effects::default()
            },
        );
        let expected_tail: String = (6..=20).map(|i| format!("  line {i}\n")).collect();
        assert_eq!(
            text,
            format!(
                "Autoland stopped because the try run failed; nothing was landed (request 7, \
                 try_failed).\n\nTry results for request 7: 3 jobs, 2 passed, 1 failed, 1 \
                 intermittent (try revision abc123).\nRetries: 2.\n\nFailed: test (FAILURE, \
                 after 2 attempts)\nLog: https://ci.example.com/test/2\n{expected_tail}\n\
                 Intermittent: build (EXCEPTION, then passed on attempt 2)\n\
                 Log: https://ci.example.com/build/2\n\nLook at the log, fix the patch, and try again."
            )
        );
    }

    #[test]
    fn a_quota_that_stopped_a_retry_is_named() {
        let text = comment(
            Stage::AwaitingTry,
            Transition::Fail(FailureCategory::TryFailed),
            "try failed",
            Effects {
                ci_report: Some(report(
                    vec![job("test", 1, JobResult::Failed, "FAILURE")],
                    "1 job: 0 passed, 1 failed; failed: test; not retried: this request has \
                     used its 4 retries (retry_quota_per_request)",
                )),
                ..Effects::default()
            },
        );
        assert!(
            text.contains(
                "Not retried: this request has used its 4 retries (retry_quota_per_request)."
            ),
            "{text}"
        );
    }

    #[test]
    fn accepted() {
        assert_eq!(
            comment(
                Stage::Received,
                Transition::StartGathering,
                "",
                Effects::default()
            ),
            "Autoland accepted the landing request from alice@example.com (request 7). It will \
             gather the patches, check commit permissions, push them to try, and if the try run \
             passes, land them on central.\nTry syntax: -b o\n\
             Progress: https://autoland.example.com/api/requests/7"
        );
    }

    #[test]
    fn pushed_to_try_without_a_link_template() {
        let effects = Effects {
            try_revision: Some("abc123".into()),
            ..Effects::default()
        };
        assert_eq!(
            comment(Stage::PushingTry, Transition::PushedToTry, "", effects),
            "Autoland pushed request 7 to try: try revision abc123\nWaiting for the try results."
        );
    }

    #[test]
    fn try_results_then_landing() {
        assert_eq!(
            comment(
                Stage::AwaitingTry,
                Transition::TryPassed { land: true },
                "try passed: passed in 3.2 s; last lines of the log:\nok",
                Effects::default()
            ),
            "Try results for request 7: 1 job, 1 passed, 0 failed (passed in 3.2 s).\n\
             Log: https://autoland.example.com/api/requests/7/ci-log\nLanding on central next."
        );
    }

    #[test]
    fn landed_links_each_destination_and_removes_the_tag() {
        let effects = Effects {
            landed: Some((1, "def456".into())),
            ..Effects::default()
        };
        let reports = reports_for(
            &config(),
            &request(Stage::Landing),
            &Transition::DestinationLanded { last: true },
            "",
            &effects,
        );
        assert_eq!(reports.len(), 2);
        assert_eq!(
            reports[0].body,
            "Autoland landed request 7:\ncentral: https://git.example.com/central/commit/def456"
        );
        assert_eq!(reports[1].kind, ReportKind::RemoveTag);
    }

    #[test]
    fn permission_denied_says_what_to_do() {
        assert_eq!(
            comment(
                Stage::Authorizing,
                Transition::Fail(FailureCategory::PermissionDenied),
                "permission denied:\npatch 1 (`a`): its author bob@example.com (no level) does not hold scm_level_3",
                Effects::default()
            ),
            "Autoland may not land these patches (request 7, permission_denied).\n\n\
             permission denied:\npatch 1 (`a`): its author bob@example.com (no level) does not hold scm_level_3\n\n\
             A patch lands when its author or a reviewer (review+ or feedback+) holds the level \
             the repository requires. Ask someone with that level to review the patch, then try again."
        );
    }

    #[test]
    fn intermediate_stages_say_nothing() {
        for t in [
            Transition::Gathered,
            Transition::Authorized,
            Transition::Applied,
        ] {
            assert!(
                reports_for(
                    &config(),
                    &request(Stage::Gathering),
                    &t,
                    "",
                    &Effects::default()
                )
                .is_empty()
            );
        }
    }

    #[test]
    fn long_tool_output_is_cut() {
        let detail = "x".repeat(50_000);
        let text = comment(
            Stage::Applying,
            Transition::Fail(FailureCategory::ApplyConflict),
            &detail,
            Effects::default(),
        );
        assert!(text.len() < 21_000, "{}", text.len());
        assert!(text.ends_with("the full text is in the request history]"));
    }

    #[test]
    fn the_gate_says_when_a_request_entered_it_with_whom_it_landed_and_why_it_was_ejected() {
        let gated = |c: &mut Config| {
            if let Some(r) = c.repositories.iter_mut().find(|r| r.name == "central") {
                r.gate = crate::config::GateMode::Speculative;
            }
        };
        let mut config = config();
        gated(&mut config);
        let say = |stage, transition, detail: &str, effects: Effects| {
            reports_for(&config, &request(stage), &transition, detail, &effects)
                .into_iter()
                .find(|r| r.kind == ReportKind::Comment)
                .map(|r| r.body)
                .unwrap_or_default()
        };
        assert_eq!(
            super::accepted(&config, &request(Stage::Received)),
            "Autoland accepted the landing request from alice@example.com (request 7). It will \
             gather the patches, check commit permissions, test them in the landing gate of \
             central (on its tip, together with the requests ahead of them in its queue) and \
             land them there exactly as tested.\nTry syntax: -b o\nProgress: \
             https://autoland.example.com/api/requests/7"
        );
        assert_eq!(
            say(
                Stage::Authorizing,
                Transition::EnterGate,
                "has permission to land on try, central and is queued in the landing gate of central",
                Effects::default()
            ),
            "Autoland request 7 has permission to land on try, central and is queued in the \
             landing gate of central: it is tested on the tip together with the requests ahead \
             of it and lands exactly as tested.\nProgress: \
             https://autoland.example.com/api/requests/7"
        );
        assert_eq!(
            say(
                Stage::GateLanding,
                Transition::GateLanded,
                "Tested in candidate 3 on 0123456789ab together with request 5 (CI run 9)",
                Effects {
                    landed: Some((1, "fedcba9876543210".into())),
                    ..Effects::default()
                }
            ),
            "Autoland landed request 7 through the landing gate:\ncentral: \
             https://git.example.com/central/commit/fedcba9876543210\nTested in candidate 3 on \
             0123456789ab together with request 5 (CI run 9)"
        );
        let ejected = say(
            Stage::Gated,
            Transition::Fail(FailureCategory::GateFailed),
            "ejected from the landing gate of central: tested in candidate 3 on 0123456789ab \
             together with request 5, and that failed.\ntry failed: ...",
            Effects {
                ci_report: Some(report(
                    vec![job("test", 1, JobResult::Failed, "FAILURE")],
                    "1 job failed",
                )),
                ..Effects::default()
            },
        );
        assert!(
            ejected.starts_with(
                "Autoland ejected this request from the landing gate: the tests failed on the \
                 tip with it; nothing of it was landed (request 7, gate_failed).\n\nIt was \
                 ejected from the landing gate of central: tested in candidate 3 on 0123456789ab \
                 together with request 5, and that failed.\nTry results for request 7: 1 job, \
                 0 passed, 1 failed"
            ),
            "{ejected}"
        );
        assert!(
            ejected.contains("https://ci.example.com/test/1"),
            "{ejected}"
        );
        assert!(ejected.ends_with("put the autoland tag back."), "{ejected}");
    }
}
