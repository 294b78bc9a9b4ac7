//! Where keygate's own fetches (OIDC discovery, JWKS, provider token endpoints) may go, and the
//! client that makes them. Rules, checked before every such request:
//!
//! - link-local addresses (169.254.0.0/16, fe80::/10: cloud metadata services) are never
//!   reached, whether written as an IP address or reached through a name (the fetch client's
//!   resolver drops them, so a name that re-resolves later cannot slip through);
//! - `http://` is allowed only to loopback hosts, unless the config sets `allow_insecure_http`;
//! - a URL found in a document fetched over https must be https too (no downgrade).
//!
//! The fetch client (`upstream::for_fetches`) uses this module's [`Resolver`] and
//! trusts the public web roots plus `[server] extra_ca_certs`.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use url::{Host, Url};

/// Why a URL may not be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("link-local addresses are never fetched")]
    LinkLocal,
    #[error("http:// is allowed only to loopback hosts unless allow_insecure_http = true")]
    InsecureHttp,
    #[error("a document fetched over https may not point at an http:// URL")]
    Downgrade,
    #[error("only http:// and https:// URLs are fetched")]
    Scheme,
}

/// Whether keygate may fetch `url`. `found_in` is the URL of the document that named it, if
/// any; `allow_insecure_http` is the config's explicit opt-in to clear-text fetches.
pub(crate) fn check(
    url: &Url,
    found_in: Option<&Url>,
    allow_insecure_http: bool,
) -> Result<(), EgressError> {
    if is_link_local_host(url) {
        return Err(EgressError::LinkLocal);
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if found_in.is_some_and(|d| d.scheme() == "https") && !allow_insecure_http => {
            Err(EgressError::Downgrade)
        }
        "http" if allow_insecure_http || is_loopback_host(url) => Ok(()),
        "http" => Err(EgressError::InsecureHttp),
        _ => Err(EgressError::Scheme),
    }
}

/// `localhost` (and its subdomains, RFC 6761) or a loopback IP address.
fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn is_link_local_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => is_link_local(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => is_link_local(IpAddr::V6(ip)),
        _ => false,
    }
}

/// 169.254.0.0/16, fe80::/10, and IPv4-mapped forms of the former.
fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_link_local(),
            None => (v6.segments()[0] & 0xffc0) == 0xfe80,
        },
    }
}

/// The system resolver, optionally dropping link-local answers. Upstream routes resolve as
/// configured; keygate's own fetches never reach a link-local address through a name.
#[derive(Clone, Debug)]
pub struct Resolver {
    gai: GaiResolver,
    refuse_link_local: bool,
}

impl Resolver {
    pub(crate) fn new(refuse_link_local: bool) -> Self {
        Resolver {
            gai: GaiResolver::new(),
            refuse_link_local,
        }
    }
}

type Resolving = Pin<Box<dyn Future<Output = io::Result<std::vec::IntoIter<SocketAddr>>> + Send>>;

impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Resolving {
        let lookup = tower_service::Service::call(&mut self.gai, name);
        let refuse_link_local = self.refuse_link_local;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = lookup
                .await?
                .filter(|a| !(refuse_link_local && is_link_local(a.ip())))
                .collect();
            if addrs.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "the name resolves only to refused (link-local) addresses",
                ));
            }
            Ok(addrs.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn the_fetch_rules() {
        let https_doc = url("https://idp.example/.well-known/openid-configuration");
        let cases = [
            ("https://idp.example/jwks", None, false, Ok(())),
            ("http://127.0.0.1:3000/jwks", None, false, Ok(())),
            ("http://localhost:3000/jwks", None, false, Ok(())),
            ("http://[::1]:3000/jwks", None, false, Ok(())),
            (
                "http://idp.example/jwks",
                None,
                false,
                Err(EgressError::InsecureHttp),
            ),
            ("http://idp.example/jwks", None, true, Ok(())),
            (
                "http://10.0.0.5/jwks",
                None,
                false,
                Err(EgressError::InsecureHttp),
            ),
            (
                "http://169.254.169.254/latest/meta-data",
                None,
                true,
                Err(EgressError::LinkLocal),
            ),
            (
                "https://169.254.10.1/jwks",
                None,
                false,
                Err(EgressError::LinkLocal),
            ),
            (
                "https://[fe80::1]/jwks",
                None,
                false,
                Err(EgressError::LinkLocal),
            ),
            (
                "https://[::ffff:169.254.169.254]/",
                None,
                false,
                Err(EgressError::LinkLocal),
            ),
            (
                "http://127.0.0.1/jwks",
                Some(&https_doc),
                false,
                Err(EgressError::Downgrade),
            ),
            ("http://127.0.0.1/jwks", Some(&https_doc), true, Ok(())),
            (
                "ftp://idp.example/jwks",
                None,
                true,
                Err(EgressError::Scheme),
            ),
        ];
        for (target, found_in, allow, expected) in cases {
            assert_eq!(check(&url(target), found_in, allow), expected, "{target}");
        }
    }
}
