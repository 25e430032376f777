#!/usr/bin/env bash
# Performance budget benchmark (bench/README.md), not a test.
#
# Starts the test server, leaks SQLite WAL connections until it holds ~450 FDs, then
# measures side by side with hyperfine:
#   - one healthy `watchdog check` (attempts = 1)
#   - the seed's recipe: sh -c 'lsof -p PID | wc -l; curl -fsS -m 5 URL'
#   - one non-daemon monit pass doing the same two checks (when monit is installed)
# and prints the medians and ratios (budgets: watchdog ≥ 10× faster than the recipe,
# ≥ 2× faster than monit). Then measures
# the peak RSS of one check with /usr/bin/time -v (budget: ≤ 5 MiB) and the size of the
# binary (budget: ≤ 4 MiB stripped, with TLS).
#
# Usage: bench/check_vs_lsof.sh          (builds target/release/watchdog first)
#        WATCHDOG_BIN=/path/to/watchdog bench/check_vs_lsof.sh   (no build)
# Env:   TARGET_FDS (default 450), RUNS (default 60), WARMUP (default 5),
#        HISTORY_DAYS (default 2: the history a watchdog has after two days of one check
#        a minute; 0 starts from an empty one),
#        COMPARE_BIN (another watchdog binary, e.g. an older build, timed in the same
#        hyperfine run with a state dir of its own; its history is not replayed; then
#        the two are timed again interleaved, run by run, which load drift on a shared
#        machine does not bias)
# Results: bench/results/check_vs_lsof-<UTC timestamp>.{json,txt}
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_FDS=${TARGET_FDS:-450}
RUNS=${RUNS:-60}
WARMUP=${WARMUP:-5}
HISTORY_DAYS=${HISTORY_DAYS:-2}
RESULTS="$ROOT/bench/results"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)

die() { echo "check_vs_lsof: $*" >&2; exit 1; }

missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
[ -x /usr/bin/time ] || missing+=(time)
command -v lsof >/dev/null || missing+=(lsof)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    die "missing: ${missing[*]}. Install with: apt-get install ${missing[*]}   (macOS: brew install ${missing[*]}, and use gtime for /usr/bin/time)"
fi

if [ -z "${WATCHDOG_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
    WATCHDOG_BIN="$ROOT/target/release/watchdog"
fi
[ -x "$WATCHDOG_BIN" ] || die "no executable at $WATCHDOG_BIN"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/watchdog-bench.XXXXXX")
SERVER_PID=""
cleanup() {
    # End only the server we started, and only while it is still that server.
    if [ -n "$SERVER_PID" ] && grep -qa testserver.py "/proc/$SERVER_PID/cmdline" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$TMP/home" "$TMP/db" "$RESULTS"
python3 "$ROOT/tests/support/testserver.py" \
    --port-file "$TMP/port" --pidfile "$TMP/webui.pid" --pid-log "$TMP/pids" \
    --db "$TMP/db" >"$TMP/server.log" 2>&1 &
SERVER_PID=$!

for _ in $(seq 1 200); do
    if [ -s "$TMP/port" ] && curl -fsS -m 2 "http://127.0.0.1:$(cat "$TMP/port")/control/fds" >/dev/null 2>&1; then
        break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || die "test server exited: $(cat "$TMP/server.log")"
    sleep 0.05
done
PORT=$(cat "$TMP/port")
BASE="http://127.0.0.1:$PORT"
URL="$BASE/health"
curl -fsS -m 5 "$URL" >/dev/null || die "test server does not answer on $URL"

# Each WAL connection holds 2 FDs (state.db, state.db-wal) plus one -shm per process.
fds=$(curl -fsS -m 30 "$BASE/control/fds")
while [ "$fds" -lt $((TARGET_FDS - 1)) ]; do
    n=$(( (TARGET_FDS - fds) / 2 ))
    [ "$n" -ge 1 ] || n=1
    fds=$(curl -fsS -m 60 "$BASE/control/leak?n=$n")
done
FDS_NOW=$(ls "/proc/$SERVER_PID/fd" | wc -l)
echo "test server PID $SERVER_PID on port $PORT holds $FDS_NOW FDs"

CONF="$TMP/watchdog.toml"
cat >"$CONF" <<EOF
files = []

[target]
port = $PORT
pidfile = "$TMP/webui.pid"
startup_grace = "0s"

[health]
url = "$URL"
timeout = "5s"
attempts = 1

[fds]
max = 1000

[[fds.paths]]
pattern = "state.db"
max = 1000

[restart]
method = "none"

[log]
file = "$TMP/watchdog.log"

[state]
dir = "$TMP/state"
EOF

export HOME="$TMP/home" XDG_CONFIG_HOME="$TMP/home/.config" XDG_STATE_HOME="$TMP/home/.local/state"
unset WATCHDOG_CONFIG

set +e
"$WATCHDOG_BIN" check -c "$CONF" >"$TMP/check.out" 2>&1
rc=$?
set -e
[ "$rc" -eq 0 ] || die "a single check did not exit 0 (exit $rc); output: $(cat "$TMP/check.out")"

# A watchdog in service has a history: replay HISTORY_DAYS of once-a-minute samples
# into it (copies of the sample the first check stored), then let one more check
# apply its own retention to them, so that every timed run reads and rewrites the
# history file it would have after that long.
if [ "$HISTORY_DAYS" != 0 ]; then
    python3 - "$TMP/state/history.json" "$HISTORY_DAYS" <<'EOF'
import json, sys, time
path, days = sys.argv[1], float(sys.argv[2])
doc = json.load(open(path))
last = doc["samples"][-1]
now = int(time.time())
minutes = int(days * 24 * 60)
doc["samples"] = [dict(last, at=now - 60 * k) for k in range(minutes, 0, -1)]
json.dump(doc, open(path, "w"))
EOF
    "$WATCHDOG_BIN" check -c "$CONF" >/dev/null 2>&1 || die "check after replaying the history failed"
fi
HISTORY_SAMPLES=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["samples"]))' "$TMP/state/history.json")
HISTORY_BYTES=$(stat -c %s "$TMP/state/history.json" 2>/dev/null || stat -f %z "$TMP/state/history.json")
echo "history: $HISTORY_SAMPLES FD samples, $HISTORY_BYTES bytes (after $HISTORY_DAYS days of one check a minute)"

# monit without `set daemon` runs one pass over its checks and exits.
MONIT=()
if command -v monit >/dev/null; then
    mkdir -p "$TMP/monit"
    cat >"$TMP/monit/monitrc" <<MONITRC
set logfile $TMP/monit/monit.log
set idfile $TMP/monit/id
set statefile $TMP/monit/state
set pidfile $TMP/monit/monit.pid
check process server with pidfile $TMP/webui.pid
  if failed host 127.0.0.1 port $PORT protocol http request "/health" with timeout 5 seconds then alert
  if filedescriptors > 1000 then alert
MONITRC
    chmod 600 "$TMP/monit/monitrc"
    monit -c "$TMP/monit/monitrc" >/dev/null
    MONIT=(-n "monit (one pass)" "monit -c $TMP/monit/monitrc")
else
    echo "monit not installed (apt-get install monit): measuring without it" >&2
fi

COMPARE=()
if [ -n "${COMPARE_BIN:-}" ]; then
    [ -x "$COMPARE_BIN" ] || die "no executable at COMPARE_BIN=$COMPARE_BIN"
    sed "s|$TMP/state|$TMP/state-compare|; s|$TMP/watchdog.log|$TMP/watchdog-compare.log|" \
        "$CONF" >"$TMP/compare.toml"
    "$COMPARE_BIN" check -c "$TMP/compare.toml" >/dev/null 2>&1 || die "COMPARE_BIN's check did not exit 0"
    COMPARE=(-n "compare: $COMPARE_BIN" "$COMPARE_BIN check -c $TMP/compare.toml")
fi

JSON="$RESULTS/check_vs_lsof-$STAMP.json"
TXT="$RESULTS/check_vs_lsof-$STAMP.txt"
# -N: no intermediate shell, so nothing is subtracted as "shell overhead" (that
# estimate is noisier than the watchdog run itself); the recipe runs its own sh -c.
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$JSON" \
    -n "watchdog check" "$WATCHDOG_BIN check -c $CONF" \
    -n "lsof | wc -l; curl" "sh -c 'lsof -p $SERVER_PID | wc -l; curl -fsS -m 5 $URL'" \
    "${MONIT[@]}" "${COMPARE[@]}"

/usr/bin/time -v "$WATCHDOG_BIN" check -c "$CONF" >/dev/null 2>"$TMP/time.out" || true
RSS_KB=$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$TMP/time.out")
BIN_BYTES=$(stat -c %s "$WATCHDOG_BIN" 2>/dev/null || stat -f %z "$WATCHDOG_BIN")

python3 - "$JSON" "$RSS_KB" "$BIN_BYTES" "$FDS_NOW" <<'EOF' | tee "$TXT"
import json, sys
results = json.load(open(sys.argv[1]))["results"]
rss_kb, bin_bytes, fds = int(sys.argv[2] or 0), int(sys.argv[3]), sys.argv[4]
wd, lsof = results[0]["median"], results[1]["median"]
ratio = lsof / wd if wd else float("inf")
def verdict(ok): return "ok" if ok else "OVER BUDGET"
print(f"target FDs:              {fds}")
print(f"median watchdog check:   {wd * 1000:.2f} ms")
print(f"median lsof + curl:      {lsof * 1000:.2f} ms")
print(f"ratio (lsof / watchdog): {ratio:.1f}x   budget >= 10x: {verdict(ratio >= 10)}")
for other in results[2:]:
    if not other["command"].startswith("monit"):
        print(f"median {other['command']}: {other['median'] * 1000:.2f} ms ({other['median'] / wd:.2f}x the watchdog check)")
        continue
    monit = other["median"]
    print(f"median monit one pass:   {monit * 1000:.2f} ms")
    print(f"ratio (monit / watchdog): {monit / wd:.1f}x   budget >= 2x: {verdict(monit / wd >= 2)}")
print(f"peak RSS of one check:   {rss_kb} KiB ({rss_kb / 1024:.2f} MiB)   budget <= 5 MiB: {verdict(rss_kb <= 5 * 1024)}")
print(f"binary size:             {bin_bytes} bytes ({bin_bytes / 1048576:.2f} MiB)   budget <= 4 MiB: {verdict(bin_bytes <= 4 * 1048576)}")
EOF
# hyperfine times each command's runs one block after another (the recipe's runs,
# seconds of lsof, lie between the watchdog's and COMPARE_BIN's): on a shared machine
# the load drifts between blocks by more than two builds differ. So the two builds
# are also timed interleaved, run by run (A B, then B A, ...), wall time and CPU time
# (user + system, from wait4) of each run; their medians compare the builds.
if [ -n "${COMPARE_BIN:-}" ]; then
    python3 - "$WATCHDOG_BIN" "$CONF" "$COMPARE_BIN" "$TMP/compare.toml" "$RUNS" "$WARMUP" <<'EOF' | tee -a "$TXT"
import os, statistics, sys, time
a_bin, a_conf, b_bin, b_conf = sys.argv[1:5]
runs, warmup = int(sys.argv[5]), int(sys.argv[6])
devnull = os.open(os.devnull, os.O_WRONLY)
def once(binary, conf):
    start = time.perf_counter()
    pid = os.posix_spawn(binary, [binary, "check", "-c", conf], os.environ,
                         file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1),
                                       (os.POSIX_SPAWN_DUP2, devnull, 2)])
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"check_vs_lsof: {binary} check did not exit 0")
    return wall, usage.ru_utime + usage.ru_stime
builds = [("watchdog check", a_bin, a_conf), ("compare", b_bin, b_conf)]
times = {name: ([], []) for name, _, _ in builds}
for i in range(warmup + runs):
    for name, binary, conf in (builds if i % 2 == 0 else builds[::-1]):
        wall, cpu = once(binary, conf)
        if i >= warmup:
            times[name][0].append(wall)
            times[name][1].append(cpu)
med = {name: (statistics.median(w), statistics.median(c)) for name, (w, c) in times.items()}
print(f"interleaved, {runs} runs each:")
for name, (wall, cpu) in med.items():
    print(f"  median {name}: {wall * 1000:.2f} ms wall, {cpu * 1000:.2f} ms CPU")
print(f"  compare / watchdog check: {med['compare'][0] / med['watchdog check'][0]:.2f}x wall, "
      f"{med['compare'][1] / med['watchdog check'][1]:.2f}x CPU")
EOF
fi
echo "results: $JSON"
echo "         $TXT"
