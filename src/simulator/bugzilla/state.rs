//! The simulator's data: users, API keys, bugs with their history, attachments with their
//! flags, comments, the request log and the clock. Everything here is synchronous; the HTTP
//! layer (`api`) holds the lock while it reads or changes it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};

use super::types::{Comment, Fault, Flavor, LoggedRequest, NewAttachment, NewBug};

/// How every time is written on the wire: ISO 8601, UTC, whole seconds.
pub(super) const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

pub(super) fn format_time(t: DateTime<Utc>) -> String {
    t.format(TIME_FORMAT).to_string()
}

/// Reads a date-time the way Bugzilla's `datetime_format_inbound` accepts the common forms:
/// RFC 3339 with an offset, ISO 8601 without one (taken as UTC), the XML-RPC form
/// `20261125T21:00:00`, and a bare date (midnight).
pub(super) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    const NAIVE: [&str; 8] = [
        "%Y-%m-%dT%H:%M:%SZ",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y%m%dT%H:%M:%SZ",
        "%Y%m%dT%H:%M:%S",
        "%Y-%m-%dT%H:%MZ",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ];
    for format in NAIVE {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

fn now_in_seconds() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
}

/// The product and component every simulated bug is filed in.
pub(super) const PRODUCT: &str = "TestProduct";
/// The group private bugs are restricted to (its members are the insiders).
pub(super) const INSIDERS_GROUP: &str = "insiders";
pub(super) const COMPONENT: &str = "TestComponent";

#[derive(Debug, Clone)]
pub(super) struct User {
    pub id: i64,
    pub email: String,
    pub real_name: String,
    pub insider: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Change {
    /// The API name of the field ("whiteboard", "summary", "attachments.isobsolete").
    pub field_name: String,
    pub removed: String,
    pub added: String,
    pub attachment_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub(super) struct HistoryEntry {
    pub when: DateTime<Utc>,
    pub who: String,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone)]
pub(super) struct Bug {
    pub id: i64,
    pub summary: String,
    pub whiteboard: String,
    pub creator: String,
    pub private: bool,
    pub creation_time: DateTime<Utc>,
    pub last_change_time: DateTime<Utc>,
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone)]
pub(super) struct Flag {
    pub id: i64,
    pub type_id: i64,
    pub name: String,
    pub status: String,
    pub setter: String,
    pub requestee: Option<String>,
    pub creation_date: DateTime<Utc>,
    pub modification_date: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(super) struct Attachment {
    pub id: i64,
    pub bug_id: i64,
    pub file_name: String,
    pub summary: String,
    pub content_type: String,
    pub data: Vec<u8>,
    pub is_patch: bool,
    pub is_obsolete: bool,
    pub is_private: bool,
    pub creator: String,
    pub creation_time: DateTime<Utc>,
    pub last_change_time: DateTime<Utc>,
    pub flags: Vec<Flag>,
}

#[derive(Debug, Clone)]
pub(super) struct StoredComment {
    pub id: i64,
    pub bug_id: i64,
    /// Position on its bug: 0 is the description.
    pub count: i64,
    pub creator: String,
    pub text: String,
    pub time: DateTime<Utc>,
    pub is_private: bool,
    pub attachment_id: Option<i64>,
}

/// A bug field the API can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BugField {
    Whiteboard,
    Summary,
}

impl BugField {
    pub fn api_name(self) -> &'static str {
        match self {
            BugField::Whiteboard => "whiteboard",
            BugField::Summary => "summary",
        }
    }

    fn get(self, bug: &Bug) -> &str {
        match self {
            BugField::Whiteboard => &bug.whiteboard,
            BugField::Summary => &bug.summary,
        }
    }

    fn set(self, bug: &mut Bug, value: String) {
        match self {
            BugField::Whiteboard => bug.whiteboard = value,
            BugField::Summary => bug.summary = value,
        }
    }
}

/// What one bug update did.
pub(super) struct UpdateResult {
    /// (api field name, removed, added)
    pub changes: Vec<(String, String, String)>,
    pub last_change_time: DateTime<Utc>,
}

pub(super) struct State {
    pub flavor: Flavor,
    pub fault: Fault,
    clock: DateTime<Utc>,
    pub users: Vec<User>,
    api_keys: HashMap<String, String>,
    pub bugs: BTreeMap<i64, Bug>,
    pub attachments: BTreeMap<i64, Attachment>,
    pub comments: BTreeMap<i64, StoredComment>,
    flag_types: Vec<String>,
    next_bug: i64,
    next_attachment: i64,
    next_comment: i64,
    next_flag: i64,
    pub log: Vec<LoggedRequest>,
}

/// The server state every handle and every request shares.
pub(super) type Shared = Arc<Mutex<State>>;

/// Locks the shared state; a handler that panicked leaves it usable.
pub(super) fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    pub fn new(flavor: Flavor) -> State {
        State {
            flavor,
            fault: Fault::None,
            clock: now_in_seconds(),
            users: Vec::new(),
            api_keys: HashMap::new(),
            bugs: BTreeMap::new(),
            attachments: BTreeMap::new(),
            comments: BTreeMap::new(),
            // Flag type ids: review is 1 and feedback 2; others are numbered as first seen.
            flag_types: vec!["review".to_owned(), "feedback".to_owned()],
            next_bug: 1,
            next_attachment: 1001,
            next_comment: 1,
            next_flag: 1,
            log: Vec::new(),
        }
    }

    /// The time of a new change: at least one second after the previous one, and never
    /// behind the real clock (so a client filtering on its own wall-clock time sees it).
    pub fn tick(&mut self) -> DateTime<Utc> {
        let next = (self.clock + TimeDelta::seconds(1)).max(now_in_seconds());
        self.clock = next;
        next
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock
    }

    pub fn advance(&mut self, by: Duration) {
        let step = TimeDelta::from_std(by).unwrap_or(TimeDelta::MAX);
        if let Some(later) = self.clock.checked_add_signed(step) {
            self.clock = later;
        }
    }

    // ----- users -----

    pub fn add_user(&mut self, email: &str, real_name: &str, insider: bool) {
        if let Some(user) = self.users.iter_mut().find(|u| u.email == email) {
            user.real_name = real_name.to_owned();
            user.insider = insider;
            return;
        }
        let id = self.users.len() as i64 + 1;
        self.users.push(User {
            id,
            email: email.to_owned(),
            real_name: real_name.to_owned(),
            insider,
        });
    }

    fn ensure_user(&mut self, email: &str) {
        if !self.users.iter().any(|u| u.email == email) {
            self.add_user(email, "", false);
        }
    }

    pub fn add_api_key(&mut self, key: &str, email: &str) {
        self.ensure_user(email);
        self.api_keys.insert(key.to_owned(), email.to_owned());
    }

    /// The user an API key logs in, if the key is known.
    pub fn user_by_key(&self, key: &str) -> Option<User> {
        let email = self.api_keys.get(key)?;
        self.users.iter().find(|u| &u.email == email).cloned()
    }

    // ----- visibility -----

    pub fn can_see_bug(viewer: Option<&User>, bug: &Bug) -> bool {
        !bug.private || viewer.is_some_and(|v| v.insider || v.email == bug.creator)
    }

    /// Whether an attachment appears in its bug's list (`Bugzilla::Attachment::
    /// get_attachments_by_bug`): private ones only for insiders and their creator.
    pub fn lists_attachment(viewer: Option<&User>, attachment: &Attachment) -> bool {
        !attachment.is_private || viewer.is_some_and(|v| v.insider || v.email == attachment.creator)
    }

    pub fn can_see_comment(viewer: Option<&User>, comment: &StoredComment) -> bool {
        !comment.is_private || viewer.is_some_and(|v| v.insider)
    }

    // ----- changes -----

    pub fn create_bug(&mut self, bug: NewBug) -> i64 {
        self.ensure_user(&bug.creator);
        let id = self.next_bug;
        self.next_bug += 1;
        let now = self.tick();
        self.bugs.insert(
            id,
            Bug {
                id,
                summary: bug.summary.clone(),
                whiteboard: bug.whiteboard,
                creator: bug.creator.clone(),
                private: bug.private,
                creation_time: now,
                last_change_time: now,
                history: Vec::new(),
            },
        );
        self.push_comment(id, &bug.creator, &bug.summary, false, None, now);
        id
    }

    fn push_comment(
        &mut self,
        bug_id: i64,
        creator: &str,
        text: &str,
        is_private: bool,
        attachment_id: Option<i64>,
        time: DateTime<Utc>,
    ) -> i64 {
        let id = self.next_comment;
        self.next_comment += 1;
        let count = self
            .comments
            .values()
            .filter(|c| c.bug_id == bug_id)
            .count() as i64;
        self.comments.insert(
            id,
            StoredComment {
                id,
                bug_id,
                count,
                creator: creator.to_owned(),
                text: text.to_owned(),
                time,
                is_private,
                attachment_id,
            },
        );
        id
    }

    /// Sets fields of a bug and optionally adds a comment, as one change: one timestamp, one
    /// history entry. Nothing happens (and the time stays) when nothing differs.
    /// Returns `None` if the bug does not exist.
    pub fn update_bug(
        &mut self,
        bug_id: i64,
        who: &str,
        fields: &[(BugField, String)],
        comment: Option<(&str, bool)>,
    ) -> Option<(UpdateResult, Option<i64>)> {
        let bug = self.bugs.get(&bug_id)?;
        let mut diffs: Vec<(BugField, String, String)> = Vec::new();
        for (field, value) in fields {
            let old = field.get(bug);
            let pending = diffs.iter().any(|(f, _, _)| f == field);
            if old != value && !pending {
                diffs.push((*field, old.to_owned(), value.clone()));
            }
        }
        let comment = comment.filter(|(text, _)| !text.trim().is_empty());
        if diffs.is_empty() && comment.is_none() {
            return Some((
                UpdateResult {
                    changes: Vec::new(),
                    last_change_time: bug.last_change_time,
                },
                None,
            ));
        }
        self.ensure_user(who);
        let now = self.tick();
        let comment_id =
            comment.map(|(text, private)| self.push_comment(bug_id, who, text, private, None, now));
        let bug = self.bugs.get_mut(&bug_id)?;
        for (field, _, added) in &diffs {
            field.set(bug, added.clone());
        }
        if !diffs.is_empty() {
            bug.history.push(HistoryEntry {
                when: now,
                who: who.to_owned(),
                changes: diffs
                    .iter()
                    .map(|(field, removed, added)| Change {
                        field_name: field.api_name().to_owned(),
                        removed: removed.clone(),
                        added: added.clone(),
                        attachment_id: None,
                    })
                    .collect(),
            });
        }
        bug.last_change_time = now;
        let changes = diffs
            .into_iter()
            .map(|(field, removed, added)| (field.api_name().to_owned(), removed, added))
            .collect();
        Some((
            UpdateResult {
                changes,
                last_change_time: now,
            },
            comment_id,
        ))
    }

    fn flag_type_id(&mut self, name: &str) -> i64 {
        if let Some(index) = self.flag_types.iter().position(|n| n == name) {
            return index as i64 + 1;
        }
        self.flag_types.push(name.to_owned());
        self.flag_types.len() as i64
    }

    /// Adds an attachment the way `Bug.add_attachment` does: the attachment, its flags, and a
    /// "Created attachment N" comment, all at one time. `None` if the bug does not exist.
    pub fn add_attachment(&mut self, bug_id: i64, new: NewAttachment) -> Option<i64> {
        if !self.bugs.contains_key(&bug_id) {
            return None;
        }
        self.ensure_user(&new.creator);
        let id = self.next_attachment;
        self.next_attachment += 1;
        let now = self.tick();
        let mut flags = Vec::with_capacity(new.flags.len());
        for flag in new.flags {
            self.ensure_user(&flag.setter);
            if let Some(requestee) = &flag.requestee {
                self.ensure_user(requestee);
            }
            let flag_id = self.next_flag;
            self.next_flag += 1;
            flags.push(Flag {
                id: flag_id,
                type_id: self.flag_type_id(&flag.name),
                name: flag.name,
                status: flag.status,
                setter: flag.setter,
                requestee: flag.requestee,
                creation_date: now,
                modification_date: now,
            });
        }
        let text = format!("Created attachment {id}\n{}", new.summary);
        self.push_comment(bug_id, &new.creator, &text, new.is_private, Some(id), now);
        self.attachments.insert(
            id,
            Attachment {
                id,
                bug_id,
                file_name: new.file_name,
                summary: new.summary,
                content_type: new.content_type,
                data: new.data,
                is_patch: new.is_patch,
                is_obsolete: new.is_obsolete,
                is_private: new.is_private,
                creator: new.creator,
                creation_time: now,
                last_change_time: now,
                flags,
            },
        );
        if let Some(bug) = self.bugs.get_mut(&bug_id) {
            bug.last_change_time = now;
        }
        Some(id)
    }

    /// Marks an attachment obsolete or not, recording it in the bug's history like
    /// Bugzilla (`attachments.isobsolete`). `false` if the attachment does not exist.
    pub fn set_obsolete(&mut self, attachment_id: i64, obsolete: bool) -> bool {
        let Some(attachment) = self.attachments.get(&attachment_id) else {
            return false;
        };
        if attachment.is_obsolete == obsolete {
            return true;
        }
        let (bug_id, who) = (attachment.bug_id, attachment.creator.clone());
        let now = self.tick();
        if let Some(attachment) = self.attachments.get_mut(&attachment_id) {
            attachment.is_obsolete = obsolete;
            attachment.last_change_time = now;
        }
        if let Some(bug) = self.bugs.get_mut(&bug_id) {
            bug.history.push(HistoryEntry {
                when: now,
                who,
                changes: vec![Change {
                    field_name: "attachments.isobsolete".to_owned(),
                    removed: if obsolete { "0" } else { "1" }.to_owned(),
                    added: if obsolete { "1" } else { "0" }.to_owned(),
                    attachment_id: Some(attachment_id),
                }],
            });
            bug.last_change_time = now;
        }
        true
    }

    /// Adds a comment (`Bug.add_comment`); bumps the bug's last change time.
    pub fn add_comment(&mut self, bug_id: i64, who: &str, text: &str, private: bool) -> i64 {
        self.ensure_user(who);
        let now = self.tick();
        let id = self.push_comment(bug_id, who, text, private, None, now);
        if let Some(bug) = self.bugs.get_mut(&bug_id) {
            bug.last_change_time = now;
        }
        id
    }

    pub fn comments_of(&self, bug_id: i64) -> Vec<Comment> {
        self.comments
            .values()
            .filter(|c| c.bug_id == bug_id)
            .map(|c| Comment {
                id: c.id,
                bug_id: c.bug_id,
                creator: c.creator.clone(),
                text: c.text.clone(),
                time: format_time(c.time),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_time_forms() {
        let expected = parse_time("2026-11-25T21:00:00Z");
        assert!(expected.is_some());
        for text in [
            "2026-11-25T21:00:00",
            "2026-11-25 21:00:00",
            "20261125T21:00:00",
            "2026-11-25T22:00:00+01:00",
        ] {
            assert_eq!(parse_time(text), expected, "{text}");
        }
        assert!(parse_time("2026-11-25").is_some());
        assert!(parse_time("yesterday").is_none());
        assert!(parse_time("2026-13-01").is_none());
    }

    #[test]
    fn the_clock_moves_forward_at_least_a_second_per_change() {
        let mut state = State::new(Flavor::V52);
        let a = state.tick();
        let b = state.tick();
        assert!(b - a >= TimeDelta::seconds(1));
        state.advance(Duration::from_secs(3600));
        assert!(state.tick() - b >= TimeDelta::seconds(3600));
    }
}
