//! Inbound identity: who is calling. A caller presents one Bearer token: a user JWT valid for the
//! route's authorizer (the user is issuer + `user_claim`, the workload is the route's), or a
//! workload access token issued by this gateway (it names workload and user itself).

pub mod authorizer;
pub mod error;
pub mod jwks;
pub mod token;
pub mod verified_cache;
pub mod workload_token;

use http::HeaderMap;
use http::header::AUTHORIZATION;

pub use authorizer::Authorizer;
pub use error::AuthError;
pub use workload_token::WorkloadTokens;

/// A user. Users named by id (through the identity API) have no issuer; JWT users always do,
/// so the two can never be confused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId {
    pub issuer: Option<String>,
    pub id: String,
}

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub workload: Option<String>,
    pub user: Option<UserId>,
    pub via: CallerKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKind {
    /// A user JWT checked by the named route's authorizer.
    UserJwt,
    /// A workload access token issued by this gateway.
    WorkloadToken,
}

/// The one Bearer token of a request. Two `Authorization` headers, or a token in the query
/// string as well, are refused: a single credential carrier, no ambiguity.
pub fn bearer_token<'a>(headers: &'a HeaderMap, query: Option<&str>) -> Result<&'a str, AuthError> {
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
pub async fn authenticate(
    token: &str,
    authorizer: Option<&Authorizer>,
    workload: Option<&str>,
    workload_tokens: &WorkloadTokens,
) -> Result<Caller, AuthError> {
    let header = token::parse_header(token)?;
    if WorkloadTokens::is_own_kid(header.kid.as_deref()) || authorizer.is_none() {
        let claims = workload_tokens.verify(token)?;
        if workload.is_some_and(|w| w != claims.sub) {
            return Err(AuthError::WrongWorkload);
        }
        return Ok(Caller {
            workload: Some(claims.sub.clone()),
            user: claims.user(),
            via: CallerKind::WorkloadToken,
        });
    }
    let Some(authorizer) = authorizer else {
        return Err(AuthError::UnknownKey);
    };
    let verified = authorizer.verify(token).await?;
    Ok(Caller {
        workload: workload.map(str::to_string),
        user: Some(UserId {
            issuer: Some(verified.issuer.clone()),
            id: verified.user.clone(),
        }),
        via: CallerKind::UserJwt,
    })
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
