#!/usr/bin/env python3
"""The old Hermes bootstrap shape, for watchdog's orphan tests: a supervised start
script that starts the server in a NEW SESSION, detached, and exits 0 at once.

    double_fork_start.py --port-file F --log FILE [--linger S] -- SERVER ARGV...

A supervisor that keeps this script alive (supervisord `autorestart=true`, launchd
`KeepAlive`, systemd `Restart=always`) sees its job exit, respawns it, and so on, while
the server it started first - the orphan - keeps the port: the restart loop around a
live orphan of the incident report.

To keep that loop cheap on a small machine the script starts nothing while the port in
--port-file answers: it says so, lingers --linger seconds (a bootstrap doing its other
work) and exits 0. Either way the server is never its child for long: it is started
with start_new_session=True and the script exits without waiting for it.
"""

import argparse
import os
import socket
import subprocess
import sys
import time


def log(msg):
    sys.stderr.write("double_fork_start[%d]: %s\n" % (os.getpid(), msg))
    sys.stderr.flush()


def port_answers(port_file):
    try:
        with open(port_file, encoding="utf-8") as f:
            text = f.read().strip()
    except FileNotFoundError:
        return False
    if not text.isdigit():
        return False
    try:
        with socket.create_connection(("127.0.0.1", int(text)), timeout=0.5):
            return True
    except OSError:
        return False


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--linger", type=float, default=2.0)
    p.add_argument("server", nargs=argparse.REMAINDER)
    args = p.parse_args()
    server = args.server[1:] if args.server[:1] == ["--"] else args.server
    if not server:
        p.error("no server command after --")

    if port_answers(args.port_file):
        log("the server already answers; not starting another")
        time.sleep(args.linger)
        return 0
    with open(args.log, "ab") as out:
        child = subprocess.Popen(
            server,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            close_fds=True,
        )
    log("started the server as PID %d in a new session; exiting" % child.pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
