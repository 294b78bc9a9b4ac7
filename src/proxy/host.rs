//! Which host a request addressed, without ambiguity: at most one `Host` header, a valid
//! authority, and the same host as the request target's own authority (HTTP/2 `:authority`,
//! HTTP/1.1 absolute form) when both are present (RFC 9112 section 3.2, RFC 9113 section
//! 8.3.1). Routes may be limited to a host, so two answers to "which host" would let a client
//! pick the one a check reads and the one the route uses.

use http::Uri;
use http::header::{self, HeaderMap};
use http::uri::Authority;

use crate::error::ProxyError;
use crate::rules::host_without_port;

/// Refuses a request whose host is ambiguous (400 `bad_request`).
pub(crate) fn check(headers: &HeaderMap, uri: &Uri) -> Result<(), ProxyError> {
    let mut values = headers.get_all(header::HOST).iter();
    let host = match (values.next(), values.next()) {
        (None, _) => return Ok(()),
        (Some(_), Some(_)) => return Err(ProxyError::BadRequest("two Host headers")),
        (Some(value), None) => value,
    };
    let host: Authority = host
        .to_str()
        .ok()
        .filter(|h| !h.contains('@'))
        .and_then(|h| h.parse().ok())
        .ok_or(ProxyError::BadRequest("the Host header is not a host"))?;
    match uri.authority() {
        Some(target) if !same_host(target, &host) => Err(ProxyError::BadRequest(
            "the Host header names another host than the request target",
        )),
        _ => Ok(()),
    }
}

/// Same host (case-insensitive) and, where both name a port, the same port.
fn same_host(a: &Authority, b: &Authority) -> bool {
    host_without_port(a.as_str()) == host_without_port(b.as_str())
        && match (a.port_u16(), b.port_u16()) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(hosts: &[&str], uri: &str) -> Result<(), ProxyError> {
        let mut headers = HeaderMap::new();
        for h in hosts {
            headers.append(header::HOST, h.parse().unwrap());
        }
        check(&headers, &uri.parse().unwrap())
    }

    #[test]
    fn one_host_agreeing_with_the_target_passes() {
        assert!(checked(&[], "/a").is_ok());
        assert!(checked(&["gw.example:8080"], "/a").is_ok());
        assert!(checked(&["GW.example"], "http://gw.example:8080/a").is_ok());
        assert!(checked(&["gw.example:8080"], "http://gw.example:8080/a").is_ok());
        assert!(checked(&["[::1]:8080"], "http://[::1]:8080/a").is_ok());
    }

    #[test]
    fn ambiguous_hosts_are_refused() {
        for (hosts, uri) in [
            (&["a.example", "b.example"][..], "/a"),
            (&["a.example"][..], "http://b.example/a"),
            (&["a.example:1"][..], "http://a.example:2/a"),
            (&["user@a.example"][..], "/a"),
            (&["a example"][..], "/a"),
        ] {
            assert!(
                matches!(checked(hosts, uri), Err(ProxyError::BadRequest(_))),
                "{hosts:?} {uri}"
            );
        }
    }
}
