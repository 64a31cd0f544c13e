//! The domain: what a landing request is, its patches and destinations, and (in
//! [`state`](crate::request::state)) the state machine every stage change goes through.

pub mod state;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use state::{FailureCategory, IllegalTransition, Stage, Transition, next_stage};

use crate::patch::{PatchDate, PatchFormat};

/// A request's number, as shown to people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub i64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The key under which commits carry their request: `Autoland-Request: <uid>`.
pub const TRAILER_KEY: &str = "Autoland-Request";

/// True if a commit message already carries Autoland's trailer key: such a message could
/// make another request's commits look landed, so it is refused at intake.
pub fn claims_trailer(message: &str) -> bool {
    message
        .to_ascii_lowercase()
        .contains(&format!("{}:", TRAILER_KEY.to_ascii_lowercase()))
}

/// Who reviewed or gave feedback on a patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewKind {
    /// review+
    Review,
    /// feedback+
    Feedback,
}

impl ReviewKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewKind::Review => "review",
            ReviewKind::Feedback => "feedback",
        }
    }
}

/// A person's positive review or feedback on a patch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// The reviewer's identity (an email address).
    pub who: String,
    /// review+ or feedback+.
    pub kind: ReviewKind,
}

/// One patch of a request, parsed and validated, ready to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patch {
    /// Position in the request, from 1.
    pub position: i64,
    /// What the submitter called it (a file name, an attachment id).
    pub name: String,
    /// The format the patch came in.
    pub format: PatchFormat,
    /// `Name <email>` of the commit author (free text from the patch header).
    pub author: String,
    /// The tracker account that supplied the patch (an attachment's creator).
    /// When set, permission checks use it instead of the free-text author.
    pub submitter: Option<String>,
    /// The author date, if the patch carried one.
    pub date: Option<PatchDate>,
    /// The commit message (without Autoland's trailer).
    pub message: String,
    /// The diff to apply.
    pub diff: String,
    /// Paths the diff touches.
    pub files: Vec<String>,
    /// Reviews and feedback recorded for this patch.
    pub reviews: Vec<Review>,
}

impl Patch {
    /// The identity accountable for the patch in permission checks: the submitting
    /// account if there is one, else the author's email ("Name <a@b>" → "a@b").
    pub fn accountable(&self) -> &str {
        match &self.submitter {
            Some(account) => account,
            None => email_of(&self.author),
        }
    }
}

/// The address inside `Name <address>`, or the whole string when there are no brackets.
pub fn email_of(identity: &str) -> &str {
    match (identity.rfind('<'), identity.rfind('>')) {
        (Some(open), Some(close)) if open < close => identity[open + 1..close].trim(),
        _ => identity.trim(),
    }
}

/// A final destination of a request and how far landing on it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    /// Order of landing, from 1.
    pub position: i64,
    /// Repository name from the configuration.
    pub repo: String,
    /// The revision the destination's tip was at when the last push attempt started;
    /// where to look for already-pushed commits after a crash.
    pub attempt_base: Option<String>,
    /// The landed revision, once landed.
    pub landed_revision: Option<String>,
}

/// The `source` of requests submitted with their patches through Autoland's own API.
/// Every other source names the tracker that owns the request (see `runtime::tracker`).
pub const API_SOURCE: &str = "api";

/// The event that asks for a fresh try run: the request's next try push is tested even if
/// the same patches on the same base passed recently.
pub const FRESH_TRY: &str = "fresh_try";

/// A landing request as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Its number.
    pub id: RequestId,
    /// A random token that marks its commits (`Autoland-Request: <uid>`).
    pub uid: String,
    /// Where it came from: [`API_SOURCE`], or the source of the tracker that owns it.
    pub source: String,
    /// The bug number, if any.
    pub bug: Option<i64>,
    /// Who asked for it.
    pub requester: String,
    /// The try repository it goes through.
    pub try_repo: String,
    /// The repository whose tip the try push is built on.
    pub base_repo: String,
    /// Try syntax, if any (starts with `-`).
    pub try_syntax: Option<String>,
    /// Current stage.
    pub stage: Stage,
    /// Set when failed.
    pub failure: Option<FailureCategory>,
    /// Human-readable detail of a failure.
    pub failure_detail: Option<String>,
    /// The base revision the try push was built on (recorded when applied), so a resumed
    /// push can rebuild exactly the same commits.
    pub try_base: Option<String>,
    /// The revision pushed to try.
    pub try_revision: Option<String>,
    /// Failed attempts at the current stage (transient errors).
    pub attempts: i64,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// Milliseconds since the epoch.
    pub updated_at: i64,
    /// The final destinations, in landing order (empty for a try-only request).
    pub destinations: Vec<Destination>,
}

/// One row of a request's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Event number (global, increasing).
    pub id: i64,
    /// Milliseconds since the epoch.
    pub at: i64,
    /// What happened (`received`, `applied`, `push_retry`, ...).
    pub kind: String,
    /// Stage before, for transitions.
    pub from_stage: Option<Stage>,
    /// Stage after, for transitions.
    pub to_stage: Option<Stage>,
    /// Who or what caused it (a module instance or a person).
    pub actor: String,
    /// Human-readable detail.
    pub detail: String,
}

/// A request about to be stored: validated, with its patches parsed.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// Where it came from.
    pub source: String,
    /// Bug number, if any.
    pub bug: Option<i64>,
    /// Who asked.
    pub requester: String,
    /// The try repository.
    pub try_repo: String,
    /// What the try push is built on.
    pub base_repo: String,
    /// Final destinations in order.
    pub destinations: Vec<String>,
    /// Try syntax.
    pub try_syntax: Option<String>,
    /// The patches in order (empty when they are gathered later, from the tracker).
    pub patches: Vec<Patch>,
    /// Attachments the request named explicitly, in order (tracker requests).
    pub attachment_ids: Vec<i64>,
}
