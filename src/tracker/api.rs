//! Intake through Autoland's own API: the JSON a client submits, and its validation into a
//! [`NewRequest`]. Every problem is reported with the field it concerns; nothing is stored
//! until everything is valid.

use std::collections::HashSet;

use serde::Deserialize;

use crate::config::Config;
use crate::patch::{self, Limits};
use crate::request::{NewRequest, Patch, Review, ReviewKind};

/// One patch as submitted.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitPatch {
    /// A label (file name); default `patch-N`.
    #[serde(default)]
    pub name: Option<String>,
    /// The patch text: `git format-patch` or `hg export` output, or a unified diff.
    pub content: String,
    /// Author for a plain diff (`Name <email>`); default: the requester.
    #[serde(default)]
    pub author: Option<String>,
    /// Commit message for a plain diff.
    #[serde(default)]
    pub message: Option<String>,
    /// Who gave review+ (email addresses).
    #[serde(default)]
    pub reviewers: Vec<String>,
    /// Who gave feedback+ (email addresses).
    #[serde(default)]
    pub feedback: Vec<String>,
}

/// A landing request as submitted to `POST /api/requests`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// Patches, in the order they apply.
    pub patches: Vec<SubmitPatch>,
    /// Repository names: a try repository and/or final destinations.
    pub destinations: Vec<String>,
    /// Try syntax, starting with `-`.
    #[serde(default)]
    pub try_syntax: Option<String>,
    /// On whose behalf (service tokens only); default: the token's user.
    #[serde(default)]
    pub requester: Option<String>,
    /// Bug number.
    #[serde(default)]
    pub bug: Option<i64>,
    /// Test on try even if the same patches on the same base passed recently.
    #[serde(default)]
    pub fresh_try: bool,
}

/// Who is calling, from their token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's label.
    pub token: String,
    /// The token's user.
    pub user: String,
    /// Whom it may act for.
    pub service: crate::config::Service,
    /// What the token may do.
    pub scope: crate::config::Scope,
}

/// A request that cannot be accepted, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid<T>(message: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(message.into()))
}

fn check_identity(field: &str, value: &str) -> Result<(), Invalid> {
    let email = crate::request::email_of(value);
    let ok = value.len() <= 320
        && !value.chars().any(char::is_control)
        && email.contains('@')
        && !email.starts_with('@')
        && !email.ends_with('@')
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>');
    if ok {
        Ok(())
    } else {
        invalid(format!(
            "{field} `{}` is not an email address (or \"Name <email>\")",
            value.chars().take(80).collect::<String>()
        ))
    }
}

/// Validates a submission into a request ready to store.
pub fn validate(
    config: &Config,
    submit: &SubmitRequest,
    caller: &Caller,
) -> Result<NewRequest, Invalid> {
    let requester = requester_for(submit.requester.as_deref(), caller, false)?;
    if let Some(bug) = submit.bug
        && bug <= 0
    {
        return invalid(format!("bug must be a positive number, not {bug}"));
    }
    let (try_repo, base_repo, destinations) = resolve_destinations(config, &submit.destinations)?;
    check_try_syntax(submit.try_syntax.as_deref())?;
    if submit.patches.is_empty() {
        return invalid("patches is empty: a request needs at least one patch");
    }
    if submit.patches.len() > config.limits.max_patches {
        return invalid(format!(
            "{} patches; at most {} are accepted in one request",
            submit.patches.len(),
            config.limits.max_patches
        ));
    }
    let limits = Limits {
        max_bytes: config.limits.max_patch_bytes,
        max_files: config.limits.max_files_per_patch,
    };
    let mut patches = Vec::with_capacity(submit.patches.len());
    for (index, submitted) in submit.patches.iter().enumerate() {
        let position = i64::try_from(index).unwrap_or(i64::MAX) + 1;
        let name = submitted
            .name
            .clone()
            .unwrap_or_else(|| format!("patch-{position}"));
        let label = format!(
            "patch {position} (`{}`)",
            name.chars().take(100).collect::<String>()
        );
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return invalid(format!(
                "{label}: name must be 1 to 200 printable characters"
            ));
        }
        let parsed = patch::parse(submitted.content.as_bytes(), &limits)
            .map_err(|e| Invalid(format!("{label}: {e}")))?;
        let author = match (&parsed.author, &submitted.author) {
            (Some(a), _) => a.clone(),
            (None, Some(a)) => a.clone(),
            (None, None) => requester.clone(),
        };
        check_identity(&format!("{label}: author"), &author)?;
        let message = match (&parsed.message, &submitted.message) {
            (Some(m), _) => m.clone(),
            (None, Some(m)) if !m.trim().is_empty() => m.trim().to_owned(),
            _ => match submit.bug {
                Some(bug) => format!("Bug {bug} - {name}"),
                None => format!("{name} (landed by Autoland for {requester})"),
            },
        };
        if crate::request::claims_trailer(&message) {
            return invalid(format!(
                "{label}: the commit message contains `{}:`; Autoland adds that trailer itself",
                crate::request::TRAILER_KEY
            ));
        }
        if message.len() > 64 * 1024 {
            return invalid(format!("{label}: the commit message is longer than 64 KiB"));
        }
        let mut reviews = Vec::new();
        for (list, kind) in [
            (&submitted.reviewers, ReviewKind::Review),
            (&submitted.feedback, ReviewKind::Feedback),
        ] {
            for who in list {
                check_identity(&format!("{label}: {}", kind.as_str()), who)?;
                reviews.push(Review {
                    who: who.clone(),
                    kind,
                });
            }
        }
        patches.push(Patch {
            position,
            name,
            format: parsed.format,
            author,
            submitter: None,
            date: parsed.date,
            message,
            diff: parsed.diff,
            files: parsed.files,
            reviews,
        });
    }
    Ok(NewRequest {
        source: crate::request::API_SOURCE.to_owned(),
        bug: submit.bug,
        requester,
        try_repo,
        base_repo,
        destinations,
        try_syntax: submit.try_syntax.clone(),
        patches,
        attachment_ids: Vec::new(),
    })
}

fn requester_for(asked: Option<&str>, caller: &Caller, for_bug: bool) -> Result<String, Invalid> {
    let requester = match asked {
        Some(r) if r != caller.user && !caller.service.may_act_for_others(for_bug) => {
            return invalid(format!(
                "requester `{r}` differs from the token's user `{}`; only service tokens may submit for someone else{}",
                caller.user,
                if caller.service == crate::config::Service::Bugs {
                    " (this one, `service = \"bugs\"`, only in requests for a bug)"
                } else {
                    ""
                }
            ));
        }
        Some(r) => r.to_owned(),
        None => caller.user.clone(),
    };
    check_identity("requester", &requester)?;
    Ok(requester)
}

fn check_try_syntax(syntax: Option<&str>) -> Result<(), Invalid> {
    let Some(syntax) = syntax else {
        return Ok(());
    };
    if !syntax.starts_with('-') {
        return invalid(format!(
            "try_syntax must start with '-' (e.g. \"-b o -p linux64 -u all\"), got `{}`",
            syntax.chars().take(80).collect::<String>()
        ));
    }
    if syntax.len() > 1000 || syntax.chars().any(char::is_control) {
        return invalid("try_syntax must be one line of at most 1000 characters");
    }
    Ok(())
}

/// A landing request for a bug, as pushed to `POST /api/bugzilla/requests` by a Bugzilla
/// extension or a script (instead of a whiteboard tag).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitBug {
    /// The bug.
    pub bug: i64,
    /// Attachment ids to land, in order; default: every current patch.
    #[serde(default)]
    pub attachments: Vec<i64>,
    /// Destinations; default `["try"]`.
    #[serde(default)]
    pub destinations: Vec<String>,
    /// Try syntax, starting with `-`.
    #[serde(default)]
    pub try_syntax: Option<String>,
    /// On whose behalf (service tokens only); default: the token's user.
    #[serde(default)]
    pub requester: Option<String>,
}

/// Validates a pushed bug request (the same rules as a whiteboard tag).
pub fn validate_bug(
    config: &Config,
    submit: &SubmitBug,
    caller: &Caller,
) -> Result<NewRequest, Invalid> {
    if config.bugzilla.is_none() {
        return invalid("Bugzilla is not configured on this server");
    }
    if submit.bug <= 0 {
        return invalid(format!("bug must be a positive number, not {}", submit.bug));
    }
    let requester = requester_for(submit.requester.as_deref(), caller, true)?;
    check_try_syntax(submit.try_syntax.as_deref())?;
    if submit.attachments.len() > 50 || submit.attachments.iter().any(|a| *a <= 0) {
        return invalid("attachments must be at most 50 positive attachment ids");
    }
    let mut seen = HashSet::new();
    if let Some(twice) = submit.attachments.iter().find(|a| !seen.insert(**a)) {
        return invalid(format!("attachment {twice} is named twice"));
    }
    let names = if submit.destinations.is_empty() {
        vec!["try".to_owned()]
    } else {
        submit.destinations.clone()
    };
    let (try_repo, base_repo, destinations) = resolve_destinations(config, &names)?;
    Ok(NewRequest {
        source: crate::tracker::bugzilla::SOURCE.to_owned(),
        bug: Some(submit.bug),
        requester,
        try_repo,
        base_repo,
        destinations,
        try_syntax: submit.try_syntax.clone(),
        patches: Vec::new(),
        attachment_ids: submit.attachments.clone(),
    })
}

/// Turns the named destinations into (try repository, base repository, final destinations).
pub fn resolve_destinations(
    config: &Config,
    names: &[String],
) -> Result<(String, String, Vec<String>), Invalid> {
    if names.is_empty() {
        return invalid("destinations is empty: name a try repository and/or final repositories");
    }
    let known: Vec<&str> = config
        .repositories
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    let mut seen = HashSet::new();
    let mut named_try = None;
    let mut finals = Vec::new();
    for name in names {
        if !seen.insert(name.as_str()) {
            return invalid(format!("destination `{name}` is named twice"));
        }
        let Some(repo) = config.repo(name) else {
            return invalid(format!(
                "unknown destination `{}`; configured repositories: {}",
                name.chars().take(80).collect::<String>(),
                known.join(", ")
            ));
        };
        if repo.is_try {
            if named_try.is_some() {
                return invalid("more than one try repository named");
            }
            named_try = Some(repo);
        } else {
            finals.push(repo);
        }
    }
    if let Some(gated) = finals.iter().find(|r| config.is_gated(&r.name))
        && finals.len() > 1
    {
        return invalid(format!(
            "destination `{}` lands through its landing gate, which lands requests for it \
             alone: name it in a request of its own",
            gated.name
        ));
    }
    let mut try_repo = named_try;
    for repo in &finals {
        let Some(its_try) = config.try_repo_for(repo) else {
            return invalid(format!(
                "destination `{}` has no try repository configured",
                repo.name
            ));
        };
        match try_repo {
            Some(t) if t.name != its_try.name => {
                return invalid(format!(
                    "destination `{}` is tested on `{}`, not on `{}`: split the request",
                    repo.name, its_try.name, t.name
                ));
            }
            _ => try_repo = Some(its_try),
        }
    }
    let Some(try_repo) = try_repo else {
        return invalid("no try repository for these destinations");
    };
    let base = match finals.first() {
        Some(first) => first.name.clone(),
        None => match &try_repo.base {
            Some(base) => base.clone(),
            None => {
                return invalid(format!(
                    "try-only requests need `base` set on try repository `{}` (the repository whose tip the push is built on)",
                    try_repo.name
                ));
            }
        },
    };
    Ok((
        try_repo.name.clone(),
        base,
        finals.iter().map(|r| r.name.clone()).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(central_extra: &str) -> Config {
        let text = format!(
            r#"
            [[repositories]]
            name = "central"
            kind = "git"
            pull_url = "/srv/central.git"
            level = "scm_level_3"
            {central_extra}

            [[repositories]]
            name = "beta"
            kind = "git"
            pull_url = "/srv/beta.git"
            level = "scm_level_3"

            [[repositories]]
            name = "try"
            kind = "git"
            pull_url = "/srv/try.git"
            level = "scm_level_1"
            try = true
            base = "central"
            ci_command = "make test"
            "#
        );
        let config: Config = toml::from_str(&text).unwrap();
        config.validate().unwrap();
        config
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn a_gated_destination_lands_alone() {
        let open = config("");
        assert!(resolve_destinations(&open, &names(&["central", "beta"])).is_ok());
        let gated = config("gate = \"speculative\"");
        let err = resolve_destinations(&gated, &names(&["try", "central", "beta"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`central` lands through its landing gate"),
            "{err}"
        );
        let (try_repo, base, finals) =
            resolve_destinations(&gated, &names(&["try", "central"])).unwrap();
        assert_eq!((try_repo.as_str(), base.as_str()), ("try", "central"));
        assert_eq!(finals, ["central"]);
    }
}
