//! The user and group databases (NSS, through libc's reentrant lookups): to name the
//! owner of a process for the operator, and to tell whether a group is one user's own
//! (docs/SECURITY.md, the private-group exception). Plain POSIX, the same on Linux and
//! macOS.

use std::ffi::CStr;

/// Room for one entry's strings. An entry that does not fit is treated as absent: every
/// caller reads "absent" as "not proven", never as permission.
const BUFFER: usize = 16 * 1024;

/// One user's entry: what the callers need of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: Vec<u8>,
    /// The primary group.
    pub gid: u32,
}

/// One group's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: Vec<u8>,
    /// The users listed as supplementary members (not those whose primary group it is).
    pub members: Vec<Vec<u8>>,
}

/// The entry of `uid`, or `None` when it has none (a bare numeric uid, as setpriv and
/// containers give), it does not fit, or the lookup failed.
pub fn user(uid: u32) -> Option<User> {
    let mut buffer = vec![0 as libc::c_char; BUFFER];
    // SAFETY: passwd is plain data (integers and pointers); all zero is a valid value.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to a live local of the right type, and the buffer's length
    // is passed with it; getpwuid_r writes the entry's strings into `buffer` and points
    // `entry`'s fields and `found` into it.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() || entry.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name is a NUL-terminated string inside `buffer`, which
    // outlives this borrow.
    let name = unsafe { CStr::from_ptr(entry.pw_name) }.to_bytes().to_vec();
    Some(User {
        name,
        gid: entry.pw_gid,
    })
}

/// The entry of `gid`, or `None` as for [`user`].
pub fn group(gid: u32) -> Option<Group> {
    let mut buffer = vec![0 as libc::c_char; BUFFER];
    // SAFETY: group is plain data (integers and pointers); all zero is a valid value.
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as for getpwuid_r in `user`, with getgrgid_r and a `group`.
    let rc = unsafe {
        libc::getgrgid_r(
            gid,
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() || entry.gr_name.is_null() {
        return None;
    }
    // SAFETY: on success gr_name is a NUL-terminated string inside `buffer`.
    let name = unsafe { CStr::from_ptr(entry.gr_name) }.to_bytes().to_vec();
    let mut members = Vec::new();
    if !entry.gr_mem.is_null() {
        // gr_mem is a NULL-terminated array of pointers inside `buffer`, so it holds
        // fewer entries than the buffer has bytes: the bound is never the stop.
        for index in 0..BUFFER {
            // SAFETY: the array is NULL-terminated and the loop stops at the NULL.
            let member = unsafe { *entry.gr_mem.add(index) };
            if member.is_null() {
                break;
            }
            // SAFETY: a non-NULL entry is a NUL-terminated string inside `buffer`.
            members.push(unsafe { CStr::from_ptr(member) }.to_bytes().to_vec());
        }
    }
    Some(Group { name, members })
}

/// The login name of `uid`, for showing who owns a process.
pub fn user_name(uid: u32) -> Option<String> {
    user(uid).map(|u| String::from_utf8_lossy(&u.name).into_owned())
}

/// Whether `gid` is the private group of user `owner`: the owner's primary group, named
/// as the owner, with no member but the owner. Any doubt is no.
pub fn is_private_group(gid: u32, owner: u32) -> bool {
    let Some(user) = user(owner) else {
        return false;
    };
    if user.gid != gid {
        return false;
    }
    group(gid).is_some_and(|group| {
        group.name == user.name && group.members.iter().all(|member| *member == user.name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_a_bare_uid() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(user(0).map(|u| u.gid), Some(0));
        assert_eq!(user_name(4_000_000_000), None);
        assert_eq!(group(4_000_000_000), None);
    }

    /// root's group 0 is named root and, on Debian and macOS alike, lists no one else.
    #[test]
    fn a_group_is_private_only_to_its_own_user() {
        let root = group(0).expect("group 0 exists");
        assert!(root.members.iter().all(|m| m == b"root"), "{root:?}");
        assert_eq!(is_private_group(0, 0), root.name == b"root");
        assert!(
            !is_private_group(0, 4_000_000_000),
            "no such user: not proven"
        );
        assert!(
            !is_private_group(4_000_000_000, 0),
            "not root's primary group"
        );
    }
}
