#!/usr/bin/env bash
# Performance budget benchmark (SPEC §10), not a test.
#
# How `watchdog fds --pid P` scales with the size of P's FD table. Starts one holder
# process per size (python3 raising its soft RLIMIT_NOFILE to the hard limit, then
# holding os.open handles on 100 files in a temp dir, plus a share of unix socketpairs),
# measures `watchdog fds --pid P` on all of them side by side in one hyperfine run, and
# prints each median, the cost in ms per 1,000 FDs, a least-squares line through the
# medians and its extrapolation to 100,000 FDs (budget: <= 200 ms, linear in FDs).
#
# 100,000 FDs cannot be measured on a machine whose hard RLIMIT_NOFILE is lower (the
# build machine's is 20,000 and cannot be raised without CAP_SYS_RESOURCE): the script
# measures up to just under the hard limit and extrapolates, and says so.
#
# Usage: bench/fds_scaling.sh            (builds target/release/watchdog first)
#        WATCHDOG_BIN=/path/to/watchdog bench/fds_scaling.sh
# Env:   SIZES (default "1000 5000 10000 19000"), SOCKET_SHARE (percent of FDs that are
#        unix socket ends, default 10), RUNS (default 30), WARMUP (default 3)
# Results: bench/results/fds_scaling-<UTC timestamp>.{json,txt}
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIZES=${SIZES:-"1000 5000 10000 19000"}
SOCKET_SHARE=${SOCKET_SHARE:-10}
RUNS=${RUNS:-30}
WARMUP=${WARMUP:-3}
RESULTS="$ROOT/bench/results"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
MARKER="watchdog-fds-scaling-holder"

die() { echo "fds_scaling: $*" >&2; exit 1; }

missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    die "missing: ${missing[*]}. Install with: apt-get install ${missing[*]}   (macOS: brew install ${missing[*]})"
fi
[ -d /proc/self/fd ] || die "needs Linux /proc"

if [ -z "${WATCHDOG_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
    WATCHDOG_BIN="$ROOT/target/release/watchdog"
fi
[ -x "$WATCHDOG_BIN" ] || die "no executable at $WATCHDOG_BIN"

HARD=$(ulimit -Hn)
for n in $SIZES; do
    if [ "$HARD" != unlimited ] && [ "$n" -gt $((HARD - 20)) ]; then
        die "size $n does not fit under the hard RLIMIT_NOFILE $HARD (raise it, or set SIZES)"
    fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/watchdog-fds-bench.XXXXXX")
HOLDERS=()
cleanup() {
    # End only the holders we started, and only while they are still holders.
    for pid in "${HOLDERS[@]}"; do
        if grep -qa "$MARKER" "/proc/$pid/cmdline" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$TMP/home" "$TMP/files" "$RESULTS"

# The holder: raise the soft limit to the hard one, hold N FDs in total (its stdio
# included), say so in a ready file, then sleep until killed.
cat >"$TMP/holder.py" <<'EOF'
import os, resource, socket, sys, time
want, share, files_dir, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
paths = [os.path.join(files_dir, "file-%03d.db" % i) for i in range(100)]
for p in paths:
    open(p, "a").close()
held = []
def count():
    return len(os.listdir("/proc/self/fd")) - 1  # listdir's own FD
pairs = (want * share // 100) // 2
for _ in range(pairs):
    held.extend(socket.socketpair())
have = count()
i = 0
while have + i < want:
    held.append(os.open(paths[i % len(paths)], os.O_RDONLY))
    i += 1
with open(ready + ".tmp", "w") as f:
    f.write("%d\n" % count())
os.rename(ready + ".tmp", ready)
while True:
    time.sleep(3600)
EOF

declare -A PID_OF
for n in $SIZES; do
    python3 "$TMP/holder.py" "$n" "$SOCKET_SHARE" "$TMP/files" "$TMP/ready-$n" "$MARKER" \
        </dev/null >"$TMP/holder-$n.log" 2>&1 &
    HOLDERS+=($!)
    PID_OF[$n]=$!
done
for n in $SIZES; do
    for _ in $(seq 1 600); do
        [ -s "$TMP/ready-$n" ] && break
        kill -0 "${PID_OF[$n]}" 2>/dev/null || die "holder for $n FDs exited: $(cat "$TMP/holder-$n.log")"
        sleep 0.1
    done
    [ -s "$TMP/ready-$n" ] || die "holder for $n FDs not ready after 60 s"
done

CONF="$TMP/watchdog.toml"
cat >"$CONF" <<EOF
files = []

[target]
port = 9

[restart]
method = "none"

[log]
file = ""

[state]
dir = "$TMP/state"
EOF

export HOME="$TMP/home" XDG_CONFIG_HOME="$TMP/home/.config" XDG_STATE_HOME="$TMP/home/.local/state"
unset WATCHDOG_CONFIG

# Each holder's real FD count, and the watchdog reading all of it.
ARGS=()
COUNTS=()
for n in $SIZES; do
    pid=${PID_OF[$n]}
    real=$(ls "/proc/$pid/fd" | wc -l)
    seen=$("$WATCHDOG_BIN" fds --json --pid "$pid" -c "$CONF" | python3 -c 'import json,sys; print(json.load(sys.stdin)["fds"]["total"])') \
        || die "watchdog fds --json --pid $pid failed"
    [ "$seen" = "$real" ] || die "watchdog fds counts $seen FDs for PID $pid, /proc has $real"
    echo "holder PID $pid holds $real FDs"
    COUNTS+=("$real")
    ARGS+=(-n "fds $real" "$WATCHDOG_BIN fds --pid $pid -c $CONF")
done

JSON="$RESULTS/fds_scaling-$STAMP.json"
TXT="$RESULTS/fds_scaling-$STAMP.txt"
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$JSON" "${ARGS[@]}"

python3 - "$JSON" "$HARD" "$SOCKET_SHARE" "${COUNTS[@]}" <<'EOF' | tee "$TXT"
import json, sys
results = json.load(open(sys.argv[1]))["results"]
hard, share = sys.argv[2], sys.argv[3]
counts = [int(c) for c in sys.argv[4:]]
med = [r["median"] * 1000 for r in results]
print(f"watchdog fds --pid P, median of each (ms); {share}% of the FDs are unix socket ends")
print(f"{'FDs':>8} {'median ms':>10} {'ms / 1k FDs':>12}")
for n, m in zip(counts, med):
    print(f"{n:>8} {m:>10.2f} {m / n * 1000:>12.3f}")
k = len(counts)
mx, my = sum(counts) / k, sum(med) / k
sxx = sum((x - mx) ** 2 for x in counts)
slope = sum((x - mx) * (y - my) for x, y in zip(counts, med)) / sxx if sxx else 0.0
icpt = my - slope * mx
ss_tot = sum((y - my) ** 2 for y in med)
ss_res = sum((y - (icpt + slope * x)) ** 2 for x, y in zip(counts, med))
r2 = 1 - ss_res / ss_tot if ss_tot else 1.0
at_100k = icpt + slope * 100000
print(f"least squares: {icpt:.2f} ms + {slope * 1000:.3f} ms per 1k FDs   (R^2 = {r2:.4f}; linear means R^2 near 1)")
verdict = "ok" if at_100k <= 200 else "OVER BUDGET"
print(f"extrapolated to 100,000 FDs: {at_100k:.1f} ms   budget <= 200 ms: {verdict}")
print(f"note: extrapolated, not measured: this machine's hard RLIMIT_NOFILE is {hard}, "
      f"so no process here can hold 100,000 FDs (raising it needs CAP_SYS_RESOURCE)")
EOF
echo "results: $JSON"
echo "         $TXT"
