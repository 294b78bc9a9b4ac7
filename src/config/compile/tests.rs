//! The checker as a table: each row a config (a snippet appended to [`BASE`], or a whole file
//! when it starts with `[server]`) and the message it must be refused with, or `None` when it
//! must load. Every config that loads must also build into a runtime: the checker refuses
//! whatever the build would.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::config::load_str;
use crate::runtime::{BuildError, Runtime};

const BASE: &str = r#"[server]
listen = "127.0.0.1:8080"

[[authorizers]]
name = "corp"
discovery_url = "https://idp.example.com/.well-known/openid-configuration"
allowed_audience = ["gateway"]

[[workloads]]
name = "agent-one"
authorizer = "corp"
allowed_return_urls = ["https://app.example.com/cb"]

[[workloads]]
name = "agent-two"

[[providers]]
name = "weather"
kind = "api_key"
api_key = "literal-key"

[[providers]]
name = "gh"
kind = "oauth2"
vendor = "github"
client_id = "id"
client_secret = "secret"

[[providers]]
name = "public"
kind = "oauth2"
vendor = "github"
client_id = "id"
"#;

/// A route `r` at `/r/` with `extra` lines.
fn route(extra: &str) -> String {
    format!(
        "[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nupstream = \"http://u.example/\"\n{extra}\n"
    )
}

/// A route `r` with a `[routes.credential]` table of `credential` lines (route lines first).
fn credential(route_lines: &str, credential: &str) -> String {
    route(&format!("{route_lines}\n[routes.credential]\n{credential}"))
}

fn provider(lines: &str) -> String {
    format!("[[providers]]\nname = \"p\"\n{lines}\n")
}

fn whole(server: &str, rest: &str) -> String {
    format!("[server]\n{server}\n{rest}")
}

fn rows() -> Vec<(&'static str, String, Option<&'static str>)> {
    let uf = "provider = \"gh\"\nflow = \"user_federation\"";
    vec![
        // Loads.
        ("base alone", String::new(), None),
        ("api key route", credential("", "provider = \"weather\"\nflow = \"api_key\"\nheader = \"x-api-key\"\nformat = \"{token}\""), None),
        ("m2m route", credential("", "provider = \"gh\"\nflow = \"m2m\"\nscopes = [\"read\"]"), None),
        ("user federation, workload's return url", credential("workload = \"agent-one\"", uf), None),
        ("user federation, own return url", credential("", &format!("{uf}\nreturn_url = \"myapp://oauth/cb\"")), None),
        ("passthrough", credential("authorizer = \"corp\"", "flow = \"passthrough\""), None),
        ("ipv6 host", route("host = \"[::1]\""), None),
        ("query param injection", credential("", "provider = \"weather\"\nflow = \"api_key\"\nquery_param = \"key\""), None),
        // Names and duplicates.
        ("authorizer name", "[[authorizers]]\nname = \"bad name\"\ndiscovery_url = \"https://idp2.example.com/.well-known/openid-configuration\"\n".into(), Some("invalid name `bad name`")),
        ("workload name too short", "[[workloads]]\nname = \"ab\"\n".into(), Some("invalid name `ab`: use 3 to 255")),
        ("provider name with a dot", provider("kind = \"api_key\"\napi_key = \"k\"").replace("\"p\"", "\"a.b\""), Some("invalid name `a.b`")),
        ("duplicate route", format!("{}{}", route(""), route("").replace("/r/", "/s/")), Some("duplicate name `r` in [[routes]]")),
        ("duplicate provider", "[[providers]]\nname = \"weather\"\nkind = \"api_key\"\napi_key = \"k\"\n".into(), Some("duplicate name `weather` in [[providers]]")),
        ("duplicate prefix", format!("{}{}", route(""), route("").replace("\"r\"", "\"s\"")), Some("another route already has path_prefix `/r/`")),
        ("duplicate prefix and host but for the port", format!("{}{}", route("host = \"a.example\""), route("host = \"A.example:8443\"").replace("\"r\"", "\"s\"")), Some("another route already has path_prefix")),
        // Unknown references.
        ("unknown authorizer", route("authorizer = \"other\""), Some("unknown authorizer `other`")),
        ("unknown workload", route("workload = \"ghost\""), Some("unknown workload `ghost`")),
        ("unknown provider", credential("", "provider = \"nope\"\nflow = \"api_key\""), Some("unknown provider `nope`")),
        ("workload's unknown authorizer", "[[workloads]]\nname = \"agent-3\"\nauthorizer = \"nope\"\n".into(), Some("unknown authorizer `nope`")),
        ("api default authorizer", "[api]\nregion = \"us-east-1\"\naccount_id = \"123456789012\"\ndefault_authorizer = \"nope\"\n".into(), Some("unknown authorizer `nope`")),
        // Flows against provider kinds and routes.
        ("unknown flow", credential("", "provider = \"gh\"\nflow = \"magic\""), Some("unknown flow `magic`")),
        ("api_key flow on oauth2", credential("", "provider = \"gh\"\nflow = \"api_key\""), Some("provider `gh` is oauth2")),
        ("m2m on an api key", credential("", "provider = \"weather\"\nflow = \"m2m\""), Some("is an api_key provider")),
        ("m2m without a client secret", credential("", "provider = \"public\"\nflow = \"m2m\""), Some("needs provider `public` to have client_secret")),
        ("flow without provider", credential("", "flow = \"m2m\""), Some("this flow needs `provider`")),
        ("passthrough with a provider", credential("authorizer = \"corp\"", "provider = \"gh\"\nflow = \"passthrough\""), Some("takes no provider")),
        ("passthrough without authorizer", credential("", "flow = \"passthrough\""), Some("needs the route to have an `authorizer`")),
        ("user JWTs injecting without workload", credential("authorizer = \"corp\"", "provider = \"weather\"\nflow = \"api_key\""), Some("needs `workload`")),
        // Injection.
        ("format without token", credential("", "provider = \"weather\"\nflow = \"api_key\"\nformat = \"Key\""), Some("format must contain `{token}` exactly once")),
        ("header and query param", credential("", "provider = \"weather\"\nflow = \"api_key\"\nheader = \"x-k\"\nquery_param = \"k\""), Some("not both")),
        ("query param name", credential("", "provider = \"weather\"\nflow = \"api_key\"\nquery_param = \"a b\""), Some("is not a plain query parameter name")),
        ("hop-by-hop header", credential("", "provider = \"weather\"\nflow = \"api_key\"\nheader = \"connection\""), Some("cannot carry a credential")),
        ("passthrough with injection", credential("authorizer = \"corp\"", "flow = \"passthrough\"\nheader = \"x-k\""), Some("header, format and query_param do not apply")),
        ("pass_headers of another header", credential("", "provider = \"weather\"\nflow = \"api_key\"\npass_headers = [\"x-foo\"]"), Some("is not a header keygate drops")),
        ("pass_headers of the injected header", credential("", "provider = \"weather\"\nflow = \"api_key\"\nheader = \"x-api-key\"\npass_headers = [\"x-api-key\"]"), Some("is where this route's credential goes")),
        // Hosts and paths.
        ("host with a space", route("host = \"a b\""), Some("is not a host name")),
        ("reserved identities path", route("").replace("/r/", "/identities/x/"), Some("paths under /identities/ and /.well-known/ are reserved")),
        ("reserved well-known path", route("").replace("/r/", "/.well-known/"), Some("are reserved")),
        ("relative prefix", route("").replace("\"/r/\"", "\"r/\""), Some("path_prefix must start with `/`")),
        ("dot segment prefix", route("").replace("/r/", "/a/../r/"), Some("path_prefix must be a plain path")),
        // Durations and URLs.
        ("zero timeout", route("timeout = \"0s\""), Some("duration must be greater than zero")),
        ("bad timeout", route("timeout = \"soon\""), Some("bad duration `soon`")),
        ("ftp upstream", route("").replace("http://u.example/", "ftp://u.example/"), Some("must be an http:// or https:// URL with a host")),
        ("upstream with a query", route("").replace("http://u.example/", "http://u.example/?a=1"), Some("upstream must not carry a query")),
        ("discovery url path", "[[authorizers]]\nname = \"two\"\ndiscovery_url = \"https://idp2.example.com/keys\"\n".into(), Some("discovery_url must end in")),
        ("allowed return url", "[[workloads]]\nname = \"agent-3\"\nallowed_return_urls = [\"not a url\"]\n".into(), Some("`not a url` is not a URL")),
        // Return URLs.
        ("user federation without any return url", credential("", uf), Some("needs `return_url`")),
        ("user federation for a workload without return urls", credential("workload = \"agent-two\"", uf), Some("needs `return_url`")),
        ("return url outside the workload's", credential("workload = \"agent-one\"", &format!("{uf}\nreturn_url = \"https://evil.example/cb\"")), Some("not one of the workload's allowed_return_urls")),
        ("return url that is no url", credential("", &format!("{uf}\nreturn_url = \"not a url\"")), Some("`not a url` is not an absolute URL")),
        ("return url with a script scheme", credential("", &format!("{uf}\nreturn_url = \"javascript://x/%0aalert(1)\"")), Some("may not use the javascript: scheme")),
        ("return url on an api key route", credential("", "provider = \"weather\"\nflow = \"api_key\"\nreturn_url = \"https://app.example.com/cb\""), Some("return_url applies only to flow = \"user_federation\"")),
        ("force_authentication on m2m", credential("", "provider = \"gh\"\nflow = \"m2m\"\nforce_authentication = true"), Some("force_authentication applies only")),
        // Scopes.
        ("eleven scopes", credential("", &format!("provider = \"gh\"\nflow = \"m2m\"\nscopes = [{}]", ["\"s\""; 11].join(", "))), Some("at most 10 scopes per request")),
        ("scope with a quote", credential("", "provider = \"gh\"\nflow = \"m2m\"\nscopes = [\"a\\\"b\"]"), Some("a scope must be non-empty")),
        ("scope with a space", credential("", "provider = \"gh\"\nflow = \"m2m\"\nscopes = [\"a b\"]"), Some("a scope must be non-empty and contain no spaces")),
        // Providers.
        ("unknown vendor", provider("kind = \"oauth2\"\nvendor = \"nope\"\nclient_id = \"x\""), Some("unknown vendor `nope`; expected one of google, github")),
        ("tenant vendor without domain", provider("kind = \"oauth2\"\nvendor = \"okta\"\nclient_id = \"x\""), Some("vendor `okta` needs `domain`")),
        ("custom without endpoints", provider("kind = \"oauth2\"\nclient_id = \"x\""), Some("a custom provider needs `discovery_url`")),
        ("api key provider without key", provider("kind = \"api_key\""), Some("kind = \"api_key\" needs `api_key`")),
        ("oauth2 provider with a key", provider("kind = \"oauth2\"\nvendor = \"github\"\nclient_id = \"x\"\napi_key = \"k\""), Some("`api_key` does not apply to kind = \"oauth2\"")),
        ("unknown provider kind", provider("kind = \"saml\""), Some("unknown kind `saml`")),
        ("unknown client auth", provider("kind = \"oauth2\"\nvendor = \"github\"\nclient_id = \"x\"\nclient_auth = \"mtls\""), Some("unknown client_auth `mtls`")),
        // Server, vault, audit, files.
        ("listen address", whole("listen = \"localhost\"", ""), Some("is not a listen address")),
        ("admin on the listen address", whole("listen = \"127.0.0.1:8080\"\nadmin_listen = \"127.0.0.1:8080\"", ""), Some("admin_listen must differ from listen")),
        ("public url with a query", whole("listen = \"127.0.0.1:8080\"\npublic_url = \"https://gw.example/?a\"", ""), Some("public_url must not have a query or fragment")),
        ("no connections", whole("listen = \"127.0.0.1:8080\"\nmax_connections = 0", ""), Some("max_connections must be at least 1")),
        ("vault store scheme", whole("listen = \"127.0.0.1:8080\"", "[vault]\nstore = \"mysql://db\"\n"), Some("store must start with sqlite://")),
        ("inline vault key", whole("listen = \"127.0.0.1:8080\"", "[vault]\nkey = \"abc\"\n"), Some("never inline")),
        ("empty audit path", whole("listen = \"127.0.0.1:8080\"", "[audit]\npath = \"\"\n"), Some("audit path is empty")),
        ("missing ca file", route("ca_file = \"no-such.pem\""), Some("does not exist")),
        ("ca file that holds no certificate", route("ca_file = \"Cargo.toml\""), Some("Cargo.toml")),
        ("tls files that are no certificate and key", whole("listen = \"127.0.0.1:8443\"\n[server.tls]\ncert = \"Cargo.toml\"\nkey = \"Cargo.toml\"", ""), Some("Cargo.toml")),
    ]
}

fn config_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("routes.toml")
}

/// The runtime of `config`, built as the gateway builds it (no network: key sources refresh
/// only inside a tokio runtime).
fn build(config: crate::config::Config) -> Result<Runtime, BuildError> {
    let metrics = crate::metrics::Metrics::new().unwrap();
    let client = crate::upstream::client(None).unwrap();
    let key_sources = Mutex::new(HashMap::new());
    let issuers = crate::inbound::discovery::IssuerRegistry::new();
    let context = crate::runtime::BuildContext {
        metrics: &metrics,
        default_client: &client,
        fetch_client: &client,
        key_sources: &key_sources,
        issuers: &issuers,
    };
    crate::runtime::build(config, &context)
}

#[test]
fn each_rule_refuses_its_config_and_nothing_else() {
    let mut failures = Vec::new();
    for (name, snippet, expected) in rows() {
        let text = if snippet.starts_with("[server]") {
            snippet
        } else {
            format!("{BASE}\n{snippet}")
        };
        let result = load_str(&config_path(), &text);
        match (expected, &result) {
            (None, Ok(_)) => {}
            (None, Err(e)) => failures.push(format!("{name}: refused: {e}")),
            (Some(want), Ok(_)) => failures.push(format!("{name}: loaded, wanted `{want}`")),
            (Some(want), Err(e)) if !e.to_string().contains(want) => {
                failures.push(format!("{name}: wanted `{want}`, got: {e}"))
            }
            (Some(_), Err(_)) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_table_covers_every_kind_of_rule() {
    assert!(rows().len() >= 30);
}

#[test]
fn every_config_the_checker_accepts_builds_a_runtime() {
    for (name, snippet, expected) in rows() {
        if expected.is_some() {
            continue;
        }
        let loaded = load_str(&config_path(), &format!("{BASE}\n{snippet}")).unwrap();
        if let Err(e) = build(loaded.config) {
            panic!("{name}: checked but not built: {e}");
        }
    }
}

#[test]
fn a_route_host_is_read_like_a_request_host() {
    for (host, read) in [
        ("[::1]", "[::1]"),
        ("[::1]:8443", "[::1]"),
        ("API.Example.com:8443", "api.example.com"),
    ] {
        let text = format!("{BASE}\n{}", route(&format!("host = \"{host}\"")));
        let loaded = load_str(&config_path(), &text).unwrap();
        assert_eq!(
            loaded.config.routes[0].host.as_deref(),
            Some(read),
            "{host}"
        );
    }
}

#[test]
fn an_ipv6_route_host_matches_requests_to_that_host() {
    let text = format!("{BASE}\n{}", route("host = \"[::1]\""));
    let loaded = load_str(&config_path(), &text).unwrap();
    let runtime = build(loaded.config).unwrap();
    let host = crate::rules::host_without_port("[::1]:8080");
    assert!(runtime.routes.find(Some(&host), "/r/x").is_some());
    assert!(runtime.routes.find(Some("[::2]"), "/r/x").is_none());
}
