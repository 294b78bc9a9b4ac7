//! Reading a token endpoint's answer, strictly (RFC 6749 section 5.1 and 5.2): a successful
//! answer is JSON, or form-encoded only for a vendor documented to answer so (GitHub); a JSON
//! object with a member twice is refused; `token_type`, when present, is `Bearer` in any case
//! (or a value the vendor documents, like Slack's `user`). A missing `token_type` is read as
//! Bearer: keygate presents every token as a bearer token, and it is the only kind the vendors
//! it knows issue. Vendors' error shapes are read as refusals: an `error` member whatever the
//! HTTP status (GitHub answers errors with 200), Slack's `"ok": false`; a vendor's own code for
//! a dead refresh token becomes `invalid_grant`.

use http::{HeaderMap, StatusCode, header};
use secrecy::SecretString;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use url::form_urlencoded;

use super::vendors::Dialect;

/// A token endpoint's answer.
#[derive(Debug)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: SecretString,
    pub(crate) refresh_token: Option<SecretString>,
    pub(crate) expires_in: Option<u64>,
    /// Granted scopes, when the provider says (its own separators and spellings).
    pub(crate) scope: Option<String>,
}

/// Why an answer is not a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AnswerError {
    /// The provider refused: its status and OAuth error code (sanitised).
    #[error("refused (HTTP {status}, {error})")]
    Refused { status: u16, error: String },
    /// Not an answer this vendor gives (wrong media type, malformed, duplicate members,
    /// a token type keygate cannot present).
    #[error("unreadable token answer: {0}")]
    Malformed(&'static str),
    #[error("no access token in the answer")]
    NoToken,
}

/// Reads an answer of the token endpoint of a vendor speaking `dialect`.
pub(crate) fn read(
    dialect: &Dialect,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<TokenResponse, AnswerError> {
    if !status.is_success() {
        let fields = fields(dialect, headers, body).unwrap_or_default();
        return Err(refusal(dialect, status, &fields));
    }
    let fields = fields(dialect, headers, body)?;
    let refused = fields.get("error").is_some_and(|e| !e.is_null())
        || fields.get("ok") == Some(&Value::Bool(false));
    if refused {
        return Err(refusal(dialect, status, &fields));
    }
    token(dialect, &fields)
}

fn refusal(dialect: &Dialect, status: StatusCode, fields: &Map<String, Value>) -> AnswerError {
    let code = fields
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("unknown_error");
    let code = match dialect.invalid_grant.contains(&code) {
        true => "invalid_grant",
        false => code,
    };
    AnswerError::Refused {
        status: status.as_u16(),
        error: sanitize_code(code),
    }
}

/// The answer's members, from JSON or (where the vendor answers so) a form.
fn fields(
    dialect: &Dialect,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Map<String, Value>, AnswerError> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let json = media == "application/json"
        || (media.starts_with("application/") && media.ends_with("+json"));
    if json {
        return match serde_json::from_slice::<Unique>(body) {
            Ok(Unique(Value::Object(map))) => Ok(map),
            Ok(_) => Err(AnswerError::Malformed("not a JSON object")),
            Err(_) => Err(AnswerError::Malformed("malformed JSON or a member twice")),
        };
    }
    if dialect.form_answers && media == "application/x-www-form-urlencoded" {
        let mut map = Map::new();
        for (name, value) in form_urlencoded::parse(body) {
            if map
                .insert(name.into_owned(), Value::String(value.into_owned()))
                .is_some()
            {
                return Err(AnswerError::Malformed("a form field twice"));
            }
        }
        return Ok(map);
    }
    Err(AnswerError::Malformed("not a JSON answer"))
}

fn token(dialect: &Dialect, fields: &Map<String, Value>) -> Result<TokenResponse, AnswerError> {
    // Slack puts a user token under `authed_user` when only user scopes were asked for.
    let fields = match (fields.get("access_token"), fields.get("authed_user")) {
        (None, Some(Value::Object(user))) if dialect.scope_param == "user_scope" => user,
        _ => fields,
    };
    match fields.get("token_type") {
        None | Some(Value::Null) => {}
        Some(Value::String(kind))
            if kind.eq_ignore_ascii_case("bearer")
                || dialect
                    .token_types
                    .iter()
                    .any(|t| kind.eq_ignore_ascii_case(t)) => {}
        Some(_) => return Err(AnswerError::Malformed("token_type is not Bearer")),
    }
    let string = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let access_token = string("access_token").ok_or(AnswerError::NoToken)?;
    let expires_in = match fields.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    Ok(TokenResponse {
        access_token: access_token.to_string().into(),
        refresh_token: string("refresh_token").map(|r| r.to_string().into()),
        expires_in,
        scope: string("scope").map(str::to_string),
    })
}

/// An OAuth error code is a short token; anything else is not echoed anywhere.
fn sanitize_code(code: &str) -> String {
    if code.len() <= 64 && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        code.to_string()
    } else {
        "unknown_error".to_string()
    }
}

/// A JSON value whose objects (at any depth) have each member once.
struct Unique(Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Unique, E> {
        Ok(Unique(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Unique, E> {
        Ok(Unique(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Unique, E> {
        Ok(Unique(Value::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Unique, E> {
        Ok(Unique(Value::from(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Unique, E> {
        Ok(Unique(Value::String(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Unique, E> {
        Ok(Unique(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        let mut items = Vec::new();
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Unique(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Unique, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            let Unique(value) = access.next_value()?;
            if map.contains_key(&name) {
                return Err(de::Error::custom("a member twice"));
            }
            map.insert(name, value);
        }
        Ok(Unique(Value::Object(map)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::vendors::dialect;
    use secrecy::ExposeSecret;

    fn answer(
        vendor: &str,
        status: u16,
        content_type: &str,
        body: &str,
    ) -> Result<TokenResponse, AnswerError> {
        let mut headers = HeaderMap::new();
        if !content_type.is_empty() {
            headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        }
        read(
            &dialect(vendor),
            StatusCode::from_u16(status).unwrap(),
            &headers,
            body.as_bytes(),
        )
    }

    const JSON: &str = "application/json; charset=utf-8";
    const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

    #[test]
    fn json_answers_and_bearer_in_any_case_are_read() {
        for body in [
            r#"{"access_token":"a","token_type":"Bearer","expires_in":60}"#,
            r#"{"access_token":"a","token_type":"bearer","expires_in":"60"}"#,
            r#"{"access_token":"a","expires_in":60}"#,
        ] {
            let token = answer("custom", 200, JSON, body).unwrap();
            assert_eq!(token.access_token.expose_secret(), "a", "{body}");
            assert_eq!(token.expires_in, Some(60), "{body}");
        }
        assert!(
            answer(
                "custom",
                200,
                "application/token+json",
                r#"{"access_token":"a"}"#
            )
            .is_ok()
        );
    }

    #[test]
    fn lenient_answers_are_refused() {
        let malformed = |reason| Err(AnswerError::Malformed(reason));
        let cases: &[(&str, &str, &str, Result<(), AnswerError>)] = &[
            (
                "custom",
                "text/html",
                "<html>access_token=a</html>",
                malformed("not a JSON answer"),
            ),
            (
                "custom",
                "",
                r#"{"access_token":"a"}"#,
                malformed("not a JSON answer"),
            ),
            (
                "custom",
                FORM,
                "access_token=a&token_type=bearer",
                malformed("not a JSON answer"),
            ),
            (
                "custom",
                JSON,
                r#"{"access_token":"a","access_token":"b"}"#,
                malformed("malformed JSON or a member twice"),
            ),
            (
                "slack",
                JSON,
                r#"{"ok":true,"authed_user":{"access_token":"a","access_token":"b"}}"#,
                malformed("malformed JSON or a member twice"),
            ),
            (
                "github",
                FORM,
                "access_token=a&access_token=b",
                malformed("a form field twice"),
            ),
            (
                "custom",
                JSON,
                r#"{"access_token":"a","token_type":"mac"}"#,
                malformed("token_type is not Bearer"),
            ),
            (
                "custom",
                JSON,
                r#"{"access_token":"a","token_type":"user"}"#,
                malformed("token_type is not Bearer"),
            ),
            (
                "custom",
                JSON,
                r#"{"access_token":"a","token_type":7}"#,
                malformed("token_type is not Bearer"),
            ),
            (
                "custom",
                JSON,
                r#"["access_token"]"#,
                malformed("not a JSON object"),
            ),
            (
                "custom",
                JSON,
                r#"{"token_type":"Bearer"}"#,
                Err(AnswerError::NoToken),
            ),
        ];
        for (vendor, content_type, body, expected) in cases {
            let got = answer(vendor, 200, content_type, body).map(|_| ());
            assert_eq!(&got, expected, "{vendor} {content_type} {body}");
        }
    }

    #[test]
    fn github_answers_as_a_form_and_slack_user_tokens_say_user() {
        let token = answer(
            "github",
            200,
            FORM,
            "access_token=gho_x&scope=repo%2Cuser&token_type=bearer",
        )
        .unwrap();
        assert_eq!(token.access_token.expose_secret(), "gho_x");
        assert_eq!(token.scope.as_deref(), Some("repo,user"));
        let body = r#"{"ok":true,"app_id":"A1","authed_user":{"id":"U1","scope":"chat:write",
            "access_token":"xoxp-1","token_type":"user"},"team":{"id":"T1"}}"#;
        let token = answer("slack", 200, JSON, body).unwrap();
        assert_eq!(token.access_token.expose_secret(), "xoxp-1");
        assert_eq!(token.scope.as_deref(), Some("chat:write"));
    }

    #[test]
    fn vendor_error_shapes_are_refusals() {
        let refused = |status, error: &str| {
            Err(AnswerError::Refused {
                status,
                error: error.to_string(),
            })
        };
        type Case<'a> = (&'a str, u16, &'a str, &'a str, Result<(), AnswerError>);
        let cases: &[Case] = &[
            (
                "slack",
                200,
                JSON,
                r#"{"ok":false,"error":"invalid_code"}"#,
                refused(200, "invalid_code"),
            ),
            (
                "slack",
                200,
                JSON,
                r#"{"ok":false,"error":"invalid_refresh_token"}"#,
                refused(200, "invalid_grant"),
            ),
            (
                "slack",
                200,
                JSON,
                r#"{"ok":false,"access_token":"a"}"#,
                refused(200, "unknown_error"),
            ),
            (
                "github",
                200,
                FORM,
                "error=bad_refresh_token&error_description=x",
                refused(200, "invalid_grant"),
            ),
            (
                "github",
                200,
                JSON,
                r#"{"error":"bad_verification_code"}"#,
                refused(200, "bad_verification_code"),
            ),
            (
                "custom",
                400,
                JSON,
                r#"{"error":"invalid_grant"}"#,
                refused(400, "invalid_grant"),
            ),
            (
                "custom",
                502,
                "text/html",
                "<html>",
                refused(502, "unknown_error"),
            ),
            (
                "custom",
                400,
                JSON,
                r#"{"error":"<script>"}"#,
                refused(400, "unknown_error"),
            ),
        ];
        for (vendor, status, content_type, body, expected) in cases {
            let got = answer(vendor, *status, content_type, body).map(|_| ());
            assert_eq!(&got, expected, "{vendor} {body}");
        }
    }
}
