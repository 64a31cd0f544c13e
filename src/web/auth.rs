//! Bearer-token authentication for mutating endpoints. Tokens are compared by their
//! SHA-256 in constant time; the secret itself is never stored or logged.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::state::AppState;
use crate::config::{Scope, Service, TokenEntry};
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
    ) {
        return next.run(request).await;
    }
    // Authenticated by its HMAC signature, checked by the handler before anything is
    // read or written.
    if request.uri().path() == "/api/ci/results" {
        return next.run(request).await;
    }
    // The web pages' forms: sign-in, and (sent without a bearer token) those under /ops/,
    // /bugs/ and /logout. Only from Autoland's own pages when the browser says where the
    // form came from (so another site can neither act for a signed-in visitor nor sign one
    // in as someone else); the handler checks the session (answering "sign in" when there
    // is none), the form's CSRF token and the session's role.
    let path = request.uri().path();
    let is_form = path == "/login"
        || ((path.starts_with("/ops/") || path.starts_with("/bugs/") || path == "/logout")
            && !request.headers().contains_key(AUTHORIZATION));
    if is_form {
        if !same_origin(request.headers(), &state.ctx.config.public_url()) {
            return ApiError::Forbidden(
                "this form was sent from another site (its Origin is neither this host nor \
                 the public URL): use Autoland's own pages"
                    .to_owned(),
            )
            .into_response();
        }
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) if caller.scope >= Scope::Submit => {
            let limits = &state.ctx.config.limits;
            let exempt = limits.unlimited_service_tokens && caller.service != Service::No;
            if !exempt
                && let Err(wait) = state.limiter.take(&caller.token, limits.writes_per_minute)
            {
                let retry_after = wait.as_secs().max(1);
                tracing::warn!(token = %caller.token, retry_after, "write rate limit reached");
                return ApiError::TooMany {
                    message: format!(
                        "token `{}` made more than {} write calls in a minute; try again in \
                         {retry_after} s",
                        caller.token, limits.writes_per_minute
                    ),
                    retry_after,
                }
                .into_response();
            }
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

/// False when the browser says (`Origin`) that the form comes from another site than this
/// one: neither the host it was sent to (`Host`) nor Autoland's public URL (behind a proxy
/// that rewrites `Host`). Browsers send `Origin` on every cross-site POST; a request
/// without one (a script, curl) is judged by its session and CSRF token alone.
fn same_origin(headers: &axum::http::HeaderMap, public_url: &str) -> bool {
    use axum::http::header::{HOST, ORIGIN};
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    let public = public_url.trim_end_matches('/');
    // The public URL's origin: scheme, host and port, without a path.
    let public_origin = match public.find("://") {
        Some(at) => {
            let rest = &public[at + 3..];
            &public[..at + 3 + rest.find('/').unwrap_or(rest.len())]
        }
        None => public,
    };
    if !public_origin.is_empty() && origin.eq_ignore_ascii_case(public_origin) {
        return true;
    }
    let Some(host) = headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    !origin_host.is_empty() && origin_host.eq_ignore_ascii_case(host)
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
            Some(entry)
                if let Some(at) = entry.expires_at.filter(|at| *at <= crate::store::now_ms()) =>
            {
                let when = chrono::DateTime::from_timestamp_millis(at)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default();
                Err(ApiError::Unauthorized(format!(
                    "token `{}` expired at {when}; ask an operator for a new one",
                    entry.name
                )))
            }
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

#[cfg(test)]
mod tests {
    use super::same_origin;
    use axum::http::HeaderMap;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", host.parse().unwrap());
        if let Some(origin) = origin {
            h.insert("origin", origin.parse().unwrap());
        }
        h
    }

    #[test]
    fn forms_come_from_this_site_by_its_host_or_its_public_url() {
        let public = "https://autoland.example.com/";
        // The host the browser sent the form to.
        assert!(same_origin(
            &headers(Some("http://10.0.0.5:8080"), "10.0.0.5:8080"),
            public
        ));
        // Behind a proxy that rewrote Host: the public URL's origin.
        assert!(same_origin(
            &headers(Some("https://autoland.example.com"), "127.0.0.1:8080"),
            public
        ));
        // Not from a script without Origin (the session and CSRF token decide).
        assert!(same_origin(&headers(None, "127.0.0.1:8080"), public));
        // Another site, or a look-alike.
        assert!(!same_origin(
            &headers(Some("https://evil.example"), "127.0.0.1:8080"),
            public
        ));
        assert!(!same_origin(
            &headers(
                Some("https://autoland.example.com.evil.example"),
                "127.0.0.1:8080"
            ),
            public
        ));
        assert!(!same_origin(
            &headers(Some("null"), "127.0.0.1:8080"),
            public
        ));
    }
}
