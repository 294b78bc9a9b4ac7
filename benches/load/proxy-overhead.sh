#!/usr/bin/env bash
# Loopback load run: the bench upstream direct, through keygate with a workload access token
# (verified, cached), through keygate injecting an API key (plus its audit line), and through a
# user_federation route injecting the user's vaulted OAuth token (seeded as if the user had
# consented), and through an M2M route (its token seeded as if fetched), same wrk settings,
# alternating rounds. keygate and the upstream are pinned to CPU 0, wrk to CPU 1.
# Prints requests/s, p50, p99 for each, and keygate's CPU time per request. keygate runs with its
# default settings (access log at info, to a file here; audit file on).
#   benches/load/proxy-overhead.sh [seconds=10] [connections=32] [rounds=3]
set -euo pipefail
export BENCH_CLIENT_SECRET=never-used-the-m2m-token-is-seeded
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN=${1:-10}
CONNECTIONS=${2:-32}
ROUNDS=${3:-3}
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }

cargo build --release --quiet --bin keygate --example bench-upstream --example vault-seed
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cat > "$work/routes.toml" <<TOML
[server]
listen = "127.0.0.1:18080"
admin_listen = "127.0.0.1:19090"
[audit]
path = "$work/audit.jsonl"
[[providers]]
name = "key"
kind = "api_key"
api_key = "bench-key"
[[routes]]
name = "bench"
path_prefix = "/tools/bench/"
upstream = "http://127.0.0.1:19100/"
[[routes]]
name = "keyed"
path_prefix = "/tools/keyed/"
upstream = "http://127.0.0.1:19100/"
[routes.credential]
provider = "key"
flow = "api_key"
header = "X-API-Key"
format = "{token}"
[[workloads]]
name = "bench-agent"
allowed_return_urls = ["https://app.example.com/cb"]
[[providers]]
name = "docs"
kind = "oauth2"
vendor = "custom"
client_id = "bench"
client_secret = "env:BENCH_CLIENT_SECRET"
issuer = "http://127.0.0.1:1"
authorization_endpoint = "http://127.0.0.1:1/auth"
token_endpoint = "http://127.0.0.1:1/token"
[[routes]]
name = "3lo"
path_prefix = "/tools/3lo/"
upstream = "http://127.0.0.1:19100/"
workload = "bench-agent"
[routes.credential]
provider = "docs"
flow = "user_federation"
scopes = ["read"]
return_url = "https://app.example.com/cb"
[[routes]]
name = "m2m"
path_prefix = "/tools/m2m/"
upstream = "http://127.0.0.1:19100/"
workload = "bench-agent"
[routes.credential]
provider = "docs"
flow = "m2m"
scopes = ["read"]
TOML

taskset -c 0 target/release/examples/bench-upstream 127.0.0.1:19100 &
taskset -c 0 target/release/keygate serve --config "$work/routes.toml" 2>"$work/keygate.log" &
KEYGATE_PID=$!
for _ in $(seq 100); do curl -sf localhost:19090/readyz >/dev/null && break; sleep 0.1; done
TOKEN=$(target/release/keygate token issue --config "$work/routes.toml" --workload bench-agent)
USER_TOKEN=$(target/release/keygate token issue --config "$work/routes.toml" --workload bench-agent --user u1)
target/release/examples/vault-seed "$work/routes.toml" user bench-agent u1 docs "vaulted-access-token-for-u1"
target/release/examples/vault-seed "$work/routes.toml" m2m bench-agent docs "vaulted-m2m-token"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # name url [token]
  local out
  out=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -H "Authorization: Bearer ${3:-$TOKEN}" "$2")
  if grep -q "Non-2xx" <<<"$out"; then echo "$1: non-2xx answers; check the token and routes" >&2; exit 1; fi
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  local total
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  echo "$1 $rps $p50 $p99 $total"
}

printf '%-8s %-8s %12s %10s %10s %14s\n' round target "requests/s" p50 p99 "cpu µs/req"
for round in $(seq "$ROUNDS"); do
  read -r name rps p50 p99 _ < <(run direct "http://127.0.0.1:19100/x")
  printf '%-8s %-8s %12s %10s %10s %14s\n' "$round" "$name" "$rps" "$p50" "$p99" "-"
  for target in bench keyed m2m 3lo; do
    token=$TOKEN
    [ "$target" = 3lo ] && token=$USER_TOKEN
    before=$(cpu_ticks "$KEYGATE_PID")
    read -r name rps p50 p99 total < <(run "kg-$target" "http://127.0.0.1:18080/tools/$target/x" "$token")
    after=$(cpu_ticks "$KEYGATE_PID")
    hz=$(getconf CLK_TCK)
    cpu=$(awk -v a="$after" -v b="$before" -v hz="$hz" -v n="$total" 'BEGIN {printf "%.1f", (a-b)/hz/n*1e6}')
    printf '%-8s %-8s %12s %10s %10s %14s\n' "$round" "$name" "$rps" "$p50" "$p99" "$cpu"
  done
done
