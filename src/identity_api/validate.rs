//! Input checks from the botocore models' patterns and lengths. Each failure is a
//! `ValidationException` naming the JSON field, as AWS words it.

use super::error::ApiError;

type Checked<T> = Result<T, ApiError>;

fn length(field: &str, value: &str, min: usize, max: usize) -> Checked<()> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(ApiError::validation(
            field,
            format!("must have length between {min} and {max} (has {n})"),
        ));
    }
    Ok(())
}

fn chars(field: &str, value: &str, allowed: impl Fn(char) -> bool, pattern: &str) -> Checked<()> {
    if !value.chars().all(allowed) {
        return Err(ApiError::validation(
            field,
            format!("must match the pattern {pattern}"),
        ));
    }
    Ok(())
}

/// A workload identity name: `[A-Za-z0-9_.-]+`, 3..255.
pub(crate) fn workload_name(field: &str, value: &str) -> Checked<()> {
    name(field, value, &crate::rules::WORKLOAD_NAME)
}

/// A credential provider name: `[a-zA-Z0-9\-_]+`, 1..128.
pub(crate) fn provider_name(field: &str, value: &str) -> Checked<()> {
    name(field, value, &crate::rules::PROVIDER_NAME)
}

fn name(field: &str, value: &str, rule: &crate::rules::NameRule) -> Checked<()> {
    length(field, value, rule.min, rule.max)?;
    chars(field, value, rule.allowed, rule.pattern)
}

pub(crate) fn user_id(field: &str, value: &str) -> Checked<()> {
    length(field, value, 1, 128)?;
    if value.chars().any(char::is_control) {
        return Err(ApiError::validation(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A JWT as the model allows it: three dot-separated base64url segments, 1..131072.
pub(crate) fn user_token(field: &str, value: &str) -> Checked<()> {
    length(field, value, 1, 131_072)?;
    let segments: Vec<&str> = value.split('.').collect();
    let ok = segments.len() == 3
        && segments.iter().all(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_=".contains(c))
        });
    if !ok {
        return Err(ApiError::validation(
            field,
            "must be a JWT (three base64url segments)",
        ));
    }
    Ok(())
}

pub(crate) fn token(field: &str, value: &str) -> Checked<()> {
    length(field, value, 1, 131_072)
}

/// `urn:ietf:params:oauth:request_uri:[a-zA-Z0-9-._~]+`, 1..1024.
pub(crate) fn session_uri(field: &str, value: &str) -> Checked<()> {
    length(field, value, 1, 1024)?;
    let rest = value
        .strip_prefix(crate::consent::SESSION_URI_PREFIX)
        .filter(|r| !r.is_empty());
    match rest {
        Some(rest) => chars(
            field,
            rest,
            |c| c.is_ascii_alphanumeric() || "-._~".contains(c),
            "urn:ietf:params:oauth:request_uri:[a-zA-Z0-9-._~]+",
        ),
        None => Err(ApiError::validation(
            field,
            "must match the pattern urn:ietf:params:oauth:request_uri:[a-zA-Z0-9-._~]+",
        )),
    }
}

/// A return URL: `\w+:(//)?\S+`, 1..2048; keygate also requires it to parse as a URL.
pub(crate) fn return_url(field: &str, value: &str) -> Checked<()> {
    use crate::rules::ReturnUrlProblem;
    length(field, value, 1, 2048)?;
    match crate::rules::check_return_url(value) {
        Ok(()) => Ok(()),
        Err(ReturnUrlProblem::NotAbsolute) => {
            Err(ApiError::validation(field, "must be an absolute URL"))
        }
        // Browsers are sent here: nothing that runs or embeds content instead of navigating.
        Err(ReturnUrlProblem::ScriptScheme(scheme)) => Err(ApiError::validation(
            field,
            format!("may not use the {scheme}: scheme"),
        )),
    }
}

pub(crate) fn scopes(field: &str, values: &[String]) -> Checked<()> {
    use crate::rules::{MAX_SCOPE_LEN, MAX_SCOPES};
    if values.len() > MAX_SCOPES {
        return Err(ApiError::validation(
            field,
            format!(
                "may hold at most {MAX_SCOPES} scopes (has {})",
                values.len()
            ),
        ));
    }
    for value in values {
        length(&format!("{field} member"), value, 1, MAX_SCOPE_LEN)?;
        chars(
            &format!("{field} member"),
            value,
            crate::rules::is_scope_char,
            "a scope token (RFC 6749 section 3.3)",
        )?;
    }
    Ok(())
}

/// RFC 8707 resource indicators: absolute URIs without a fragment, at most 10.
pub(crate) fn resources(field: &str, values: &[String]) -> Checked<()> {
    if values.len() > 10 {
        return Err(ApiError::validation(field, "may hold at most 10 resources"));
    }
    for value in values {
        length(&format!("{field} member"), value, 1, 2048)?;
        let absolute = url::Url::parse(value).is_ok_and(|u| u.fragment().is_none());
        if !absolute {
            return Err(ApiError::validation(
                format!("{field} member"),
                "must be an absolute URI without a fragment (RFC 8707)",
            ));
        }
    }
    Ok(())
}

pub(crate) fn audiences(field: &str, values: &[String]) -> Checked<()> {
    if values.len() > 10 {
        return Err(ApiError::validation(field, "may hold at most 10 audiences"));
    }
    for value in values {
        length(&format!("{field} member"), value, 1, 2048)?;
        if value.chars().any(char::is_control) {
            return Err(ApiError::validation(
                format!("{field} member"),
                "must not contain control characters",
            ));
        }
    }
    Ok(())
}

/// Parameters keygate sets on the authorization request itself; `customParameters` may not.
const RESERVED_PARAMETERS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "scope",
    "request_uri",
    "request",
    "response_mode",
    "resource",
    "audience",
];

/// Most `customParameters` one request may carry.
const MAX_CUSTOM_PARAMETERS: usize = 20;

/// `customState`: 1..4096 characters (it comes back to the app as `state`).
pub(crate) fn custom_state(field: &str, value: &str) -> Checked<()> {
    length(field, value, 1, 4096)
}

/// `customParameters`: the model's key pattern and lengths, at most
/// [`MAX_CUSTOM_PARAMETERS`], and none of the parameters keygate sets itself.
pub(crate) fn custom_parameters(
    field: &str,
    parameters: &std::collections::BTreeMap<String, String>,
) -> Checked<()> {
    if parameters.len() > MAX_CUSTOM_PARAMETERS {
        return Err(ApiError::validation(
            field,
            format!("may hold at most {MAX_CUSTOM_PARAMETERS} parameters"),
        ));
    }
    for (name, value) in parameters {
        let well_formed = (1..=256).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && (1..=2048).contains(&value.chars().count());
        if !well_formed {
            return Err(ApiError::validation(
                field,
                "keys must match [a-zA-Z0-9\\-_\\.]+ (1..256) and values be 1..2048 long",
            ));
        }
        if RESERVED_PARAMETERS.contains(&name.as_str()) {
            return Err(ApiError::validation(
                field,
                format!("may not set '{name}': keygate sets it on the authorization request"),
            ));
        }
    }
    Ok(())
}

/// Tags are accepted and kept: keys 1..128, values 0..256, at most 50.
pub(crate) fn tags(field: &str, tags: &std::collections::BTreeMap<String, String>) -> Checked<()> {
    if tags.len() > 50 {
        return Err(ApiError::validation(field, "may hold at most 50 tags"));
    }
    let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "._:/=+@-".contains(c);
    for (key, value) in tags {
        length(&format!("{field} key"), key, 1, 128)?;
        length(&format!("{field} value"), value, 0, 256)?;
        chars(
            &format!("{field} key"),
            key,
            allowed,
            "[a-zA-Z0-9\\s._:/=+@-]*",
        )?;
        chars(
            &format!("{field} value"),
            value,
            allowed,
            "[a-zA-Z0-9\\s._:/=+@-]*",
        )?;
    }
    Ok(())
}

pub(crate) fn max_results(value: Option<i64>) -> Checked<usize> {
    match value {
        None => Ok(10),
        Some(n @ 1..=20) => Ok(usize::try_from(n).unwrap_or(10)),
        Some(n) => Err(ApiError::validation(
            "maxResults",
            format!("must be between 1 and 20 (is {n})"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_model() {
        assert!(workload_name("name", "BizAssistAgent").is_ok());
        assert!(workload_name("name", "ab").is_err());
        assert!(workload_name("name", "bad name!").is_err());
        assert!(provider_name("name", "my-provider_1").is_ok());
        assert!(provider_name("name", "dot.not").is_err());
        let long = "a".repeat(129);
        assert!(provider_name("name", &long).is_err());
    }

    #[test]
    fn messages_name_the_field() {
        let err = workload_name("workloadName", "x").unwrap_err();
        assert!(err.to_string().contains("'workloadName'"), "{err}");
    }

    #[test]
    fn urls_tokens_and_sessions() {
        assert!(return_url("u", "https://app.example.com/cb").is_ok());
        assert!(return_url("u", "not a url").is_err());
        assert!(return_url("u", "https:").is_err());
        assert!(return_url("u", "javascript://x/%0aalert(1)").is_err());
        assert!(return_url("u", "data:text/html,hi").is_err());
        assert!(return_url("u", "myapp://oauth/cb").is_ok());
        assert!(user_token("t", "a.b.c").is_ok());
        assert!(user_token("t", "a.b").is_err());
        assert!(user_token("t", "a.b.c d").is_err());
        assert!(session_uri("s", "urn:ietf:params:oauth:request_uri:abc-_").is_ok());
        assert!(session_uri("s", "urn:ietf:params:oauth:request_uri:").is_err());
        assert!(session_uri("s", "https://x").is_err());
        let many: Vec<String> = (0..11).map(|i| format!("s{i}")).collect();
        assert!(scopes("scopes", &many).is_err());
        assert!(scopes("scopes", &many[..10]).is_ok());
        assert_eq!(max_results(None).unwrap(), 10);
        assert!(max_results(Some(0)).is_err());
        assert!(max_results(Some(21)).is_err());
    }
}
