//! Inbound identity: who is calling. A caller presents one Bearer token: a user JWT valid for the
//! route's authorizer (the user is issuer + `user_claim`, the workload is the route's), or a
//! workload access token issued by this gateway (it names workload and user itself).

pub(crate) mod authorizer;
pub mod discovery;
pub(crate) mod error;
pub mod jwks;
pub(crate) mod token;
pub mod verified_cache;
pub mod workload_token;

use http::HeaderMap;
use http::header::AUTHORIZATION;

pub use authorizer::{Authorizer, VerifiedJwt};
pub(crate) use error::AuthError;
pub use workload_token::{WorkloadClaims, WorkloadTokens};

/// A user. Users named by id (through the identity API) have no issuer; JWT users always do,
/// so the two can never be confused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId {
    pub issuer: Option<String>,
    pub id: String,
}

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) workload: Option<String>,
    pub(crate) user: Option<UserId>,
}

/// The one Bearer token of a request. Two `Authorization` headers, or a token in the query
/// string as well, are refused: a single credential carrier, no ambiguity.
pub(crate) fn bearer_token<'a>(
    headers: &'a HeaderMap,
    query: Option<&str>,
) -> Result<&'a str, AuthError> {
    if query.is_some_and(has_query_token) {
        return Err(AuthError::MultipleCredentials);
    }
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Err(AuthError::Missing),
        (Some(_), Some(_)) => return Err(AuthError::MultipleCredentials),
        (Some(v), None) => v.to_str().map_err(|_| AuthError::Malformed)?,
    };
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::NotBearer);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token)
}

fn has_query_token(query: &str) -> bool {
    query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or_default();
        name.eq_ignore_ascii_case("access_token") || name.eq_ignore_ascii_case("id_token")
    })
}

/// Authenticates a request for a route: `authorizer` is the route's (if any), `workload` the
/// route's workload (if any). A workload access token for another workload is refused.
///
/// Hot path first: a token seen before is found by its digest in either verified cache without
/// being parsed again. Only a cache miss reads the header to tell keygate's own tokens (by
/// `kid`) from user JWTs.
pub(crate) async fn authenticate(
    token: &str,
    authorizer: Option<&Authorizer>,
    workload: Option<&str>,
    workload_tokens: &WorkloadTokens,
) -> Result<Caller, AuthError> {
    if token.len() > token::MAX_TOKEN_BYTES {
        return Err(AuthError::TooLarge);
    }
    let digest = verified_cache::digest(token);
    if let Some(claims) = workload_tokens.cached(&digest) {
        return workload_caller(&claims, workload);
    }
    if let Some(verified) = authorizer.and_then(|a| a.cached(&digest)) {
        return Ok(user_caller(&verified, workload));
    }
    let header = token::parse_header(token)?;
    match authorizer {
        Some(authorizer) if !WorkloadTokens::is_own_kid(header.kid.as_deref()) => {
            let verified = authorizer.verify_uncached(token, digest).await?;
            Ok(user_caller(&verified, workload))
        }
        _ => {
            let claims = workload_tokens.verify_uncached(token, digest)?;
            workload_caller(&claims, workload)
        }
    }
}

fn workload_caller(claims: &WorkloadClaims, workload: Option<&str>) -> Result<Caller, AuthError> {
    if workload.is_some_and(|w| w != claims.sub) {
        return Err(AuthError::WrongWorkload);
    }
    Ok(Caller {
        workload: Some(claims.sub.clone()),
        user: claims.user(),
    })
}

fn user_caller(verified: &VerifiedJwt, workload: Option<&str>) -> Caller {
    Caller {
        workload: workload.map(str::to_string),
        user: Some(UserId {
            issuer: Some(verified.issuer.clone()),
            id: verified.user.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn one_bearer_token_only() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h, None), Err(AuthError::Missing));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(bearer_token(&h, None), Ok("abc"));
        assert_eq!(
            bearer_token(&h, Some("x=1&access_token=abc")),
            Err(AuthError::MultipleCredentials)
        );
        h.append(AUTHORIZATION, HeaderValue::from_static("Bearer def"));
        assert_eq!(bearer_token(&h, None), Err(AuthError::MultipleCredentials));
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        );
        assert_eq!(bearer_token(&h, None), Err(AuthError::NotBearer));
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer   xyz "));
        assert_eq!(bearer_token(&h, None), Ok("xyz"));
    }
}
