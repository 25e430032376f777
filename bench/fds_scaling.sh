#!/usr/bin/env bash
# Performance budget benchmark (see bench/README.md, "The FD budget"), not a test.
#
# How `watchdog fds --pid P` scales with the size of P's FD table, and what each way
# of reading the table costs. Starts one holder process per size, owned by an
# unprivileged user (python3 raising its soft RLIMIT_NOFILE to the hard limit, then
# holding a mix like a leaking web app's: SQLite WAL connections (the database and its
# -wal file each; one -shm), unix socketpairs, loopback TCP connections, and os.open
# handles on 100 regular files), checks that every strategy gives the same census as
# /proc and as each other, then times `watchdog fds --pid P` for every (size, caller,
# strategy) cell interleaved round by round (the order rotating each round), so load
# drift on a shared machine lands on every cell alike. The callers are the root
# watchdog and a watchdog of the holders' own user.
#
# It prints the median wall and CPU time of each cell, each strategy's ratio to the
# plain listing, the cost per 1,000 FDs, and a least-squares line through the default
# strategy's medians extrapolated to 100,000 FDs (budget: <= 200 ms, linear in FDs).
#
# 100,000 FDs cannot be measured on a machine whose hard RLIMIT_NOFILE is lower (the
# build machine's is 20,000 and cannot be raised without CAP_SYS_RESOURCE): the script
# refuses sizes over the hard limit; on such a machine it extrapolates, and says so.
#
# Usage: bench/fds_scaling.sh            (builds target/release/watchdog first)
#        WATCHDOG_BIN=/path/to/watchdog bench/fds_scaling.sh
# Env:   SIZES (default "1000 4096 10000 19000"), ROUNDS (default 30), WARMUP (default
#        3), STRATEGIES (values of WATCHDOG_FD_STRATEGY to time side by side, the first
#        being the one the others are compared with; "auto" leaves the choice to the
#        watchdog; see bench/README.md), HOLDER_UID (default 65534, nobody; only when
#        run as root: the holders run as that user, and the watchdog is timed as root
#        and as that user), COMPARE_BIN (another watchdog binary, e.g. a build before a
#        change: timed as one more strategy, "compare", with its own choice, in the
#        same interleaved rounds)
# Results: bench/results/fds_scaling-<UTC timestamp>.{json,txt}
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIZES=${SIZES:-"1000 4096 10000 19000"}
ROUNDS=${ROUNDS:-30}
WARMUP=${WARMUP:-3}
STRATEGIES=${STRATEGIES:-"list probe auto"}
HOLDER_UID=${HOLDER_UID:-65534}
RESULTS="$ROOT/bench/results"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
MARKER="watchdog-fds-scaling-holder"

die() { echo "fds_scaling: $*" >&2; exit 1; }

# Debian's python3: a server run as another user cannot execute a python3 under
# root's private home (pyenv).
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=$(command -v python3 || true)
[ -n "$PYTHON" ] || die "missing: python3. Install with: apt-get install python3"
[ -d /proc/self/fd ] || die "needs Linux /proc"
"$PYTHON" -c 'import sqlite3' 2>/dev/null || die "$PYTHON has no sqlite3 module (apt-get install python3)"

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

# Callers: root and the holders' user when run as root; else only ourselves, with the
# holders ours too.
if [ "$(id -u)" = 0 ]; then
    RUN_AS=(setpriv --reuid="$HOLDER_UID" --regid="$HOLDER_UID" --clear-groups --)
    CALLERS="root:0 user:$HOLDER_UID"
    chmod 711 "$TMP"
else
    RUN_AS=()
    HOLDER_UID=$(id -u)
    CALLERS="user:$HOLDER_UID"
fi
mkdir -p "$RESULTS" "$TMP/files" "$TMP/bin"
cp "$WATCHDOG_BIN" "$TMP/bin/watchdog"
if [ -n "${COMPARE_BIN:-}" ]; then
    [ -x "$COMPARE_BIN" ] || die "no executable at COMPARE_BIN=$COMPARE_BIN"
    cp "$COMPARE_BIN" "$TMP/bin/compare"
    STRATEGIES="$STRATEGIES compare"
fi
chmod 755 "$TMP/bin" "$TMP/bin/"*
for caller in $CALLERS; do
    uid=${caller#*:}
    mkdir -p "$TMP/home-$uid"
    chown "$uid:$uid" "$TMP/home-$uid" 2>/dev/null || true
    chmod 700 "$TMP/home-$uid"
done
chown "$HOLDER_UID:$HOLDER_UID" "$TMP/files" 2>/dev/null || true

# The holder: raise the soft limit to the hard one, hold N FDs in total (its stdio
# included), say so in a ready file, then sleep until killed. Of the N: 20% SQLite WAL
# connections (state.db and state.db-wal each, one state.db-shm for the process, as
# tests/support/testserver.py leaks them), 5% unix socketpair ends, 5% loopback TCP
# ends (both ends of each connection, and one listener), the rest os.open handles
# spread over 100 regular files.
cat >"$TMP/files/holder.py" <<'EOF'
import os, resource, socket, sqlite3, sys, time
want, files_dir, ready = int(sys.argv[1]), sys.argv[2], sys.argv[3]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
def count():
    return len(os.listdir("/proc/self/fd")) - 1  # listdir's own FD
held = []
db_dir = os.path.join(files_dir, "db-%d" % want)
os.makedirs(db_dir, exist_ok=True)
db = os.path.join(db_dir, "state.db")
first = sqlite3.connect(db)
first.execute("PRAGMA journal_mode=WAL")
first.execute("CREATE TABLE IF NOT EXISTS t (x)")
first.commit()
held.append(first)
while count() < want * 20 // 100:
    c = sqlite3.connect(db)
    c.execute("SELECT count(*) FROM t").fetchall()  # opens the -wal and -shm
    held.append(c)
for _ in range(want * 5 // 100 // 2):
    held.extend(socket.socketpair())
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(4096)
held.append(listener)
for _ in range(want * 5 // 100 // 2):
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    held.extend([client, server])
paths = [os.path.join(files_dir, "file-%03d.log" % i) for i in range(100)]
for p in paths:
    open(p, "a").close()
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
chmod 644 "$TMP/files/holder.py"

declare -A PID_OF
for n in $SIZES; do
    "${RUN_AS[@]}" "$PYTHON" "$TMP/files/holder.py" "$n" "$TMP/files" "$TMP/files/ready-$n" "$MARKER" \
        </dev/null >"$TMP/holder-$n.log" 2>&1 &
    HOLDERS+=($!)
    PID_OF[$n]=$!
done
for n in $SIZES; do
    for _ in $(seq 1 600); do
        [ -s "$TMP/files/ready-$n" ] && break
        kill -0 "${PID_OF[$n]}" 2>/dev/null || die "holder for $n FDs exited: $(cat "$TMP/holder-$n.log")"
        sleep 0.1
    done
    [ -s "$TMP/files/ready-$n" ] || die "holder for $n FDs not ready after 60 s"
done

# One config per caller (its own state dir; root-owned and 0644 is trusted by both).
for caller in $CALLERS; do
    uid=${caller#*:}
    cat >"$TMP/watchdog-$uid.toml" <<EOF
files = []

[target]
port = 9

[restart]
method = "none"

[log]
file = ""

[state]
dir = "$TMP/home-$uid/state"
EOF
    chmod 644 "$TMP/watchdog-$uid.toml"
done

HOLDER_ARGS=()
for n in $SIZES; do
    HOLDER_ARGS+=("$n:${PID_OF[$n]}")
done

JSON="$RESULTS/fds_scaling-$STAMP.json"
TXT="$RESULTS/fds_scaling-$STAMP.txt"
"$PYTHON" - "$TMP" "$JSON" "$ROUNDS" "$WARMUP" "$HARD" "$STRATEGIES" "$CALLERS" "${HOLDER_ARGS[@]}" <<'EOF' | tee "$TXT"
import json, os, statistics, sys, time
tmp, json_out, rounds, warmup, hard = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
strategies = sys.argv[6].split()
callers = [(c.split(":")[0], int(c.split(":")[1])) for c in sys.argv[7].split()]
holders = [(int(a.split(":")[0]), int(a.split(":")[1])) for a in sys.argv[8:]]
def binary_of(strategy):
    # "compare" is COMPARE_BIN, left to its own choice.
    return os.path.join(tmp, "bin", "compare" if strategy == "compare" else "watchdog")
devnull = os.open(os.devnull, os.O_RDWR)

def run(uid, pid, strategy, capture=False):
    """One `watchdog fds` as `uid`; (wall s, CPU s, stdout). fork + setuid + exec for
    every caller alike, so the spawn costs the same in every cell."""
    env = {"PATH": "/usr/bin:/bin", "HOME": os.path.join(tmp, "home-%d" % uid)}
    if strategy not in ("auto", "compare"):
        env["WATCHDOG_FD_STRATEGY"] = strategy
    binary = binary_of(strategy)
    args = [binary, "fds", "--pid", str(pid), "-c", os.path.join(tmp, "watchdog-%d.toml" % uid)]
    if capture:
        args.insert(2, "--json")
    r, w = os.pipe()
    start = time.perf_counter()
    child = os.fork()
    if child == 0:
        try:
            os.dup2(w if capture else devnull, 1)
            os.dup2(devnull, 2)
            if os.getuid() != uid:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            os.execve(binary, args, env)
        finally:
            os._exit(127)
    os.close(w)
    out = b""
    if capture:
        while chunk := os.read(r, 1 << 16):
            out += chunk
    os.close(r)
    _, status, usage = os.wait4(child, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"fds_scaling: watchdog fds --pid {pid} as uid {uid} ({strategy}) exited {code}")
    return wall, usage.ru_utime + usage.ru_stime, out

# Every strategy, as every caller, must give the same census, and count what /proc lists.
real = {}
for n, pid in holders:
    real[n] = len(os.listdir(f"/proc/{pid}/fd"))
    reference = None
    for caller, uid in callers:
        for s in strategies:
            doc = json.loads(run(uid, pid, s, capture=True)[2])
            total = doc["fds"]["total"]
            if total != real[n]:
                sys.exit(f"fds_scaling: {s} as {caller} counts {total} FDs for PID {pid}, /proc has {real[n]}")
            if reference is None:
                reference = (caller, s, doc)
            elif doc != reference[2]:
                sys.exit(f"fds_scaling: the census of PID {pid} by {s} as {caller} differs from {reference[1]} as {reference[0]}")
    print(f"holder PID {pid} holds {real[n]} FDs; {len(strategies) * len(callers)} censuses identical")

cells = [(n, pid, caller, uid, s) for n, pid in holders for caller, uid in callers for s in strategies]
times = {(n, caller, s): ([], []) for n, _, caller, _, s in cells}
for i in range(warmup + rounds):
    shift = i % len(cells)
    for n, pid, caller, uid, s in cells[shift:] + cells[:shift]:
        wall, cpu, _ = run(uid, pid, s)
        if i >= warmup:
            times[(n, caller, s)][0].append(wall)
            times[(n, caller, s)][1].append(cpu)
med = {k: (statistics.median(w) * 1000, statistics.median(c) * 1000) for k, (w, c) in times.items()}
json.dump({"rounds": rounds, "warmup": warmup, "fds": real,
           "cells": [{"fds": real[n], "caller": caller, "strategy": s,
                      "wall_s": times[(n, caller, s)][0], "cpu_s": times[(n, caller, s)][1]}
                     for n, _, caller, _, s in cells]}, open(json_out, "w"), indent=1)

print(f"\nwatchdog fds --pid P, {rounds} interleaved rounds; median wall / CPU (ms), and the")
print(f"ratio of each strategy's median wall to {strategies[0]}'s (<1: faster)")
print(f"{'FDs':>7} {'caller':>6} {'strategy':>15} {'wall ms':>8} {'CPU ms':>8} {'ms/1k FDs':>9} {'ratio':>6}")
for n, _ in holders:
    for caller, _ in callers:
        base = med[(n, caller, strategies[0])][0]
        for s in strategies:
            wall, cpu = med[(n, caller, s)]
            print(f"{real[n]:>7} {caller:>6} {s:>15} {wall:>8.2f} {cpu:>8.2f} {wall / real[n] * 1000:>9.3f} {wall / base:>6.2f}")
print()
for caller, _ in callers:
    for s in strategies:
        xs = [real[n] for n, _ in holders]
        ys = [med[(n, caller, s)][0] for n, _ in holders]
        k = len(xs)
        if k < 2:
            continue
        mx, my = sum(xs) / k, sum(ys) / k
        sxx = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
        icpt = my - slope * mx
        ss_tot = sum((y - my) ** 2 for y in ys)
        ss_res = sum((y - (icpt + slope * x)) ** 2 for x, y in zip(xs, ys))
        r2 = 1 - ss_res / ss_tot if ss_tot else 1.0
        at = icpt + slope * 100000
        verdict = "ok" if at <= 200 else "OVER BUDGET"
        print(f"{caller:>6} {s:>15}: {icpt:.2f} ms + {slope * 1000:.3f} ms per 1k FDs (R^2 {r2:.4f}); "
              f"at 100,000 FDs {at:.1f} ms, budget <= 200 ms: {verdict}")
if hard != "unlimited" and int(hard) < 100000:
    print(f"note: 100,000 is extrapolated, not measured: this machine's hard RLIMIT_NOFILE is {hard}, "
          f"so no process here can hold 100,000 FDs (raising it needs CAP_SYS_RESOURCE)")
EOF
echo "results: $JSON"
echo "         $TXT"
