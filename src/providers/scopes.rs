//! What a provider's `scope` answer says about a grant. Providers spell granted scopes their own
//! way (GitHub separates them with commas, Google answers `email` as
//! `https://www.googleapis.com/auth/userinfo.email`, Microsoft prefixes the resource URI, OIDC
//! scopes never appear on a resource server's token), so the answer is only ever used to notice
//! a grant smaller than asked for: whether a vaulted token serves a request is decided by the
//! scopes that were requested at consent (see `OAuthTokens::covers`).

/// Scopes that concern the sign-in or the refresh token, not the resource: providers do not
/// echo them on access tokens, so their absence says nothing.
const NOT_ECHOED: &[&str] = &[
    "openid",
    "profile",
    "email",
    "address",
    "phone",
    "offline_access",
];

/// The scopes of a provider's `scope` answer, split on spaces and commas.
pub fn parse_granted(raw: &str) -> Vec<String> {
    raw.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The requested scopes that `granted` does not show under any spelling a provider uses for
/// them. Empty when the grant is complete (or the provider did not say).
pub fn missing(requested: &[String], granted: &[String]) -> Vec<String> {
    requested
        .iter()
        .filter(|r| !NOT_ECHOED.contains(&r.as_str()))
        .filter(|r| !granted.iter().any(|g| same_scope(r, g)))
        .cloned()
        .collect()
}

/// Whether a granted scope is the requested one: equal, or a longer spelling ending in it after
/// `/`, `.` or `:` (`https://graph.microsoft.com/User.Read` for `User.Read`,
/// `https://www.googleapis.com/auth/userinfo.email` for `email`).
fn same_scope(requested: &str, granted: &str) -> bool {
    if requested == granted {
        return true;
    }
    granted
        .strip_suffix(requested)
        .is_some_and(|head| head.ends_with(['/', '.', ':']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn splits_spaces_and_github_commas() {
        assert_eq!(parse_granted("repo,user"), list(&["repo", "user"]));
        assert_eq!(parse_granted(" a  b,c "), list(&["a", "b", "c"]));
        assert!(parse_granted("").is_empty());
    }

    #[test]
    fn vendor_spellings_of_the_requested_scopes_are_not_missing() {
        let cases: &[(&[&str], &[&str])] = &[
            // oidc-provider with resource indicators: only the resource's scopes come back.
            (&["openid", "offline_access", "api:read"], &["api:read"]),
            // Google.
            (
                &["openid", "email", "profile"],
                &[
                    "https://www.googleapis.com/auth/userinfo.email",
                    "https://www.googleapis.com/auth/userinfo.profile",
                    "openid",
                ],
            ),
            // Microsoft.
            (
                &["User.Read", "offline_access"],
                &["https://graph.microsoft.com/User.Read"],
            ),
        ];
        for (requested, granted) in cases {
            assert!(
                missing(&list(requested), &list(granted)).is_empty(),
                "{requested:?} vs {granted:?}"
            );
        }
    }

    #[test]
    fn a_smaller_grant_names_what_is_missing() {
        assert_eq!(
            missing(&list(&["repo", "user"]), &list(&["user"])),
            list(&["repo"])
        );
        // A suffix that is not a separate segment is not the same scope.
        assert_eq!(
            missing(&list(&["read"]), &list(&["unread"])),
            list(&["read"])
        );
    }
}
