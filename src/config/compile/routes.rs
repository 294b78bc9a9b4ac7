//! Checks of `[[routes]]` and their `[routes.credential]`: prefix, host, upstream, references
//! to authorizers, workloads and providers, flows against provider kinds, injection.

use std::collections::HashSet;

use http::HeaderName;

use super::super::raw::*;
use super::super::*;

use super::*;

impl Checker {
    pub(super) fn route(
        &mut self,
        key: &str,
        raw: &RawRoute,
        authorizers: &HashSet<&str>,
        workloads: &[WorkloadConfig],
        providers: &[ProviderConfig],
    ) -> Option<RouteConfig> {
        self.name(
            &format!("{key}.name"),
            &raw.name,
            &crate::rules::IDENTIFIER_NAME,
        );
        self.path_prefix(key, &raw.path_prefix);
        let host = raw.host.as_deref().map(|h| self.route_host(key, h));
        let upstream = self.upstream(key, &raw.upstream);
        if let Some(a) = &raw.authorizer
            && !authorizers.contains(a.as_str())
        {
            self.error(
                format!("{key}.authorizer"),
                format!("unknown authorizer `{a}`"),
            );
        }
        let workload = match &raw.workload {
            Some(w) => {
                let found = workloads.iter().find(|x| &x.name == w);
                if found.is_none() {
                    self.error(format!("{key}.workload"), format!("unknown workload `{w}`"));
                }
                found
            }
            None => None,
        };
        let timeout = self.duration(
            &format!("{key}.timeout"),
            raw.timeout.as_deref(),
            DEFAULT_ROUTE_TIMEOUT,
        );
        let ca_file = raw
            .ca_file
            .as_deref()
            .map(|f| self.ca_file(&format!("{key}.ca_file"), f));
        let credential = match &raw.credential {
            Some(c) => {
                Some(self.credential(&format!("{key}.credential"), c, raw, workload, providers)?)
            }
            None => None,
        };
        Some(RouteConfig {
            name: raw.name.clone(),
            path_prefix: raw.path_prefix.clone(),
            host,
            upstream: upstream?,
            authorizer: raw.authorizer.clone(),
            workload: raw.workload.clone(),
            timeout,
            ca_file,
            credential,
        })
    }

    /// A plain absolute path outside keygate's own ([`crate::rules::is_reserved_path`]).
    fn path_prefix(&mut self, key: &str, prefix: &str) {
        if !prefix.starts_with('/') {
            self.error(
                format!("{key}.path_prefix"),
                "path_prefix must start with `/`",
            );
        } else if prefix.contains(['?', '#', '%', '\\'])
            || prefix.split('/').any(|s| s == "." || s == "..")
        {
            self.error(
                format!("{key}.path_prefix"),
                "path_prefix must be a plain path: no `?`, `#`, `%`, `\\` or dot segments",
            );
        } else if crate::rules::is_reserved_path(prefix) {
            self.error(
                format!("{key}.path_prefix"),
                format!("paths under {} are reserved", crate::rules::RESERVED_PATHS),
            );
        }
    }

    /// The host a route is limited to, as requests are matched: lower-case, without port
    /// ([`crate::rules::host_without_port`]; an IPv6 literal keeps its brackets).
    fn route_host(&mut self, key: &str, host: &str) -> String {
        let host = host.to_ascii_lowercase();
        if host.is_empty() || host.contains(['/', ' ', '@']) {
            self.error(
                format!("{key}.host"),
                format!("`{host}` is not a host name"),
            );
        }
        crate::rules::host_without_port(&host)
    }

    fn upstream(&mut self, key: &str, upstream: &str) -> Option<url::Url> {
        let upstream = self.url(&format!("{key}.upstream"), upstream);
        if let Some(u) = &upstream {
            if u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() {
                self.error(
                    format!("{key}.upstream"),
                    "upstream must not carry a query, fragment or user info",
                );
            }
            if u.host_str().is_none() {
                self.error(format!("{key}.upstream"), "upstream needs a host");
            }
        }
        upstream
    }

    pub(super) fn credential(
        &mut self,
        key: &str,
        raw: &RawCredential,
        route: &RawRoute,
        workload: Option<&WorkloadConfig>,
        providers: &[ProviderConfig],
    ) -> Option<CredentialConfig> {
        let flow = self.flow(key, &raw.flow)?;
        let provider = self.credential_provider(key, raw.provider.as_deref(), flow, providers);
        if let Some(p) = provider {
            self.provider_fits_flow(key, p, flow);
        }
        self.flow_fits_route(key, flow, route);
        self.scopes(key, &raw.scopes);
        let return_url = self.return_url(key, raw.return_url.as_deref(), flow, workload);
        if raw.force_authentication && flow != Flow::UserFederation {
            self.error(
                format!("{key}.force_authentication"),
                "force_authentication applies only to flow = \"user_federation\"",
            );
        }
        let injection = self.injection(key, raw, flow);
        let pass_headers = self.pass_headers(key, &raw.pass_headers, &injection);
        Some(CredentialConfig {
            provider: raw.provider.clone(),
            flow,
            scopes: raw.scopes.clone(),
            return_url,
            force_authentication: raw.force_authentication,
            injection,
            pass_headers,
        })
    }

    fn flow(&mut self, key: &str, flow: &str) -> Option<Flow> {
        match flow {
            "user_federation" => Some(Flow::UserFederation),
            "m2m" => Some(Flow::M2m),
            "api_key" => Some(Flow::ApiKey),
            "passthrough" => Some(Flow::Passthrough),
            other => {
                self.error(
                    format!("{key}.flow"),
                    format!("unknown flow `{other}`; expected user_federation, m2m, api_key or passthrough"),
                );
                None
            }
        }
    }

    /// The provider a credential names, when its flow takes one and it exists.
    fn credential_provider<'p>(
        &mut self,
        key: &str,
        provider: Option<&str>,
        flow: Flow,
        providers: &'p [ProviderConfig],
    ) -> Option<&'p ProviderConfig> {
        match (provider, flow) {
            (Some(_), Flow::Passthrough) => {
                self.error(
                    format!("{key}.provider"),
                    "flow = \"passthrough\" forwards the inbound JWT and takes no provider",
                );
                None
            }
            (None, Flow::Passthrough) => None,
            (None, _) => {
                self.error(format!("{key}.flow"), "this flow needs `provider`");
                None
            }
            (Some(name), _) => {
                let found = providers.iter().find(|p| p.name == name);
                if found.is_none() {
                    self.error(
                        format!("{key}.provider"),
                        format!("unknown provider `{name}`"),
                    );
                }
                found
            }
        }
    }

    /// Each flow works with one kind of provider (m2m also needs the client's secret).
    fn provider_fits_flow(&mut self, key: &str, p: &ProviderConfig, flow: Flow) {
        match (&p.kind, flow) {
            (ProviderKind::OAuth2(o), Flow::M2m) if o.client_secret.is_none() => {
                self.error(
                    format!("{key}.provider"),
                    format!(
                        "flow = \"m2m\" needs provider `{}` to have client_secret",
                        p.name
                    ),
                );
            }
            (ProviderKind::OAuth2(_), Flow::UserFederation | Flow::M2m)
            | (ProviderKind::ApiKey { .. }, Flow::ApiKey) => {}
            (ProviderKind::OAuth2(_), _) => {
                self.error(
                    format!("{key}.flow"),
                    format!(
                        "provider `{}` is oauth2: use user_federation or m2m",
                        p.name
                    ),
                );
            }
            (ProviderKind::ApiKey { .. }, _) => {
                self.error(
                    format!("{key}.flow"),
                    format!(
                        "provider `{}` is an api_key provider: use flow = \"api_key\"",
                        p.name
                    ),
                );
            }
        }
    }

    /// Passthrough needs an authorizer (there is a JWT to pass); an injecting route taking user
    /// JWTs needs a workload (whose credential it injects).
    fn flow_fits_route(&mut self, key: &str, flow: Flow, route: &RawRoute) {
        if flow == Flow::Passthrough && route.authorizer.is_none() {
            self.error(
                format!("{key}.flow"),
                "flow = \"passthrough\" needs the route to have an `authorizer`",
            );
        }
        if flow != Flow::Passthrough && route.authorizer.is_some() && route.workload.is_none() {
            self.error(
                format!("{key}.flow"),
                "a route that takes user JWTs and injects a credential needs `workload` (which agent the traffic belongs to)",
            );
        }
    }

    fn scopes(&mut self, key: &str, scopes: &[String]) {
        use crate::rules::MAX_SCOPES;
        if scopes.len() > MAX_SCOPES {
            self.error(
                format!("{key}.scopes"),
                format!("at most {MAX_SCOPES} scopes per request"),
            );
        }
        if !scopes.iter().all(|s| crate::rules::is_scope(s)) {
            self.error(
                format!("{key}.scopes"),
                "a scope must be non-empty and contain no spaces (a scope token of RFC 6749: at most 128 printable ASCII characters, no `\"` or `\\`)",
            );
        }
    }

    /// Where the browser goes after consent: the route's `return_url` (one of the workload's
    /// allowed_return_urls when it names a workload), else the workload's first allowed one.
    /// A user_federation route without one could not start a consent: refused here.
    fn return_url(
        &mut self,
        key: &str,
        value: Option<&str>,
        flow: Flow,
        workload: Option<&WorkloadConfig>,
    ) -> Option<String> {
        if flow == Flow::UserFederation {
            let allowed = workload
                .map(|w| &w.allowed_return_urls[..])
                .unwrap_or_default();
            match value {
                Some(u) if workload.is_some() && !allowed.iter().any(|a| a == u) => {
                    self.error(
                        format!("{key}.return_url"),
                        format!("`{u}` is not one of the workload's allowed_return_urls"),
                    );
                    None
                }
                Some(u) => {
                    self.return_url_rule(key, u);
                    Some(u.to_string())
                }
                None => {
                    let first = allowed.first().cloned();
                    if first.is_none() {
                        self.error(
                            format!("{key}.flow"),
                            "flow = \"user_federation\" needs `return_url` (where the browser goes after consent), or a `workload` with allowed_return_urls",
                        );
                    }
                    first
                }
            }
        } else {
            if value.is_some() {
                self.error(
                    format!("{key}.return_url"),
                    "return_url applies only to flow = \"user_federation\"",
                );
            }
            None
        }
    }

    /// The identity API's rule for return URLs ([`crate::rules::check_return_url`]).
    fn return_url_rule(&mut self, key: &str, url: &str) {
        match crate::rules::check_return_url(url) {
            Ok(()) => {}
            Err(crate::rules::ReturnUrlProblem::NotAbsolute) => self.error(
                format!("{key}.return_url"),
                format!("`{url}` is not an absolute URL"),
            ),
            Err(crate::rules::ReturnUrlProblem::ScriptScheme(scheme)) => self.error(
                format!("{key}.return_url"),
                format!("`{url}`: a return URL may not use the {scheme}: scheme"),
            ),
        }
    }

    /// `pass_headers`: each a header keygate would otherwise drop on a credential route, and
    /// never the header the credential goes in.
    pub(super) fn pass_headers(
        &mut self,
        key: &str,
        raw: &[String],
        injection: &Injection,
    ) -> Vec<HeaderName> {
        let mut names = Vec::with_capacity(raw.len());
        for header in raw {
            let Ok(name) = HeaderName::from_bytes(header.as_bytes()) else {
                self.error(
                    format!("{key}.pass_headers"),
                    format!("`{header}` is not a valid header name"),
                );
                continue;
            };
            if matches!(injection, Injection::Header { name: injected, .. } if *injected == name) {
                self.error(
                    format!("{key}.pass_headers"),
                    format!("`{header}` is where this route's credential goes"),
                );
            } else if !crate::rules::is_client_credential(&name) {
                self.error(
                    format!("{key}.pass_headers"),
                    format!(
                        "`{header}` is not a header keygate drops on credential routes (those are: {})",
                        crate::rules::CLIENT_CREDENTIAL_HEADERS.join(", ")
                    ),
                );
            } else {
                names.push(name);
            }
        }
        names
    }

    pub(super) fn injection(&mut self, key: &str, raw: &RawCredential, flow: Flow) -> Injection {
        if flow == Flow::Passthrough
            && (raw.header.is_some() || raw.format.is_some() || raw.query_param.is_some())
        {
            self.error(format!("{key}.flow"), "flow = \"passthrough\" forwards the Authorization header as it came; header, format and query_param do not apply");
        }
        let format = raw
            .format
            .clone()
            .unwrap_or_else(|| "Bearer {token}".to_string());
        if format.matches("{token}").count() != 1 {
            self.error(
                format!("{key}.format"),
                "format must contain `{token}` exactly once",
            );
        }
        if let Some(param) = &raw.query_param {
            if raw.header.is_some() {
                self.error(
                    format!("{key}.query_param"),
                    "set either `header` or `query_param`, not both",
                );
            }
            if param.is_empty()
                || !param
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c))
            {
                self.error(
                    format!("{key}.query_param"),
                    format!("`{param}` is not a plain query parameter name"),
                );
            }
            return Injection::QueryParam(param.clone());
        }
        let header = raw.header.as_deref().unwrap_or("Authorization");
        let name = match HeaderName::from_bytes(header.as_bytes()) {
            Ok(n) => n,
            Err(_) => {
                self.error(
                    format!("{key}.header"),
                    format!("`{header}` is not a valid header name"),
                );
                http::header::AUTHORIZATION
            }
        };
        if crate::rules::is_hop_by_hop(&name) || name == http::header::HOST {
            self.error(
                format!("{key}.header"),
                format!("`{header}` cannot carry a credential"),
            );
        }
        Injection::Header { name, format }
    }
}
