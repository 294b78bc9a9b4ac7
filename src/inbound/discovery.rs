//! Which issuer a discovery URL may speak for (OpenID Connect Discovery 4.3, RFC 8414 3.3), and
//! the registry that keeps one issuer to one key source. A document whose `issuer` is not the
//! one its URL names is refused, so an IdP cannot claim another IdP's users.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use url::Url;

pub(crate) use crate::rules::expected_issuer;

/// An issuer as compared: origin (scheme, lowercased host, port unless default) and path
/// without a trailing slash. `None` unless it is an http(s) URL without query, fragment or
/// credentials (OpenID Connect Discovery 3).
fn normalise(issuer: &str) -> Option<String> {
    let url = Url::parse(issuer).ok()?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    plain.then(|| {
        format!(
            "{}{}",
            url.origin().ascii_serialization(),
            url.path().trim_end_matches('/')
        )
    })
}

/// Whether a discovery document fetched from `discovery_url` may claim `issuer`.
pub(crate) fn issuer_matches(discovery_url: &Url, issuer: &str) -> bool {
    match (expected_issuer(discovery_url), normalise(issuer)) {
        (Some(expected), Some(claimed)) => expected == claimed,
        _ => false,
    }
}

/// Which key source (by discovery URL) speaks for each verified issuer. Shared by every key
/// source of a gateway; an entry whose source is gone is free again.
#[derive(Default)]
pub struct IssuerRegistry {
    claims: Mutex<HashMap<String, (String, Weak<()>)>>,
}

impl IssuerRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(IssuerRegistry::default())
    }

    /// Claims `issuer` for the source at `discovery_url` (whose liveness `token` tracks).
    /// Refused, naming the other discovery URL, when a live source with another URL holds it.
    pub(crate) fn claim(
        &self,
        issuer: &str,
        discovery_url: &str,
        token: &Arc<()>,
    ) -> Result<(), String> {
        let key = normalise(issuer).unwrap_or_else(|| issuer.to_string());
        let mut claims = self
            .claims
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((holder, alive)) = claims.get(&key)
            && holder != discovery_url
            && alive.strong_count() > 0
        {
            return Err(holder.clone());
        }
        claims.insert(key, (discovery_url.to_string(), Arc::downgrade(token)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn the_issuer_a_discovery_url_names() {
        let cases = [
            (
                "https://idp.example/.well-known/openid-configuration",
                Some("https://idp.example"),
            ),
            (
                "https://idp.example/t1/.well-known/openid-configuration",
                Some("https://idp.example/t1"),
            ),
            (
                "https://idp.example/.well-known/oauth-authorization-server/t1",
                Some("https://idp.example/t1"),
            ),
            (
                "https://idp.example/t1/.well-known/oauth-authorization-server",
                Some("https://idp.example/t1"),
            ),
            (
                "https://IDP.example:443/.well-known/openid-configuration?x=1",
                Some("https://idp.example"),
            ),
            (
                "http://127.0.0.1:3000/.well-known/openid-configuration",
                Some("http://127.0.0.1:3000"),
            ),
            (
                "https://idp.example/.well-known/openid-configuration/t1/x",
                Some("https://idp.example/t1/x"),
            ),
            (
                "https://idp.example/.well-known/openid-configuration.json",
                None,
            ),
            ("https://idp.example/jwks", None),
        ];
        for (discovery, expected) in cases {
            assert_eq!(
                expected_issuer(&url(discovery)).as_deref(),
                expected,
                "{discovery}"
            );
        }
    }

    #[test]
    fn a_document_may_claim_only_its_own_issuer() {
        let discovery = url("https://idp.example/tenant/.well-known/openid-configuration");
        for good in [
            "https://idp.example/tenant",
            "https://idp.example/tenant/",
            "https://IDP.example:443/tenant",
        ] {
            assert!(issuer_matches(&discovery, good), "{good}");
        }
        for bad in [
            "https://evil.example",
            "https://idp.example",
            "https://idp.example/tenant2",
            "http://idp.example/tenant",
            "https://idp.example/tenant?x=1",
            "https://user@idp.example/tenant",
            "not a url",
            "",
        ] {
            assert!(!issuer_matches(&discovery, bad), "{bad}");
        }
    }

    #[test]
    fn one_live_source_per_issuer() {
        let registry = IssuerRegistry::new();
        let (a, b) = (Arc::new(()), Arc::new(()));
        assert_eq!(
            registry.claim(
                "https://idp",
                "https://idp/.well-known/openid-configuration",
                &a
            ),
            Ok(())
        );
        assert_eq!(
            registry.claim(
                "https://idp/",
                "https://idp/.well-known/openid-configuration",
                &a
            ),
            Ok(())
        );
        assert_eq!(
            registry.claim(
                "https://idp",
                "https://idp/.well-known/oauth-authorization-server",
                &b
            ),
            Err("https://idp/.well-known/openid-configuration".to_string())
        );
        drop(a);
        assert_eq!(
            registry.claim(
                "https://idp",
                "https://idp/.well-known/oauth-authorization-server",
                &b
            ),
            Ok(())
        );
    }
}
