#!/usr/bin/env bash
# The Python interop tests of keygate's AgentCore-compatible identity API: AWS's own SDK
# (bedrock-agentcore, boto3) against a real keygate and a real OpenID provider.
# Needs: target/debug/keygate (cargo build) and tests/oidc/node_modules (tests/run runs `npm ci`).
# Extra arguments go to pytest (e.g. tests/api/run.sh -k sigv4 -x).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$REPO"

if [ ! -x target/debug/keygate ]; then
  echo "tests/api/run.sh: target/debug/keygate is missing: build keygate first (cargo build)" >&2
  exit 1
fi
if [ ! -d tests/oidc/node_modules/oidc-provider ]; then
  echo "tests/api/run.sh: tests/oidc/node_modules is missing: run \`npm ci\` in tests/oidc (tests/run does)" >&2
  exit 1
fi
command -v node >/dev/null || { echo "tests/api/run.sh: Node.js is required (the OpenID provider runs on it)" >&2; exit 1; }

VENV="$REPO/target/pyenv"
command -v python3 >/dev/null || { echo "tests/api/run.sh: Python 3 is required (AWS's SDK runs on it)" >&2; exit 1; }
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" || {
    echo "tests/api/run.sh: cannot make a venv at $VENV (on Debian: apt-get install python3-venv)" >&2
    exit 1
  }
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/api/requirements.txt

set +e
"$VENV/bin/python" -m pytest -q tests/api -p no:cacheprovider "$@"
status=$?
set -e
exit "$status"
