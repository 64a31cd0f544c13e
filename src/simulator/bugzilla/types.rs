//! The simulator's public vocabulary: flavors, faults, what tests file (bugs,
//! attachments, flags) and what they read back (comments, the request log).

use std::time::Duration;

/// Which Bugzilla the simulator behaves like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Upstream Bugzilla 5.2 (and 5.0.x): ignores the `X-BUGZILLA-API-KEY` header, answers
    /// attachment booleans as 0/1 and error codes as numbers, has no `/rest/whoami`.
    V52,
    /// Bugzilla 5.3.3, the line bugzilla.mozilla.org descends from: accepts the header,
    /// answers booleans as booleans and error codes as strings, has `/rest/whoami`.
    V53,
}

impl Flavor {
    /// What `GET /rest/version` answers.
    pub fn version(self) -> &'static str {
        match self {
            Flavor::V52 => "5.2",
            Flavor::V53 => "5.3.3",
        }
    }
}

/// A failure the simulator injects into every `/rest` request until it is cleared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Behave normally.
    None,
    /// The next `remaining` requests (`None`: all of them) answer `status` with the non-JSON
    /// body "Internal Server Error"; the fault clears itself when `remaining` reaches 0.
    ServerError { status: u16, remaining: Option<u32> },
    /// Every request waits this long, then is answered normally.
    Slow(Duration),
    /// Every request that presents an API key is refused with 400, code 306.
    InvalidKey,
}

/// A bug to file with `Simulator::create_bug`.
#[derive(Debug, Clone, Default)]
pub struct NewBug {
    pub summary: String,
    pub whiteboard: String,
    /// The reporter's login (email); made a user if unknown.
    pub creator: String,
    /// Only visible to insiders and to its creator.
    pub private: bool,
}

/// A flag on a new attachment.
#[derive(Debug, Clone, Default)]
pub struct NewFlag {
    /// "review" (type id 1) or "feedback" (type id 2); other names get the next ids.
    pub name: String,
    /// "+", "-" or "?".
    pub status: String,
    pub setter: String,
    pub requestee: Option<String>,
}

/// An attachment to add with `Simulator::add_attachment`.
#[derive(Debug, Clone, Default)]
pub struct NewAttachment {
    pub file_name: String,
    pub summary: String,
    pub content_type: String,
    pub data: Vec<u8>,
    pub is_patch: bool,
    pub is_obsolete: bool,
    /// Only visible to insiders and to its creator.
    pub is_private: bool,
    pub creator: String,
    pub flags: Vec<NewFlag>,
}

/// A comment as stored, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: i64,
    pub bug_id: i64,
    pub creator: String,
    pub text: String,
    /// ISO 8601 UTC, e.g. "2026-11-25T21:00:00Z".
    pub time: String,
}

/// One request the simulator answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    /// The full path, e.g. "/rest/bug/1/comment".
    pub path: String,
    /// The raw query string with every `api_key` / `Bugzilla_api_key` value replaced by
    /// "REDACTED".
    pub query: String,
    pub status: u16,
    /// Where the API key the request ran with came from: "header", "param", "body" or
    /// "none" (anonymous; on 5.2 a key sent only in the header counts as "none").
    pub auth: &'static str,
    /// The User-Agent header ("" when absent).
    pub user_agent: String,
}
