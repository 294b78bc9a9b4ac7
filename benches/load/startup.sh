#!/usr/bin/env bash
# Startup and idle footprint of the release binary on the embedded defaults (SQLite vault and
# key file created beside the config on first start): time from exec to /readyz 200, for a first
# start (nothing on disk yet) and a restart, and resident memory once idle. Then the vault
# cache's footprint with 100,000 credentials (benches/load/footprint.rs).
#   benches/load/startup.sh [runs=5] [credentials=100000]
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
CREDENTIALS=${2:-100000}

cargo build --release --quiet --bin keygate --example footprint
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work" "$RUNS" <<'PY'
import http.client, os, shutil, statistics, subprocess, sys, time

work, runs = sys.argv[1], int(sys.argv[2])
config = os.path.join(work, "routes.toml")
with open(config, "w") as f:
    f.write('[server]\nlisten = "127.0.0.1:18480"\nadmin_listen = "127.0.0.1:18481"\n')

def ready() -> bool:
    try:
        c = http.client.HTTPConnection("127.0.0.1", 18481, timeout=0.2)
        c.request("GET", "/readyz")
        return c.getresponse().status == 200
    except OSError:
        return False

def start(fresh: bool):
    if fresh:
        shutil.rmtree(os.path.join(work, "data"), ignore_errors=True)
    t0 = time.monotonic()
    p = subprocess.Popen(["target/release/keygate", "serve", "--config", config],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env={**os.environ, "RUST_LOG": "warn"})
    while not ready():
        if p.poll() is not None:
            sys.exit("keygate exited during startup")
        time.sleep(0.0005)
    elapsed = (time.monotonic() - t0) * 1000
    time.sleep(1.0)
    with open(f"/proc/{p.pid}/status") as s:
        rss = next(int(l.split()[1]) for l in s if l.startswith("VmRSS:")) / 1024
    p.terminate()
    p.wait(timeout=10)
    return elapsed, rss

for label, fresh in (("first start (creates key and database)", True), ("restart", False)):
    results = [start(fresh) for _ in range(runs)]
    times = [r[0] for r in results]
    rss = [r[1] for r in results]
    print(f"{label:40s} exec -> /readyz 200: median {statistics.median(times):6.1f} ms "
          f"(min {min(times):.1f}, max {max(times):.1f}); idle RSS {statistics.median(rss):.1f} MiB")
PY

target/release/examples/footprint "$CREDENTIALS"
