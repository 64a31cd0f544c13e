//! Gathering a Bugzilla request's patches: list the bug's attachments without their data,
//! choose the current patches (or exactly the ones the tag names), fetch their data and
//! parse them. Identities for permissions are Bugzilla accounts: the attachment's creator
//! and the setters of review+/feedback+ flags, never the free-text patch header.

use base64::Engine as _;

use super::client::{Attachment, BugzillaClient, BugzillaError};
use super::page::{PHABRICATOR_STUB, current_patches, one_line, patch_name, reviews_of};
use crate::config::Config;
use crate::patch::{self, Limits};
use crate::request::Patch;
use crate::runtime::GatherError;

impl From<BugzillaError> for GatherError {
    fn from(e: BugzillaError) -> GatherError {
        if e.is_transient() || e.is_credentials() {
            GatherError::Transient(e.to_string())
        } else {
            GatherError::Invalid(e.to_string())
        }
    }
}

/// The patches of `bug`, in landing order, with a one-line summary of what was chosen.
pub async fn gather(
    client: &BugzillaClient,
    config: &Config,
    bug: i64,
    requested: &[i64],
) -> Result<(Vec<Patch>, String), GatherError> {
    let summary = match client.bug(bug).await {
        Ok(b) => b.summary,
        Err(BugzillaError::BugNotFound(_)) => {
            return Err(GatherError::Invalid(format!("bug {bug} does not exist")));
        }
        Err(BugzillaError::AccessDenied(_)) => {
            return Err(GatherError::Invalid(format!(
                "Autoland's Bugzilla account cannot see bug {bug} (it is private or restricted); \
                 Autoland only lands patches from bugs it can read"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let listed = client.attachments(bug).await?;
    let chosen = if requested.is_empty() {
        // Never private attachments: what Autoland lands is shown on its public pages.
        let current = current_patches(listed, false);
        if current.is_empty() {
            return Err(GatherError::Invalid(format!(
                "bug {bug} has no current patches: no attachment is marked as a patch, not obsolete and not private"
            )));
        }
        current
    } else {
        choose_requested(client, bug, &listed, requested).await?
    };
    if chosen.len() > config.limits.max_patches {
        return Err(GatherError::Invalid(format!(
            "{} patches; at most {} are accepted in one request (limits.max_patches)",
            chosen.len(),
            config.limits.max_patches
        )));
    }
    let limits = Limits {
        max_bytes: config.limits.max_patch_bytes,
        max_files: config.limits.max_files_per_patch,
    };
    let mut patches = Vec::with_capacity(chosen.len());
    for (index, listed) in chosen.iter().enumerate() {
        let position = i64::try_from(index).unwrap_or(i64::MAX) + 1;
        let label = format!("attachment {} (`{}`)", listed.id, listed.file_name);
        let full = client.attachment(listed.id).await?;
        let data = full.data.as_deref().unwrap_or("");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| {
                GatherError::Invalid(format!("{label}: its data is not valid base64 ({e})"))
            })?;
        let parsed = patch::parse(&bytes, &limits)
            .map_err(|e| GatherError::Invalid(format!("{label}: {e}")))?;
        // The message as it will be committed, the bug's summary included when the patch
        // has none: nobody may put the trailer that identifies requests in it.
        let message = parsed
            .message
            .clone()
            .unwrap_or_else(|| format!("Bug {bug} - {}", one_line(&summary, 200)));
        if crate::request::claims_trailer(&message) {
            return Err(GatherError::Invalid(format!(
                "{label}: the commit message (or the bug's summary it is made of) contains \
                 `{}:`; Autoland adds that trailer itself",
                crate::request::TRAILER_KEY
            )));
        }
        let creator = listed.creator.clone();
        let reviews = reviews_of(&listed.flags);
        patches.push(Patch {
            position,
            name: patch_name(listed.id, &listed.summary),
            format: parsed.format,
            author: parsed.author.clone().unwrap_or_else(|| creator.clone()),
            submitter: Some(creator),
            date: parsed.date,
            message,
            diff: parsed.diff,
            files: parsed.files,
            reviews,
        });
    }
    let names: Vec<String> = chosen
        .iter()
        .map(|a| format!("{} (by {})", a.id, a.creator))
        .collect();
    Ok((
        patches,
        format!(
            "{} patch(es) from bug {bug}: attachments {}",
            chosen.len(),
            names.join(", ")
        ),
    ))
}

/// Exactly the attachments the tag named, in that order; every problem is named.
async fn choose_requested(
    client: &BugzillaClient,
    bug: i64,
    listed: &[Attachment],
    requested: &[i64],
) -> Result<Vec<Attachment>, GatherError> {
    let mut chosen = Vec::new();
    let mut problems = Vec::new();
    for id in requested {
        match listed.iter().find(|a| a.id == *id) {
            Some(a) if a.is_obsolete => problems.push(format!("attachment {id} is obsolete")),
            Some(a) if a.is_private => problems.push(format!(
                "attachment {id} is private: Autoland does not land private attachments \
                 (what it lands is shown on its public pages)"
            )),
            Some(a) if a.content_type == PHABRICATOR_STUB => problems.push(format!(
                "attachment {id} is a Phabricator link, not a patch"
            )),
            Some(a) => chosen.push(a.clone()),
            None => match client.attachment(*id).await {
                Ok(other) if other.bug_id != bug => problems.push(format!(
                    "attachment {id} belongs to bug {}, not to this bug",
                    other.bug_id
                )),
                Ok(_) => problems.push(format!("attachment {id} is not visible on this bug")),
                Err(e) if e.is_transient() || e.is_credentials() => return Err(e.into()),
                Err(BugzillaError::AccessDenied(_)) => problems.push(format!(
                    "attachment {id} is private and Autoland's account cannot read it"
                )),
                Err(_) => problems.push(format!("attachment {id} does not exist")),
            },
        }
    }
    if problems.is_empty() {
        Ok(chosen)
    } else {
        Err(GatherError::Invalid(format!(
            "the request names attachments Autoland cannot use: {}",
            problems.join("; ")
        )))
    }
}
