//! Checks of `[[authorizers]]` (with their custom claim rules) and `[[workloads]]`.

use std::collections::HashSet;

use super::super::raw::*;
use super::super::*;

use super::*;

impl Checker {
    pub(super) fn authorizer(
        &mut self,
        key: &str,
        raw: &RawAuthorizer,
    ) -> Option<AuthorizerConfig> {
        self.name(
            &format!("{key}.name"),
            &raw.name,
            &crate::rules::IDENTIFIER_NAME,
        );
        let discovery_url = self.url(&format!("{key}.discovery_url"), &raw.discovery_url);
        if discovery_url
            .as_ref()
            .is_some_and(|u| crate::rules::expected_issuer(u).is_none())
        {
            self.error(
                format!("{key}.discovery_url"),
                "discovery_url must end in /.well-known/openid-configuration or /.well-known/oauth-authorization-server",
            );
        }
        let allow_insecure_http = raw.allow_insecure_http.unwrap_or(false);
        if let Some(url) = &discovery_url {
            self.fetched_url(&format!("{key}.discovery_url"), url, allow_insecure_http);
        }
        if raw.allowed_audience.is_none() && raw.allowed_clients.is_none() {
            self.warn(
                format!("{key}.name"),
                "authorizer checks neither `allowed_audience` nor `allowed_clients`: any token of the IdP (an ID token, a token for another app) is accepted",
            );
        }
        let max_token_lifetime = self.duration(
            &format!("{key}.max_token_lifetime"),
            raw.max_token_lifetime.as_deref(),
            DEFAULT_MAX_TOKEN_LIFETIME,
        );
        for (field, list) in [
            ("allowed_audience", &raw.allowed_audience),
            ("allowed_clients", &raw.allowed_clients),
        ] {
            if list.as_ref().is_some_and(Vec::is_empty) {
                self.error(
                    format!("{key}.{field}"),
                    format!("{field} is empty, so no token could pass; omit it to skip the check"),
                );
            }
        }
        let custom_claims = raw
            .custom_claims
            .iter()
            .enumerate()
            .filter_map(|(i, c)| self.claim_rule(&format!("{key}.custom_claims[{i}]"), c))
            .collect();
        Some(AuthorizerConfig {
            name: raw.name.clone(),
            discovery_url: discovery_url?,
            allowed_audience: raw.allowed_audience.clone(),
            allowed_clients: raw.allowed_clients.clone(),
            allowed_scopes: raw.allowed_scopes.clone(),
            user_claim: raw.user_claim.clone().unwrap_or_else(|| "sub".to_string()),
            leeway: self.duration(
                &format!("{key}.leeway"),
                raw.leeway.as_deref(),
                DEFAULT_LEEWAY,
            ),
            custom_claims,
            cache_verified_tokens: raw.cache_verified_tokens.unwrap_or(true),
            max_token_lifetime,
            allow_insecure_http,
        })
    }

    /// Two discovery URLs naming the same issuer would be two key sources for one set of users:
    /// refused (the second one is reported).
    pub(super) fn one_key_source_per_issuer(&mut self, authorizers: &[AuthorizerConfig]) {
        let mut seen: Vec<(String, &AuthorizerConfig)> = Vec::new();
        for (i, authorizer) in authorizers.iter().enumerate() {
            let Some(issuer) = crate::rules::expected_issuer(&authorizer.discovery_url) else {
                continue;
            };
            match seen.iter().find(|(other, _)| *other == issuer) {
                Some((_, first)) if first.discovery_url != authorizer.discovery_url => self.error(
                    format!("authorizers[{i}].discovery_url"),
                    format!(
                        "names issuer `{issuer}` like authorizer `{}` ({}): one issuer needs one discovery_url",
                        first.name, first.discovery_url
                    ),
                ),
                Some(_) => {}
                None => seen.push((issuer, authorizer)),
            }
        }
    }

    pub(super) fn claim_rule(&mut self, key: &str, raw: &RawCustomClaim) -> Option<ClaimRule> {
        if raw.claim.is_empty() {
            self.error(format!("{key}.claim"), "claim name is empty");
        }
        let operator = match raw.operator.as_str() {
            "equals" => ClaimOperator::Equals,
            "contains" => ClaimOperator::Contains,
            "contains_any" => ClaimOperator::ContainsAny,
            other => {
                self.error(
                    format!("{key}.operator"),
                    format!(
                        "unknown operator `{other}`; expected equals, contains or contains_any"
                    ),
                );
                return None;
            }
        };
        let values = match (&raw.value, operator) {
            (StringOrList::One(v), ClaimOperator::Equals | ClaimOperator::Contains) => {
                vec![v.clone()]
            }
            (StringOrList::Many(v), ClaimOperator::ContainsAny) if !v.is_empty() => v.clone(),
            (_, ClaimOperator::ContainsAny) => {
                self.error(
                    format!("{key}.value"),
                    "contains_any takes a non-empty list of strings",
                );
                return None;
            }
            (StringOrList::Many(_), _) => {
                self.error(
                    format!("{key}.value"),
                    "equals and contains take one string; use contains_any for a list",
                );
                return None;
            }
        };
        Some(ClaimRule {
            claim: raw.claim.clone(),
            operator,
            values,
        })
    }

    pub(super) fn workload(
        &mut self,
        key: &str,
        raw: &RawWorkload,
        authorizers: &HashSet<&str>,
    ) -> WorkloadConfig {
        self.name(
            &format!("{key}.name"),
            &raw.name,
            &crate::rules::WORKLOAD_NAME,
        );
        if let Some(a) = &raw.authorizer
            && !authorizers.contains(a.as_str())
        {
            self.error(
                format!("{key}.authorizer"),
                format!("unknown authorizer `{a}`"),
            );
        }
        for (i, u) in raw.allowed_return_urls.iter().enumerate() {
            self.url(&format!("{key}.allowed_return_urls[{i}]"), u);
        }
        WorkloadConfig {
            name: raw.name.clone(),
            authorizer: raw.authorizer.clone(),
            allowed_return_urls: raw.allowed_return_urls.clone(),
        }
    }
}
