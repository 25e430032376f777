//! Whom a process runs as, beyond `Uid:`/`Gid:`: its supplementary groups, which a
//! replacement started by root must get back (a server that reads a group-owned socket
//! or key would otherwise fail after its restart).

use super::super::OsError;

/// The supplementary groups (`Groups:` of `/proc/PID/status`).
pub fn groups(pid: u32) -> Result<Vec<u32>, OsError> {
    let status = super::read_text(pid, "status", "status")?;
    parse_groups(&status).ok_or_else(|| OsError::Parse {
        what: format!("/proc/{pid}/status"),
        detail: "no readable Groups: line".into(),
    })
}

/// The numbers of the `Groups:` line; `None` if it is missing or has a non-number.
pub fn parse_groups(status: &str) -> Option<Vec<u32>> {
    let line = status.lines().find_map(|l| l.strip_prefix("Groups:"))?;
    line.split_whitespace().map(|g| g.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_line() {
        let status = "Name:\tx\nUid:\t1\t1\t1\t1\nGroups:\t4 24 27 \nNSpid:\t9\n";
        assert_eq!(parse_groups(status), Some(vec![4, 24, 27]));
        assert_eq!(parse_groups("Groups:\t\n"), Some(vec![]));
        assert_eq!(parse_groups("Groups:\t4 x\n"), None);
        assert_eq!(parse_groups("Name:\tx\n"), None);
    }

    #[test]
    fn our_own_groups() {
        let mut ours = groups(std::process::id()).unwrap();
        let mut expected = crate::probe::os::own_groups().1;
        ours.sort_unstable();
        expected.sort_unstable();
        assert_eq!(ours, expected);
    }
}
