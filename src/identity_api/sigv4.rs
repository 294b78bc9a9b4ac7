//! AWS Signature Version 4 verification for the identity API: the canonical request built as
//! AWS specifies it (and as botocore builds it), the signing key derived from the configured
//! secret, the signature compared in constant time. The date must be within five minutes of
//! now, the credential scope must name the configured region and `bedrock-agentcore`, `host`
//! and `x-amz-date` must be signed, and the body hash is always computed from the body itself.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::{constant_time, digest, hmac};
use http::HeaderMap;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use secrecy::ExposeSecret;

use crate::config::ApiCredential;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SERVICE: &str = "bedrock-agentcore";
/// How far `X-Amz-Date` may be from now, either way.
const MAX_SKEW: Duration = Duration::from_secs(300);

/// How long a used signature is remembered: the whole window in which its `X-Amz-Date` is
/// accepted (5 minutes either side of now), plus a minute.
pub(crate) const REPLAY_MEMORY_SECS: i64 = 2 * 300 + 60;

/// Why a request's signature was refused. The messages are safe to return: they never
/// include the secret or the expected signature.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum SigV4Error {
    #[error("missing Authorization header: requests must be signed with AWS Signature Version 4")]
    Missing,
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    #[error("missing or malformed X-Amz-Date header")]
    BadDate,
    #[error("signature expired: X-Amz-Date is more than 5 minutes from the server's time")]
    Stale,
    #[error("the credential scope must be <date>/{region}/bedrock-agentcore/aws4_request")]
    WrongScope { region: String },
    #[error("the signed headers must include host and x-amz-date")]
    UnsignedHeaders,
    #[error("X-Amz-Content-Sha256 does not match the body")]
    BodyHash,
    #[error("the access key id is not known")]
    UnknownKey,
    #[error("the request signature does not match")]
    Mismatch,
}

impl SigV4Error {
    /// What the caller is told: an unknown key and a wrong signature read the same, so access
    /// key ids cannot be probed. (The log keeps the precise reason.)
    pub(crate) fn public_message(&self) -> &'static str {
        match self {
            SigV4Error::UnknownKey | SigV4Error::Mismatch => {
                "the request signature does not match, or the access key id is not known"
            }
            SigV4Error::Missing => {
                "missing Authorization header: requests must be signed with AWS Signature Version 4"
            }
            SigV4Error::Malformed(_) => "malformed Authorization header",
            SigV4Error::BadDate => "missing or malformed X-Amz-Date header",
            SigV4Error::Stale => {
                "signature expired: X-Amz-Date is more than 5 minutes from the server's time"
            }
            SigV4Error::WrongScope { .. } => {
                "the credential scope must name this service's region and bedrock-agentcore"
            }
            SigV4Error::UnsignedHeaders => "the signed headers must include host and x-amz-date",
            SigV4Error::BodyHash => "X-Amz-Content-Sha256 does not match the body",
        }
    }
}

/// The parts of a request that are signed.
pub(crate) struct Signed<'a> {
    pub(crate) method: &'a str,
    /// The path exactly as received (still percent-encoded).
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) headers: &'a HeaderMap,
    /// `host[:port]` as the client addressed it (the Host header, or `:authority` on HTTP/2).
    pub(crate) host: Option<&'a str>,
    pub(crate) body: &'a [u8],
}

struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

/// The signature of a signed request (its `Signature=` value), once [`verify`] accepted it: a
/// request's identity for replay detection.
pub(crate) fn signature_of(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    parse_authorization(value).ok().map(|auth| auth.signature)
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, SigV4Error> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or(SigV4Error::Malformed(
            "the algorithm must be AWS4-HMAC-SHA256",
        ))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (name, value) = part
            .trim()
            .split_once('=')
            .ok_or(SigV4Error::Malformed("expected Name=value pairs"))?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return Err(SigV4Error::Malformed("unknown component")),
        };
        if slot.replace(value).is_some() {
            return Err(SigV4Error::Malformed("repeated component"));
        }
    }
    let credential = credential.ok_or(SigV4Error::Malformed("no Credential"))?;
    let signed = signed.ok_or(SigV4Error::Malformed("no SignedHeaders"))?;
    let signature = signature.ok_or(SigV4Error::Malformed("no Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope[..] else {
        return Err(SigV4Error::Malformed(
            "Credential must be <key>/<date>/<region>/<service>/aws4_request",
        ));
    };
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SigV4Error::Malformed("Signature must be 64 hex digits"));
    }
    let signed_headers: Vec<&str> = signed.split(';').collect();
    let well_formed = signed_headers
        .iter()
        .all(|h| !h.is_empty() && h.bytes().all(|b| !b.is_ascii_uppercase()))
        && signed_headers.windows(2).all(|w| w[0] < w[1]);
    if !well_formed {
        return Err(SigV4Error::Malformed(
            "SignedHeaders must be lower-case, sorted and unique",
        ));
    }
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        terminator,
        signed_headers,
        signature,
    })
}

/// Seconds since the epoch for an `X-Amz-Date` (`YYYYMMDDTHHMMSSZ`).
fn parse_amz_date(value: &str) -> Option<u64> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u64> {
        let s = value.get(range)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm), for the proleptic Gregorian calendar.
    let y = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// RFC 3986 unreserved characters stay; everything else is percent-encoded (upper-case hex).
const AWS_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
const AWS_ENCODE_PATH: &AsciiSet = &AWS_ENCODE.remove(b'/');

/// The canonical URI: the received path encoded once more, as botocore does for every
/// service but S3 (so `%` in the received path becomes `%25`).
fn canonical_uri(path: &str) -> String {
    let path = if path.is_empty() { "/" } else { path };
    utf8_percent_encode(path, AWS_ENCODE_PATH).to_string()
}

fn canonical_query(query: Option<&str>) -> String {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return String::new();
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            let encode = |s: String| utf8_percent_encode(&s, AWS_ENCODE).to_string();
            (encode(decode(k)), encode(decode(v)))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A header value as signed: trimmed, inner runs of spaces collapsed to one.
fn canonical_value(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// The signature over `string_to_sign` with the key derived for (`date`, `region`, `service`).
fn signature(
    secret: &str,
    date: &str,
    region: &str,
    service: &str,
    string_to_sign: &str,
) -> String {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(k_date.as_ref(), region.as_bytes());
    let k_service = hmac_sha256(k_region.as_ref(), service.as_bytes());
    let k_signing = hmac_sha256(k_service.as_ref(), b"aws4_request");
    hex(hmac_sha256(k_signing.as_ref(), string_to_sign.as_bytes()).as_ref())
}

/// The canonical request for the signed headers listed.
fn canonical_request(request: &Signed<'_>, signed_headers: &[&str], payload_hash: &str) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(request.method);
    out.push('\n');
    out.push_str(&canonical_uri(request.path));
    out.push('\n');
    out.push_str(&canonical_query(request.query));
    out.push('\n');
    for name in signed_headers {
        let value = if *name == "host" && request.headers.get(http::header::HOST).is_none() {
            request.host.unwrap_or_default().to_string()
        } else {
            request
                .headers
                .get_all(*name)
                .iter()
                .map(|v| canonical_value(v.as_bytes()))
                .collect::<Vec<_>>()
                .join(",")
        };
        out.push_str(name);
        out.push(':');
        out.push_str(&value);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// Verifies `request` against the configured keys; the access key id that signed it on success.
pub(crate) fn verify<'c>(
    request: &Signed<'_>,
    credentials: &'c [ApiCredential],
    region: &str,
    now: SystemTime,
) -> Result<&'c str, SigV4Error> {
    let header = request
        .headers
        .get(http::header::AUTHORIZATION)
        .ok_or(SigV4Error::Missing)?
        .to_str()
        .map_err(|_| SigV4Error::Malformed("not ASCII"))?;
    let auth = parse_authorization(header)?;
    let amz_date = request
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or(SigV4Error::BadDate)?;
    let signed_at = parse_amz_date(amz_date).ok_or(SigV4Error::BadDate)?;
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    if now.abs_diff(signed_at) > MAX_SKEW.as_secs() {
        return Err(SigV4Error::Stale);
    }
    if auth.date != &amz_date[..8]
        || auth.region != region
        || auth.service != SERVICE
        || auth.terminator != "aws4_request"
    {
        return Err(SigV4Error::WrongScope {
            region: region.to_string(),
        });
    }
    if !auth.signed_headers.contains(&"host") || !auth.signed_headers.contains(&"x-amz-date") {
        return Err(SigV4Error::UnsignedHeaders);
    }
    let payload_hash = sha256_hex(request.body);
    if let Some(claimed) = request.headers.get("x-amz-content-sha256")
        && claimed.as_bytes() != payload_hash.as_bytes()
    {
        return Err(SigV4Error::BodyHash);
    }
    // Every key is tried in full so the time taken does not tell which ids exist.
    let mut found = None;
    for credential in credentials {
        let same_id = constant_time::verify_slices_are_equal(
            credential.access_key_id.as_bytes(),
            auth.access_key_id.as_bytes(),
        )
        .is_ok();
        if same_id {
            found = Some(credential);
        }
    }
    let credential = found.ok_or(SigV4Error::UnknownKey)?;
    let canonical = canonical_request(request, &auth.signed_headers, &payload_hash);
    let scope = format!("{}/{}/{}/aws4_request", auth.date, region, SERVICE);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let expected = signature(
        credential.secret_access_key.expose_secret(),
        auth.date,
        region,
        SERVICE,
        &string_to_sign,
    );
    constant_time::verify_slices_are_equal(expected.as_bytes(), auth.signature.as_bytes())
        .map_err(|_| SigV4Error::Mismatch)?;
    Ok(&credential.access_key_id)
}

/// Signs a request as an AWS client would (for tests and tools): the headers to add.
pub fn sign(
    credential: &ApiCredential,
    region: &str,
    method: &str,
    host: &str,
    path: &str,
    body: &[u8],
    at: SystemTime,
) -> Vec<(&'static str, String)> {
    let secs = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let amz_date = format_amz_date(secs);
    let mut headers = HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(host) {
        headers.insert(http::header::HOST, v);
    }
    if let Ok(v) = http::HeaderValue::from_str(&amz_date) {
        headers.insert("x-amz-date", v);
    }
    let request = Signed {
        method,
        path,
        query: None,
        headers: &headers,
        host: Some(host),
        body,
    };
    let signed = ["host", "x-amz-date"];
    let canonical = canonical_request(&request, &signed, &sha256_hex(body));
    let scope = format!("{}/{region}/{SERVICE}/aws4_request", &amz_date[..8]);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let sig = signature(
        credential.secret_access_key.expose_secret(),
        &amz_date[..8],
        region,
        SERVICE,
        &string_to_sign,
    );
    vec![
        ("x-amz-date", amz_date),
        (
            "authorization",
            format!(
                "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={sig}",
                credential.access_key_id,
                signed.join(";")
            ),
        ),
    ]
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the epoch.
fn format_amz_date(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
