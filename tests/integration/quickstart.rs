//! The README's quickstart, run as a newcomer would: the shell block under "## Quickstart" that
//! starts `keygate serve` and `keygate dev echo` is taken from the README and run by bash in a
//! folder holding the example `routes.toml`, with the built binary on `PATH`. It must show the
//! API key arriving at the tool and the 401 with an authorization URL for the 3LO route. The
//! script runs under `timeout 60`, and its background jobs end with it (an EXIT trap).

use std::process::{Command, Stdio};

use crate::common::binary;

/// The quickstart's shell block that runs keygate.
fn quickstart_block() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## Quickstart")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the README has a Quickstart section");
    section
        .split("```sh\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .find(|block| block.contains("keygate dev echo"))
        .expect("the quickstart runs keygate dev echo")
        .to_string()
}

#[test]
fn the_readme_quickstart_shows_the_key_injected_and_the_consent_challenge() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/routes.toml"),
        dir.path().join("routes.toml"),
    )
    .unwrap();
    let bin_dir = std::path::Path::new(binary()).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Whatever happens, the script's background jobs (keygate, the echo) end with it.
    let script = format!(
        "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\ntrap 'exit 143' TERM INT\n{}",
        quickstart_block()
    );
    let child = Command::new("timeout")
        .args(["-s", "TERM", "60", "bash", "-c"])
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("KEYGATE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let shown = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(output.status.success(), "{shown}");
    assert!(
        stdout.contains(r#""x-api-key": "dev-only-weather-key""#),
        "the key did not reach the tool: {shown}"
    );
    assert!(stdout.contains(r#""path": "/weather/today""#), "{shown}");
    assert!(stdout.contains(r#""error":"consent_required""#), "{shown}");
    assert!(
        stdout.contains("/identities/oauth2/authorize?request_uri="),
        "{shown}"
    );
    assert!(stdout.contains("keygate_requests_total{"), "{shown}");
}
