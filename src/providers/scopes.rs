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
pub(crate) fn parse_granted(raw: &str) -> Vec<String> {
    raw.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The requested scopes that `granted` does not show under any spelling a provider uses for
/// them. Empty when the grant is complete (or the provider did not say).
pub(crate) fn missing(requested: &[String], granted: &[String]) -> Vec<String> {
    requested
        .iter()
        .filter(|r| !NOT_ECHOED.contains(&r.as_str()))
        .filter(|r| !granted.iter().any(|g| same_scope(r, g)))
        .cloned()
        .collect()
}

/// Scopes that a grant of a broader one includes, as GitHub documents them ("Scopes for OAuth
/// apps"): a user who granted `user` before gets a token showing `user` when `read:user` is
/// asked for.
const INCLUDED_IN: &[(&str, &[&str])] = &[
    ("repo:status", &["repo"]),
    ("repo_deployment", &["repo"]),
    ("public_repo", &["repo"]),
    ("repo:invite", &["repo"]),
    ("security_events", &["repo"]),
    ("read:user", &["user"]),
    ("user:email", &["user"]),
    ("user:follow", &["user"]),
    ("read:org", &["write:org", "admin:org"]),
    ("write:org", &["admin:org"]),
    ("manage_runners:org", &["admin:org"]),
    ("read:repo_hook", &["write:repo_hook", "admin:repo_hook"]),
    ("write:repo_hook", &["admin:repo_hook"]),
    ("read:public_key", &["write:public_key", "admin:public_key"]),
    ("write:public_key", &["admin:public_key"]),
    ("read:gpg_key", &["write:gpg_key", "admin:gpg_key"]),
    ("write:gpg_key", &["admin:gpg_key"]),
    ("read:packages", &["write:packages"]),
    ("read:discussion", &["write:discussion"]),
    ("read:project", &["project"]),
    ("codespace:secrets", &["codespace"]),
];

/// Whether a granted scope shows the requested one: equal; a longer spelling ending in it after
/// `/`, `.` or `:` (`https://graph.microsoft.com/User.Read` for `User.Read`,
/// `https://www.googleapis.com/auth/userinfo.email` for `email`); any permission of the resource
/// for Microsoft's `{resource}/.default` (it grants the app's configured permissions, echoed one
/// by one); or a broader GitHub scope that includes it.
fn same_scope(requested: &str, granted: &str) -> bool {
    if requested == granted {
        return true;
    }
    if let Some(resource) = requested.strip_suffix(".default")
        && resource.ends_with('/')
        && granted.len() > resource.len()
        && granted.starts_with(resource)
    {
        return true;
    }
    let included = |narrow: &str, broad: &str| {
        INCLUDED_IN
            .iter()
            .any(|(n, broader)| *n == narrow && broader.contains(&broad))
    };
    if included(requested, granted) {
        return true;
    }
    // `read:user` ends in `:user` but is less than `user`.
    if included(granted, requested) {
        return false;
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
    fn microsoft_dot_default_is_shown_by_any_permission_of_its_resource() {
        let requested = list(&["https://graph.microsoft.com/.default"]);
        assert!(
            missing(
                &requested,
                &list(&["https://graph.microsoft.com/User.Read"])
            )
            .is_empty()
        );
        assert_eq!(
            missing(&requested, &list(&["https://outlook.office.com/Mail.Read"])),
            requested
        );
        assert_eq!(
            missing(&requested, &list(&["https://graph.microsoft.com/"])),
            requested
        );
    }

    #[test]
    fn a_broader_github_scope_shows_the_narrower_one() {
        let requested = list(&["read:user", "read:org", "public_repo"]);
        assert!(missing(&requested, &list(&["user", "admin:org", "repo"])).is_empty());
        // Never the other way round.
        assert_eq!(
            missing(
                &list(&["user", "repo"]),
                &list(&["read:user", "public_repo"])
            ),
            list(&["user", "repo"])
        );
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
