//! The route table: compiled once per config, matched on every request. Longest `path_prefix`
//! wins; among equal prefixes a route limited to the request's host beats one for any host.

use std::sync::Arc;

use prometheus::Histogram;
use url::Url;

use crate::config::RouteConfig;
use crate::http_client::UpstreamClient;

/// One route, ready for the hot path.
pub struct Route {
    pub config: RouteConfig,
    /// The upstream's path with no trailing slash (empty for the root).
    upstream_base: String,
    pub upstream_origin: String,
    pub client: UpstreamClient,
    pub duration: Histogram,
    pub upstream_duration: Histogram,
}

impl Route {
    pub fn new(
        config: RouteConfig,
        client: UpstreamClient,
        duration: Histogram,
        upstream_duration: Histogram,
    ) -> Self {
        let upstream_base = config.upstream.path().trim_end_matches('/').to_string();
        let upstream_origin = origin(&config.upstream);
        Route {
            config,
            upstream_base,
            upstream_origin,
            client,
            duration,
            upstream_duration,
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The upstream URI for a normalised request path (which starts with this route's prefix)
    /// and its raw query.
    pub fn upstream_uri(&self, path: &str, query: Option<&str>) -> String {
        let rest = path
            .get(self.config.path_prefix.len()..)
            .unwrap_or_default();
        let mut uri = String::with_capacity(
            self.upstream_origin.len() + self.upstream_base.len() + rest.len() + 64,
        );
        uri.push_str(&self.upstream_origin);
        uri.push_str(&self.upstream_base);
        if !rest.starts_with('/') {
            uri.push('/');
        }
        uri.push_str(rest);
        if let Some(q) = query {
            uri.push('?');
            uri.push_str(q);
        }
        uri
    }
}

fn origin(url: &Url) -> String {
    let mut origin = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        origin.push_str(&format!(":{port}"));
    }
    origin
}

#[derive(Default)]
pub struct RouteTable {
    /// Sorted: longest prefix first, host-limited before host-less.
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    pub fn new(mut routes: Vec<Arc<Route>>) -> Self {
        routes.sort_by_key(|r| {
            (
                std::cmp::Reverse(r.config.path_prefix.len()),
                r.config.host.is_none(),
            )
        });
        RouteTable { routes }
    }

    /// The route for a request to `host` (lower-case, no port) and normalised `path`.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| {
            path.starts_with(r.config.path_prefix.as_str())
                && match (&r.config.host, host) {
                    (None, _) => true,
                    (Some(want), Some(got)) => want == got,
                    (Some(_), None) => false,
                }
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.iter()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// The host part of a `Host` header or authority, lower-cased, without port.
pub fn host_without_port(authority: &str) -> String {
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or(authority)
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    host.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_without_port_handles_ipv6_and_case() {
        assert_eq!(host_without_port("API.example.com:8443"), "api.example.com");
        assert_eq!(host_without_port("[::1]:8080"), "[::1]");
        assert_eq!(host_without_port("localhost"), "localhost");
    }
}
