#!/usr/bin/env bash
# Port-holder search budget (bench/README.md), not a test: with 1,000 other processes on the
# box, finding the process LISTENing on the port must take ≤ 20 ms when a pidfile or the
# last known PID names it (no full scan of every process's FDs).
#
# Measures, side by side with hyperfine, `watchdog status` (observe + decide; it finds
# the port holder) against the test server:
#   - with a pidfile naming the server (the candidate is checked first);
#   - with no pidfile and no history (the full scan of every process, for contrast);
# each with 1,000 extra `sleep` processes running.
#
# Usage: bench/port_search.sh        (builds target/release/watchdog first)
# Env:   OTHERS (default 1000), RUNS (default 30)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OTHERS=${OTHERS:-1000}
RUNS=${RUNS:-30}
RESULTS="$ROOT/bench/results"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)

command -v hyperfine >/dev/null || { echo "port_search: apt-get install hyperfine" >&2; exit 1; }
if [ -z "${WATCHDOG_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --quiet)
    WATCHDOG_BIN="$ROOT/target/release/watchdog"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/watchdog-portsearch.XXXXXX")
PIDS=()
cleanup() {
    # Only the processes this script started, by PID.
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true  # (bash may still report "Killed" for the sleeps)
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$TMP/home" "$TMP/db" "$RESULTS"
python3 "$ROOT/tests/support/testserver.py" --port-file "$TMP/port" \
    --pidfile "$TMP/webui.pid" --db "$TMP/db" >"$TMP/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$TMP/port" ] && break; sleep 0.1; done
PORT=$(cat "$TMP/port")
for _ in $(seq "$OTHERS"); do
    sleep 600 &
    PIDS+=($!)
done
echo "test server on port $PORT; $(ls /proc | grep -c '^[0-9]') processes on the box"

write_config() { # $1 = file, $2 = pidfile ("" for none), $3 = state dir
    cat >"$1" <<CONF
files = []
[target]
port = $PORT
pidfile = "$2"
[health]
url = "http://127.0.0.1:$PORT/health"
attempts = 1
[[fds.paths]]
pattern = "state.db"
max = 1000
[restart]
method = "none"
[log]
file = ""
[state]
dir = "$3"
CONF
}
write_config "$TMP/named.toml" "$TMP/webui.pid" "$TMP/state-named"
write_config "$TMP/scan.toml" "" "$TMP/state-scan"
export HOME="$TMP/home"

JSON="$RESULTS/port_search-$STAMP.json"
# status writes no history, so the scan case stays a full scan on every run.
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$JSON" \
    -n "pidfile names the holder" "$WATCHDOG_BIN status -c $TMP/named.toml" \
    -n "full scan" "$WATCHDOG_BIN status -c $TMP/scan.toml"

python3 - "$JSON" "$OTHERS" <<'PY' | tee "$RESULTS/port_search-$STAMP.txt"
import json, sys
named, scan = json.load(open(sys.argv[1]))["results"]
print(f"other processes:           {sys.argv[2]}")
print(f"median, pidfile names it:  {named['median'] * 1000:.2f} ms   budget <= 20 ms: {'ok' if named['median'] <= 0.020 else 'OVER BUDGET'}")
print(f"median, full scan:         {scan['median'] * 1000:.2f} ms")
PY
