//! Bearer-token authentication for mutating endpoints. Tokens are compared by their
//! SHA-256 in constant time; the secret itself is never stored or logged.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::state::AppState;
use crate::config::{Scope, TokenEntry};
use crate::tracker::api::Caller;

/// The configured token whose secret this is (compared by hash, in constant time, every
/// entry examined).
pub(super) fn find_token<'a>(state: &'a AppState, secret: &str) -> Option<&'a TokenEntry> {
    let presented: [u8; 32] = Sha256::digest(secret.trim().as_bytes()).into();
    let mut found = None;
    for entry in state.tokens.iter() {
        if constant_time_eq(&entry.hash, &presented) {
            found = Some(entry);
        }
    }
    found
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Every request that is not a read needs a token that may write: applied to the whole
/// router, so a new mutating route cannot be left open by mistake.
pub(super) async fn writes_need_a_token(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::Method;
    use axum::response::IntoResponse;
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) || request.uri().path() == "/login"
        // Authenticated by its HMAC signature, checked by the handler before anything
        // is read or written.
        || request.uri().path() == "/api/ci/results"
    {
        return next.run(request).await;
    }
    // The web pages' forms: a logged-in operator's session (the handler also checks the
    // form's CSRF token). Only under /ops/, and only without a bearer token.
    if request.uri().path().starts_with("/ops/")
        && !request.headers().contains_key(AUTHORIZATION)
        && state.sessions.from_headers(request.headers()).is_some()
    {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) if caller.scope >= Scope::Submit => {
            next.run(axum::extract::Request::from_parts(parts, body))
                .await
        }
        Ok(caller) => ApiError::Forbidden(format!(
            "token `{}` is read-only; this needs a token with scope submit or operator",
            caller.token
        ))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

impl Caller {
    /// Refuses callers whose token lacks `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scope >= scope {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "token `{}` has scope {:?}; this needs {:?}",
                self.token, self.scope, scope
            )))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            return Err(ApiError::Unauthorized(
                "this endpoint needs `Authorization: Bearer <token>`".to_owned(),
            ));
        };
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "the Authorization header must be `Bearer <token>`".to_owned(),
                )
            })?;
        match find_token(state, secret) {
            Some(entry) => Ok(Caller {
                token: entry.name.clone(),
                user: entry.user.clone(),
                service: entry.service,
                scope: entry.scope,
            }),
            None => Err(ApiError::Unauthorized("the token is not valid".to_owned())),
        }
    }
}
