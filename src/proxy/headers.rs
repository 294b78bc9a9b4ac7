//! Header rules shared by both directions: hop-by-hop headers (RFC 9110 section 7.6.1, plus any
//! header a `Connection` header names) are dropped, the `X-Forwarded-*` headers describe the
//! client to the upstream, and on routes that inject a credential the client's own credentials
//! and identity claims are dropped (the upstream must see one identity: the one keygate vouches
//! for).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

// Which headers are hop-by-hop or client credentials: rules the config checks routes against.
use crate::rules::{HOP_BY_HOP, is_client_credential};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes hop-by-hop headers and every header named in `Connection`. A request's
/// `TE: trailers` survives (it is end-to-end in meaning for gRPC and HTTP/2).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_te_trailers: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    let te_trailers = keep_te_trailers
        && headers
            .get(header::TE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("trailers"));
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Sets `X-Forwarded-For` (the peer appended to any list the client sent), `X-Forwarded-Proto`
/// and `X-Forwarded-Host` (both replaced).
pub fn set_forwarded(
    headers: &mut HeaderMap,
    peer: IpAddr,
    tls: bool,
    original_host: Option<&HeaderValue>,
) {
    let peer = peer.to_string();
    let forwarded_for = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.trim().is_empty() => format!("{existing}, {peer}"),
        _ => peer,
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    let proto = if tls { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    match original_host {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST.clone(), host.clone());
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

/// Removes [`crate::rules::CLIENT_CREDENTIAL_HEADERS`] except those the route lets through. One pass over the
/// request's headers (usually a handful), no allocation when there is nothing to drop.
pub(crate) fn strip_client_credentials(headers: &mut HeaderMap, pass: &[HeaderName]) {
    let dropped: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_client_credential(name) && !pass.contains(name))
        .cloned()
        .collect();
    for name in dropped {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::CLIENT_CREDENTIAL_HEADERS;

    #[test]
    fn strips_listed_and_named_headers_in_any_case() {
        let mut h = HeaderMap::new();
        h.insert(
            "Connection",
            HeaderValue::from_static("close, X-Secret-Hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("te", HeaderValue::from_static("gzip"));
        h.insert("x-end-to-end", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-end-to-end"));
    }

    #[test]
    fn te_trailers_survives_on_requests() {
        let mut h = HeaderMap::new();
        h.insert("te", HeaderValue::from_static("trailers"));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["te"], "trailers");
        strip_hop_by_hop(&mut h, false);
        assert!(!h.contains_key("te"));
    }

    #[test]
    fn client_credentials_are_dropped_unless_passed() {
        let mut h = HeaderMap::new();
        for name in CLIENT_CREDENTIAL_HEADERS {
            h.insert(name, HeaderValue::from_static("client"));
        }
        h.insert("x-end-to-end", HeaderValue::from_static("1"));
        strip_client_credentials(&mut h, &[header::COOKIE]);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(h.contains_key("cookie") && h.contains_key("x-end-to-end"));
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        h.insert("x-forwarded-host", HeaderValue::from_static("spoofed"));
        let host = HeaderValue::from_static("gw.example");
        set_forwarded(&mut h, "127.0.0.1".parse().unwrap(), true, Some(&host));
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "gw.example");
    }
}
