#!/usr/bin/env python3
"""Stand-ins for `launchctl` and `systemctl`, for watchdog's tests (neither launchd nor a
systemd PID 1 can run on the test machine). Python 3 standard library only.

    fake_supervisor.py --state DIR start                  start the job's server (test setup)
    fake_supervisor.py --state DIR launchctl ARGS...      behave like launchctl
    fake_supervisor.py --state DIR systemctl ARGS...      behave like systemctl

The test installs two tiny wrappers named `launchctl` and `systemctl` in a bin directory
prepended to PATH, each exec'ing this script with its state directory. DIR holds:

  job.json    written by the test: {"label" or "unit": NAME, "argv": [...], "env": {...},
              "cwd": DIR, "log": FILE, "fixture": launchctl print fixture (launchd),
              "domain": optional launchd domain holding the job ("user/0", "system";
              without it the job answers in system and in any gui/<uid>),
              "pid_of": optional PID launchd lists and prints for the job instead of
              the server's (a job whose process is another, e.g. the watchdog's)}
  job.pid     the PID of the server the "supervisor" runs now (written here)
  calls.log   one line per launchctl/systemctl call: the tool and its arguments, joined
              by single spaces (appended here)
  mode        optional; "start-limit": `systemctl restart` stops the server, then fails
              as systemd does once StartLimitBurst is reached (exit 1), and `show` says
              ActiveState=failed, Result=start-limit-hit, MainPID=0 from then on
  failed      written once the start limit was hit

Supported calls (anything else exits 64 with a usage message, so a wrong argv fails the
test loudly):
  launchctl print <domain>/<label>        the fixture's text for the job: header, pid
                                          (when running), state, program, arguments
  launchctl print <domain>                the domain's `services` listing: the job's line
                                          in its domain, and one job of Apple's
  launchctl kickstart -k <domain>/<label> kill the running server, start it again
  systemctl show -p P1,P2,... UNIT        the requested properties, one KEY=VALUE a line
                                          (another unit: LoadState=not-found, inactive,
                                          MainPID=0, exit 0, as systemctl answers)
  systemctl restart UNIT                  kill the running server, start it again
A label or unit other than the job's is unknown, as it would be to the real tools.
The server started here runs in a new session with the test's environment (minus any
supervisor identity) plus job.json's env, as launchd or systemd would start it.
"""

import json
import os
import signal
import subprocess
import sys
import time

SCRUBBED = (
    "XPC_SERVICE_NAME",
    "SUPERVISOR_ENABLED",
    "SUPERVISOR_SERVER_URL",
    "SUPERVISOR_PROCESS_NAME",
    "SUPERVISOR_GROUP_NAME",
    "INVOCATION_ID",
    "JOURNAL_STREAM",
    "NOTIFY_SOCKET",
)
STOP_TIMEOUT = 5.0


class State:
    def __init__(self, path):
        self.path = path
        with open(os.path.join(path, "job.json"), encoding="utf-8") as f:
            self.job = json.load(f)

    def file(self, name):
        return os.path.join(self.path, name)

    def read(self, name):
        try:
            with open(self.file(name), encoding="utf-8") as f:
                return f.read().strip()
        except FileNotFoundError:
            return ""

    def write(self, name, text):
        tmp = self.file(name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, self.file(name))

    def record(self, tool, args):
        with open(self.file("calls.log"), "a", encoding="utf-8") as f:
            f.write(" ".join([tool] + args) + "\n")

    def running_pid(self):
        text = self.read("job.pid")
        if not text.isdigit():
            return None
        pid = int(text)
        return pid if is_server(pid) else None


def is_server(pid):
    """Alive (not a zombie) and still the test server: never signal a reused PID."""
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8") as f:
            stat = f.read()
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmdline = f.read()
    except OSError:
        return False
    state = stat[stat.rfind(")") + 1 :].split()[0]
    return state not in ("Z", "X", "x") and b"testserver.py" in cmdline


def stop(state):
    pid = state.running_pid()
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while is_server(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if is_server(pid):
        os.kill(pid, signal.SIGKILL)
    state.write("job.pid", "")


def start(state):
    job = state.job
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env.update(job.get("env", {}))
    with open(job["log"], "ab") as out:
        child = subprocess.Popen(
            job["argv"],
            cwd=job.get("cwd"),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            close_fds=True,
        )
    state.write("job.pid", "%d\n" % child.pid)
    return child.pid


def usage(tool, args):
    sys.stderr.write("fake %s: unsupported call: %s\n" % (tool, " ".join(args)))
    return 64


# --- launchctl -----------------------------------------------------------------------


def holds(state, domain):
    """Whether the job is in `domain`."""
    wanted = state.job.get("domain")
    if wanted is not None:
        return domain == wanted
    return domain == "system" or domain.startswith("gui/")


def is_domain(target):
    """`system`, `gui/501`, `user/0`: a domain, not a service in one."""
    parts = target.split("/")
    return parts == ["system"] or (len(parts) == 2 and parts[0] in ("gui", "user"))


def job_pid(state):
    """The PID launchd shows for the job."""
    if "pid_of" in state.job:
        return state.job["pid_of"]
    return state.running_pid()


def listing(state, domain):
    """`launchctl print <domain>`, with only what the watchdog reads: the services block
    (PID, last exit status, label), laid out as tests/fixtures/launchctl/domain-*.txt."""
    lines = ["%s = {" % domain, "\ttype = %s" % domain.split("/")[0], "", "\tservices = {"]
    if holds(state, domain):
        lines.append("\t\t%8d      - \t%s" % (job_pid(state) or 0, state.job["label"]))
    lines.append("\t\t       0      0 \tcom.apple.cloudd")
    lines += ["\t}", "", "\tunmanaged processes = {", "\t}", "}"]
    return "\n".join(lines) + "\n"


def launchctl(state, args):
    label = state.job["label"]
    if len(args) == 2 and args[0] == "print" and is_domain(args[1]):
        sys.stdout.write(listing(state, args[1]))
        return 0
    if len(args) == 2 and args[0] == "print":
        target = args[1]
    elif len(args) == 3 and args[:2] == ["kickstart", "-k"]:
        target = args[2]
    else:
        return usage("launchctl", args)
    domain, _, name = target.rpartition("/")
    if name != label or not holds(state, domain):
        sys.stderr.write(
            'Could not find service "%s" in domain for port\n' % name
        )
        return 113
    if args[0] == "kickstart":
        stop(state)
        start(state)
        return 0
    sys.stdout.write(print_job(state, target))
    return 0


def print_job(state, target):
    """The fixture's text, rewritten for this job: its target, its PID (or none), its
    state, its program and arguments."""
    with open(state.job["fixture"], encoding="utf-8") as f:
        lines = f.read().splitlines()
    pid = job_pid(state)
    argv = state.job["argv"]
    out = []
    in_arguments = False
    for line in lines:
        stripped = line.strip()
        if line.startswith("#"):
            continue
        if not out:
            out.append("%s = {" % target)
            continue
        if in_arguments:
            if stripped == "}":
                in_arguments = False
                out.append(line)
            continue
        if line.startswith("\tpid = "):
            if pid is not None:
                out.append("\tpid = %d" % pid)
            continue
        if line.startswith("\tstate = "):
            out.append("\tstate = %s" % ("running" if pid is not None else "not running"))
            continue
        if line.startswith("\tprogram = "):
            out.append("\tprogram = %s" % argv[0])
            continue
        if line.startswith("\targuments = {"):
            out.append(line)
            out.extend("\t\t%s" % a for a in argv)
            in_arguments = True
            continue
        out.append(line)
    return "\n".join(out) + "\n"


# --- systemctl -----------------------------------------------------------------------


def systemctl(state, args):
    unit = state.job["unit"]
    if len(args) == 4 and args[0] == "show" and args[1] == "-p":
        return show(state, args[2].split(","), args[3])
    if len(args) == 2 and args[0] == "restart":
        if args[1] != unit:
            sys.stderr.write("Failed to restart %s: Unit %s not found.\n" % (args[1], args[1]))
            return 5
        return restart(state, unit)
    return usage("systemctl", args)


def show(state, properties, name):
    known = name == state.job["unit"]
    pid = state.running_pid() if known else None
    failed = known and state.read("failed") != ""
    if failed:
        values = {"ActiveState": "failed", "SubState": "failed", "Result": "start-limit-hit"}
    elif pid is not None:
        values = {"ActiveState": "active", "SubState": "running", "Result": "success"}
    else:
        values = {"ActiveState": "inactive", "SubState": "dead", "Result": "success"}
    values["MainPID"] = str(pid or 0)
    values["NRestarts"] = "0"
    values["LoadState"] = "loaded" if known else "not-found"
    for prop in properties:
        sys.stdout.write("%s=%s\n" % (prop, values.get(prop, "")))
    return 0


def restart(state, unit):
    stop(state)
    if state.read("mode") == "start-limit":
        state.write("failed", "start-limit-hit\n")
        sys.stderr.write(
            "Job for %s failed.\n"
            'See "systemctl status %s" and "journalctl -xeu %s" for details.\n'
            % (unit, unit, unit)
        )
        return 1
    start(state)
    return 0


def main(argv):
    if len(argv) < 3 or argv[0] != "--state":
        sys.stderr.write(__doc__)
        return 64
    state = State(argv[1])
    tool, args = argv[2], argv[3:]
    if tool == "start":
        print(start(state))
        return 0
    state.record(tool, args)
    if tool == "launchctl":
        return launchctl(state, args)
    if tool == "systemctl":
        return systemctl(state, args)
    return usage(tool, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
