//! End-to-end tests of `watchdog fds` (docs/REPORT.md, "The census") on a real test server
//! holding real SQLite WAL handles, TCP/UDP/unix sockets, pipes, a named FIFO, a directory,
//! a deleted file and anonymous inodes, checked against what the test reads from /proc
//! itself (`ProcCensus`, `common/census.rs`) and against `lsof`. Every test has its own
//! temp dir, server and config; see `common/env.rs`.

// Linux only: its oracle is the census the test reads from /proc itself (`ProcCensus`);
// tests/portable.rs checks the census on every Unix against lsof.
#![cfg(target_os = "linux")]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;

use serde_json::Value;

use common::*;

const DB_CONNECTIONS: usize = 5;
/// Enough connections (two FDs each) for a table of over 1,024 FDs.
const LARGE_DB_CONNECTIONS: usize = 600;
const PLAIN_FILES: usize = 4;

fn setup() -> (TestEnv, TestServer, ConfigToml) {
    let env = TestEnv::new();
    let server = TestServer::start(&env, ServerOpts::default());
    let cfg = env.base_config(&server);
    (env, server, cfg)
}

/// A server holding `connections` WAL connections, `PLAIN_FILES` plain file handles,
/// the mix, and a rollback-journal database in mid-write (journal.db + journal.db-journal);
/// returns the mix description.
fn load_server(server: &TestServer, connections: usize) -> Value {
    leak(server, connections);
    leak_files(server, PLAIN_FILES);
    let journal = server.control("/control/journal");
    assert!(journal.contains("journal.db"), "{journal}");
    open_mix(server)
}

/// `watchdog fds --json --pid PID`, run between two identical readings of the FD table.
fn census_json(env: &TestEnv, pid: u32) -> (ProcCensus, Value) {
    // --top limits the table, never the JSON: top_paths lists every path.
    let (census, r) = with_stable_fds(pid, || {
        run_watchdog(
            env,
            &["fds", "--json", "--top", "2", "--pid", &pid.to_string()],
        )
    });
    assert_exit(env, &r, 0);
    let doc = report(&r);
    (census, doc)
}

/// A JSON object of name → count as a map (panics on anything else).
#[track_caller]
fn count_map(v: &Value, what: &str) -> BTreeMap<String, u64> {
    v.as_object()
        .unwrap_or_else(|| panic!("{what} is not an object: {v}"))
        .iter()
        .map(|(k, n)| {
            (
                k.clone(),
                n.as_u64()
                    .unwrap_or_else(|| panic!("{what}.{k} is not a count: {n}")),
            )
        })
        .collect()
}

/// `top_paths` as path → count, asserting most-held first and no path twice.
#[track_caller]
fn top_paths_map(fds: &Value) -> BTreeMap<String, u64> {
    let list = fds["top_paths"]
        .as_array()
        .unwrap_or_else(|| panic!("fds.top_paths is not a list: {fds:#}"));
    let mut map = BTreeMap::new();
    let mut prev = u64::MAX;
    for p in list {
        let path = p["path"].as_str().unwrap_or_else(|| panic!("{p}"));
        let count = p["count"].as_u64().unwrap_or_else(|| panic!("{p}"));
        assert!(
            count <= prev,
            "top_paths not most-held first at {p}: {fds:#}"
        );
        prev = count;
        assert!(
            map.insert(path.to_string(), count).is_none(),
            "{path} listed twice in top_paths"
        );
    }
    map
}

/// The census' TCP list as sorted `TcpSock`s (addresses parsed, so `[::]:0` and
/// `[0:0:0:0:0:0:0:0]:0` are the same).
#[track_caller]
fn tcp_list(fds: &Value) -> Vec<TcpSock> {
    let list = fds["tcp"]
        .as_array()
        .unwrap_or_else(|| panic!("fds.tcp is not a list: {fds:#}"));
    let mut out: Vec<TcpSock> = list
        .iter()
        .map(|t| {
            let addr = |k: &str| -> SocketAddr {
                let s = t[k]
                    .as_str()
                    .unwrap_or_else(|| panic!("tcp entry lacks {k}: {t}"));
                s.parse()
                    .unwrap_or_else(|e| panic!("tcp {k} {s:?} is not an address ({e}): {t}"))
            };
            TcpSock {
                fd: t["fd"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("tcp entry lacks fd: {t}"))
                    as i32,
                proto: t["proto"].as_str().unwrap_or_default().to_string(),
                local: addr("local"),
                remote: addr("remote"),
                state: t["state"].as_str().unwrap_or_default().to_string(),
            }
        })
        .collect();
    out.sort();
    out
}

/// The census' SQLite families, sorted, with their `total` checked.
#[track_caller]
fn sqlite_list(fds: &Value) -> Vec<SqliteFamily> {
    let list = fds["sqlite"]
        .as_array()
        .unwrap_or_else(|| panic!("fds.sqlite is not a list: {fds:#}"));
    let mut out: Vec<SqliteFamily> = list
        .iter()
        .map(|f| {
            let n = |k: &str| {
                f[k].as_u64()
                    .unwrap_or_else(|| panic!("sqlite family lacks {k}: {f}"))
            };
            let fam = SqliteFamily {
                database: f["database"].as_str().unwrap_or_default().to_string(),
                db: n("db"),
                wal: n("wal"),
                shm: n("shm"),
                journal: n("journal"),
            };
            assert_eq!(n("total"), fam.total(), "family total: {f}");
            fam
        })
        .collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------
// 1. The census equals /proc
// ---------------------------------------------------------------------------------------

#[test]
fn census_json_matches_what_proc_shows() {
    census_matches_proc(DB_CONNECTIONS);
}

/// From 1,024 FDs up the census copies FDs to identify them and names each file once:
/// the same census, kind by kind and path by path.
#[test]
fn census_json_of_a_large_table_matches_what_proc_shows() {
    census_matches_proc(LARGE_DB_CONNECTIONS);
}

fn census_matches_proc(connections: usize) {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    let mix = load_server(&server, connections);
    let pid = server.pid;
    let (census, doc) = census_json(&env, pid);
    if connections >= LARGE_DB_CONNECTIONS {
        assert!(
            census.total() > 1024,
            "not a large table: {}",
            census.total()
        );
    }

    // The test's own reading holds the mix the server says it opened: the oracle is sound.
    let kinds = census.kinds();
    let fd_kind = |fd: &Value| -> String {
        let fd = fd.as_i64().unwrap_or_else(|| panic!("mix fd {fd}")) as i32;
        census
            .fds
            .iter()
            .find(|f| f.fd == fd)
            .unwrap_or_else(|| panic!("mix FD {fd} not open: {census:?}"))
            .kind
            .clone()
    };
    assert_eq!(fd_kind(&mix["tcp"]["listen"]["fd"]), "tcp");
    assert_eq!(fd_kind(&mix["udp"]["fd"]), "udp");
    assert_eq!(fd_kind(&mix["unix"][0]), "unix");
    assert_eq!(fd_kind(&mix["pipe"][0]), "pipe");
    assert_eq!(fd_kind(&mix["fifo"]["fd"]), "fifo");
    assert_eq!(fd_kind(&mix["dir"]["fd"]), "directory");
    assert_eq!(fd_kind(&mix["deleted"]["fd"]), "file");
    assert_eq!(fd_kind(&mix["eventfd"]), "eventfd");
    assert_eq!(fd_kind(&mix["epoll"]), "epoll");
    if !mix["inotify"].is_null() {
        assert_eq!(fd_kind(&mix["inotify"]), "inotify");
    }
    if !mix["tcp6"].is_null() {
        assert_eq!(fd_kind(&mix["tcp6"]["listen"]["fd"]), "tcp6");
    }
    assert!(kinds.get("device").is_some_and(|&n| n >= 1), "{kinds:?}");

    // target
    assert_eq!(doc["target"]["pid"], pid, "{doc:#}");
    assert!(
        doc["target"]["argv"].as_array().is_some_and(|a| a
            .iter()
            .any(|s| s.as_str().is_some_and(|s| s.ends_with("testserver.py")))),
        "{doc:#}"
    );
    let fds = &doc["fds"];

    // total, kinds, coarse kinds
    assert_eq!(fds["total"].as_u64(), Some(census.total()), "{fds:#}");
    let got_kinds = count_map(&fds["kinds"], "fds.kinds");
    assert_eq!(got_kinds, kinds, "fds.kinds vs /proc\n{fds:#}");
    assert!(got_kinds.values().all(|&n| n > 0), "zero entry in kinds");
    assert_eq!(got_kinds.values().sum::<u64>(), census.total());
    assert_eq!(
        count_map(&fds["by_kind"], "fds.by_kind"),
        census.by_kind(),
        "fds.by_kind vs /proc\n{fds:#}"
    );

    // limit
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files in /proc/PID/limits");
    let cols: Vec<&str> = line.split_whitespace().collect();
    let parse = |s: &str| s.parse::<u64>().ok(); // "unlimited" → null
    assert_eq!(fds["limit"]["soft"].as_u64(), parse(cols[3]), "{fds:#}");
    assert_eq!(fds["limit"]["hard"].as_u64(), parse(cols[4]), "{fds:#}");

    // every path with its count, the deleted file marked
    let paths = top_paths_map(fds);
    assert_eq!(paths, census.paths(), "fds.top_paths vs /proc\n{fds:#}");
    let deleted_path = mix["deleted"]["path"].as_str().unwrap();
    assert!(deleted_path.ends_with(" (deleted)"));
    assert_eq!(paths.get(deleted_path), Some(&1), "{fds:#}");
    assert_eq!(fds["deleted"].as_u64(), Some(census.deleted()), "{fds:#}");
    assert_eq!(census.deleted(), 1);

    // [[fds.paths]] pattern counts
    let state_db = fds["patterns"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["pattern"] == "state.db"))
        .unwrap_or_else(|| panic!("no state.db pattern: {fds:#}"));
    let want = census
        .fds
        .iter()
        .filter(|f| f.target.contains("state.db"))
        .count() as u64;
    assert_eq!(state_db["count"].as_u64(), Some(want), "{fds:#}");

    // SQLite families: one, state.db, a db and a -wal handle per connection
    let families = sqlite_list(fds);
    assert_eq!(
        families,
        census.sqlite_families(),
        "fds.sqlite vs /proc\n{fds:#}"
    );
    assert_eq!(families.len(), 2, "state.db and journal.db: {families:?}");
    let fam = families
        .iter()
        .find(|f| f.database.ends_with("/db/state.db"))
        .unwrap_or_else(|| panic!("no state.db family: {families:?}"));
    assert_eq!(fam.db, connections as u64, "{fam:?}");
    assert_eq!(fam.wal, connections as u64, "{fam:?}");
    assert!(fam.shm >= 1, "{fam:?}");
    assert_eq!(fam.journal, 0, "{fam:?}");
    let jf = families
        .iter()
        .find(|f| f.database.ends_with("/db/journal.db"))
        .unwrap_or_else(|| panic!("no journal.db family: {families:?}"));
    assert_eq!((jf.db, jf.wal, jf.shm, jf.journal), (1, 0, 0, 1), "{jf:?}");

    // TCP: the whole list as /proc shows it, and the mix's three ends by FD
    let tcp = tcp_list(fds);
    assert_eq!(tcp, census.tcp, "fds.tcp vs /proc\n{fds:#}");
    let find = |fd: &Value| -> &TcpSock {
        let fd = fd.as_i64().unwrap() as i32;
        tcp.iter()
            .find(|t| t.fd == fd)
            .unwrap_or_else(|| panic!("FD {fd} not in fds.tcp: {tcp:?}"))
    };
    let addr = |v: &Value| -> SocketAddr { v.as_str().unwrap().parse().unwrap() };
    let listen = find(&mix["tcp"]["listen"]["fd"]);
    assert_eq!(listen.state, "LISTEN");
    assert_eq!(listen.proto, "tcp");
    assert_eq!(listen.local, addr(&mix["tcp"]["listen"]["local"]));
    assert_eq!(listen.remote, "0.0.0.0:0".parse::<SocketAddr>().unwrap());
    for end in ["client", "accepted"] {
        let t = find(&mix["tcp"][end]["fd"]);
        assert_eq!(t.state, "ESTABLISHED", "{end}: {t:?}");
        assert_eq!(t.local, addr(&mix["tcp"][end]["local"]), "{end}: {t:?}");
        assert_eq!(t.remote, addr(&mix["tcp"][end]["remote"]), "{end}: {t:?}");
    }
    let server_listener = tcp
        .iter()
        .find(|t| t.state == "LISTEN" && t.local.port() == server.port)
        .unwrap_or_else(|| panic!("the server's own listener is missing: {tcp:?}"));
    assert_eq!(server_listener.proto, "tcp");
    if !mix["tcp6"].is_null() {
        let l6 = find(&mix["tcp6"]["listen"]["fd"]);
        assert_eq!(l6.proto, "tcp6");
        assert_eq!(l6.state, "LISTEN");
        assert_eq!(l6.local, addr(&mix["tcp6"]["listen"]["local"]));
        assert_eq!(l6.remote, "[::]:0".parse::<SocketAddr>().unwrap());
    }
}

/// `[[fds.paths]]` counts FDs whose *path* contains the pattern: the census must count
/// exactly what `check` counts, and a socket (no path) never matches an address.
#[test]
fn census_patterns_count_paths_as_check_does() {
    let (env, server, mut cfg) = setup();
    cfg.fd_paths(&[("state.db", 500), ("127.0.0.1", 100)])
        .write(&env);
    load_server(&server, DB_CONNECTIONS);
    let pid = server.pid;
    let (census, doc) = census_json(&env, pid);
    let r = run_watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 0);
    let rep = report(&r);
    let pattern_counts = |fds: &Value| -> BTreeMap<String, u64> {
        fds["patterns"]
            .as_array()
            .unwrap_or_else(|| panic!("no patterns: {fds:#}"))
            .iter()
            .map(|p| {
                (
                    p["pattern"].as_str().unwrap().to_string(),
                    p["count"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let want: BTreeMap<String, u64> = ["state.db", "127.0.0.1"]
        .iter()
        .map(|pat| {
            let n = census.fds.iter().filter(|f| f.target.contains(pat)).count() as u64;
            (pat.to_string(), n)
        })
        .collect();
    assert_eq!(want["127.0.0.1"], 0, "no FD path holds an address");
    assert_eq!(
        pattern_counts(&rep["fds"]),
        want,
        "check --json patterns vs /proc"
    );
    assert_eq!(
        pattern_counts(&doc["fds"]),
        want,
        "fds --json patterns vs /proc (and vs check)"
    );
}

// ---------------------------------------------------------------------------------------
// 2. The census equals lsof
// ---------------------------------------------------------------------------------------

#[test]
#[ignore = "needs lsof (apt-get install lsof): run by script/test --all and .ci/run"]
fn census_agrees_with_lsof_kind_by_kind() {
    census_agrees_with_lsof(DB_CONNECTIONS);
}

#[test]
#[ignore = "needs lsof (apt-get install lsof): run by script/test --all and .ci/run"]
fn census_of_a_large_table_agrees_with_lsof_kind_by_kind() {
    census_agrees_with_lsof(LARGE_DB_CONNECTIONS);
}

fn census_agrees_with_lsof(connections: usize) {
    require_lsof();
    let (env, server, cfg) = setup();
    cfg.write(&env);
    load_server(&server, connections);
    let pid = server.pid;
    let (census, (lsof, r)) = with_stable_fds(pid, || {
        let lsof = lsof_fds(pid);
        let r = run_watchdog(&env, &["fds", "--json", "--pid", &pid.to_string()]);
        (lsof, r)
    });
    assert_exit(&env, &r, 0);
    let doc = report(&r);
    let fds = &doc["fds"];

    let mut lsof_kinds: BTreeMap<String, u64> = BTreeMap::new();
    for f in &lsof {
        *lsof_kinds.entry(f.kind().to_string()).or_default() += 1;
    }
    // The test's own /proc reading agrees with lsof FD by FD (the oracle is sound) ...
    let lsof_by_fd: Vec<(i32, &str)> = lsof.iter().map(|f| (f.fd, f.kind())).collect();
    let proc_by_fd: Vec<(i32, &str)> = census.fds.iter().map(|f| (f.fd, f.kind.as_str())).collect();
    assert_eq!(lsof_by_fd, proc_by_fd, "lsof vs /proc, FD by FD\n{lsof:#?}");

    // ... and the watchdog agrees with lsof: total, every kind, the TCP FDs.
    assert_eq!(
        fds["total"].as_u64(),
        Some(lsof.len() as u64),
        "fds.total vs lsof's numeric FDs\n{fds:#}\n{lsof:#?}"
    );
    assert_eq!(
        count_map(&fds["kinds"], "fds.kinds"),
        lsof_kinds,
        "fds.kinds vs lsof TYPEs\n{fds:#}\n{lsof:#?}"
    );
    let census_tcp: Vec<(i32, String)> =
        tcp_list(fds).into_iter().map(|t| (t.fd, t.proto)).collect();
    let mut lsof_tcp: Vec<(i32, String)> = lsof
        .iter()
        .filter(|f| f.proto == "TCP")
        .map(|f| (f.fd, f.kind().to_string()))
        .collect();
    lsof_tcp.sort();
    let mut census_tcp_sorted = census_tcp.clone();
    census_tcp_sorted.sort();
    assert_eq!(census_tcp_sorted, lsof_tcp, "TCP FDs: census vs lsof");
    // lsof's "a->b" names the same endpoints as the census' local/remote.
    for t in tcp_list(fds) {
        let l = lsof.iter().find(|f| f.fd == t.fd).unwrap();
        let fmt = |a: SocketAddr| a.to_string();
        let want = if t.state == "LISTEN" {
            fmt(t.local)
        } else {
            format!("{}->{}", fmt(t.local), fmt(t.remote))
        };
        assert_eq!(l.name, want, "FD {}: lsof {l:?} vs census {t:?}", t.fd);
    }
}

// ---------------------------------------------------------------------------------------
// 3. The table
// ---------------------------------------------------------------------------------------

/// Whole-number tokens of a line.
fn numbers(line: &str) -> Vec<u64> {
    line.split(|c: char| !c.is_ascii_digit())
        .filter_map(|t| t.parse().ok())
        .collect()
}

#[test]
fn table_shows_total_sqlite_family_and_top_path() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    // 6 connections (db 6, wal 6, shm 1 → family of 13) and 9 plain handles: the plain
    // file is the top path.
    leak(&server, 6);
    leak_files(&server, 9);
    let pid = server.pid;
    let (census, r) = with_stable_fds(pid, || {
        run_watchdog(&env, &["fds", "--pid", &pid.to_string()])
    });
    assert_exit(&env, &r, 0);
    let out = &r.stdout;
    let total = census.total();
    assert!(
        out.lines().any(|l| {
            let low = l.to_lowercase();
            (low.contains("fd") || low.contains("total")) && numbers(l).contains(&total)
        }),
        "no line shows the total {total}\n{}",
        r.dump()
    );

    let fam = census.sqlite_families();
    assert_eq!(fam.len(), 1, "{fam:?}");
    let fam = &fam[0];
    assert_eq!((fam.db, fam.wal), (6, 6), "{fam:?}");
    assert!(
        out.lines().any(|l| {
            let low = l.to_lowercase();
            let n = numbers(l);
            l.contains("state.db")
                && low.contains("wal")
                && low.contains("shm")
                && n.contains(&fam.total())
                && n.contains(&fam.db)
                && n.contains(&fam.shm)
        }),
        "no SQLite family line for state.db ({} FDs: db {}, wal {}, shm {})\n{}",
        fam.total(),
        fam.db,
        fam.wal,
        fam.shm,
        r.dump()
    );

    let (top_path, top_count) = census.paths().into_iter().max_by_key(|(_, n)| *n).unwrap();
    assert!(top_path.ends_with("plain-file.txt"), "{top_path}");
    assert_eq!(top_count, 9);
    assert!(
        out.lines().any(|l| l.contains(&top_path)
            && numbers(l.replace(&top_path, "").as_str()).contains(&top_count)),
        "no line shows the top path {top_path} with its count {top_count}\n{}",
        r.dump()
    );
    assert_eq!(r.stderr, "", "{}", r.dump());
}

// ---------------------------------------------------------------------------------------
// 4. A process it may not read
// ---------------------------------------------------------------------------------------

const NOBODY: u32 = 65534;
const NOGROUP: u32 = 65534;

#[test]
#[ignore = "needs root (runs the watchdog as nobody against root's process): run by script/test as root and .ci/run"]
fn unreadable_process_exits_4_with_permission_denied_and_no_count() {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    assert_eq!(
        uid, 0,
        "this test starts the process as root and the watchdog as nobody: run it as root \
         (script/test as root runs it; so does .ci/run)"
    );
    let env = TestEnv::new();
    // No server: a config with its defaults pointed into the temp dir.
    env.write_config(&format!(
        "files = []\n[target]\nport = 9\n[log]\nfile = {:?}\n[state]\ndir = {:?}\n",
        env.log_file.to_str().unwrap(),
        env.state_dir.to_str().unwrap()
    ));
    // nobody reads the config (root's, 0644) and a state dir of its own.
    private_state_for(&env, NOBODY, NOGROUP);
    let sleeper = spawn_sleep(); // root's
    let pid = sleeper.pid();
    // Precondition: nobody really cannot read this process's FDs (setpriv itself
    // works, as root: `ls` is refused, in the C locale's words).
    let mut probe = std::process::Command::new("setpriv");
    probe.env("LC_ALL", "C").args([
        &format!("--reuid={NOBODY}"),
        &format!("--regid={NOGROUP}"),
        "--clear-groups",
        "--",
        "ls",
        &format!("/proc/{pid}/fd"),
    ]);
    let pr = run_with_timeout(probe, std::time::Duration::from_secs(10));
    assert_ne!(
        pr.status,
        Some(0),
        "nobody can read /proc/{pid}/fd\n{}",
        pr.dump()
    );
    assert!(
        pr.stderr.contains("Permission denied") && pr.stderr.contains(&format!("/proc/{pid}/fd")),
        "the probe failed for another reason than nobody's permissions\n{}",
        pr.dump()
    );

    for json in [false, true] {
        let pid_s = pid.to_string();
        let mut args = vec!["fds", "--pid", pid_s.as_str()];
        if json {
            args.push("--json");
        }
        let r = run_with_timeout(
            watchdog_cmd_as(&env, NOBODY, NOGROUP, &args),
            WATCHDOG_TIMEOUT,
        );
        assert_exit(&env, &r, 4);
        let err = r.stderr.to_lowercase();
        assert!(
            err.contains("permission denied") && err.contains(&pid_s),
            "stderr must say permission denied and name PID {pid}\n{}",
            r.dump()
        );
        // Never a count of 0: no table line with a 0 count, no JSON total of 0.
        if json && !r.stdout.trim().is_empty() {
            let doc = report(&r);
            assert!(
                doc["fds"].is_null() || doc["fds"]["total"].is_null(),
                "a census was printed for an unreadable process\n{}",
                r.dump()
            );
        } else {
            assert!(
                !r.stdout.lines().any(|l| numbers(l).contains(&0)),
                "stdout shows a 0 for an unreadable process\n{}",
                r.dump()
            );
        }
    }
    assert!(is_alive(pid), "the sleeper was disturbed");
}
