//! Structural checks on a compact JWS before any key is touched: size, three base64url parts,
//! a JSON header without duplicate keys or dangerous parameters, and an allowed algorithm.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::error::AuthError;

/// Tokens larger than this are refused unread.
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Asymmetric algorithms only; never `none` or HMAC (a public key must not become a secret).
pub(crate) const ALLOWED_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Header parameters that would let a token choose its own key, or demand extensions.
const FORBIDDEN_HEADER_PARAMETERS: &[&str] = &["jwk", "jku", "x5u", "x5c", "crit"];

/// The parts of a token that matter before verification.
#[derive(Debug)]
pub(crate) struct TokenHeader {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    /// The media type the token says it is (`typ`), when present.
    typ: Option<String>,
}

impl TokenHeader {
    /// Whether `typ` is absent or names an access token or plain JWT (`JWT`, `at+jwt`, with or
    /// without `application/`, any case): never `refresh+jwt`, `logout+jwt` and the like.
    pub(crate) fn is_access_token_type(&self) -> bool {
        self.typ.as_deref().is_none_or(|typ| {
            let typ = typ.to_ascii_lowercase();
            let typ = typ.strip_prefix("application/").unwrap_or(&typ);
            typ == "jwt" || typ == "at+jwt"
        })
    }
}

/// Checks a token's shape and reads its header.
pub(crate) fn parse_header(token: &str) -> Result<TokenHeader, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(AuthError::Malformed);
    }
    let header = strict_json_object(header)?;
    if FORBIDDEN_HEADER_PARAMETERS
        .iter()
        .any(|p| header.contains_key(*p))
    {
        return Err(AuthError::ForbiddenHeader);
    }
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some(name) => name
            .parse::<Algorithm>()
            .map_err(|_| AuthError::BadAlgorithm)?,
        None => return Err(AuthError::Malformed),
    };
    if !ALLOWED_ALGORITHMS.contains(&alg) {
        return Err(AuthError::BadAlgorithm);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(AuthError::Malformed),
    };
    let typ = match header.get("typ") {
        None => None,
        Some(Value::String(typ)) => Some(typ.clone()),
        Some(_) => return Err(AuthError::Malformed),
    };
    Ok(TokenHeader { alg, kid, typ })
}

/// The payload as a JSON object, refusing duplicate keys at any depth.
pub(crate) fn payload(token: &str) -> Result<Map<String, Value>, AuthError> {
    let payload = token.split('.').nth(1).ok_or(AuthError::Malformed)?;
    strict_json_object(payload)
}

fn strict_json_object(part: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed)?;
    let Strict(value) = serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(AuthError::Malformed),
    }
}

/// A JSON value that refuses duplicate object keys (serde_json keeps the last one silently,
/// and two parsers disagreeing on which one counts is how claims get smuggled).
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON without duplicate keys")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Strict(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Strict, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom("duplicate key"));
            }
            let Strict(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Strict(Value::Object(map)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("sig"))
    }

    #[test]
    fn reads_alg_and_kid() {
        let h = parse_header(&token(r#"{"alg":"ES256","kid":"k1"}"#, "{}")).unwrap();
        assert_eq!(h.alg, Algorithm::ES256);
        assert_eq!(h.kid.as_deref(), Some("k1"));
    }

    #[test]
    fn refuses_what_must_never_pass() {
        let cases = [
            (token(r#"{"alg":"none"}"#, "{}"), AuthError::BadAlgorithm),
            (token(r#"{"alg":"HS256"}"#, "{}"), AuthError::BadAlgorithm),
            (
                token(r#"{"alg":"RS256","jwk":{}}"#, "{}"),
                AuthError::ForbiddenHeader,
            ),
            (
                token(r#"{"alg":"RS256","jku":"http://x"}"#, "{}"),
                AuthError::ForbiddenHeader,
            ),
            (
                token(r#"{"alg":"RS256","crit":["b64"]}"#, "{}"),
                AuthError::ForbiddenHeader,
            ),
            (
                token(r#"{"alg":"RS256","alg":"none"}"#, "{}"),
                AuthError::Malformed,
            ),
            (
                token(r#"{"alg":"RS256","kid":7}"#, "{}"),
                AuthError::Malformed,
            ),
            (token(r#"["alg"]"#, "{}"), AuthError::Malformed),
            ("a.b".to_string(), AuthError::Malformed),
            ("a.b.c.d".to_string(), AuthError::Malformed),
            ("!!.b.c".to_string(), AuthError::Malformed),
            (
                format!("{}.x.y", "a".repeat(MAX_TOKEN_BYTES)),
                AuthError::TooLarge,
            ),
        ];
        for (token, expected) in cases {
            assert_eq!(parse_header(&token).unwrap_err(), expected, "{token:.60}");
        }
    }

    #[test]
    fn typ_names_a_jwt_or_an_access_token_when_present() {
        for (typ, accepted) in [
            (None, true),
            (Some("JWT"), true),
            (Some("jwt"), true),
            (Some("at+jwt"), true),
            (Some("AT+JWT"), true),
            (Some("application/at+jwt"), true),
            (Some("application/jwt"), true),
            (Some("refresh+jwt"), false),
            (Some("logout+jwt"), false),
            (Some("JOSE"), false),
            (Some(""), false),
        ] {
            let header = match typ {
                Some(t) => format!(r#"{{"alg":"ES256","typ":"{t}"}}"#),
                None => r#"{"alg":"ES256"}"#.to_string(),
            };
            let parsed = parse_header(&token(&header, "{}")).unwrap();
            assert_eq!(parsed.is_access_token_type(), accepted, "{typ:?}");
        }
        assert_eq!(
            parse_header(&token(r#"{"alg":"ES256","typ":["JWT"]}"#, "{}")).unwrap_err(),
            AuthError::Malformed
        );
    }

    #[test]
    fn payload_refuses_duplicate_keys_at_any_depth() {
        assert!(payload(&token("{}", r#"{"sub":"a","sub":"b"}"#)).is_err());
        assert!(payload(&token("{}", r#"{"x":{"y":1,"y":2}}"#)).is_err());
        assert_eq!(
            payload(&token("{}", r#"{"sub":"a","n":[1,{"k":null}]}"#)).unwrap()["sub"],
            "a"
        );
    }
}
