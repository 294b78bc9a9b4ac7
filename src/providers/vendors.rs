//! Endpoint presets for AgentCore's OAuth vendors. Fixed vendors have public endpoints;
//! tenant-domain vendors derive theirs from `domain`; Microsoft takes a tenant. Any preset may be
//! overridden by explicit endpoints or a discovery URL in the provider's config.

/// Where a vendor's endpoints come from.
pub enum Preset {
    /// Fixed endpoints: authorization, token.
    Fixed(&'static str, &'static str),
    /// `{domain}` is replaced by the tenant domain: authorization, token.
    Domain(&'static str, &'static str),
    /// Only OIDC discovery at `https://{domain}/.well-known/openid-configuration`.
    DomainDiscovery,
}

/// AgentCore's vendor names (`credentialProviderVendor`) and keygate's.
pub const AGENTCORE_VENDORS: &[(&str, &str)] = &[
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

/// keygate's vendor name for an AgentCore one.
pub fn from_agentcore(name: &str) -> Option<&'static str> {
    AGENTCORE_VENDORS
        .iter()
        .find(|(a, _)| *a == name)
        .map(|(_, k)| *k)
}

/// AgentCore's vendor name for a keygate one.
pub fn agentcore_name(vendor: &str) -> Option<&'static str> {
    AGENTCORE_VENDORS
        .iter()
        .find(|(_, k)| *k == vendor)
        .map(|(a, _)| *a)
}

pub fn preset(vendor: &str) -> Option<Preset> {
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
        for vendor in crate::config::VENDORS.iter().filter(|v| **v != "custom") {
            assert!(preset(vendor).is_some(), "{vendor} has no preset");
        }
        assert!(preset("custom").is_none());
    }

    #[test]
    fn every_vendor_has_its_agentcore_name() {
        for vendor in crate::config::VENDORS {
            let name = agentcore_name(vendor).unwrap();
            assert_eq!(from_agentcore(name), Some(*vendor));
        }
        assert_eq!(AGENTCORE_VENDORS.len(), crate::config::VENDORS.len());
    }
}
