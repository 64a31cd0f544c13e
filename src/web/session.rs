//! Sessions for the web pages: an operator logs in with an operator-scope token, a person
//! signs in as their Bugzilla account with an API key (checked against Bugzilla, then
//! forgotten); either gets an HttpOnly, SameSite=Strict session cookie, and every form that
//! changes something also carries the session's CSRF token. Sessions live in memory (a
//! restart logs everyone out) and expire after eight hours.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::COOKIE;

/// The cookie's name.
pub const COOKIE_NAME: &str = "autoland_session";
/// How long a session lives (the cookie's `Max-Age` too).
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// How a session was opened, and so what it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An operator token: retry, cancel, close, pause; and land as the token's user.
    Operator,
    /// A Bugzilla account (API key checked with Bugzilla): land bugs as that account.
    Bugzilla,
}

/// A signed-in person.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who: the token's user, or the Bugzilla login (the requester of what they land).
    pub user: String,
    /// Their real name, when Bugzilla told it.
    pub name: String,
    /// How they signed in.
    pub role: Role,
    /// The token forms must carry.
    pub csrf: String,
    expires: Instant,
}

/// Every live session.
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<HashMap<String, Session>>,
}

fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

impl Sessions {
    /// Starts a session; returns its id (the cookie value).
    pub fn create(&self, user: &str, name: &str, role: Role) -> String {
        let id = random_hex();
        let session = Session {
            user: user.to_owned(),
            name: name.to_owned(),
            role,
            csrf: random_hex(),
            expires: Instant::now() + LIFETIME,
        };
        if let Ok(mut map) = self.inner.lock() {
            map.retain(|_, s| s.expires > Instant::now());
            map.insert(id.clone(), session);
        }
        id
    }

    /// The session named by the request's cookie, if it is live.
    pub fn from_headers(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE_NAME)?;
        let map = self.inner.lock().ok()?;
        map.get(&id).filter(|s| s.expires > Instant::now()).cloned()
    }

    /// Ends the session named by the request's cookie.
    pub fn end(&self, headers: &HeaderMap) {
        if let (Some(id), Ok(mut map)) = (cookie(headers, COOKIE_NAME), self.inner.lock()) {
            map.remove(&id);
        }
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Constant-time comparison of two CSRF tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
