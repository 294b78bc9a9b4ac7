//! One `[[authorizers]]` entry at work: verifies user JWTs as AgentCore's customJWTAuthorizer
//! does. Order: shape, algorithm and `typ`, cache (trusted only while the verifying key is still
//! published), key by `kid`, signature and time claims (jsonwebtoken, issuer from the verified
//! discovery document, `iss` a string), lifetime and `iat`, then audience, client, scopes and
//! custom claims.

use std::sync::Arc;

use jsonwebtoken::Validation;
use serde_json::{Map, Value};

use super::error::AuthError;
use super::jwks::{KeySource, KeyTag};
use super::token;
use super::verified_cache::{self, Digest, Expiring, VerifiedCache, now_secs};
use crate::config::{AuthorizerConfig, ClaimOperator, ClaimRule};

/// A user JWT that passed every check.
#[derive(Debug)]
pub struct VerifiedJwt {
    pub(crate) issuer: String,
    /// Value of the authorizer's `user_claim`.
    pub(crate) user: String,
    exp: u64,
    /// The key whose signature was checked.
    key: KeyTag,
}

impl Expiring for VerifiedJwt {
    fn exp(&self) -> u64 {
        self.exp
    }

    fn key(&self) -> KeyTag {
        self.key
    }
}

pub struct Authorizer {
    config: AuthorizerConfig,
    keys: Arc<KeySource>,
    cache: Option<VerifiedCache<VerifiedJwt>>,
}

impl Authorizer {
    /// `cache_capacity` 0 turns the verified-token cache off.
    pub fn new(config: AuthorizerConfig, keys: Arc<KeySource>, cache_capacity: u64) -> Self {
        Authorizer {
            config,
            keys,
            cache: (cache_capacity > 0).then(|| VerifiedCache::new(cache_capacity)),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    pub(crate) fn keys(&self) -> &Arc<KeySource> {
        &self.keys
    }

    pub(crate) fn has_keys(&self) -> bool {
        self.keys.current().is_some()
    }

    pub async fn verify(&self, token: &str) -> Result<Arc<VerifiedJwt>, AuthError> {
        if token.len() > token::MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let digest = verified_cache::digest(token);
        match self.cached(&digest) {
            Some(hit) => Ok(hit),
            None => self.verify_uncached(token, digest).await,
        }
    }

    /// The verified token with this digest, if it is cached, unexpired, and the key that
    /// verified it is still in the IdP's key set.
    pub fn cached(&self, digest: &Digest) -> Option<Arc<VerifiedJwt>> {
        self.cache
            .as_ref()
            .and_then(|c| c.get(digest, |tag| self.keys.holds(tag)))
    }

    /// Full verification of a token whose digest missed the cache; caches the result.
    pub(crate) async fn verify_uncached(
        &self,
        token: &str,
        digest: Digest,
    ) -> Result<Arc<VerifiedJwt>, AuthError> {
        let header = token::parse_header(token)?;
        if !header.is_access_token_type() {
            return Err(AuthError::WrongType);
        }

        let mut keys = self.keys.current();
        let known = keys
            .as_ref()
            .is_some_and(|k| k.find(header.kid.as_deref(), header.alg).is_some());
        if !known {
            keys = self
                .keys
                .refresh_for_unknown_kid(header.kid.as_deref())
                .await;
        }
        let keys = keys.ok_or(AuthError::KeysUnavailable)?;
        let key = keys
            .find(header.kid.as_deref(), header.alg)
            .ok_or(AuthError::UnknownKey)?;

        let mut validation = Validation::new(header.alg);
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_issuer(&[keys.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| AuthError::from_jwt(&e))?;

        // The signature holds; read the claims strictly (no duplicate keys) and check them.
        let claims = token::payload(token)?;
        if claims.get("iss").and_then(Value::as_str) != Some(keys.issuer.as_str()) {
            return Err(AuthError::WrongIssuer);
        }
        let exp = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or(AuthError::Malformed)?;
        if claims.get("nbf").is_some_and(|v| !v.is_number())
            || claims.get("iat").is_some_and(|v| !v.is_number())
        {
            return Err(AuthError::Malformed);
        }
        self.check_lifetime(&claims, exp)?;
        self.check_claims(&claims)?;
        let user = match claims.get(&self.config.user_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(AuthError::MissingUser),
        };
        let verified = Arc::new(VerifiedJwt {
            issuer: keys.issuer.clone(),
            user,
            exp,
            key: key.tag,
        });
        if let Some(cache) = &self.cache {
            cache.insert(digest, verified.clone());
        }
        Ok(verified)
    }

    /// `iat` not beyond the leeway in the future, and `exp` no further than
    /// `max_token_lifetime` from `iat` (or from now, without `iat`).
    fn check_lifetime(&self, claims: &Map<String, Value>, exp: u64) -> Result<(), AuthError> {
        let now = now_secs() as f64;
        let iat = claims.get("iat").and_then(Value::as_f64);
        if iat.is_some_and(|iat| iat > now + self.config.leeway.as_secs_f64()) {
            return Err(AuthError::IssuedInFuture);
        }
        let from = iat.unwrap_or(now);
        if exp as f64 - from > self.config.max_token_lifetime.as_secs_f64() {
            return Err(AuthError::LifetimeTooLong);
        }
        Ok(())
    }

    fn check_claims(&self, claims: &Map<String, Value>) -> Result<(), AuthError> {
        if let Some(allowed) = &self.config.allowed_audience
            && !strings(claims.get("aud")).any(|aud| allowed.iter().any(|a| a == aud))
        {
            return Err(AuthError::WrongAudience);
        }
        if let Some(allowed) = &self.config.allowed_clients {
            let client = claims
                .get("client_id")
                .and_then(Value::as_str)
                .or_else(|| claims.get("azp").and_then(Value::as_str));
            if !client.is_some_and(|c| allowed.iter().any(|a| a == c)) {
                return Err(AuthError::WrongClient);
            }
        }
        if !self.config.allowed_scopes.is_empty() {
            let granted = scopes(claims.get("scope")).chain(scopes(claims.get("scp")));
            let mut granted = granted;
            if !granted.any(|s| self.config.allowed_scopes.iter().any(|a| a == s)) {
                return Err(AuthError::MissingScope);
            }
        }
        if !self
            .config
            .custom_claims
            .iter()
            .all(|rule| rule_holds(rule, claims.get(&rule.claim)))
        {
            return Err(AuthError::ClaimMismatch);
        }
        Ok(())
    }
}

/// A claim as strings: one string, or the strings of an array.
fn strings(value: Option<&Value>) -> Box<dyn Iterator<Item = &str> + '_> {
    match value {
        Some(Value::String(s)) => Box::new(std::iter::once(s.as_str())),
        Some(Value::Array(items)) => Box::new(items.iter().filter_map(Value::as_str)),
        _ => Box::new(std::iter::empty()),
    }
}

/// Scopes from `scope` (space-separated string) or `scp` (string or array).
fn scopes(value: Option<&Value>) -> Box<dyn Iterator<Item = &str> + '_> {
    match value {
        Some(Value::String(s)) => Box::new(s.split_ascii_whitespace()),
        other => strings(other),
    }
}

fn rule_holds(rule: &ClaimRule, value: Option<&Value>) -> bool {
    match (rule.operator, value) {
        (ClaimOperator::Equals, Some(Value::String(s))) => rule.values.iter().any(|v| v == s),
        (ClaimOperator::Contains, Some(Value::Array(_))) => {
            strings(value).any(|s| rule.values.iter().any(|v| v == s))
        }
        (ClaimOperator::ContainsAny, Some(Value::Array(_) | Value::String(_))) => {
            strings(value).any(|s| rule.values.iter().any(|v| v == s))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(operator: ClaimOperator, values: &[&str]) -> ClaimRule {
        ClaimRule {
            claim: "groups".into(),
            operator,
            values: values.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn claim_rules_follow_agentcore_operators() {
        let list = json!(["a", "b"]);
        let one = json!("a");
        assert!(rule_holds(&rule(ClaimOperator::Equals, &["a"]), Some(&one)));
        assert!(!rule_holds(
            &rule(ClaimOperator::Equals, &["a"]),
            Some(&list)
        ));
        assert!(rule_holds(
            &rule(ClaimOperator::Contains, &["b"]),
            Some(&list)
        ));
        assert!(!rule_holds(
            &rule(ClaimOperator::Contains, &["c"]),
            Some(&list)
        ));
        assert!(rule_holds(
            &rule(ClaimOperator::ContainsAny, &["c", "a"]),
            Some(&list)
        ));
        assert!(!rule_holds(&rule(ClaimOperator::ContainsAny, &["c"]), None));
    }

    #[test]
    fn scopes_come_from_scope_or_scp() {
        let s = json!("read write");
        assert_eq!(scopes(Some(&s)).collect::<Vec<_>>(), ["read", "write"]);
        let a = json!(["x", "y"]);
        assert_eq!(scopes(Some(&a)).collect::<Vec<_>>(), ["x", "y"]);
    }
}
