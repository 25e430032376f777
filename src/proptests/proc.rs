//! `/proc/PID/{stat,status,limits,cmdline,environ}`, `/proc/stat` (src/probe/os/linux.rs),
//! the FD directory's names and `getdents64` records (src/probe/os/linux/fd_table.rs),
//! and the supplementary groups a replay restores (src/probe/os/linux/creds.rs).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::UNIX_EPOCH;

use proptest::prelude::*;

use super::{any_bytes, any_text, edits, mutate, mutate_bytes, one_line};
use crate::probe::os::linux::creds::parse_groups;
use crate::probe::os::linux::fd_table::{first_dirent_name, parse_fd_name};
use crate::probe::os::linux::{
    parse_btime, parse_environ, parse_open_files_limit, parse_stat, parse_status,
    split_nul_separated, wall_time,
};
use crate::probe::os::{FdLimit, ProcState, socket_inode};

const STAT: &str = "4242 (python3) S 17 4242 17 0 -1 4194560 1 0 0 0 3 4 0 0 20 0 1 0 \
                    987654 1000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
const STATUS: &str = "Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\n\
                      Pid:\t4242\nPPid:\t17\nUid:\t501\t501\t501\t501\nGid:\t20\t20\t20\t20\n\
                      FDSize:\t64\nGroups:\t20 27\nVmPeak:\t  300000 kB\nVmRSS:\t  179200 kB\n\
                      Threads:\t4\nCapEff:\t0000000000000000\n";
const LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max open files            4096                 524288               files     
Max locked memory         8388608              8388608              bytes     
";
/// What `parse_state` should make of each one-letter state of proc(5).
fn expected_state(code: char) -> ProcState {
    match code {
        'R' | 'S' => ProcState::Running,
        'D' => ProcState::Uninterruptible,
        'T' | 't' => ProcState::Stopped,
        'Z' | 'X' | 'x' => ProcState::Zombie,
        _ => ProcState::Other,
    }
}

/// A `comm` as the kernel prints it in `stat`: up to 15 bytes of anything but NUL,
/// unescaped, so spaces, parentheses and line breaks included.
fn comm() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(vec![' ', '(', ')', '\n', 'Z', '1', ')']),
            5 => any::<char>().prop_filter("no NUL", |c| *c != '\0'),
        ],
        0..15,
    )
    .prop_map(|c| c.into_iter().collect())
}

proptest! {
    #![proptest_config(super::config(256))]

    #[test]
    fn stat_never_panics(text in any_text(), edits in edits()) {
        let _ = parse_stat(&text);
        let _ = parse_stat(&mutate(STAT, &edits));
    }

    #[test]
    fn stat_round_trips(
        pid in 1u32..,
        comm in comm(),
        state in prop::sample::select(vec!['R', 'S', 'D', 'Z', 'T', 't', 'X', 'x', 'I', 'P', 'W', 'K']),
        ppid: u32,
        start_ticks: u64,
        // Fields 5 to 21 and 23 to 52: numbers, some negative (tty_nr, tpgid, nice).
        before in prop::collection::vec(any::<i64>(), 17),
        after in prop::collection::vec(any::<u64>(), 0..30),
    ) {
        let join = |v: Vec<String>| v.join(" ");
        let text = format!(
            "{pid} ({comm}) {state} {ppid} {} {start_ticks} {}\n",
            join(before.iter().map(i64::to_string).collect()),
            join(after.iter().map(u64::to_string).collect()),
        );
        let stat = parse_stat(&text).map_err(TestCaseError::fail)?;
        prop_assert_eq!(stat.state, expected_state(state));
        prop_assert_eq!(stat.ppid, ppid);
        prop_assert_eq!(stat.start_ticks, start_ticks);
    }

    #[test]
    fn btime_never_panics(text in any_text(), edits in edits()) {
        let _ = parse_btime(&text);
        let _ = parse_btime(&mutate("cpu  1 2 3\nbtime 1764316800\nprocesses 7\n", &edits));
    }

    #[test]
    fn btime_round_trips(
        btime: u64,
        before in prop::collection::vec((prop::sample::select(vec!["cpu", "cpu0", "intr", "ctxt"]), any::<u64>()), 0..6),
        after in prop::collection::vec((prop::sample::select(vec!["processes", "procs_running", "softirq"]), any::<u64>()), 0..4),
    ) {
        let line = |(key, n): &(&str, u64)| format!("{key} {n} 0 0\n");
        let text: String = before.iter().map(line)
            .chain([format!("btime {btime}\n")])
            .chain(after.iter().map(line))
            .collect();
        prop_assert_eq!(parse_btime(&text), Some(btime));
    }

    #[test]
    fn status_never_panics(text in any_text(), edits in edits()) {
        let _ = parse_status(&text);
        let _ = parse_status(&mutate(STATUS, &edits));
    }

    /// The kernel escapes `\n` and `\\` in `Name:`, so no name can add a line.
    #[test]
    fn status_round_trips(
        name in one_line(16),
        uids: [u32; 4],
        gids: [u32; 4],
        rss_kib: Option<u64>,
    ) {
        let row = |ids: [u32; 4]| ids.map(|id| id.to_string()).join("\t");
        let rss = rss_kib.map_or(String::new(), |kib| format!("VmRSS:\t{kib:>8} kB\n"));
        let text = format!(
            "Name:\t{name}\nUmask:\t0022\nState:\tS (sleeping)\nPid:\t4242\nPPid:\t1\n\
             Uid:\t{}\nGid:\t{}\nFDSize:\t64\nGroups:\t20 27\nVmPeak:\t  300000 kB\n{rss}\
             Threads:\t4\n",
            row(uids),
            row(gids),
        );
        let status = parse_status(&text);
        prop_assert_eq!(status.uid, Some(uids[0]));
        prop_assert_eq!(status.gid, Some(gids[0]));
        prop_assert_eq!(status.rss_kib, rss_kib);
    }

    #[test]
    fn limits_never_panic(text in any_text(), edits in edits()) {
        let _ = parse_open_files_limit(&text);
        let _ = parse_open_files_limit(&mutate(LIMITS, &edits));
    }

    #[test]
    fn limits_round_trip(soft: Option<u64>, hard: Option<u64>) {
        let show = |v: Option<u64>| v.map_or("unlimited".to_string(), |v| v.to_string());
        // The kernel's "%-25s %-20s %-20s %-10s\n".
        let row = |name: &str, soft: &str, hard: &str, unit: &str| {
            format!("{name:<25} {soft:<20} {hard:<20} {unit:<10}\n")
        };
        let text = [
            row("Limit", "Soft Limit", "Hard Limit", "Units"),
            row("Max processes", "96365", "96365", "processes"),
            row("Max open files", &show(soft), &show(hard), "files"),
            row("Max locked memory", "8388608", "8388608", "bytes"),
        ]
        .concat();
        prop_assert_eq!(parse_open_files_limit(&text), Some(FdLimit { soft, hard }));
    }

    #[test]
    fn cmdline_never_panics(bytes in any_bytes(300)) {
        let _ = split_nul_separated(&bytes);
    }

    /// The kernel writes each argument and its NUL. A lone empty argument (`argv ==
    /// [""]`) reads as no arguments; either way there is no program to replay.
    #[test]
    fn cmdline_round_trips(
        args in prop::collection::vec("[^\0]{0,12}", 0..8)
            .prop_filter("a lone empty argument", |a| a != &[String::new()]),
    ) {
        let bytes: Vec<u8> = args.iter().flat_map(|a| a.bytes().chain([0])).collect();
        prop_assert_eq!(split_nul_separated(&bytes), args);
    }

    #[test]
    fn environ_never_panics(bytes in any_bytes(300)) {
        let _ = parse_environ(&bytes);
    }

    #[test]
    fn environ_round_trips(
        pairs in prop::collection::vec(("[^\0=]{1,10}", "[^\0]{0,12}"), 0..8),
        junk in prop::collection::vec("[^\0=]{0,8}", 0..3),
    ) {
        // Strings without `=` (a process may rewrite its own block) are left out.
        let mut bytes: Vec<u8> = junk.iter().flat_map(|j| j.bytes().chain([0])).collect();
        for (key, value) in &pairs {
            bytes.extend(format!("{key}={value}\0").bytes());
        }
        prop_assert_eq!(parse_environ(&bytes), pairs);
    }

    #[test]
    fn fd_names(fd in 0i32.., name in any_bytes(12)) {
        let _ = parse_fd_name(OsStr::from_bytes(&name));
        prop_assert_eq!(parse_fd_name(OsStr::new(&fd.to_string())), Some(fd));
    }

    #[test]
    fn dirent_never_panics(bytes in any_bytes(64)) {
        let _ = first_dirent_name(&bytes);
    }

    /// A `linux_dirent64`: inode, offset, record length, type, name, NUL, padding to 8.
    #[test]
    fn dirent_round_trips(inode: u64, offset: u64, kind: u8, name in "[^\0]{1,20}", more in any_bytes(40)) {
        let length = (19 + name.len() + 1).next_multiple_of(8);
        let mut record = Vec::new();
        record.extend(inode.to_ne_bytes());
        record.extend(offset.to_ne_bytes());
        record.extend(u16::try_from(length).unwrap().to_ne_bytes());
        record.push(kind);
        record.extend(name.bytes());
        record.resize(length, 0);
        record.extend(more);
        prop_assert_eq!(first_dirent_name(&record), Some(name.as_str()));
    }

    /// `btime` and `starttime` are numbers read from /proc: any sum is a time or an
    /// error, and a time is exact to the nanosecond.
    #[test]
    fn wall_time_never_overflows(btime: u64, ticks: u64, hz in 1u64..=10_000) {
        match wall_time(btime, ticks, hz) {
            Ok(at) => {
                let nanos = u128::from(btime) * 1_000_000_000
                    + u128::from(ticks) * 1_000_000_000 / u128::from(hz);
                let got = at.duration_since(UNIX_EPOCH).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(got.as_nanos(), nanos);
            }
            Err(e) => prop_assert!(e.to_string().contains("past the largest time"), "{}", e),
        }
        // Small enough to fit: never an error.
        prop_assert!(wall_time(btime % (1 << 40), ticks % (1 << 40), hz).is_ok());
    }

    #[test]
    fn socket_inodes(inode: u64, target in any_text()) {
        let _ = socket_inode(&target);
        prop_assert_eq!(socket_inode(&format!("socket:[{inode}]")), Some(inode));
    }

    #[test]
    fn mutated_bytes_never_panic(edits in edits()) {
        let bytes = mutate_bytes(b"HOME=/root\0PATH=/bin\0\0", &edits);
        let _ = parse_environ(&bytes);
        let _ = split_nul_separated(&bytes);
    }
}

// --- supplementary groups (src/probe/os/linux/creds.rs) ---------------------------------

proptest! {
    #![proptest_config(super::config(256))]

    #[test]
    fn groups_never_panic(text in any_text(), edits in edits()) {
        let _ = parse_groups(&text);
        let _ = parse_groups(&mutate(STATUS, &edits));
    }

    /// `Groups:` as the kernel prints it: each number and a space, tab-led; a replay
    /// gets exactly these back.
    #[test]
    fn groups_round_trip(groups in prop::collection::vec(any::<u32>(), 0..12)) {
        let line: String = groups.iter().map(|g| format!("{g} ")).collect();
        let status = STATUS.replace("Groups:\t20 27", &format!("Groups:\t{line}"));
        prop_assert_eq!(parse_groups(&status), Some(groups));
    }
}
