//! `keygate check`: every problem as `PATH:LINE:COL: message`, exit 1 on errors, warnings for
//! inline secrets, and the repository's own `routes.toml` accepted.

use std::process::Command;

use crate::common::binary;

struct Checked {
    success: bool,
    stderr: String,
    path: String,
}

fn check(toml: &str) -> Checked {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.toml");
    std::fs::write(&path, toml).unwrap();
    let output = Command::new(binary())
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("KEYGATE_TEST_MISSING")
        .output()
        .unwrap();
    Checked {
        success: output.status.success(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        path: path.display().to_string(),
    }
}

const BASE: &str = r#"[server]
listen = "127.0.0.1:8080"

[[authorizers]]
name = "corp"
discovery_url = "https://idp.example.com/.well-known/openid-configuration"

[[workloads]]
name = "agent-one"
authorizer = "corp"
allowed_return_urls = ["https://app.example.com/cb"]

[[providers]]
name = "weather"
kind = "api_key"
api_key = "literal-key"
"#;

/// (what is wrong, TOML appended to BASE, line of the problem, text the message must hold)
const CASES: &[(&str, &str, usize, &str)] = &[
    (
        "unknown key",
        "[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nupstream = \"http://u/\"\ntimeot = \"1s\"\n",
        21,
        "unknown field `timeot`",
    ),
    (
        "missing field",
        "[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\n",
        17,
        "missing field `upstream`",
    ),
    (
        "bad duration",
        "[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nupstream = \"http://u/\"\ntimeout = \"soon\"\n",
        21,
        "bad duration `soon`",
    ),
    (
        "unknown provider",
        "[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nupstream = \"http://u/\"\n[routes.credential]\nprovider = \"nope\"\nflow = \"api_key\"\n",
        22,
        "unknown provider `nope`",
    ),
    (
        "unknown authorizer",
        "[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nupstream = \"http://u/\"\nauthorizer = \"other\"\n",
        21,
        "unknown authorizer `other`",
    ),
    (
        "duplicate prefix",
        "[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nupstream = \"http://u/\"\n[[routes]]\nname = \"s\"\npath_prefix = \"/r/\"\nupstream = \"http://u/\"\n",
        23,
        "another route already has path_prefix `/r/`",
    ),
    (
        "bad upstream",
        "[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nupstream = \"ftp://u/\"\n",
        20,
        "must be an http:// or https:// URL",
    ),
    (
        "unknown flow",
        "[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nupstream = \"http://u/\"\n[routes.credential]\nprovider = \"weather\"\nflow = \"magic\"\n",
        23,
        "unknown flow `magic`",
    ),
    (
        "missing env secret",
        "[[providers]]\nname = \"gh\"\nkind = \"oauth2\"\nvendor = \"github\"\nclient_id = \"x\"\nclient_secret = \"env:KEYGATE_TEST_MISSING\"\n",
        22,
        "KEYGATE_TEST_MISSING is not set",
    ),
    (
        "prefix without slash",
        "[[routes]]\nname = \"r\"\npath_prefix = \"r/\"\nupstream = \"http://u/\"\n",
        19,
        "path_prefix must start with `/`",
    ),
    (
        "unknown vendor",
        "[[providers]]\nname = \"p\"\nkind = \"oauth2\"\nvendor = \"myspace\"\nclient_id = \"x\"\n",
        20,
        "unknown vendor `myspace`",
    ),
    (
        "flow does not fit provider",
        "[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nupstream = \"http://u/\"\n[routes.credential]\nprovider = \"weather\"\nflow = \"m2m\"\n",
        23,
        "api_key provider",
    ),
    (
        "too many scopes",
        "[[providers]]\nname = \"p\"\nkind = \"oauth2\"\nvendor = \"github\"\nclient_id = \"x\"\n[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nworkload = \"agent-one\"\nupstream = \"http://u/\"\n[routes.credential]\nprovider = \"p\"\nflow = \"user_federation\"\nscopes = [\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\"]\n",
        30,
        "at most 10 scopes",
    ),
    (
        "return url not in workload",
        "[[providers]]\nname = \"p\"\nkind = \"oauth2\"\nvendor = \"github\"\nclient_id = \"x\"\n[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nworkload = \"agent-one\"\nupstream = \"http://u/\"\n[routes.credential]\nprovider = \"p\"\nflow = \"user_federation\"\nreturn_url = \"https://evil.example/cb\"\n",
        30,
        "not one of the workload's allowed_return_urls",
    ),
    (
        "api_key flow on an oauth2 provider",
        "[[providers]]\nname = \"p\"\nkind = \"oauth2\"\nvendor = \"github\"\nclient_id = \"x\"\n[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nupstream = \"http://u/\"\n[routes.credential]\nprovider = \"p\"\nflow = \"api_key\"\n",
        28,
        "is oauth2: use user_federation or m2m",
    ),
    (
        "user JWTs and an injected credential without a workload",
        "[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nupstream = \"http://u/\"\nauthorizer = \"corp\"\n[routes.credential]\nprovider = \"weather\"\nflow = \"api_key\"\n",
        24,
        "needs `workload`",
    ),
    (
        "user_federation without a provider",
        "[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nworkload = \"agent-one\"\nupstream = \"http://u/\"\n[routes.credential]\nflow = \"user_federation\"\n",
        23,
        "this flow needs `provider`",
    ),
    (
        "user_federation with no return url for workload tokens",
        "[[providers]]\nname = \"p\"\nkind = \"oauth2\"\nvendor = \"github\"\nclient_id = \"x\"\n[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nupstream = \"http://u/\"\n[routes.credential]\nprovider = \"p\"\nflow = \"user_federation\"\n",
        28,
        "needs `return_url`",
    ),
    (
        "user_federation for a workload without return urls",
        "[[workloads]]\nname = \"bare\"\n[[providers]]\nname = \"p\"\nkind = \"oauth2\"\nvendor = \"github\"\nclient_id = \"x\"\n[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nworkload = \"bare\"\nupstream = \"http://u/\"\n[routes.credential]\nprovider = \"p\"\nflow = \"user_federation\"\n",
        31,
        "needs `return_url`",
    ),
    (
        "pass_headers names a header that passes anyway",
        "[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nupstream = \"http://u/\"\n[routes.credential]\nprovider = \"weather\"\nflow = \"api_key\"\npass_headers = [\"X-Custom\"]\n",
        24,
        "`X-Custom` is not a header keygate drops on credential routes",
    ),
    (
        "pass_headers names the credential's own header",
        "[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nupstream = \"http://u/\"\n[routes.credential]\nprovider = \"weather\"\nflow = \"api_key\"\nheader = \"X-Api-Key\"\nformat = \"{token}\"\npass_headers = [\"X-API-Key\"]\n",
        26,
        "`X-API-Key` is where this route's credential goes",
    ),
    (
        "user_federation with a return url that is no url",
        "[[providers]]\nname = \"p\"\nkind = \"oauth2\"\nvendor = \"github\"\nclient_id = \"x\"\n[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nupstream = \"http://u/\"\n[routes.credential]\nprovider = \"p\"\nflow = \"user_federation\"\nreturn_url = \"not a url\"\n",
        29,
        "`not a url` is not an absolute URL",
    ),
    (
        "user_federation with a script return url",
        "[[providers]]\nname = \"p\"\nkind = \"oauth2\"\nvendor = \"github\"\nclient_id = \"x\"\n[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nupstream = \"http://u/\"\n[routes.credential]\nprovider = \"p\"\nflow = \"user_federation\"\nreturn_url = \"javascript://x/%0aalert(1)\"\n",
        29,
        "may not use the javascript: scheme",
    ),
    (
        "a route's CA file that holds no certificate",
        "[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nupstream = \"https://u/\"\nca_file = \"routes.toml\"\n",
        21,
        "holds no certificate",
    ),
];

#[test]
fn each_kind_of_bad_config_is_reported_with_its_position() {
    for (what, extra, line, message) in CASES {
        let checked = check(&format!("{BASE}{extra}"));
        assert!(
            !checked.success,
            "{what}: check passed:\n{}",
            checked.stderr
        );
        let prefix = format!("{}:{line}:", checked.path);
        let found = checked
            .stderr
            .lines()
            .any(|l| l.starts_with(&prefix) && l.contains(message));
        assert!(
            found,
            "{what}: expected `{prefix}COL: ...{message}...` in:\n{}",
            checked.stderr
        );
    }
}

#[test]
fn bad_listen_address_is_reported() {
    let checked = check("[server]\nlisten = \"localhost\"\nadmin_listen = \"127.0.0.1:99999\"\n");
    assert!(!checked.success);
    assert!(
        checked.stderr.contains(&format!(
            "{}:2:1: `localhost` is not a listen address",
            checked.path
        )),
        "{}",
        checked.stderr
    );
    assert!(
        checked.stderr.contains(&format!(
            "{}:3:1: `127.0.0.1:99999` is not a listen address",
            checked.path
        )),
        "{}",
        checked.stderr
    );
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let toml = format!(
        "{BASE}[[routes]]\nname = \"r\"\npath_prefix = \"/r/\"\nupstream = \"http://u/\"\ntimeout = \"x\"\nauthorizer = \"nope\"\n[routes.credential]\nprovider = \"ghost\"\nflow = \"api_key\"\n"
    );
    let checked = check(&toml);
    assert!(!checked.success);
    let errors = checked
        .stderr
        .lines()
        .filter(|l| l.starts_with(&checked.path) && !l.contains("warning:"))
        .count();
    assert!(errors >= 3, "{}", checked.stderr);
}

#[test]
fn inline_secret_is_a_warning_not_an_error() {
    let checked = check(BASE);
    assert!(checked.success, "{}", checked.stderr);
    let expected = format!("{}:16:1: warning: secret written inline", checked.path);
    assert!(checked.stderr.contains(&expected), "{}", checked.stderr);
}

#[test]
fn the_repository_example_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/routes.toml");
    let output = Command::new(binary())
        .args(["check", "--config", path])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn config_path_comes_from_keygate_config_when_not_given() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("elsewhere.toml");
    std::fs::write(&path, "[server]\nlisten = \"bad\"\n").unwrap();
    let output = Command::new(binary())
        .arg("check")
        .env("KEYGATE_CONFIG", &path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("elsewhere.toml:2:1:"));
}

#[test]
fn version_prints_name_and_semver() {
    let output = Command::new(binary()).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        text.trim(),
        format!("keygate {}", env!("CARGO_PKG_VERSION"))
    );
}

/// Inbound trust and fetch rules: (what is wrong, TOML appended to BASE, line, message).
const FETCH_CASES: &[(&str, &str, usize, &str)] = &[
    (
        "a second discovery URL for one issuer",
        "[[authorizers]]\nname = \"corp2\"\ndiscovery_url = \"https://idp.example.com/.well-known/oauth-authorization-server\"\n",
        19,
        "names issuer `https://idp.example.com` like authorizer `corp`",
    ),
    (
        "clear-text discovery from a remote host",
        "[[authorizers]]\nname = \"plain\"\ndiscovery_url = \"http://idp.example.net/.well-known/openid-configuration\"\n",
        19,
        "http:// is allowed only to loopback hosts unless allow_insecure_http = true",
    ),
    (
        "a discovery URL naming no issuer",
        "[[authorizers]]\nname = \"odd\"\ndiscovery_url = \"https://idp.example.net/.well-known/openid-configuration.json\"\n",
        19,
        "discovery_url must end in",
    ),
    (
        "a link-local token endpoint",
        "[[providers]]\nname = \"meta\"\nkind = \"oauth2\"\nclient_id = \"c\"\ntoken_endpoint = \"https://169.254.169.254/token\"\nallow_insecure_http = true\n",
        21,
        "link-local addresses are never fetched",
    ),
    (
        "a clear-text remote provider discovery URL",
        "[[providers]]\nname = \"p\"\nkind = \"oauth2\"\nclient_id = \"c\"\ndiscovery_url = \"http://sso.example.net/.well-known/openid-configuration\"\n",
        21,
        "http:// is allowed only to loopback hosts",
    ),
    (
        "a zero max_token_lifetime",
        "[[authorizers]]\nname = \"z\"\ndiscovery_url = \"https://z.example/.well-known/openid-configuration\"\nmax_token_lifetime = \"0s\"\n",
        20,
        "duration must be greater than zero",
    ),
    ("a missing extra CA file", "", 3, "does not exist"),
];

#[test]
fn idp_trust_and_fetch_rules_are_checked() {
    for (what, extra, line, message) in FETCH_CASES {
        let toml = match *what {
            "a missing extra CA file" => BASE.replacen(
                "listen = \"127.0.0.1:8080\"\n",
                "listen = \"127.0.0.1:8080\"\nextra_ca_certs = [\"certs/nowhere.pem\"]\n",
                1,
            ),
            _ => format!("{BASE}{extra}"),
        };
        let checked = check(&toml);
        assert!(
            !checked.success,
            "{what}: check passed:\n{}",
            checked.stderr
        );
        let prefix = format!("{}:{line}:", checked.path);
        assert!(
            checked
                .stderr
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains(message)),
            "{what}: expected `{prefix}COL: ...{message}...` in:\n{}",
            checked.stderr
        );
    }
    // The explicit opt-in, and loopback, are accepted.
    let allowed = format!(
        "{BASE}[[authorizers]]\nname = \"plain\"\ndiscovery_url = \"http://idp.example.net/.well-known/openid-configuration\"\nallow_insecure_http = true\nallowed_audience = [\"a\"]\n[[authorizers]]\nname = \"local\"\ndiscovery_url = \"http://127.0.0.1:3000/.well-known/openid-configuration\"\nallowed_clients = [\"c\"]\n"
    );
    let checked = check(&allowed);
    assert!(checked.success, "{}", checked.stderr);
}

#[test]
fn an_authorizer_checking_neither_audience_nor_client_is_warned_about() {
    let checked = check(BASE);
    assert!(checked.success, "{}", checked.stderr);
    let expected = format!(
        "{}:5:1: warning: authorizer checks neither `allowed_audience` nor `allowed_clients`",
        checked.path
    );
    assert!(checked.stderr.contains(&expected), "{}", checked.stderr);
    let audience = BASE.replacen(
        "openid-configuration\"\n",
        "openid-configuration\"\nallowed_audience = [\"agents\"]\n",
        1,
    );
    let checked = check(&audience);
    assert!(!checked.stderr.contains("neither"), "{}", checked.stderr);
}
