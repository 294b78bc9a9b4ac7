//! The deployment examples in `deploy/`, checked with the tools this machine has: the sidecar
//! config passes `keygate check`, the Kubernetes kustomization renders with kubectl, and the
//! systemd unit passes `systemd-analyze verify` without a warning. (The Dockerfile needs a
//! Docker engine, which this machine does not run.)

use std::path::Path;
use std::process::Command;

use crate::common::binary;

fn deploy(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "{name} is needed for this test (it is part of this machine's image)"
    );
    Command::new(name)
}

#[test]
fn the_kubernetes_sidecar_config_is_valid_with_its_secrets_from_the_environment() {
    let output = Command::new(binary())
        .args(["check", "--config"])
        .arg(deploy("kubernetes/routes.toml"))
        .env(
            "KEYGATE_VAULT_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .env("WEATHER_API_KEY", "k")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        !stderr.contains("warning"),
        "the production example has inline secrets: {stderr}"
    );
}

#[test]
fn the_kustomization_renders_a_sidecar_with_probes_and_the_config() {
    let output = tool("kubectl")
        .arg("kustomize")
        .arg(deploy("kubernetes"))
        .output()
        .unwrap();
    let rendered = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "kind: ConfigMap",
        "routes.toml: |",
        "kind: Deployment",
        "name: keygate",
        "path: /healthz",
        "path: /readyz",
        "secretKeyRef",
        "containerPort: 9090",
    ] {
        assert!(
            rendered.contains(expected),
            "`{expected}` missing from:\n{rendered}"
        );
    }
}

#[test]
fn the_systemd_unit_verifies_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(deploy("systemd/keygate.service")).unwrap();
    let path = dir.path().join("keygate.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/keygate", binary())).unwrap();
    let output = tool("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze warned:\n{stderr}"
    );
}
