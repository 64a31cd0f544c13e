//! What the "land this bug" page shows of a bug: its summary and the patches a person may
//! pick, with their review and feedback flags. Read with Autoland's account, so the page
//! shows only what every Bugzilla user may see: a bug restricted to groups is not shown
//! (its people use the Bugzilla extension, which runs as them, or the whiteboard tag), and
//! private attachments are left out.

use super::client::{Attachment, BugzillaClient, BugzillaError, Flag};
use crate::patch::PatchFormat;
use crate::request::{Patch, Review, ReviewKind};

/// Phabricator stubs are attachments that point elsewhere, not patches.
pub const PHABRICATOR_STUB: &str = "text/x-phabricator-request";

/// A patch a person may pick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchChoice {
    /// Attachment id.
    pub id: i64,
    /// Its description.
    pub description: String,
    /// File name.
    pub file_name: String,
    /// Who attached it (the accountable identity in permission checks).
    pub creator: String,
    /// Review, feedback and other flags, as `name`, `status`, `setter`.
    pub flags: Vec<Flag>,
}

impl PatchChoice {
    /// The review+ and feedback+ it carries, as the permission rule counts them.
    pub fn reviews(&self) -> Vec<Review> {
        reviews_of(&self.flags)
    }

    /// The patch as the permission rule sees it before its data is fetched: accountable
    /// are its creator and its review+/feedback+ setters, exactly as after gathering.
    pub fn as_patch(&self, position: i64) -> Patch {
        Patch {
            position,
            name: patch_name(self.id, &self.description),
            format: PatchFormat::PlainDiff,
            author: self.creator.clone(),
            submitter: Some(self.creator.clone()),
            date: None,
            message: String::new(),
            diff: String::new(),
            files: Vec::new(),
            reviews: self.reviews(),
        }
    }
}

/// A bug as the page shows it (the default: nothing to show).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BugPage {
    /// Summary; empty when restricted.
    pub summary: String,
    /// The groups it is restricted to (empty: public). A restricted bug shows nothing.
    pub restricted_to: Vec<String>,
    /// Its current patches in landing order (creation time, then id).
    pub patches: Vec<PatchChoice>,
}

/// Reads `bug` for the page.
pub async fn read(client: &BugzillaClient, bug: i64) -> Result<BugPage, BugzillaError> {
    let found = client.bug(bug).await?;
    if !found.groups.is_empty() {
        return Ok(BugPage {
            summary: String::new(),
            restricted_to: found.groups,
            patches: Vec::new(),
        });
    }
    let listed = client.attachments(bug).await?;
    Ok(BugPage {
        summary: found.summary,
        restricted_to: Vec::new(),
        patches: current_patches(listed, false)
            .into_iter()
            .map(|a| PatchChoice {
                id: a.id,
                description: one_line(&a.summary, 200),
                file_name: one_line(&a.file_name, 200),
                creator: a.creator,
                flags: a.flags,
            })
            .collect(),
    })
}

/// Bug reads for the page, kept for a few seconds: people reload, and visitors may loop,
/// and every read is two calls on Autoland's Bugzilla account (whose rate limits the
/// poller and the reporter share). Bounded; the oldest entry goes first.
#[derive(Debug)]
pub struct PageCache {
    ttl: std::time::Duration,
    capacity: usize,
    entries: std::sync::Mutex<std::collections::HashMap<i64, (std::time::Instant, BugPage)>>,
}

impl Default for PageCache {
    fn default() -> PageCache {
        PageCache::new(std::time::Duration::from_secs(10), 512)
    }
}

impl PageCache {
    /// Entries live `ttl`; at most `capacity` of them.
    pub fn new(ttl: std::time::Duration, capacity: usize) -> PageCache {
        PageCache {
            ttl,
            capacity: capacity.max(1),
            entries: Default::default(),
        }
    }

    /// `bug` as [`read`] gives it, from the cache when it is fresh enough.
    pub async fn read(&self, client: &BugzillaClient, bug: i64) -> Result<BugPage, BugzillaError> {
        let now = std::time::Instant::now();
        if let Ok(entries) = self.entries.lock()
            && let Some((at, page)) = entries.get(&bug)
            && now.duration_since(*at) < self.ttl
        {
            return Ok(page.clone());
        }
        let page = read(client, bug).await?;
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
            if entries.len() >= self.capacity
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| *k)
            {
                entries.remove(&oldest);
            }
            entries.insert(bug, (now, page.clone()));
        }
        Ok(page)
    }
}

/// The current patches among a bug's attachments, in landing order: marked as patches,
/// not obsolete, not Phabricator links; private ones only with `with_private`.
pub fn current_patches(listed: Vec<Attachment>, with_private: bool) -> Vec<Attachment> {
    let mut current: Vec<Attachment> = listed
        .into_iter()
        .filter(|a| {
            a.is_patch
                && !a.is_obsolete
                && a.content_type != PHABRICATOR_STUB
                && (with_private || !a.is_private)
        })
        .collect();
    current.sort_by(|a, b| (&a.creation_time, a.id).cmp(&(&b.creation_time, b.id)));
    current
}

/// review+/superreview+ and feedback+ flags as the permission rule counts them.
pub fn reviews_of(flags: &[Flag]) -> Vec<Review> {
    flags
        .iter()
        .filter(|f| f.status == "+" && !f.setter.is_empty())
        .filter_map(|f| {
            let kind = match f.name.as_str() {
                "review" | "superreview" => ReviewKind::Review,
                "feedback" => ReviewKind::Feedback,
                _ => return None,
            };
            Some(Review {
                who: f.setter.clone(),
                kind,
            })
        })
        .collect()
}

/// The name a gathered patch gets: `attachment N: description`.
pub fn patch_name(attachment: i64, description: &str) -> String {
    format!("attachment {attachment}: {}", one_line(description, 80))
}

/// The attachment a gathered patch came from (the inverse of [`patch_name`]).
pub fn attachment_of(patch_name: &str) -> Option<i64> {
    patch_name
        .strip_prefix("attachment ")?
        .split(':')
        .next()?
        .parse()
        .ok()
}

/// `text` on one line, control characters replaced, at most `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    line.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(name: &str, status: &str, setter: &str) -> Flag {
        Flag {
            name: name.into(),
            status: status.into(),
            setter: setter.into(),
        }
    }

    #[test]
    fn patch_names_give_back_their_attachment() {
        let name = patch_name(1003, "Part 2: the fix\nwith a newline");
        assert_eq!(name, "attachment 1003: Part 2: the fix with a newline");
        assert_eq!(attachment_of(&name), Some(1003));
        assert_eq!(attachment_of("patch-1"), None);
        assert_eq!(attachment_of("attachment x: y"), None);
    }

    #[test]
    fn only_granted_review_and_feedback_flags_count() {
        let reviews = reviews_of(&[
            flag("review", "+", "r@example.com"),
            flag("review", "?", "asked@example.com"),
            flag("feedback", "+", "f@example.com"),
            flag("superreview", "+", "sr@example.com"),
            flag("approval", "+", "a@example.com"),
            flag("review", "+", ""),
        ]);
        let who: Vec<(&str, ReviewKind)> =
            reviews.iter().map(|r| (r.who.as_str(), r.kind)).collect();
        assert_eq!(
            who,
            [
                ("r@example.com", ReviewKind::Review),
                ("f@example.com", ReviewKind::Feedback),
                ("sr@example.com", ReviewKind::Review)
            ]
        );
    }

    #[test]
    fn a_choice_is_accountable_to_its_creator_as_after_gathering() {
        let choice = PatchChoice {
            id: 1001,
            description: "Fix".into(),
            file_name: "fix.patch".into(),
            creator: "dev@example.com".into(),
            flags: vec![flag("review", "+", "boss@example.com")],
        };
        let patch = choice.as_patch(2);
        assert_eq!(patch.accountable(), "dev@example.com");
        assert_eq!(patch.position, 2);
        assert_eq!(patch.reviews[0].who, "boss@example.com");
    }
}
