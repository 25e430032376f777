//! Reading the `struct kinfo_proc` that macOS's `KERN_PROC_PID` sysctl returns, from
//! its bytes. Pure, so it is compiled and tested everywhere; `macos.rs` only makes the
//! call.
//!
//! Why this struct: every `proc_pidinfo` flavour that gives a start time
//! (`PROC_PIDTBSDINFO`) needs the caller to have the target's uid, or be root (xnu
//! bsd/kern/proc_info.c, `proc_pidinfo`: only `PROC_PIDT_SHORTBSDINFO` and a
//! few others are `NO_CHECK_SAME_USER`; `proc_security_policy`). The sysctl has no such
//! check (bsd/kern/kern_sysctl.c, `sysctl_prochandle`), so a watchdog that is not root
//! can still tell the start of `login`, `sudo` or `sshd`, as psutil does
//! (psutil/arch/osx/proc.c, `psutil_proc_oneshot_kinfo`: ppid, uids, gids, status
//! and `kp_proc.p_starttime` from the same struct).
//!
//! `libc` does not declare the struct; it is mirrored below, field for field, from
//! xnu's bsd/sys/sysctl.h (`kinfo_proc`, `eproc`, `_pcred`, `_ucred`), bsd/sys/proc.h
//! (`extern_proc`) and bsd/sys/vm.h (`vmspace`) for LP64 (arm64 and x86_64 Macs),
//! with pointers as `u64`. Its size and the offsets read are asserted at compile time
//! on every 64-bit host, so the Linux build checks them too; the kernel's 64-bit
//! version (`user64_kinfo_proc`, filled by `fill_user64_proc`) has the same layout.

#![allow(non_camel_case_types, dead_code)]

use std::mem::{offset_of, size_of};

#[repr(C)]
struct timeval {
    tv_sec: i64,
    tv_usec: i32,
}

#[repr(C)]
struct itimerval {
    it_interval: timeval,
    it_value: timeval,
}

#[repr(C)]
struct extern_proc {
    /// `union { struct { p_forw, p_back } p_st1; struct timeval __p_starttime; }`:
    /// the start time, for a process read through the sysctl.
    p_starttime: timeval,
    p_vmspace: u64,
    p_sigacts: u64,
    p_flag: i32,
    p_stat: i8,
    p_pid: i32,
    p_oppid: i32,
    p_dupfd: i32,
    user_stack: u64,
    exit_thread: u64,
    p_debugger: i32,
    sigwait: i32,
    p_estcpu: u32,
    p_cpticks: i32,
    p_pctcpu: u32,
    p_wchan: u64,
    p_wmesg: u64,
    p_swtime: u32,
    p_slptime: u32,
    p_realtimer: itimerval,
    p_rtime: timeval,
    p_uticks: u64,
    p_sticks: u64,
    p_iticks: u64,
    p_traceflag: i32,
    p_tracep: u64,
    p_siglist: i32,
    p_textvp: u64,
    p_holdcnt: i32,
    p_sigmask: u32,
    p_sigignore: u32,
    p_sigcatch: u32,
    p_priority: u8,
    p_usrpri: u8,
    p_nice: i8,
    p_comm: [u8; 17],
    p_pgrp: u64,
    p_addr: u64,
    p_xstat: u16,
    p_acflag: u16,
    p_ru: u64,
}

#[repr(C)]
struct _pcred {
    pc_lock: [u8; 72],
    pc_ucred: u64,
    p_ruid: u32,
    p_svuid: u32,
    p_rgid: u32,
    p_svgid: u32,
    p_refcnt: i32,
}

/// NGROUPS: the groups `_ucred` holds.
pub const NGROUPS: usize = 16;

#[repr(C)]
struct _ucred {
    cr_ref: i32,
    cr_uid: u32,
    cr_ngroups: i16,
    /// `cr_groups[0]` is the effective group (xnu's `cr_gid` is defined as it).
    cr_groups: [u32; NGROUPS],
}

#[repr(C)]
struct vmspace {
    vm_refcnt: i32,
    vm_shm: u64,
    vm_rssize: i32,
    vm_swrss: i32,
    vm_tsize: i32,
    vm_dsize: i32,
    vm_ssize: i32,
    vm_taddr: u64,
    vm_daddr: u64,
    vm_maxsaddr: u64,
}

#[repr(C)]
struct eproc {
    e_paddr: u64,
    e_sess: u64,
    e_pcred: _pcred,
    e_ucred: _ucred,
    e_vm: vmspace,
    e_ppid: i32,
    e_pgid: i32,
    e_jobc: i16,
    e_tdev: i32,
    e_tpgid: i32,
    e_tsess: u64,
    e_wmesg: [u8; 8],
    e_xsize: i32,
    e_xrssize: i16,
    e_xccount: i16,
    e_xswrss: i16,
    e_flag: i32,
    e_login: [u8; 12],
    e_spare: [i32; 4],
}

#[repr(C)]
struct kinfo_proc {
    kp_proc: extern_proc,
    kp_eproc: eproc,
}

/// The size the sysctl writes for one process.
pub const KINFO_PROC_SIZE: usize = size_of::<kinfo_proc>();
const START_SEC_AT: usize = offset_of!(kinfo_proc, kp_proc.p_starttime.tv_sec);
const START_USEC_AT: usize = offset_of!(kinfo_proc, kp_proc.p_starttime.tv_usec);
const STAT_AT: usize = offset_of!(kinfo_proc, kp_proc.p_stat);
const PID_AT: usize = offset_of!(kinfo_proc, kp_proc.p_pid);
const UID_AT: usize = offset_of!(kinfo_proc, kp_eproc.e_ucred.cr_uid);
const NGROUPS_AT: usize = offset_of!(kinfo_proc, kp_eproc.e_ucred.cr_ngroups);
const GROUPS_AT: usize = offset_of!(kinfo_proc, kp_eproc.e_ucred.cr_groups);
const PPID_AT: usize = offset_of!(kinfo_proc, kp_eproc.e_ppid);

// Worked out by hand from the headers (LP64 natural alignment): `extern_proc` is 296
// bytes, `eproc` starts there; `_pcred` is 104 (72 + 8 + 5 * 4, rounded to 8), so
// `e_ucred` is at 296 + 16 + 104 = 416; `vmspace` is 64 and starts at 496 (after the
// 76-byte `_ucred`, aligned), so `e_ppid` is at 560; the whole is 644, rounded to 648.
// The Mac builds (and any 64-bit host) refuse to compile if the mirror disagrees.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(size_of::<extern_proc>() == 296);
    assert!(size_of::<_pcred>() == 104);
    assert!(size_of::<_ucred>() == 76);
    assert!(size_of::<vmspace>() == 64);
    assert!(KINFO_PROC_SIZE == 648);
    assert!(START_SEC_AT == 0 && START_USEC_AT == 8);
    assert!(STAT_AT == 36);
    assert!(PID_AT == 40);
    assert!(offset_of!(kinfo_proc, kp_eproc) == 296);
    assert!(offset_of!(kinfo_proc, kp_eproc.e_ucred) == 416);
    assert!(UID_AT == 420 && NGROUPS_AT == 424 && GROUPS_AT == 428);
    assert!(offset_of!(kinfo_proc, kp_eproc.e_vm) == 496);
    assert!(PPID_AT == 560);
};

/// `p_stat` of a zombie (SZOMB, bsd/sys/proc.h).
pub const SZOMB: u8 = 5;

/// What is read from one `kinfo_proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinfoProc {
    pub pid: u32,
    pub ppid: u32,
    /// Effective uid (`cr_uid`).
    pub uid: u32,
    /// Effective gid (`cr_groups[0]`).
    pub gid: u32,
    /// The credential's groups, at most `NGROUPS` (the kernel copies only those);
    /// `None` when the process has more, which this struct cannot show.
    pub groups: Option<Vec<u32>>,
    /// `p_stat`: SIDL 1, SRUN 2, SSLEEP 3, SSTOP 4, SZOMB 5.
    pub stat: u8,
    pub start_sec: u64,
    pub start_usec: u64,
}

impl KinfoProc {
    /// The start stamp an `Identity` holds: the same number whether it comes from
    /// here or from `proc_bsdinfo` (`pbi_start_tvsec`, `pbi_start_tvusec`), as both are
    /// the kernel's `p->p_start` (`fill_user64_externproc`, `proc_pidbsdinfo`).
    pub fn start_key(&self) -> u64 {
        start_key(self.start_sec, self.start_usec)
    }
}

/// Microseconds since the epoch, saturating.
pub fn start_key(sec: u64, usec: u64) -> u64 {
    sec.saturating_mul(1_000_000).saturating_add(usec)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KinfoError {
    #[error("kinfo_proc is {0} bytes where {KINFO_PROC_SIZE} were expected")]
    Size(usize),
    #[error("impossible start time {sec}.{usec:06}")]
    StartTime { sec: i64, usec: i32 },
}

fn i32_at(buf: &[u8; KINFO_PROC_SIZE], at: usize) -> i32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&buf[at..at + 4]);
    i32::from_ne_bytes(bytes)
}

fn u32_at(buf: &[u8; KINFO_PROC_SIZE], at: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&buf[at..at + 4]);
    u32::from_ne_bytes(bytes)
}

/// Reads the fields above from the bytes the sysctl wrote (exactly one struct).
pub fn parse(buf: &[u8]) -> Result<KinfoProc, KinfoError> {
    let buf: &[u8; KINFO_PROC_SIZE] = buf.try_into().map_err(|_| KinfoError::Size(buf.len()))?;
    let mut sec = [0u8; 8];
    sec.copy_from_slice(&buf[START_SEC_AT..START_SEC_AT + 8]);
    let sec = i64::from_ne_bytes(sec);
    let usec = i32_at(buf, START_USEC_AT);
    let (Ok(start_sec), Ok(start_usec)) = (u64::try_from(sec), u64::try_from(usec)) else {
        return Err(KinfoError::StartTime { sec, usec });
    };
    if start_usec >= 1_000_000 {
        return Err(KinfoError::StartTime { sec, usec });
    }
    let ngroups = i16::from_ne_bytes([buf[NGROUPS_AT], buf[NGROUPS_AT + 1]]);
    let groups = usize::try_from(ngroups)
        .ok()
        .filter(|&n| n <= NGROUPS)
        .map(|n| (0..n).map(|i| u32_at(buf, GROUPS_AT + 4 * i)).collect());
    Ok(KinfoProc {
        pid: u32_at(buf, PID_AT),
        ppid: u32_at(buf, PPID_AT),
        uid: u32_at(buf, UID_AT),
        gid: u32_at(buf, GROUPS_AT),
        groups,
        stat: buf[STAT_AT],
        start_sec,
        start_usec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `kinfo_proc` as the sysctl fills it for a process started at
    /// 1764600000.123456, PID 4242 of parent 1, uid 501, groups 20, 12, 61, sleeping.
    /// The offsets are the hand-computed ones of the comment above, written here as
    /// numbers so that the test checks the mirror struct, not itself. (No Mac here to
    /// capture one from.)
    fn sample() -> Vec<u8> {
        let mut b = vec![0xAAu8; 648];
        let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
        put(0, &1_764_600_000i64.to_ne_bytes());
        put(8, &123_456i32.to_ne_bytes());
        put(12, &[0; 4]); // padding of the timeval
        put(36, &[3]); // SSLEEP
        put(40, &4242i32.to_ne_bytes());
        put(420, &501u32.to_ne_bytes());
        put(424, &3i16.to_ne_bytes());
        put(428, &20u32.to_ne_bytes());
        put(432, &12u32.to_ne_bytes());
        put(436, &61u32.to_ne_bytes());
        put(560, &1i32.to_ne_bytes());
        b
    }

    #[test]
    fn reads_a_kinfo_proc() {
        let k = parse(&sample()).unwrap();
        assert_eq!(
            k,
            KinfoProc {
                pid: 4242,
                ppid: 1,
                uid: 501,
                gid: 20,
                groups: Some(vec![20, 12, 61]),
                stat: 3,
                start_sec: 1_764_600_000,
                start_usec: 123_456,
            }
        );
        assert_eq!(k.start_key(), 1_764_600_000_123_456);
    }

    /// The key is the one `proc_bsdinfo` gave before (`pbi_start_tvsec * 10^6 +
    /// pbi_start_tvusec`), so identities saved by an older run still compare equal.
    #[test]
    fn the_start_key_is_the_bsdinfo_one() {
        let (pbi_start_tvsec, pbi_start_tvusec) = (1_764_600_000u64, 123_456u64);
        assert_eq!(
            start_key(pbi_start_tvsec, pbi_start_tvusec),
            parse(&sample()).unwrap().start_key()
        );
        assert_eq!(start_key(u64::MAX, 1), u64::MAX);
    }

    #[test]
    fn more_groups_than_the_struct_holds() {
        let mut b = sample();
        b[424..426].copy_from_slice(&17i16.to_ne_bytes());
        assert_eq!(parse(&b).unwrap().groups, None);
        b[424..426].copy_from_slice(&(-1i16).to_ne_bytes());
        assert_eq!(parse(&b).unwrap().groups, None);
        b[424..426].copy_from_slice(&16i16.to_ne_bytes());
        assert_eq!(parse(&b).unwrap().groups.map(|g| g.len()), Some(16));
    }

    #[test]
    fn wrong_sizes_and_times() {
        let b = sample();
        assert_eq!(parse(&b[..647]), Err(KinfoError::Size(647)));
        assert_eq!(parse(&[]), Err(KinfoError::Size(0)));
        let mut long = b.clone();
        long.push(0);
        assert_eq!(parse(&long), Err(KinfoError::Size(649)));
        let mut bad = b.clone();
        bad[8..12].copy_from_slice(&1_000_000i32.to_ne_bytes());
        assert!(matches!(parse(&bad), Err(KinfoError::StartTime { .. })));
        let mut bad = b;
        bad[0..8].copy_from_slice(&(-5i64).to_ne_bytes());
        assert!(matches!(parse(&bad), Err(KinfoError::StartTime { .. })));
    }
}
