//! Rules shared by the config checker, the proxy and the identity API's validation, one place
//! each: what a name may hold, which OAuth vendors exist, which paths keygate keeps for itself,
//! how a host is read out of an authority, which headers are hop-by-hop or client credentials,
//! what a return URL may be, which issuer a discovery URL names. Low level: depends on nothing of keygate.

/// What a name of one kind may hold: ASCII characters `allowed`, `min..=max` of them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NameRule {
    pub(crate) min: usize,
    pub(crate) max: usize,
    pub(crate) allowed: fn(char) -> bool,
    /// The character class as the identity API's models write it.
    pub(crate) pattern: &'static str,
    /// The rule in words, for config messages.
    pub(crate) description: &'static str,
}

impl NameRule {
    pub(crate) fn accepts(&self, value: &str) -> bool {
        (self.min..=self.max).contains(&value.chars().count()) && value.chars().all(self.allowed)
    }
}

/// Names of authorizers and routes.
pub(crate) const IDENTIFIER_NAME: NameRule = NameRule {
    min: 1,
    max: 128,
    allowed: |c| c.is_ascii_alphanumeric() || "-_.".contains(c),
    pattern: "[A-Za-z0-9_.-]+",
    description: "letters, digits, `-`, `_`, `.`",
};

/// Workload identity names (AgentCore's `[A-Za-z0-9_.-]+`, 3..255).
pub(crate) const WORKLOAD_NAME: NameRule = NameRule {
    min: 3,
    max: 255,
    allowed: |c| c.is_ascii_alphanumeric() || "_.-".contains(c),
    pattern: "[A-Za-z0-9_.-]+",
    description: "3 to 255 letters, digits, `-`, `_`, `.`",
};

/// Credential provider names (AgentCore's `[a-zA-Z0-9\-_]+`, 1..128).
pub(crate) const PROVIDER_NAME: NameRule = NameRule {
    min: 1,
    max: 128,
    allowed: |c| c.is_ascii_alphanumeric() || "-_".contains(c),
    pattern: "[a-zA-Z0-9\\-_]+",
    description: "1 to 128 letters, digits, `-`, `_`",
};

/// OAuth vendors: AgentCore's name (`credentialProviderVendor`, in its documented order) and
/// keygate's (`vendor = "..."` in the config).
pub(crate) const VENDORS: &[(&str, &str)] = &[
    ("GoogleOauth2", "google"),
    ("GithubOauth2", "github"),
    ("SlackOauth2", "slack"),
    ("SalesforceOauth2", "salesforce"),
    ("MicrosoftOauth2", "microsoft"),
    ("CustomOauth2", "custom"),
    ("AtlassianOauth2", "atlassian"),
    ("LinkedinOauth2", "linkedin"),
    ("XOauth2", "x"),
    ("OktaOauth2", "okta"),
    ("OneLoginOauth2", "onelogin"),
    ("PingOneOauth2", "pingone"),
    ("FacebookOauth2", "facebook"),
    ("YandexOauth2", "yandex"),
    ("RedditOauth2", "reddit"),
    ("ZoomOauth2", "zoom"),
    ("TwitchOauth2", "twitch"),
    ("SpotifyOauth2", "spotify"),
    ("DropboxOauth2", "dropbox"),
    ("NotionOauth2", "notion"),
    ("HubspotOauth2", "hubspot"),
    ("CyberArkOauth2", "cyberark"),
    ("FusionAuthOauth2", "fusionauth"),
    ("Auth0Oauth2", "auth0"),
    ("CognitoOauth2", "cognito"),
];

/// keygate's vendor names, in [`VENDORS`] order.
pub(crate) fn vendor_names() -> impl Iterator<Item = &'static str> {
    VENDORS.iter().map(|(_, keygate)| *keygate)
}

/// Most scopes one route or one API request may ask for.
pub(crate) const MAX_SCOPES: usize = 10;

/// Longest scope keygate accepts.
pub(crate) const MAX_SCOPE_LEN: usize = 128;

/// A scope-token character (RFC 6749 section 3.3): printable ASCII but `"` and `\`.
pub(crate) fn is_scope_char(c: char) -> bool {
    c.is_ascii_graphic() && c != '"' && c != '\\'
}

/// A whole scope token: 1 to [`MAX_SCOPE_LEN`] [`is_scope_char`] characters.
pub(crate) fn is_scope(scope: &str) -> bool {
    (1..=MAX_SCOPE_LEN).contains(&scope.len()) && scope.chars().all(is_scope_char)
}

/// Paths keygate keeps for itself, whatever the routes say.
pub(crate) const RESERVED_PATHS: &str = "/identities/ and /.well-known/";

/// Whether `path` is one of keygate's own ([`RESERVED_PATHS`]).
pub(crate) fn is_reserved_path(path: &str) -> bool {
    path.starts_with("/identities/") || path.starts_with("/.well-known/") || path == "/identities"
}

/// The host part of a `Host` header, an authority or a configured host, lower-cased, without
/// port; an IPv6 literal keeps its brackets (`[::1]:8080` is `[::1]`).
pub(crate) fn host_without_port(authority: &str) -> String {
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or(authority)
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    host.to_ascii_lowercase()
}

/// Hop-by-hop headers (RFC 9110 section 7.6.1): never forwarded, never a credential's carrier.
pub(crate) static HOP_BY_HOP: [http::HeaderName; 9] = [
    http::header::CONNECTION,
    http::HeaderName::from_static("proxy-connection"),
    http::HeaderName::from_static("keep-alive"),
    http::header::TRANSFER_ENCODING,
    http::header::TE,
    http::header::TRAILER,
    http::header::UPGRADE,
    http::header::PROXY_AUTHORIZATION,
    http::header::PROXY_AUTHENTICATE,
];

pub(crate) fn is_hop_by_hop(name: &http::HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Headers a client could use to hand the upstream a credential or an identity of its own
/// choosing next to the one keygate injects (cookies, API keys, the trusted-proxy headers of
/// oauth2-proxy and Apache, client-IP claims). Dropped on credential routes unless the route
/// lists them in `pass_headers`.
pub(crate) const CLIENT_CREDENTIAL_HEADERS: [&str; 19] = [
    "cookie",
    "x-api-key",
    "api-key",
    "apikey",
    "x-auth-token",
    "x-access-token",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-forwarded-access-token",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-access-token",
    "x-remote-user",
    "remote-user",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
];

pub(crate) fn is_client_credential(name: &http::HeaderName) -> bool {
    CLIENT_CREDENTIAL_HEADERS.contains(&name.as_str())
}

/// Why a return URL (where a browser goes after consent) is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReturnUrlProblem {
    /// Not `\w+:(//)?\S+`, or not a URL at all.
    NotAbsolute,
    /// A scheme that runs or embeds content instead of navigating (lower-cased).
    ScriptScheme(String),
}

/// A return URL: `\w+:(//)?\S+` that parses as a URL, never a script or data scheme. (Length
/// limits are the caller's.)
pub(crate) fn check_return_url(value: &str) -> Result<(), ReturnUrlProblem> {
    let well_formed = value.split_once(':').is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme.chars().all(|c| c.is_alphanumeric() || c == '_')
            && !rest.trim_start_matches('/').is_empty()
    }) && !value.chars().any(char::is_whitespace)
        && url::Url::parse(value).is_ok();
    if !well_formed {
        return Err(ReturnUrlProblem::NotAbsolute);
    }
    let scheme = value
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if ["javascript", "data", "vbscript", "file", "blob"].contains(&scheme.as_str()) {
        return Err(ReturnUrlProblem::ScriptScheme(scheme));
    }
    Ok(())
}

const OIDC_SUFFIX: &str = "/.well-known/openid-configuration";
const OAUTH_SUFFIX: &str = "/.well-known/oauth-authorization-server";

/// The issuer a discovery URL names, normalised (as `inbound::discovery::normalise` does): the URL without its
/// `/.well-known/...` suffix (OpenID, appended form), or with the well-known segment removed
/// from the front of the path (RFC 8414, inserted form). `None` for any other URL.
pub(crate) fn expected_issuer(discovery_url: &url::Url) -> Option<String> {
    let path = discovery_url.path();
    let origin = discovery_url.origin().ascii_serialization();
    [OIDC_SUFFIX, OAUTH_SUFFIX].iter().find_map(|suffix| {
        let issuer_path = match path.strip_suffix(suffix) {
            Some(prefix) => prefix,
            None => path
                .strip_prefix(suffix)
                .filter(|rest| rest.starts_with('/'))?,
        };
        Some(format!("{origin}{}", issuer_path.trim_end_matches('/')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_without_port_handles_ipv6_and_case() {
        assert_eq!(host_without_port("API.example.com:8443"), "api.example.com");
        assert_eq!(host_without_port("[::1]:8080"), "[::1]");
        assert_eq!(host_without_port("[::1]"), "[::1]");
        assert_eq!(host_without_port("localhost"), "localhost");
    }

    #[test]
    fn name_rules_bound_length_and_characters() {
        assert!(WORKLOAD_NAME.accepts("agent.one_2-x"));
        assert!(!WORKLOAD_NAME.accepts("ab"));
        assert!(!PROVIDER_NAME.accepts("has.dot"));
        assert!(IDENTIFIER_NAME.accepts("a"));
        assert!(!IDENTIFIER_NAME.accepts("josé"));
        assert!(!IDENTIFIER_NAME.accepts(&"a".repeat(129)));
    }

    #[test]
    fn reserved_paths() {
        assert!(is_reserved_path("/identities"));
        assert!(is_reserved_path("/identities/x"));
        assert!(is_reserved_path("/.well-known/jwks.json"));
        assert!(!is_reserved_path("/identitiesx"));
    }

    #[test]
    fn return_urls() {
        assert_eq!(check_return_url("myapp://oauth/cb"), Ok(()));
        assert_eq!(
            check_return_url("not a url"),
            Err(ReturnUrlProblem::NotAbsolute)
        );
        assert_eq!(
            check_return_url("JavaScript://x/%0aalert(1)"),
            Err(ReturnUrlProblem::ScriptScheme("javascript".into()))
        );
    }
}
