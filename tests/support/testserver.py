#!/usr/bin/env python3
"""A stand-in for Hermes WebUI, for watchdog's tests. Python 3 standard library only.

It answers GET /health like Hermes (JSON with status, sessions, active_streams,
active_runs, uptime_seconds; 503 + "degraded" when degraded), and GET /health?deep=1
like upstream's _handle_health in api/routes.py of nesquena/hermes-webui: the same
fields plus runs, last_run_finished_at, server_started_at, accept_loop and a `checks`
object (streams_lock, stream_runtime, sessions, projects, state_db, each with a
"status"); state_db really opens DIR/state.db and reads its schema version ("missing"
when there is none, which upstream counts as healthy). Any failed check: 503 with
"status": "degraded". It can be made to misbehave in the ways the incident report
describes:

  --mode-file F   read on every /health request (the file persists across restarts):
                    ok       (default; also when F is missing or empty)
                    503      503 with {"status": "degraded", ...}
                    hang     accept the request and never answer
                    reset    close the connection abruptly (SO_LINGER 0 -> RST)
                    dribble  send the headers, then the body one byte per second
                    big      a 50 MB body
                    nobody   200 with a body that lacks '"status": "ok"'
                    state_db the deep check cannot open state.db: /health?deep=1
                             answers 503 "degraded" with checks.state_db "error";
                             plain /health stays 200 (as upstream's does)
  GET /control/mode?m=M   the same modes, held in memory only, so a restarted server
                          comes back healthy; m= (empty) clears it. Wins over the file.
  GET /control/leak?n=N   open N more SQLite connections to DIR/state.db in WAL mode
                          (db, -wal and -shm opened; never closed); answers the FD count
  GET /control/files?n=N  open N more plain file handles (not state.db); answers the count
  GET /control/fds        answers the current FD count
  GET /control/busy?runs=N&streams=M
                          sets active_runs / active_streams in /health (in memory; an
                          omitted parameter keeps its value)
  GET /control/sessions?n=N
                          sets sessions in /health (in memory)
  GET /control/mix        opens a known mix of FD kinds, kept for the server's life, and
                          answers JSON naming each FD (see open_mix)
  GET /control/journal    opens DIR/journal.db in rollback-journal mode and holds a write
                          transaction open, so journal.db and journal.db-journal stay
                          open; answers {"database", "fds": [every FD on journal.db*]}

Start-up flags:
  --port-file F       if F holds a port, bind 127.0.0.1:that port (retrying while it is in
                      use, since a restart may race the old process's exit); else bind
                      port 0 and write the chosen port to F atomically. A restart that
                      replays the same argv therefore comes back on the same port.
  --pid-log F         append own PID to F at start (lets tests clean up respawned servers)
  --pidfile F         write own PID to F (like Hermes ctl.sh's ~/.hermes/webui.pid)
  --db DIR            directory holding state.db (default: the current directory)
  --ignore-sigterm    ignore SIGTERM
  --log-sigterm       handle SIGTERM as a server that shuts down cleanly: append
                      "PID SIGTERM handled" to DB/sigterm.log, then die of SIGTERM (its
                      default action, re-raised). The handler only runs while the process
                      does: a stopped one acts on it once continued (SIGCONT)
  --wedge-d-on-usr2   on SIGUSR2, the main thread (whose state /proc/PID/stat shows)
                      enters uninterruptible sleep (D) and stays there: it posix_spawns
                      /bin/true with an open of DB/wedge.fifo as a file action, and
                      glibc's posix_spawn (clone with CLONE_VFORK) keeps the parent in a
                      killable D wait until the child execs, which it does not while no
                      one opens the FIFO for writing. Nothing is accepted meanwhile; a
                      handled SIGTERM is not acted on, SIGKILL is. Whoever opens the FIFO
                      for writing (O_NONBLOCK) lets the child exec and exit.
  --startup-delay S   sleep S seconds before binding
  --fail-if-exists F  exit 1 at once (before anything else) while F exists: a server
                      that cannot start, for a supervisor to give up on (FATAL)
  --tls-cert F --tls-key K
                      serve HTTPS on the port, as Hermes does with HERMES_WEBUI_TLS_CERT
                      and HERMES_WEBUI_TLS_KEY (Python's ssl; TLS 1.2 at least); the
                      handshake runs in the connection's thread, so a client that never
                      finishes one holds no other

Like Hermes, it raises its soft RLIMIT_NOFILE to 4096 when it is lower.
"""

import argparse
import ctypes
import errno
import json
import os
import resource
import select
import signal
import socket
import sqlite3
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

MODES = ("ok", "503", "hang", "reset", "dribble", "big", "nobody", "state_db")
BIG_BODY_BYTES = 50 * 1024 * 1024
BIND_RETRY_SECONDS = 15.0

STARTED = time.monotonic()
STARTED_AT = time.time()
REQUESTS = {"total": 0, "last_at": 0.0}  # upstream's accept_loop counters
ARGS = None
MEMORY_MODE = None  # set through /control/mode; not persisted
LOCK = threading.Lock()
LEAKED = []  # sqlite3 connections and file objects kept open on purpose
NEVER = threading.Event()  # never set: 'hang' waits on it
# What /health reports besides status; set through /control/busy and /control/sessions.
COUNTERS = {"sessions": 0, "active_streams": 0, "active_runs": 0}
MIX = []  # objects behind /control/mix, kept open for the server's life


def log(msg):
    sys.stderr.write("testserver[%d]: %s\n" % (os.getpid(), msg))
    sys.stderr.flush()


# Where this process's open FDs are listed: /proc/self/fd on Linux; /dev/fd on macOS,
# which has no /proc and whose /dev/fd lists every open FD of the process reading it
# (xnu bsd/miscfs/devfs/devfs_fdesc_support.c, devfs_devfd_readdir). Both listings
# include the FD listdir itself holds.
FD_DIR = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"


def fd_count():
    return len(os.listdir(FD_DIR))


def current_mode():
    if MEMORY_MODE:
        return MEMORY_MODE
    if not ARGS.mode_file:
        return "ok"
    try:
        with open(ARGS.mode_file, encoding="utf-8") as f:
            mode = f.read().strip()
    except FileNotFoundError:
        return "ok"
    return mode or "ok"


def leak_sqlite(n):
    path = os.path.join(ARGS.db, "state.db")
    for _ in range(n):
        conn = sqlite3.connect(path, check_same_thread=False, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        # A write then a read: opens state.db-wal and state.db-shm for this connection.
        conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        conn.execute("INSERT INTO t (x) VALUES (1)")
        conn.commit()
        conn.execute("SELECT count(*) FROM t").fetchone()
        LEAKED.append(conn)


def leak_files(n):
    path = os.path.join(ARGS.db, "plain-file.txt")
    for _ in range(n):
        LEAKED.append(open(path, "a+", encoding="utf-8"))


def open_mix():
    """Opens one known mix of FD kinds and answers what it opened, FD numbers included:

    tcp      a listener on 127.0.0.1:0, a client connected to it and the accepted end
             (1 LISTEN + 2 ESTABLISHED)
    tcp6     a listener on [::1]:0, or null when IPv6 loopback does not work here
    udp      a UDP socket bound to 127.0.0.1:0
    unix     a socketpair (2 FDs)
    pipe     os.pipe() (2 FDs)
    fifo     a named FIFO DB/mix.fifo, opened O_RDWR | O_NONBLOCK
    dir      the DB directory, opened O_RDONLY
    deleted  DB/mix-deleted.txt, created, then unlinked while open
    eventfd  os.eventfd(0)
    epoll    select.epoll()
    inotify  inotify_init1(0) through ctypes, or null when unavailable

    Calling it again opens another mix (with other names for the named FIFO and the
    deleted file)."""
    seq = len([o for o in MIX if isinstance(o, dict)])
    suffix = "" if seq == 0 else "-%d" % seq
    desc = {}

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname(), timeout=5)
    accepted, _ = listener.accept()
    MIX.extend([listener, client, accepted])
    lport = listener.getsockname()[1]
    cport = client.getsockname()[1]
    desc["tcp"] = {
        "listen": {"fd": listener.fileno(), "local": "127.0.0.1:%d" % lport},
        "client": {
            "fd": client.fileno(),
            "local": "127.0.0.1:%d" % cport,
            "remote": "127.0.0.1:%d" % lport,
        },
        "accepted": {
            "fd": accepted.fileno(),
            "local": "127.0.0.1:%d" % lport,
            "remote": "127.0.0.1:%d" % cport,
        },
    }

    desc["tcp6"] = None
    if socket.has_ipv6:
        try:
            l6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        except OSError as e:
            log("no IPv6 socket: %s" % e)
        else:
            try:
                l6.bind(("::1", 0))
                l6.listen(1)
            except OSError as e:
                log("no IPv6 loopback: %s" % e)
                l6.close()
            else:
                MIX.append(l6)
                desc["tcp6"] = {
                    "listen": {
                        "fd": l6.fileno(),
                        "local": "[::1]:%d" % l6.getsockname()[1],
                    }
                }

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    MIX.append(udp)
    desc["udp"] = {"fd": udp.fileno(), "local": "127.0.0.1:%d" % udp.getsockname()[1]}

    a, b = socket.socketpair()
    MIX.extend([a, b])
    desc["unix"] = [a.fileno(), b.fileno()]

    r, w = os.pipe()
    MIX.extend([r, w])
    desc["pipe"] = [r, w]

    fifo_path = os.path.join(ARGS.db, "mix%s.fifo" % suffix)
    os.mkfifo(fifo_path)
    fifo = os.open(fifo_path, os.O_RDWR | os.O_NONBLOCK)
    MIX.append(fifo)
    desc["fifo"] = {"fd": fifo, "path": os.path.realpath(fifo_path)}

    dir_fd = os.open(ARGS.db, os.O_RDONLY)
    MIX.append(dir_fd)
    desc["dir"] = {"fd": dir_fd, "path": os.path.realpath(ARGS.db)}

    deleted_path = os.path.realpath(os.path.join(ARGS.db, "mix-deleted%s.txt" % suffix))
    deleted = open(deleted_path, "w+", encoding="utf-8")
    deleted.write("gone\n")
    deleted.flush()
    os.unlink(deleted_path)
    MIX.append(deleted)
    desc["deleted"] = {"fd": deleted.fileno(), "path": deleted_path + " (deleted)"}

    desc["eventfd"] = None
    if hasattr(os, "eventfd"):
        efd = os.eventfd(0)
        MIX.append(efd)
        desc["eventfd"] = efd

    ep = select.epoll()
    MIX.append(ep)
    desc["epoll"] = ep.fileno()

    desc["inotify"] = None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        ifd = libc.inotify_init1(0)
    except (OSError, AttributeError) as e:
        log("no inotify: %s" % e)
    else:
        if ifd >= 0:
            MIX.append(ifd)
            desc["inotify"] = ifd
        else:
            log("inotify_init1 failed: errno %d" % ctypes.get_errno())

    MIX.append(desc)
    return desc


def open_journal():
    """A SQLite connection in rollback-journal mode in the middle of a write: SQLite
    keeps DB/journal.db-journal open until the transaction ends, which is never."""
    path = os.path.realpath(os.path.join(ARGS.db, "journal.db"))
    conn = sqlite3.connect(path, check_same_thread=False, timeout=10, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO t (x) VALUES (1)")
    LEAKED.append(conn)
    opened = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            continue  # listdir's own FD, closed by now
        if target.startswith(path):
            opened.append(int(fd))
    return {"database": path, "fds": sorted(opened)}


def int_param(query, name, default):
    values = query.get(name)
    if not values or values[0] == "":
        return default
    n = int(values[0])
    if n < 0:
        raise ValueError("%s must be >= 0" % name)
    return n


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "testserver/1"

    def log_message(self, fmt, *args):
        log("%s %s" % (self.address_string(), fmt % args))

    def send_body(self, status, body, content_type="application/json"):
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def health_doc(self, status):
        return json.dumps(
            {
                "status": status,
                "sessions": COUNTERS["sessions"],
                "active_streams": COUNTERS["active_streams"],
                "active_runs": COUNTERS["active_runs"],
                "uptime_seconds": int(time.monotonic() - STARTED),
            }
        )

    def do_GET(self):
        url = urlparse(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        try:
            if url.path == "/health":
                deep = query.get("deep", [""])[0].lower() in ("1", "true", "yes", "on")
                self.health(deep)
            elif url.path == "/control/leak":
                with LOCK:
                    leak_sqlite(int(query.get("n", ["1"])[0]))
                    count = fd_count()
                self.send_body(200, str(count), "text/plain")
            elif url.path == "/control/files":
                with LOCK:
                    leak_files(int(query.get("n", ["1"])[0]))
                    count = fd_count()
                self.send_body(200, str(count), "text/plain")
            elif url.path == "/control/fds":
                self.send_body(200, str(fd_count()), "text/plain")
            elif url.path == "/control/busy":
                try:
                    with LOCK:
                        runs = int_param(query, "runs", COUNTERS["active_runs"])
                        streams = int_param(query, "streams", COUNTERS["active_streams"])
                        COUNTERS["active_runs"] = runs
                        COUNTERS["active_streams"] = streams
                except ValueError as e:
                    self.send_body(400, "%s\n" % e, "text/plain")
                    return
                self.send_body(200, json.dumps(COUNTERS))
            elif url.path == "/control/sessions":
                try:
                    with LOCK:
                        COUNTERS["sessions"] = int_param(query, "n", COUNTERS["sessions"])
                except ValueError as e:
                    self.send_body(400, "%s\n" % e, "text/plain")
                    return
                self.send_body(200, json.dumps(COUNTERS))
            elif url.path == "/control/mix":
                with LOCK:
                    desc = open_mix()
                self.send_body(200, json.dumps(desc))
            elif url.path == "/control/journal":
                with LOCK:
                    desc = open_journal()
                self.send_body(200, json.dumps(desc))
            elif url.path == "/control/mode":
                global MEMORY_MODE
                mode = query.get("m", [""])[0].strip()
                if mode and mode not in MODES:
                    self.send_body(400, "unknown mode %r\n" % mode, "text/plain")
                    return
                MEMORY_MODE = mode or None
                self.send_body(200, (mode or "cleared") + "\n", "text/plain")
            else:
                self.send_body(404, '{"error": "not found"}')
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def deep_doc(self, mode):
        """Upstream's deep payload: the shallow fields, what _run_lifecycle_health and
        _accept_loop_health add, and the checks of _deep_health_checks."""

        def timed(check):
            t0 = time.time()
            result = check()
            result["ms"] = round((time.time() - t0) * 1000, 1)
            return result

        def state_db():
            path = os.path.join(ARGS.db, "state.db")
            if mode == "state_db":
                # A real failure: a directory where SQLite needs a file.
                path = ARGS.db
            elif not os.path.exists(path):
                return {"status": "missing"}
            try:
                conn = sqlite3.connect(path)
                try:
                    conn.execute("PRAGMA schema_version").fetchone()
                finally:
                    conn.close()
            except Exception as e:  # upstream reports the type, never the text
                return {"status": "error", "error": type(e).__name__}
            return {"status": "ok"}

        with LOCK:
            counters = dict(COUNTERS)
        streams = counters["active_streams"]
        checks = {
            "streams_lock": timed(lambda: {"status": "ok", "active_streams": streams}),
            "stream_runtime": {
                "status": "ok",
                "active_streams": streams,
                "total_subscribers": 0,
                "total_offline_buffered_events": 0,
                "streams": [],
            },
            "sessions": timed(lambda: {"status": "ok", "count": counters["sessions"]}),
            "projects": timed(lambda: {"status": "ok", "count": 0}),
            "state_db": timed(state_db),
        }
        healthy = all(c.get("status") in ("ok", "missing") for c in checks.values())
        doc = {
            "status": "ok" if healthy else "degraded",
            "sessions": counters["sessions"],
            "active_streams": streams,
            "active_runs": counters["active_runs"],
            "runs": [],
            "last_run_finished_at": None,
            "server_started_at": STARTED_AT,
            "uptime_seconds": round(time.monotonic() - STARTED, 1),
            "accept_loop": {
                "requests_total": REQUESTS["total"],
                "last_request_at": round(REQUESTS["last_at"], 3),
            },
            "checks": checks,
        }
        return (200 if healthy else 503), json.dumps(doc)

    def health(self, deep=False):
        mode = current_mode()
        REQUESTS["total"] += 1
        REQUESTS["last_at"] = time.time()
        if deep and mode in ("ok", "state_db"):
            status, body = self.deep_doc(mode)
            self.send_body(status, body)
            return
        if mode == "503":
            self.send_body(503, self.health_doc("degraded"))
        elif mode == "hang":
            self.close_connection = True
            NEVER.wait()
        elif mode == "reset":
            self.close_connection = True
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            self.connection.close()
        elif mode == "dribble":
            data = self.health_doc("ok").encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.flush()
            for i in range(len(data)):
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                time.sleep(1)
        elif mode == "big":
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(BIG_BODY_BYTES))
            self.end_headers()
            chunk = b" " * 65536
            sent = 0
            while sent < BIG_BODY_BYTES:
                self.wfile.write(chunk)
                sent += len(chunk)
        elif mode == "nobody":
            self.send_body(200, '{"hello": "world"}')
        elif mode == "state_db":
            # Only the deep check opens state.db: plain /health does not notice.
            self.send_body(200, self.health_doc("ok"))
        else:
            if mode != "ok":
                log("unknown mode %r, answering ok" % mode)
            self.send_body(200, self.health_doc("ok"))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    ssl_context = None  # set by --tls-cert/--tls-key

    def finish_request(self, request, client_address):
        """Runs in the connection's own thread: the TLS handshake happens here, so a
        client that stalls in it (or rejects the certificate) holds only itself."""
        if self.ssl_context is None:
            return super().finish_request(request, client_address)
        try:
            request.settimeout(30)
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            log("client %s: TLS handshake failed: %s" % (client_address, e))
            return
        try:
            tls.settimeout(None)
            return super().finish_request(tls, client_address)
        finally:
            tls.close()

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, OSError)):
            log("client %s: %s" % (client_address, exc))
        else:
            super().handle_error(request, client_address)


def read_port(path):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def write_atomically(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def bind():
    port = read_port(ARGS.port_file) if ARGS.port_file else None
    if port is None:
        server = Server(("127.0.0.1", 0), Handler)
        if ARGS.port_file:
            write_atomically(ARGS.port_file, "%d\n" % server.server_address[1])
        return server
    deadline = time.monotonic() + BIND_RETRY_SECONDS
    while True:
        try:
            return Server(("127.0.0.1", port), Handler)
        except OSError as e:
            if e.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                raise
            log("port %d in use, retrying" % port)
            time.sleep(0.2)


def on_usr1(_signum, _frame):
    with open(os.path.join(ARGS.db, "usr1.log"), "a", encoding="utf-8") as f:
        f.write("%d stack dump\n" % os.getpid())


def on_sigterm(_signum, _frame):
    with open(os.path.join(ARGS.db, "sigterm.log"), "a", encoding="utf-8") as f:
        f.write("%d SIGTERM handled\n" % os.getpid())
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


LISTENER = None


def on_usr2_wedge_d(_signum, _frame):
    fifo = os.path.join(ARGS.db, "wedge.fifo")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    log("SIGUSR2: entering uninterruptible sleep on %s" % fifo)
    # The child gets a copy of every FD until it execs: not of the listening socket,
    # which would keep the port held after this process is killed.
    os.posix_spawn(
        "/bin/true",
        ["true"],
        dict(os.environ),
        file_actions=[
            (os.POSIX_SPAWN_CLOSE, LISTENER.fileno()),
            (os.POSIX_SPAWN_OPEN, 3, fifo, os.O_RDONLY, 0),
        ],
    )


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port-file")
    p.add_argument("--pid-log")
    p.add_argument("--pidfile")
    p.add_argument("--db", default=".")
    p.add_argument("--mode-file")
    p.add_argument("--ignore-sigterm", action="store_true")
    p.add_argument("--log-sigterm", action="store_true")
    p.add_argument("--wedge-d-on-usr2", action="store_true")
    p.add_argument("--startup-delay", type=float, default=0.0)
    p.add_argument("--fail-if-exists")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    ARGS = p.parse_args()
    if bool(ARGS.tls_cert) != bool(ARGS.tls_key):
        p.error("--tls-cert and --tls-key go together")

    if ARGS.fail_if_exists and os.path.exists(ARGS.fail_if_exists):
        log("%s exists: failing at start-up" % ARGS.fail_if_exists)
        sys.exit(1)

    if ARGS.pid_log:
        with open(ARGS.pid_log, "a", encoding="utf-8") as f:
            f.write("%d\n" % os.getpid())
    if ARGS.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif ARGS.log_sigterm:
        signal.signal(signal.SIGTERM, on_sigterm)
    # Like Hermes WebUI, SIGUSR1 dumps the thread stacks; here it leaves a record of
    # the signal in DB/usr1.log so a test can see the pre-kill signal arrived.
    signal.signal(signal.SIGUSR1, on_usr1)
    if ARGS.wedge_d_on_usr2:
        signal.signal(signal.SIGUSR2, on_usr2_wedge_d)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4096:
        want = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if ARGS.pidfile:
        write_atomically(ARGS.pidfile, "%d\n" % os.getpid())
    if ARGS.startup_delay > 0:
        time.sleep(ARGS.startup_delay)

    global LISTENER
    server = bind()
    LISTENER = server.socket
    scheme = "http"
    if ARGS.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(ARGS.tls_cert, ARGS.tls_key)
        server.ssl_context = ctx
        scheme = "https"
    log("listening on %s://127.0.0.1:%d" % (scheme, server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
