//! Bearer-token authentication for mutating endpoints. Tokens are compared by their
//! SHA-256 in constant time; the secret itself is never stored or logged.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use crate::tracker::api::Caller;

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
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
        let presented: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let mut found = None;
        for entry in state.tokens.iter() {
            if constant_time_eq(&entry.hash, &presented) {
                found = Some(entry);
            }
        }
        match found {
            Some(entry) => Ok(Caller {
                token: entry.name.clone(),
                user: entry.user.clone(),
                service: entry.service,
            }),
            None => Err(ApiError::Unauthorized("the token is not valid".to_owned())),
        }
    }
}
