//! Presets for AgentCore's OAuth vendors: their endpoints (fixed vendors have public ones;
//! tenant-domain vendors derive theirs from `domain`; Microsoft takes a tenant; any preset may be
//! overridden by explicit endpoints or a discovery URL in the provider's config) and their
//! [`Dialect`]: how each one's authorization URL, token request and token answer differ from
//! plain RFC 6749, as its public documentation says.

use crate::config::ClientAuth;

/// The scope that asks for a refresh token (OpenID Connect Core 11).
const OFFLINE_ACCESS: &str = "offline_access";

/// How a vendor asks for a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offline {
    /// The `offline_access` scope, with `prompt=consent` (OpenID providers issue refresh tokens
    /// only after an explicit consent).
    ScopeAndConsent,
    /// The `offline_access` scope alone (Microsoft, Salesforce, Atlassian, which always adds
    /// `prompt=consent`).
    Scope,
    /// Not a scope: these authorization parameters instead (Google, Dropbox).
    Params(&'static [(&'static str, &'static str)]),
    /// Not a scope and nothing to ask: refresh tokens follow the app's settings (GitHub App
    /// expiring tokens, Slack token rotation, Notion).
    AppSetting,
}

/// What a vendor does differently from plain RFC 6749.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect {
    /// The authorization parameter naming the scopes (Slack: `user_scope` for user tokens).
    pub(crate) scope_param: &'static str,
    /// Between scopes in that parameter (Slack: a comma).
    scope_separator: &'static str,
    offline: Offline,
    /// Added to every authorization URL.
    always: &'static [(&'static str, &'static str)],
    /// Client authentication when the config does not choose (the vendor's documented one).
    pub(crate) client_auth: ClientAuth,
    /// Token requests are sent as a JSON object instead of a form (Notion).
    pub(crate) json_requests: bool,
    /// Successful token answers may be form-encoded (GitHub, unless asked for JSON).
    pub(crate) form_answers: bool,
    /// `token_type` values accepted besides `Bearer` (Slack: `user`, `bot`).
    pub(crate) token_types: &'static [&'static str],
    /// The vendor's error codes for a refresh token it no longer honours (read as `invalid_grant`).
    pub(crate) invalid_grant: &'static [&'static str],
}

/// RFC 6749 and OpenID Connect as written.
const STANDARD: Dialect = Dialect {
    scope_param: "scope",
    scope_separator: " ",
    offline: Offline::ScopeAndConsent,
    always: &[],
    client_auth: ClientAuth::ClientSecretBasic,
    json_requests: false,
    form_answers: false,
    token_types: &[],
    invalid_grant: &[],
};

/// How a provider's client authenticates at its token endpoint: as configured, else the way
/// its vendor's documentation does.
pub(crate) fn client_auth(config: &crate::config::OAuth2Provider) -> ClientAuth {
    config
        .client_auth
        .unwrap_or_else(|| dialect(&config.vendor).client_auth)
}

/// The dialect of `vendor` (`custom` and unlisted vendors speak the standard).
pub(crate) fn dialect(vendor: &str) -> Dialect {
    match vendor {
        // developers.google.com/identity/protocols/oauth2/web-server
        "google" => Dialect {
            offline: Offline::Params(&[("access_type", "offline"), ("prompt", "consent")]),
            client_auth: ClientAuth::ClientSecretPost,
            ..STANDARD
        },
        // docs.github.com: authorizing OAuth apps; refreshing GitHub App user tokens
        "github" => Dialect {
            offline: Offline::AppSetting,
            client_auth: ClientAuth::ClientSecretPost,
            form_answers: true,
            invalid_grant: &["bad_refresh_token"],
            ..STANDARD
        },
        // api.slack.com/authentication/oauth-v2 and token rotation
        "slack" => Dialect {
            scope_param: "user_scope",
            scope_separator: ",",
            offline: Offline::AppSetting,
            token_types: &["user", "bot"],
            invalid_grant: &["invalid_refresh_token"],
            ..STANDARD
        },
        // learn.microsoft.com: identity platform v2 authorization-code flow
        "microsoft" => Dialect {
            offline: Offline::Scope,
            client_auth: ClientAuth::ClientSecretPost,
            ..STANDARD
        },
        // developer.atlassian.com: OAuth 2.0 (3LO) apps
        "atlassian" => Dialect {
            offline: Offline::Scope,
            always: &[("audience", "api.atlassian.com"), ("prompt", "consent")],
            client_auth: ClientAuth::ClientSecretPost,
            ..STANDARD
        },
        // help.salesforce.com: OAuth 2.0 web server flow (`offline_access` is a synonym of
        // `refresh_token`)
        "salesforce" => Dialect {
            offline: Offline::Scope,
            client_auth: ClientAuth::ClientSecretPost,
            ..STANDARD
        },
        // developers.dropbox.com/oauth-guide
        "dropbox" => Dialect {
            offline: Offline::Params(&[("token_access_type", "offline")]),
            ..STANDARD
        },
        // developers.notion.com: authorization for public integrations
        "notion" => Dialect {
            offline: Offline::AppSetting,
            always: &[("owner", "user")],
            json_requests: true,
            ..STANDARD
        },
        _ => STANDARD,
    }
}

/// The authorization URL's vendor-specific parameters for a consent to `scopes`: the scopes in
/// the vendor's parameter and spelling, `offline_access` as the vendor asks for a refresh
/// token, what the vendor always needs, then the caller's `custom` parameters (a custom one
/// named like one of the vendor's is left out: a `prompt` or `access_type` of the caller's
/// cannot cost the user the refresh token asked for). Each name appears once.
pub(crate) fn authorization_parameters(
    vendor: &str,
    scopes: &[String],
    custom: &[(String, String)],
) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = vendor_parameters(vendor, scopes)
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    for (name, value) in custom {
        if !params.iter().any(|(n, _)| n == name) {
            params.push((name.clone(), value.clone()));
        }
    }
    params
}

fn vendor_parameters(vendor: &str, scopes: &[String]) -> Vec<(&'static str, String)> {
    let dialect = dialect(vendor);
    let offline = scopes.iter().any(|s| s == OFFLINE_ACCESS);
    let scope_kept = matches!(dialect.offline, Offline::Scope | Offline::ScopeAndConsent);
    let sent: Vec<&str> = scopes
        .iter()
        .map(String::as_str)
        .filter(|s| scope_kept || *s != OFFLINE_ACCESS)
        .collect();
    let mut params: Vec<(&'static str, String)> = Vec::new();
    if !sent.is_empty() {
        params.push((dialect.scope_param, sent.join(dialect.scope_separator)));
    }
    let mut add = |name: &'static str, value: &str| {
        if !params.iter().any(|(n, _)| *n == name) {
            params.push((name, value.to_string()));
        }
    };
    for (name, value) in dialect.always {
        add(name, value);
    }
    if offline {
        match dialect.offline {
            Offline::ScopeAndConsent => add("prompt", "consent"),
            Offline::Params(extra) => extra.iter().for_each(|(n, v)| add(n, v)),
            Offline::Scope | Offline::AppSetting => {}
        }
    }
    params
}

/// Where a vendor's endpoints come from.
pub(crate) enum Preset {
    /// Fixed endpoints: authorization, token.
    Fixed(&'static str, &'static str),
    /// `{domain}` is replaced by the tenant domain: authorization, token.
    Domain(&'static str, &'static str),
    /// Only OIDC discovery at `https://{domain}/.well-known/openid-configuration`.
    DomainDiscovery,
}

/// AgentCore's vendor names (`credentialProviderVendor`) and keygate's: [`crate::rules::VENDORS`].
pub(crate) use crate::rules::VENDORS as AGENTCORE_VENDORS;

/// keygate's vendor name for an AgentCore one.
pub(crate) fn from_agentcore(name: &str) -> Option<&'static str> {
    AGENTCORE_VENDORS
        .iter()
        .find(|(a, _)| *a == name)
        .map(|(_, k)| *k)
}

/// AgentCore's vendor name for a keygate one.
pub(crate) fn agentcore_name(vendor: &str) -> Option<&'static str> {
    AGENTCORE_VENDORS
        .iter()
        .find(|(_, k)| *k == vendor)
        .map(|(a, _)| *a)
}

pub(crate) fn preset(vendor: &str) -> Option<Preset> {
    use Preset::*;
    Some(match vendor {
        "google" => Fixed(
            "https://accounts.google.com/o/oauth2/v2/auth",
            "https://oauth2.googleapis.com/token",
        ),
        "github" => Fixed(
            "https://github.com/login/oauth/authorize",
            "https://github.com/login/oauth/access_token",
        ),
        "slack" => Fixed(
            "https://slack.com/oauth/v2/authorize",
            "https://slack.com/api/oauth.v2.access",
        ),
        "salesforce" => Fixed(
            "https://login.salesforce.com/services/oauth2/authorize",
            "https://login.salesforce.com/services/oauth2/token",
        ),
        "microsoft" => Fixed(
            "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
            "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        ),
        "atlassian" => Fixed(
            "https://auth.atlassian.com/authorize",
            "https://auth.atlassian.com/oauth/token",
        ),
        "linkedin" => Fixed(
            "https://www.linkedin.com/oauth/v2/authorization",
            "https://www.linkedin.com/oauth/v2/accessToken",
        ),
        "x" => Fixed(
            "https://x.com/i/oauth2/authorize",
            "https://api.x.com/2/oauth2/token",
        ),
        "facebook" => Fixed(
            "https://www.facebook.com/v19.0/dialog/oauth",
            "https://graph.facebook.com/v19.0/oauth/access_token",
        ),
        "yandex" => Fixed(
            "https://oauth.yandex.com/authorize",
            "https://oauth.yandex.com/token",
        ),
        "reddit" => Fixed(
            "https://www.reddit.com/api/v1/authorize",
            "https://www.reddit.com/api/v1/access_token",
        ),
        "zoom" => Fixed(
            "https://zoom.us/oauth/authorize",
            "https://zoom.us/oauth/token",
        ),
        "twitch" => Fixed(
            "https://id.twitch.tv/oauth2/authorize",
            "https://id.twitch.tv/oauth2/token",
        ),
        "spotify" => Fixed(
            "https://accounts.spotify.com/authorize",
            "https://accounts.spotify.com/api/token",
        ),
        "dropbox" => Fixed(
            "https://www.dropbox.com/oauth2/authorize",
            "https://api.dropboxapi.com/oauth2/token",
        ),
        "notion" => Fixed(
            "https://api.notion.com/v1/oauth/authorize",
            "https://api.notion.com/v1/oauth/token",
        ),
        "hubspot" => Fixed(
            "https://app.hubspot.com/oauth/authorize",
            "https://api.hubapi.com/oauth/v1/token",
        ),
        "okta" => Domain(
            "https://{domain}/oauth2/default/v1/authorize",
            "https://{domain}/oauth2/default/v1/token",
        ),
        "auth0" => Domain("https://{domain}/authorize", "https://{domain}/oauth/token"),
        "cognito" => Domain(
            "https://{domain}/oauth2/authorize",
            "https://{domain}/oauth2/token",
        ),
        "onelogin" => Domain(
            "https://{domain}/oidc/2/auth",
            "https://{domain}/oidc/2/token",
        ),
        "pingone" => Domain("https://{domain}/as/authorize", "https://{domain}/as/token"),
        "fusionauth" => Domain(
            "https://{domain}/oauth2/authorize",
            "https://{domain}/oauth2/token",
        ),
        "cyberark" => DomainDiscovery,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_vendor_but_custom_has_a_preset() {
        for vendor in crate::rules::vendor_names().filter(|v| *v != "custom") {
            assert!(preset(vendor).is_some(), "{vendor} has no preset");
        }
        assert!(preset("custom").is_none());
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn offline_access_is_asked_for_the_way_each_vendor_documents() {
        let scopes = strings(&["read", "write", OFFLINE_ACCESS]);
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                "custom",
                &[
                    ("scope", "read write offline_access"),
                    ("prompt", "consent"),
                ],
            ),
            (
                "google",
                &[
                    ("scope", "read write"),
                    ("access_type", "offline"),
                    ("prompt", "consent"),
                ],
            ),
            ("github", &[("scope", "read write")]),
            ("slack", &[("user_scope", "read,write")]),
            ("microsoft", &[("scope", "read write offline_access")]),
            (
                "atlassian",
                &[
                    ("scope", "read write offline_access"),
                    ("audience", "api.atlassian.com"),
                    ("prompt", "consent"),
                ],
            ),
            ("salesforce", &[("scope", "read write offline_access")]),
            (
                "dropbox",
                &[("scope", "read write"), ("token_access_type", "offline")],
            ),
            ("notion", &[("scope", "read write"), ("owner", "user")]),
        ];
        for (vendor, expected) in cases {
            let got = authorization_parameters(vendor, &scopes, &[]);
            let expected: Vec<(String, String)> = expected
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, expected, "{vendor}");
        }
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn without_offline_access_no_refresh_parameters_are_added() {
        let scopes = strings(&["email"]);
        assert_eq!(
            authorization_parameters("google", &scopes, &[]),
            pairs(&[("scope", "email")])
        );
        assert_eq!(authorization_parameters("custom", &[], &[]), vec![]);
        assert_eq!(
            authorization_parameters("notion", &[], &[]),
            pairs(&[("owner", "user")])
        );
    }

    #[test]
    fn custom_parameters_follow_and_never_replace_the_vendors_own() {
        let scopes = strings(&["email", OFFLINE_ACCESS]);
        let custom = pairs(&[
            ("prompt", "select_account"),
            ("access_type", "online"),
            ("login_hint", "alice@example.com"),
        ]);
        assert_eq!(
            authorization_parameters("google", &scopes, &custom),
            pairs(&[
                ("scope", "email"),
                ("access_type", "offline"),
                ("prompt", "consent"),
                ("login_hint", "alice@example.com"),
            ])
        );
        // Without a vendor parameter of that name, the caller's passes.
        assert_eq!(
            authorization_parameters("github", &scopes, &custom),
            pairs(&[
                ("scope", "email"),
                ("prompt", "select_account"),
                ("access_type", "online"),
                ("login_hint", "alice@example.com"),
            ])
        );
    }

    #[test]
    fn every_vendor_has_its_agentcore_name() {
        for vendor in crate::rules::vendor_names() {
            let name = agentcore_name(vendor).unwrap();
            assert_eq!(from_agentcore(name), Some(vendor));
        }
        let names: std::collections::HashSet<_> = crate::rules::vendor_names().collect();
        assert_eq!(names.len(), AGENTCORE_VENDORS.len());
    }
}
