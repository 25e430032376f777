//! macOS: libproc (`proc_pidinfo`, `proc_pidfdinfo`, `proc_listallpids`) and the
//! `KERN_PROCARGS2` sysctl, through `libc`. Compiled only on macOS; what can be
//! written without the kernel (parsing the argument buffer, naming FDs, launchctl
//! output) lives in `procargs`, `darwin_fd` and `launchctl`, tested on every platform.
//!
//! Permissions (xnu bsd/kern/proc_info.c, `proc_security_policy`): every
//! `proc_pidinfo` flavour used here needs the caller to have the target's uid, or be
//! root, and answers EPERM otherwise, except `PROC_PIDT_SHORTBSDINFO` (parent, uid,
//! gid, status), which anyone may read; with the `KERN_PROC_PID` sysctl (start time,
//! groups), also open to all, it is what walks up the tree and tells identities, so
//! that a watchdog that is not root is not stopped by `login`, `sudo` or `sshd`. The
//! argument sysctl needs the same uid or root, and says EINVAL otherwise (see
//! `proc_args`). libproc returns 0 with `errno` set on error. macOS cannot read
//! another process's RLIMIT_NOFILE, so `fd_limit` is always `None`.

// The kernel's structs keep their C names so they can be checked against the header.
#![allow(non_camel_case_types)]

use std::ffi::{OsString, c_char, c_int, c_void};
use std::io;
use std::mem::{MaybeUninit, offset_of, size_of};
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::ptr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::darwin_fd::{self, FdInfoFailure, InetEndpoints, SocketSummary};
use super::kinfo::{self, KinfoProc};
use super::procargs::{self, Environment, ProcArgs};
use super::{FdEntry, FdLimit, Identity, OsError, PortOwner, ProcState, ProcessInfo};

// ---------------------------------------------------------------------------------
// What `libc` lacks from sys/proc_info.h (xnu bsd/sys/proc_info.h), declared field for
// field. Sizes and key offsets are asserted below; all are the same on arm64 and
// x86_64 (LP64, natural alignment).

/// `proc_pidfdinfo` flavours.
const PROC_PIDFDVNODEPATHINFO: c_int = 2;
const PROC_PIDFDSOCKETINFO: c_int = 3;
const PROC_PIDFDPIPEINFO: c_int = 6;

#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code)] // mirrors the header; not every field is read
struct proc_fileinfo {
    fi_openflags: u32,
    fi_status: u32,
    fi_offset: libc::off_t,
    fi_type: i32,
    fi_guardflags: u32,
}

#[repr(C)]
#[allow(dead_code)]
struct vnode_fdinfowithpath {
    pfi: proc_fileinfo,
    pvip: libc::vnode_info_path,
}

/// The anonymous `union { struct in4in6_addr ina_46; struct in6_addr ina_6; }` of
/// `insi_faddr`/`insi_laddr`: 16 bytes, 4-byte aligned. Kept as bytes;
/// `darwin_fd::inet_addr` reads the form `insi_vflag` names (the IPv4 address of
/// `in4in6_addr` is its last 4 bytes, after `i46a_pad32[3]`).
#[repr(C, align(4))]
#[derive(Clone, Copy)]
struct in_addr_4_6 {
    bytes: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code)]
struct insi_v4 {
    in4_tos: u8,
}

#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code)]
struct insi_v6 {
    in6_hlim: u8,
    in6_cksum: c_int,
    in6_ifindex: u16,
    in6_hops: i16,
}

#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code)]
struct in_sockinfo {
    /// Foreign port: the `u_short` in network byte order, in the low 16 bits.
    insi_fport: c_int,
    /// Local port, likewise.
    insi_lport: c_int,
    insi_gencnt: u64,
    insi_flags: u32,
    insi_flow: u32,
    /// INI_IPV4 / INI_IPV6.
    insi_vflag: u8,
    insi_ip_ttl: u8,
    rfu_1: u32,
    insi_faddr: in_addr_4_6,
    insi_laddr: in_addr_4_6,
    insi_v4: insi_v4,
    insi_v6: insi_v6,
}

/// TSI_T_NTIMERS.
const TSI_T_NTIMERS: usize = 4;

#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code)]
struct tcp_sockinfo {
    tcpsi_ini: in_sockinfo,
    tcpsi_state: c_int,
    tcpsi_timer: [c_int; TSI_T_NTIMERS],
    tcpsi_mss: c_int,
    tcpsi_flags: u32,
    rfu_1: u32,
    tcpsi_tp: u64,
}

/// SOCK_MAXADDRLEN.
const SOCK_MAXADDRLEN: usize = 255;

/// `unsi_addr`/`unsi_caddr` are `union { struct sockaddr_un ua_sun; char
/// ua_dummy[SOCK_MAXADDRLEN]; }`: 255 bytes, byte-aligned; read as bytes.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code)]
struct un_sockinfo {
    unsi_conn_so: u64,
    unsi_conn_pcb: u64,
    unsi_addr: [u8; SOCK_MAXADDRLEN],
    unsi_caddr: [u8; SOCK_MAXADDRLEN],
}

/// `soi_proto`. The header's other members (`pri_ndrv` 24 bytes, `pri_kern_event` 12,
/// `pri_kern_ctl` 120, `pri_vsock` 16) are never read and all smaller than `pri_un`,
/// so leaving them out does not change the size (asserted).
#[repr(C)]
#[derive(Clone, Copy)]
union soi_proto {
    pri_in: in_sockinfo,
    pri_tcp: tcp_sockinfo,
    pri_un: un_sockinfo,
}

#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code)]
struct sockbuf_info {
    sbi_cc: u32,
    sbi_hiwat: u32,
    sbi_mbcnt: u32,
    sbi_mbmax: u32,
    sbi_lowat: u32,
    sbi_flags: i16,
    sbi_timeo: i16,
}

#[repr(C)]
#[allow(dead_code)]
struct socket_info {
    soi_stat: libc::vinfo_stat,
    soi_so: u64,
    soi_pcb: u64,
    soi_type: c_int,
    soi_protocol: c_int,
    soi_family: c_int,
    soi_options: i16,
    soi_linger: i16,
    soi_state: i16,
    soi_qlen: i16,
    soi_incqlen: i16,
    soi_qlimit: i16,
    soi_timeo: i16,
    soi_error: u16,
    soi_oobmark: u32,
    soi_rcv: sockbuf_info,
    soi_snd: sockbuf_info,
    /// SOCKINFO_*: which member of `soi_proto` is filled.
    soi_kind: c_int,
    rfu_1: u32,
    soi_proto: soi_proto,
}

#[repr(C)]
#[allow(dead_code)]
struct socket_fdinfo {
    pfi: proc_fileinfo,
    psi: socket_info,
}

#[repr(C)]
#[allow(dead_code)]
struct pipe_info {
    pipe_stat: libc::vinfo_stat,
    pipe_handle: u64,
    pipe_peerhandle: u64,
    pipe_status: c_int,
    rfu_1: c_int,
}

#[repr(C)]
#[allow(dead_code)]
struct pipe_fdinfo {
    pfi: proc_fileinfo,
    pipeinfo: pipe_info,
}

// Sizes and offsets worked out from the header's layout (LP64 natural alignment). A
// mismatch is a compile error on either Mac target, long before a wrong read.
const _: () = {
    // From libc, checked because the code below depends on them.
    assert!(size_of::<libc::proc_fdinfo>() == 8);
    assert!(size_of::<libc::proc_bsdinfo>() == 136);
    assert!(offset_of!(libc::proc_bsdinfo, pbi_start_tvsec) == 120);
    // `struct proc_bsdshortinfo`: 4 u32, char[16], 8 u32.
    assert!(size_of::<libc::proc_bsdshortinfo>() == 64);
    assert!(offset_of!(libc::proc_bsdshortinfo, pbsi_ppid) == 4);
    assert!(offset_of!(libc::proc_bsdshortinfo, pbsi_status) == 12);
    assert!(offset_of!(libc::proc_bsdshortinfo, pbsi_uid) == 36);
    assert!(offset_of!(libc::proc_bsdshortinfo, pbsi_gid) == 40);
    assert!(libc::PROC_PIDT_SHORTBSDINFO == 13);
    assert!(kinfo::SZOMB as u32 == libc::SZOMB);
    assert!(size_of::<libc::proc_taskinfo>() == 96);
    assert!(offset_of!(libc::proc_taskinfo, pti_resident_size) == 8);
    assert!(size_of::<libc::vinfo_stat>() == 136);
    assert!(size_of::<libc::vnode_info>() == 152);
    assert!(size_of::<libc::vnode_info_path>() == 1176);
    assert!(offset_of!(libc::vnode_info_path, vip_path) == 152);
    assert!(size_of::<libc::proc_vnodepathinfo>() == 2352);
    // Declared here.
    assert!(size_of::<proc_fileinfo>() == 24);
    assert!(size_of::<vnode_fdinfowithpath>() == 1200);
    assert!(offset_of!(vnode_fdinfowithpath, pvip) == 24);
    assert!(size_of::<in_addr_4_6>() == 16);
    assert!(size_of::<in_sockinfo>() == 80);
    assert!(offset_of!(in_sockinfo, insi_lport) == 4);
    assert!(offset_of!(in_sockinfo, insi_vflag) == 24);
    assert!(offset_of!(in_sockinfo, insi_faddr) == 32);
    assert!(offset_of!(in_sockinfo, insi_laddr) == 48);
    assert!(offset_of!(in_sockinfo, insi_v6) == 68);
    assert!(size_of::<tcp_sockinfo>() == 120);
    assert!(offset_of!(tcp_sockinfo, tcpsi_state) == 80);
    assert!(offset_of!(tcp_sockinfo, tcpsi_tp) == 112);
    assert!(size_of::<un_sockinfo>() == 528);
    assert!(offset_of!(un_sockinfo, unsi_caddr) == 16 + SOCK_MAXADDRLEN);
    assert!(size_of::<soi_proto>() == 528);
    assert!(size_of::<sockbuf_info>() == 24);
    assert!(size_of::<socket_info>() == 768);
    assert!(offset_of!(socket_info, soi_so) == 136);
    assert!(offset_of!(socket_info, soi_type) == 152);
    assert!(offset_of!(socket_info, soi_family) == 160);
    assert!(offset_of!(socket_info, soi_oobmark) == 180);
    assert!(offset_of!(socket_info, soi_rcv) == 184);
    assert!(offset_of!(socket_info, soi_kind) == 232);
    assert!(offset_of!(socket_info, soi_proto) == 240);
    assert!(size_of::<socket_fdinfo>() == 792);
    assert!(offset_of!(socket_fdinfo, psi) == 24);
    assert!(size_of::<pipe_info>() == 160);
    assert!(offset_of!(pipe_info, pipe_handle) == 136);
    assert!(size_of::<pipe_fdinfo>() == 184);
    // The constants darwin_fd and this file use for the kernel's values.
    assert!(SOCK_MAXADDRLEN == libc::SOCK_MAXADDRLEN as usize);
    assert!(PROC_PIDFDVNODEPATHINFO == 2 && PROC_PIDFDSOCKETINFO == 3);
};

/// Plain data the kernel fills in.
///
/// # Safety
///
/// Implementors are `#[repr(C)]` structs made only of integers, arrays of integers
/// and unions of such structs: every bit pattern, all-zero included, is a valid value,
/// so a zeroed value is sound and so is whatever bytes the kernel writes into one.
unsafe trait KernelPlain: Sized {}

// SAFETY: integers and integer arrays only (libc's declaration of the header struct).
unsafe impl KernelPlain for libc::proc_fdinfo {}
// SAFETY: as above.
unsafe impl KernelPlain for libc::proc_bsdinfo {}
// SAFETY: as above (u32s and a char array).
unsafe impl KernelPlain for libc::proc_bsdshortinfo {}
// SAFETY: as above.
unsafe impl KernelPlain for libc::proc_taskinfo {}
// SAFETY: as above (vnode_info_path twice: vinfo_stat, ints, fsid_t, a char array).
unsafe impl KernelPlain for libc::proc_vnodepathinfo {}
// SAFETY: proc_fileinfo and libc's vnode_info_path: integers and arrays only.
unsafe impl KernelPlain for vnode_fdinfowithpath {}
// SAFETY: integers, integer arrays, and a union whose members are all such structs.
unsafe impl KernelPlain for socket_fdinfo {}
// SAFETY: integers and integer arrays only.
unsafe impl KernelPlain for pipe_fdinfo {}

fn zeroed<T: KernelPlain>() -> T {
    // SAFETY: a `KernelPlain` type is valid when all its bytes are zero.
    unsafe { MaybeUninit::<T>::zeroed().assume_init() }
}

/// The size of a kernel struct as the `int` the libproc calls take. Every type used is
/// at most a few KiB (asserted above), so the conversion cannot truncate.
const fn c_size<T>() -> c_int {
    size_of::<T>() as c_int
}

fn set_errno(value: c_int) {
    // SAFETY: `__error` returns the calling thread's `errno` location, valid and
    // writable for as long as the thread lives.
    unsafe { *libc::__error() = value }
}

fn errno() -> c_int {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Reads the sysctl named by `mib` into `buf`: the count of bytes the kernel wrote, or
/// the `errno` it failed with. One call for `kinfo` and `proc_args`, which read
/// byte buffers the same way.
fn sysctl_read(mib: &mut [c_int], buf: &mut [u8]) -> Result<usize, c_int> {
    let names = libc::c_uint::try_from(mib.len()).map_err(|_| libc::EINVAL)?;
    let mut len: libc::size_t = buf.len();
    // SAFETY: `mib` holds the `names` names passed; `buf` is writable for `len` bytes,
    // the kernel writes at most `len` bytes and stores the count written in `len`; no
    // new value is set.
    let ret = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            names,
            buf.as_mut_ptr().cast::<c_void>(),
            &mut len,
            ptr::null_mut(),
            0,
        )
    };
    if ret != 0 {
        return Err(errno());
    }
    Ok(len)
}

fn c_pid(pid: u32) -> Result<c_int, OsError> {
    c_int::try_from(pid).map_err(|_| OsError::NoSuchProcess(pid))
}

/// The `OsError` for a failed libproc call on `pid`.
fn os_error(pid: u32, what: &'static str, errno: c_int) -> OsError {
    match errno {
        libc::ESRCH => OsError::NoSuchProcess(pid),
        libc::EPERM | libc::EACCES => OsError::PermissionDenied { pid, what },
        0 => OsError::Io {
            what: format!("{what} of PID {pid}"),
            source: io::Error::other("the kernel returned no data and no error"),
        },
        e => OsError::Io {
            what: format!("{what} of PID {pid}"),
            source: io::Error::from_raw_os_error(e),
        },
    }
}

fn layout_error(pid: u32, what: &'static str, got: c_int, want: c_int) -> OsError {
    OsError::Parse {
        what: format!("{what} of PID {pid}"),
        detail: format!(
            "the kernel returned {got} bytes where {want} were expected \
             (this macOS lays the struct out differently)"
        ),
    }
}

/// `proc_pidinfo` for a flavour that returns one fixed-size struct.
fn pid_info<T: KernelPlain>(pid: u32, flavor: c_int, what: &'static str) -> Result<T, OsError> {
    let cpid = c_pid(pid)?;
    let mut out = zeroed::<T>();
    let size = c_size::<T>();
    set_errno(0);
    // SAFETY: `out` is a live, writable `T` of exactly `size` bytes; the kernel writes
    // at most `size` bytes into it, and any bytes form a valid `T` (`KernelPlain`).
    let ret = unsafe { libc::proc_pidinfo(cpid, flavor, 0, (&raw mut out).cast::<c_void>(), size) };
    if ret <= 0 {
        return Err(os_error(pid, what, errno()));
    }
    if ret != size {
        return Err(layout_error(pid, what, ret, size));
    }
    Ok(out)
}

/// `PROC_PIDT_SHORTBSDINFO`: parent, uid, gid and status of any process, whoever owns
/// it (xnu bsd/kern/proc_info.c, `proc_pidinfo`: this flavour is
/// `NO_CHECK_SAME_USER`, while `PROC_PIDTBSDINFO` fails with EPERM for another user's
/// process unless the caller is root, so a watchdog that is not root could not walk up
/// past `login`, `sudo` or `sshd`). The fields are those `PROC_PIDTBSDINFO` gives:
/// `p_ppid`, and `p_uid`/`p_gid`, which `proc_update_creds_onproc` keeps equal to the
/// credential's effective uid and gid. It has no start time: see `kinfo`. A zombie is
/// ESRCH, as no "find zombies" argument is passed.
fn short_info(pid: u32) -> Result<libc::proc_bsdshortinfo, OsError> {
    let info =
        pid_info::<libc::proc_bsdshortinfo>(pid, libc::PROC_PIDT_SHORTBSDINFO, "process info")?;
    if info.pbsi_pid != pid {
        return Err(OsError::Parse {
            what: format!("process info of PID {pid}"),
            detail: format!("the kernel answered for PID {}", info.pbsi_pid),
        });
    }
    Ok(info)
}

/// `KERN_PROC_PID`: the process's `kinfo_proc`, readable for any process, zombies
/// included (xnu bsd/kern/kern_sysctl.c, `sysctl_prochandle`, which checks no uid);
/// parsed by `kinfo::parse`. Gives the start time `proc_bsdshortinfo` lacks.
fn kinfo(pid: u32) -> Result<KinfoProc, OsError> {
    let what = "process info";
    let cpid = c_pid(pid)?;
    let mut buf = [0u8; kinfo::KINFO_PROC_SIZE];
    let mut mib = [libc::CTL_KERN, libc::KERN_PROC, libc::KERN_PROC_PID, cpid];
    let len = sysctl_read(&mut mib, &mut buf).map_err(|e| os_error(pid, what, e))?;
    // No process with that PID: the sysctl succeeds and writes nothing.
    if len == 0 {
        return Err(OsError::NoSuchProcess(pid));
    }
    let written = buf.get(..len).unwrap_or(&buf);
    let info = kinfo::parse(written).map_err(|e| OsError::Parse {
        what: format!("{what} of PID {pid}"),
        detail: e.to_string(),
    })?;
    if info.pid != pid {
        return Err(OsError::Parse {
            what: format!("{what} of PID {pid}"),
            detail: format!(
                "kinfo_proc names PID {} (laid out differently on this macOS?)",
                info.pid
            ),
        });
    }
    Ok(info)
}

fn identity_of(info: &KinfoProc) -> Identity {
    Identity {
        pid: info.pid,
        start_key: info.start_key(),
    }
}

fn start_time(info: &KinfoProc) -> SystemTime {
    // `parse` keeps the microseconds below one second, so `Duration::new` cannot carry.
    let nanos = u32::try_from(info.start_usec.min(999_999) * 1_000).unwrap_or(0);
    UNIX_EPOCH
        .checked_add(Duration::new(info.start_sec, nanos))
        .unwrap_or(UNIX_EPOCH)
}

/// The short info and the kinfo_proc of one and the same process: read twice, they
/// must agree on what both hold (a PID reused, a parent that exited or a setuid
/// between the two calls, or a `kinfo_proc` laid out otherwise, would not). One retry,
/// then an error.
fn short_and_kinfo(pid: u32) -> Result<(libc::proc_bsdshortinfo, KinfoProc), OsError> {
    let mut last = None;
    for _ in 0..2 {
        let short = short_info(pid)?;
        let long = kinfo(pid)?;
        let agree = long.ppid == short.pbsi_ppid
            && long.uid == short.pbsi_uid
            && long.gid == short.pbsi_gid;
        if agree {
            return Ok((short, long));
        }
        last = Some((short, long));
    }
    let detail = match last {
        Some((short, long)) => format!(
            "proc_pidinfo says ppid {} uid {} gid {}, kinfo_proc says ppid {} uid {} gid {}",
            short.pbsi_ppid, short.pbsi_uid, short.pbsi_gid, long.ppid, long.uid, long.gid
        ),
        None => String::new(),
    };
    Err(OsError::Parse {
        what: format!("process info of PID {pid}"),
        detail: format!("it changed while read, twice ({detail})"),
    })
}

fn state_of(status: u32) -> ProcState {
    match status {
        libc::SRUN | libc::SSLEEP => ProcState::Running,
        libc::SSTOP => ProcState::Stopped,
        libc::SZOMB => ProcState::Zombie,
        _ => ProcState::Other,
    }
}

/// The bytes of a C string in a fixed `char` buffer (up to the first NUL).
fn c_chars(buf: &[c_char]) -> Vec<u8> {
    buf.iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect()
}

/// Parent, credentials and state come from `PROC_PIDT_SHORTBSDINFO` and the start
/// time from `KERN_PROC_PID`, both readable for another user's process; argv needs the
/// same uid or root (`sysctl_procargsx`), so another user's process still fails here
/// as a whole, with `PermissionDenied`, when the watchdog is not root: callers take
/// argv as the truth (command match, replay, orphan checks), and an empty or made-up
/// one would be wrong there. `parent_pid` and `identity` give what a tree walk needs
/// without argv.
pub fn process_info(pid: u32) -> Result<ProcessInfo, OsError> {
    let (short, long) = short_and_kinfo(pid)?;
    let args = proc_args(pid)?;
    let argv = if args.argv.is_empty() && !args.exec_path.is_empty() {
        vec![args.exec_path]
    } else {
        args.argv
    };
    Ok(ProcessInfo {
        identity: identity_of(&long),
        ppid: short.pbsi_ppid,
        uid: Some(short.pbsi_uid),
        gid: Some(short.pbsi_gid),
        start_time: start_time(&long),
        argv,
        cwd: cwd(pid),
        rss_bytes: pid_info::<libc::proc_taskinfo>(pid, libc::PROC_PIDTASKINFO, "task info")
            .ok()
            .map(|t| t.pti_resident_size),
        state: state_of(short.pbsi_status),
    })
}

fn cwd(pid: u32) -> Option<PathBuf> {
    let info =
        pid_info::<libc::proc_vnodepathinfo>(pid, libc::PROC_PIDVNODEPATHINFO, "working directory")
            .ok()?;
    let bytes = c_chars(info.pvi_cdir.vip_path.as_flattened());
    (!bytes.is_empty()).then(|| PathBuf::from(OsString::from_vec(bytes)))
}

/// The environment the process received at exec. For a code-signing-restricted
/// process (Apple's hardened system binaries such as `/bin/sleep`, psutil issue #2084;
/// which ones varies by release) read by another process, the kernel gives argv only
/// (xnu bsd/kern/kern_sysctl.c, `sysctl_procargsx`, `omit_env_vars`), whoever asks,
/// root included: that is `EnvironmentHidden`, never an empty environment.
pub fn executable(pid: u32) -> Result<PathBuf, OsError> {
    let args = proc_args(pid)?;
    if args.exec_path.is_empty() {
        return Err(OsError::Parse {
            what: format!("executable of PID {pid}"),
            detail: "the kernel's argument area names no exec path".to_owned(),
        });
    }
    Ok(PathBuf::from(args.exec_path))
}

pub fn process_environ(pid: u32) -> Result<Vec<(String, String)>, OsError> {
    match proc_args(pid)?.env {
        Environment::Read(env) => Ok(procargs::env_pairs(&env)),
        Environment::Omitted => Err(OsError::EnvironmentHidden { pid }),
        Environment::Undelimited => Err(OsError::Parse {
            what: format!("environment of PID {pid}"),
            detail: "the kernel's strings that follow it (from `pfz=`) are missing: the \
                     process rewrote its argument area, or this macOS lays it out \
                     otherwise; where it ends is unknown, so it is not used"
                .to_owned(),
        }),
    }
}

/// Socket FDs are already described in their targets (see `darwin_fd`).
pub fn socket_descriptions(_pid: u32) -> Result<std::collections::HashMap<u64, String>, OsError> {
    Ok(std::collections::HashMap::new())
}

/// No `/proc` here: stat the path itself (a deleted file has none, and is "file").
pub fn fd_file_kind(_pid: u32, _fd: i32, path: &str) -> Option<super::FileKind> {
    std::fs::metadata(path)
        .ok()
        .map(|meta| super::FileKind::of(meta.file_type()))
}

pub fn cgroup(_pid: u32) -> Result<Option<String>, OsError> {
    Ok(None)
}

/// Any process's parent, whoever owns it (see `short_info`).
pub fn parent_pid(pid: u32) -> Result<u32, OsError> {
    short_info(pid).map(|info| info.pbsi_ppid)
}

/// Any process's identity, whoever owns it, from one `kinfo_proc` (see `kinfo`): the
/// start key is the one `PROC_PIDTBSDINFO` gave before (`kinfo::start_key`), so
/// identities read either way compare equal.
pub fn identity(pid: u32) -> Result<Option<Identity>, OsError> {
    match kinfo(pid) {
        Ok(info) if info.stat == kinfo::SZOMB => Ok(None),
        Ok(info) => Ok(Some(identity_of(&info))),
        Err(OsError::NoSuchProcess(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------------
// Arguments and environment: the KERN_PROCARGS2 sysctl.

/// The largest argument buffer believed from `kern.argmax` (macOS ships 1 MiB).
const MAX_ARGMAX: usize = 64 << 20;

fn argmax() -> Result<usize, OsError> {
    static ARGMAX: OnceLock<usize> = OnceLock::new();
    if let Some(&n) = ARGMAX.get() {
        return Ok(n);
    }
    let mut mib = [libc::CTL_KERN, libc::KERN_ARGMAX];
    let mut value: c_int = 0;
    let mut len: libc::size_t = size_of::<c_int>();
    // SAFETY: `mib` holds the 2 names passed; `value` is a writable `c_int` and `len`
    // its size, which the kernel does not exceed; no new value is set.
    let ret = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            2,
            (&raw mut value).cast::<c_void>(),
            &mut len,
            ptr::null_mut(),
            0,
        )
    };
    let io_error = |source| OsError::Io {
        what: "kern.argmax".to_owned(),
        source,
    };
    if ret != 0 {
        return Err(io_error(io::Error::last_os_error()));
    }
    let n = usize::try_from(value)
        .ok()
        .filter(|&n| len == size_of::<c_int>() && (4..=MAX_ARGMAX).contains(&n))
        .ok_or_else(|| io_error(io::Error::other(format!("implausible value {value}"))))?;
    Ok(*ARGMAX.get_or_init(|| n))
}

fn proc_args(pid: u32) -> Result<ProcArgs, OsError> {
    let what = "arguments and environment";
    let cpid = c_pid(pid)?;
    let mut buf = vec![0u8; argmax()?];
    let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, cpid];
    let len = match sysctl_read(&mut mib, &mut buf) {
        Ok(len) => len,
        // xnu answers EINVAL both for a process that is gone (or a zombie) and for
        // another user's process: tell them apart the way psutil does.
        Err(libc::EINVAL) => {
            return Err(match identity(pid) {
                Ok(None) => OsError::NoSuchProcess(pid),
                Ok(Some(_)) => OsError::PermissionDenied { pid, what },
                Err(err) => err,
            });
        }
        Err(e) => return Err(os_error(pid, what, e)),
    };
    // A strings area larger than the buffer is not cut at its end but copied from its
    // END (`sysctl_procargsx`: `data = copy_end - buflen`), and argc is put before it:
    // a full buffer may start in the middle of argv. Only a strings area of exactly the
    // buffer's size fills it too; both are refused.
    if len >= buf.len() {
        return Err(OsError::Parse {
            what: format!("{what} of PID {pid}"),
            detail: format!(
                "they fill the whole {}-byte buffer (kern.argmax), so the kernel may have \
                 given only their end",
                buf.len()
            ),
        });
    }
    let written = buf.get(..len).ok_or_else(|| OsError::Parse {
        what: format!("{what} of PID {pid}"),
        detail: format!(
            "the sysctl reported {len} bytes in a {}-byte buffer",
            buf.len()
        ),
    })?;
    procargs::parse(written).map_err(|e| OsError::Parse {
        what: format!("{what} of PID {pid}"),
        detail: e.to_string(),
    })
}

// ---------------------------------------------------------------------------------
// File descriptors.

/// The most FD entries the table is grown to (32 MiB of `proc_fdinfo`); far beyond
/// `kern.maxfilesperproc`.
const MAX_FDS: usize = 1 << 22;

/// The process's FD table (`PROC_PIDLISTFDS`): FD numbers and types.
fn fd_table(pid: u32) -> Result<Vec<libc::proc_fdinfo>, OsError> {
    let what = "open files";
    let cpid = c_pid(pid)?;
    let entry = size_of::<libc::proc_fdinfo>();
    set_errno(0);
    // SAFETY: a null buffer of size 0 only asks for the size needed; nothing is
    // written.
    let needed = unsafe { libc::proc_pidinfo(cpid, libc::PROC_PIDLISTFDS, 0, ptr::null_mut(), 0) };
    if needed <= 0 {
        return Err(os_error(pid, what, errno()));
    }
    // The kernel's answer is (size of the FD table + 20) entries; leave some more room
    // for FDs opened meanwhile.
    let mut cap = (usize::try_from(needed).unwrap_or(0) / entry)
        .saturating_add(32)
        .min(MAX_FDS);
    loop {
        let mut table = vec![zeroed::<libc::proc_fdinfo>(); cap];
        let bytes = c_int::try_from(cap * entry).unwrap_or(c_int::MAX);
        set_errno(0);
        // SAFETY: `table` is writable for `bytes` bytes (`cap` entries, and `bytes` is
        // at most that); the kernel writes whole entries, at most `bytes` bytes, and
        // returns the number of bytes written.
        let ret = unsafe {
            libc::proc_pidinfo(
                cpid,
                libc::PROC_PIDLISTFDS,
                0,
                table.as_mut_ptr().cast::<c_void>(),
                bytes,
            )
        };
        let e = errno();
        if ret < 0 || (ret == 0 && e != 0) {
            return Err(os_error(pid, what, e));
        }
        let got = usize::try_from(ret).unwrap_or(0) / entry;
        if got < cap {
            table.truncate(got);
            return Ok(table);
        }
        // A full buffer may have cut the list short: FDs were opened since the size
        // query. Ask again with twice the room.
        if cap >= MAX_FDS {
            return Err(OsError::Io {
                what: format!("{what} of PID {pid}"),
                source: io::Error::other(format!("more than {MAX_FDS} open files")),
            });
        }
        cap = cap.saturating_mul(2).min(MAX_FDS);
    }
}

/// One FD's details; why not, classified by `darwin_fd::fdinfo_failure` (with the
/// reasons read in xnu).
fn fd_info<T: KernelPlain>(cpid: c_int, fd: i32, flavor: c_int) -> Result<T, FdInfoFailure> {
    let mut out = zeroed::<T>();
    let size = c_size::<T>();
    set_errno(0);
    // SAFETY: `out` is a live, writable `T` of exactly `size` bytes; the kernel writes
    // at most `size` bytes into it, and any bytes form a valid `T` (`KernelPlain`).
    let ret =
        unsafe { libc::proc_pidfdinfo(cpid, fd, flavor, (&raw mut out).cast::<c_void>(), size) };
    if ret == size {
        return Ok(out);
    }
    if ret > 0 {
        return Err(FdInfoFailure::Unknown);
    }
    Err(darwin_fd::fdinfo_failure(errno()))
}

fn vnode_name(v: &vnode_fdinfowithpath) -> String {
    let vi = &v.pvip.vip_vi;
    darwin_fd::vnode_target(
        &c_chars(v.pvip.vip_path.as_flattened()),
        vi.vi_type,
        vi.vi_stat.vst_nlink,
        vi.vi_stat.vst_ino,
    )
}

fn socket_summary(si: &socket_info) -> SocketSummary {
    let family = si.soi_family;
    let endpoints = |ini: &in_sockinfo| {
        InetEndpoints::from_raw(
            ini.insi_vflag,
            family,
            &ini.insi_laddr.bytes,
            ini.insi_lport,
            &ini.insi_faddr.bytes,
            ini.insi_fport,
        )
    };
    let mut summary = SocketSummary {
        family,
        sock_type: si.soi_type,
        protocol: si.soi_protocol,
        kind: si.soi_kind,
        inet: None,
        tcp_state: None,
        unix_path: None,
        unix_peer: None,
    };
    match si.soi_kind {
        darwin_fd::SOCKINFO_TCP => {
            // SAFETY: `soi_kind` says the kernel filled `pri_tcp`; and every member of
            // the union is plain integers, valid for any bytes.
            let tcp = unsafe { &si.soi_proto.pri_tcp };
            summary.inet = Some(endpoints(&tcp.tcpsi_ini));
            summary.tcp_state = Some(tcp.tcpsi_state);
        }
        darwin_fd::SOCKINFO_IN => {
            // SAFETY: as above, for `pri_in`.
            let ini = unsafe { &si.soi_proto.pri_in };
            summary.inet = Some(endpoints(ini));
        }
        darwin_fd::SOCKINFO_UN => {
            // SAFETY: as above, for `pri_un`.
            let un = unsafe { &si.soi_proto.pri_un };
            summary.unix_path = darwin_fd::unix_path_from_sockaddr(&un.unsi_addr);
            summary.unix_peer = darwin_fd::unix_path_from_sockaddr(&un.unsi_caddr);
        }
        _ => {}
    }
    summary
}

/// The name of one FD, or `None` if it was closed (or its number reused for a file of
/// another type) since the table was read.
fn describe(pid: u32, cpid: c_int, entry: &libc::proc_fdinfo) -> Result<Option<String>, OsError> {
    let fd = entry.proc_fd;
    let fdtype = entry.proc_fdtype;
    let named = match fdtype {
        darwin_fd::PROX_FDTYPE_VNODE => {
            fd_info::<vnode_fdinfowithpath>(cpid, fd, PROC_PIDFDVNODEPATHINFO)
                .map(|v| vnode_name(&v))
        }
        darwin_fd::PROX_FDTYPE_SOCKET => fd_info::<socket_fdinfo>(cpid, fd, PROC_PIDFDSOCKETINFO)
            .map(|s| socket_summary(&s.psi).target()),
        darwin_fd::PROX_FDTYPE_PIPE => fd_info::<pipe_fdinfo>(cpid, fd, PROC_PIDFDPIPEINFO)
            .map(|p| darwin_fd::pipe_target(Some(p.pipeinfo.pipe_handle))),
        other => return Ok(Some(darwin_fd::generic_target(other))),
    };
    match named {
        Ok(name) => Ok(Some(name)),
        Err(FdInfoFailure::Closed | FdInfoFailure::Replaced) => Ok(None),
        Err(FdInfoFailure::ProcessGone) => Err(OsError::NoSuchProcess(pid)),
        Err(FdInfoFailure::Denied) => Err(OsError::PermissionDenied {
            pid,
            what: "open files",
        }),
        // Still an open FD of a known type: count it under that type.
        Err(FdInfoFailure::Unknown) => Ok(Some(darwin_fd::generic_target(fdtype))),
    }
}

pub fn list_fds(pid: u32) -> Result<Vec<FdEntry>, OsError> {
    let cpid = c_pid(pid)?;
    let table = fd_table(pid)?;
    let mut out = Vec::with_capacity(table.len());
    for entry in &table {
        if let Some(target) = describe(pid, cpid, entry)? {
            out.push(FdEntry {
                fd: entry.proc_fd,
                link: target,
            });
        }
    }
    Ok(out)
}

pub fn fd_limit(_pid: u32) -> Result<Option<FdLimit>, OsError> {
    // No interface reads another process's RLIMIT_NOFILE on macOS.
    Ok(None)
}

// ---------------------------------------------------------------------------------
// Processes and ports.

/// The most PIDs the list is grown to; far beyond `kern.maxproc`.
const MAX_PIDS: usize = 1 << 20;

pub fn all_pids() -> Result<Vec<u32>, OsError> {
    let error = |source| OsError::Io {
        what: "the process list".to_owned(),
        source,
    };
    set_errno(0);
    // SAFETY: a null buffer of size 0 only asks for the number of PIDs; nothing is
    // written.
    let estimate = unsafe { libc::proc_listallpids(ptr::null_mut(), 0) };
    if estimate <= 0 {
        return Err(error(io::Error::last_os_error()));
    }
    let mut cap = usize::try_from(estimate)
        .unwrap_or(0)
        .saturating_add(64)
        .min(MAX_PIDS);
    loop {
        let mut pids: Vec<c_int> = vec![0; cap];
        let bytes = c_int::try_from(cap * size_of::<c_int>()).unwrap_or(c_int::MAX);
        set_errno(0);
        // SAFETY: `pids` is writable for `bytes` bytes (`cap` PIDs, and `bytes` is at
        // most that); the kernel writes at most `bytes` bytes and returns the number
        // of PIDs written.
        let n = unsafe { libc::proc_listallpids(pids.as_mut_ptr().cast::<c_void>(), bytes) };
        // libproc turns an error into 0, and there is always at least launchd and us.
        if n <= 0 {
            return Err(error(io::Error::last_os_error()));
        }
        let n = usize::try_from(n).unwrap_or(0);
        if n < cap {
            pids.truncate(n);
            let mut out: Vec<u32> = pids
                .into_iter()
                .filter_map(|p| u32::try_from(p).ok())
                // PID 0 is the kernel, not a process with FDs of its own.
                .filter(|&p| p != 0)
                .collect();
            out.sort_unstable();
            out.dedup();
            return Ok(out);
        }
        if cap >= MAX_PIDS {
            return Err(error(io::Error::other(format!(
                "more than {MAX_PIDS} processes"
            ))));
        }
        cap = cap.saturating_mul(2).min(MAX_PIDS);
    }
}

enum Listen {
    Yes,
    No,
    /// Some socket's details could not be read: it may be the listener.
    Unknown,
}

fn listens_on(pid: u32, port: u16) -> Result<Listen, OsError> {
    let cpid = c_pid(pid)?;
    let mut unknown = false;
    for entry in fd_table(pid)? {
        if entry.proc_fdtype != darwin_fd::PROX_FDTYPE_SOCKET {
            continue;
        }
        match fd_info::<socket_fdinfo>(cpid, entry.proc_fd, PROC_PIDFDSOCKETINFO) {
            Ok(info) => {
                if socket_summary(&info.psi).tcp_listen_port() == Some(port) {
                    return Ok(Listen::Yes);
                }
            }
            // Closed, or its number now names a file that is not a socket: whatever it
            // was, it listens no more.
            Err(FdInfoFailure::Closed | FdInfoFailure::Replaced) => {}
            Err(FdInfoFailure::ProcessGone) => return Err(OsError::NoSuchProcess(pid)),
            Err(FdInfoFailure::Denied) => {
                return Err(OsError::PermissionDenied {
                    pid,
                    what: "open files",
                });
            }
            Err(FdInfoFailure::Unknown) => unknown = true,
        }
    }
    Ok(if unknown { Listen::Unknown } else { Listen::No })
}

/// How long the loopback probe in `port_owner` waits for a connection.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// Whether anything accepts TCP connections on the port on loopback. Used only when
/// some process's sockets could not be read, as macOS has no unprivileged per-socket
/// table like Linux's `/proc/net/tcp` that would show a listener nobody can name.
fn something_answers(port: u16) -> bool {
    [
        SocketAddr::from(([127, 0, 0, 1], port)),
        SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
    ]
    .iter()
    .any(
        |addr| match TcpStream::connect_timeout(addr, PROBE_TIMEOUT) {
            Ok(_) => true,
            // With nothing listening, loopback refuses at once. Silence means a listener
            // whose backlog is full: a wedged accept loop is still a holder.
            Err(e) => e.kind() == io::ErrorKind::TimedOut,
        },
    )
}

pub fn port_owner(port: u16, candidates: &[u32]) -> Result<PortOwner, OsError> {
    let mut holders = Vec::new();
    // Whether some process (or socket) could not be read and might hold the port.
    let mut unsure = false;
    let mut check = |pid: u32, holders: &mut Vec<u32>| match listens_on(pid, port) {
        Ok(Listen::Yes) => holders.push(pid),
        Ok(Listen::No) | Err(OsError::NoSuchProcess(_)) => {}
        Ok(Listen::Unknown) | Err(_) => unsure = true,
    };

    // The candidates (pidfile PID, last known PID) come first in the answer, but are
    // never the whole answer: macOS names no socket by an identity that would show that
    // a candidate holds every listener of the port, and another process listening on
    // another address of the same port (a squatter on [::1] beside the server on
    // 127.0.0.1) must be seen. So every process is searched.
    let mut searched: Vec<u32> = Vec::with_capacity(candidates.len());
    for &pid in candidates {
        if !searched.contains(&pid) {
            searched.push(pid);
            check(pid, &mut holders);
        }
    }
    for pid in all_pids()? {
        if !searched.contains(&pid) {
            check(pid, &mut holders);
        }
    }
    if !holders.is_empty() {
        return Ok(PortOwner::Held(holders));
    }
    if unsure && something_answers(port) {
        Ok(PortOwner::Hidden)
    } else {
        Ok(PortOwner::Free)
    }
}

// ---------------------------------------------------------------------------------
// Credentials and signals.

/// The supplementary groups from `KERN_PROC_PID` (xnu's `fill_user64_eproc` copies
/// the credential's first 16 groups into `e_ucred`; `proc_pidinfo` gives only the
/// effective group). A process with more than 16 groups cannot be read in full, so it
/// is an error: the replacement would silently lose the rest.
pub fn groups(pid: u32) -> Result<Vec<u32>, OsError> {
    let (_, info) = short_and_kinfo(pid)?;
    info.groups.ok_or_else(|| OsError::Parse {
        what: format!("credentials of PID {pid}"),
        detail: format!(
            "more than {} supplementary groups; the kernel reports only {}",
            kinfo::NGROUPS,
            kinfo::NGROUPS
        ),
    })
}

/// No pidfd on macOS: the identity re-checked right before `kill(2)`.
pub fn signal_if_same(who: Identity, signal: i32) -> Result<super::Delivery, super::SignalFault> {
    super::kill_after_recheck(who, signal)
}

// These run on a Mac only (the hosting service's macOS runners, as a user that is not
// root, with passwordless sudo); there is no Mac where this code is written.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::os::{self, OsError};
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::thread::sleep;

    /// Kills and reaps a child, even when the test fails.
    struct Reaped(Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Sets `HELPER` for `child_that_sleeps`.
    const HELPER: &str = "WATCHDOG_MACOS_TEST_HELPER";
    const MARK: (&str, &str) = ("WATCHDOG_ENV_MARK", "a mark = with spaces");

    fn bsd_info(pid: u32) -> libc::proc_bsdinfo {
        pid_info::<libc::proc_bsdinfo>(pid, libc::PROC_PIDTBSDINFO, "process info").unwrap()
    }

    fn spawn_marked(program: &Path, args: &[&str]) -> Reaped {
        let child = Command::new(program)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env(MARK.0, MARK.1)
            .env(HELPER, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Reaped(child)
    }

    /// The child's environment once it has exec'd (until then it may still be a copy
    /// of this process, whose environment has no mark): read, or withheld.
    fn environ_after_exec(pid: u32) -> Result<Vec<(String, String)>, OsError> {
        let mut last = process_environ(pid);
        for _ in 0..200 {
            match &last {
                Ok(env) if env.iter().any(|(k, _)| k == MARK.0) => break,
                Err(OsError::EnvironmentHidden { .. }) => break,
                _ => {}
            }
            sleep(Duration::from_millis(50));
            last = process_environ(pid);
        }
        last
    }

    fn marked_env() -> Vec<(String, String)> {
        let mut env = vec![
            (HELPER.to_owned(), "1".to_owned()),
            ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
            (MARK.0.to_owned(), MARK.1.to_owned()),
        ];
        env.sort();
        env
    }

    /// Keys only the kernel's apple strings have (`exec_add_apple_strings`).
    const APPLE_KEYS: [&str; 9] = [
        "pfz",
        "stack_guard",
        "malloc_entropy",
        "ptr_munge",
        "main_stack",
        "executable_file",
        "executable_cdhash",
        "executable_boothash",
        "th_port",
    ];

    fn assert_no_apple_strings(env: &[(String, String)]) {
        for (key, value) in env {
            assert!(
                !APPLE_KEYS.contains(&key.as_str()),
                "apple string read as a variable: {key}={value}"
            );
        }
    }

    /// Not a test: the process `an_unrestricted_childs_environment` starts (this test
    /// binary, which the linker signs ad hoc and the kernel does not restrict). It
    /// does nothing unless that test set `HELPER`.
    #[test]
    #[ignore = "a child process of an_unrestricted_childs_environment, not a test"]
    fn child_that_sleeps() {
        if std::env::var_os(HELPER).is_some() {
            sleep(Duration::from_secs(30));
        }
    }

    /// The environment as read for replay (docs/SECURITY.md, "launchd"), on the process's own environment (the kernel never
    /// withholds it from the process itself).
    #[test]
    fn own_environment() {
        let env = process_environ(std::process::id()).unwrap();
        assert_no_apple_strings(&env);
        let path = std::env::var("PATH").unwrap_or_default();
        assert!(
            env.contains(&("PATH".to_owned(), path)),
            "PATH missing or different in {env:?}"
        );
    }

    #[test]
    fn an_unrestricted_childs_environment() {
        let exe = std::env::current_exe().unwrap();
        let child = spawn_marked(
            &exe,
            &[
                "--exact",
                "probe::os::macos::tests::child_that_sleeps",
                "--ignored",
                "--test-threads=1",
            ],
        );
        let mut env = environ_after_exec(child.0.id()).unwrap();
        env.sort();
        assert_eq!(env, marked_env());
    }

    /// A shell's environment is read, or withheld (if this release restricts
    /// `/bin/sh`), never empty.
    #[test]
    fn a_shells_environment() {
        let child = spawn_marked(Path::new("/bin/sh"), &["-c", "sleep 30; exit 0"]);
        match environ_after_exec(child.0.id()) {
            Ok(mut env) => {
                env.sort();
                assert_eq!(env, marked_env());
            }
            Err(OsError::EnvironmentHidden { pid }) => assert_eq!(pid, child.0.id()),
            Err(e) => panic!("{e}"),
        }
    }

    /// `/bin/sleep` is code-signing restricted on current releases (psutil issue
    /// #2084): its environment is withheld, and said so; before, it read as empty.
    #[test]
    fn a_restricted_programs_environment_is_hidden_not_empty() {
        let child = spawn_marked(Path::new("/bin/sleep"), &["30"]);
        let pid = child.0.id();
        match environ_after_exec(pid) {
            Ok(mut env) => {
                env.sort();
                assert_eq!(env, marked_env(), "never an empty or partial environment");
            }
            Err(OsError::EnvironmentHidden { pid: hidden }) => assert_eq!(hidden, pid),
            Err(e) => panic!("{e}"),
        }
        // argv is read either way.
        let info = process_info(pid).unwrap();
        assert_eq!(info.argv, ["/bin/sleep", "30"]);
    }

    /// The start key from `kinfo_proc` is the one `PROC_PIDTBSDINFO` gives, and the
    /// short info agrees with it.
    #[test]
    fn start_keys_and_parents_agree_with_bsdinfo() {
        let child = spawn_marked(Path::new("/bin/sleep"), &["30"]);
        for pid in [std::process::id(), child.0.id()] {
            let bsd = bsd_info(pid);
            let id = identity(pid).unwrap().unwrap();
            assert_eq!(
                id.start_key,
                kinfo::start_key(bsd.pbi_start_tvsec, bsd.pbi_start_tvusec),
                "PID {pid}"
            );
            assert_eq!(parent_pid(pid).unwrap(), bsd.pbi_ppid);
            let info = process_info(pid).unwrap();
            assert_eq!(info.identity, id);
            assert_eq!(
                (info.ppid, info.uid, info.gid),
                (bsd.pbi_ppid, Some(bsd.pbi_uid), Some(bsd.pbi_gid))
            );
            assert_eq!(groups(pid).unwrap().first(), Some(&bsd.pbi_gid));
        }
        assert_eq!(parent_pid(child.0.id()).unwrap(), std::process::id());
    }

    /// `pid` and its ancestors, by the kernel's parent links.
    fn chain(pid: u32) -> Vec<u32> {
        let parent = |&p: &u32| if p <= 1 { None } else { parent_pid(p).ok() };
        std::iter::successors(Some(pid), parent)
            .take(os::MAX_TREE_DEPTH)
            .collect()
    }

    /// `sudo`, running as root between this process and its `sleep`, and the `sleep`
    /// under it, found by their parent links.
    struct UnderSudo {
        sudo: Child,
        sleep: Option<u32>,
    }

    impl Drop for UnderSudo {
        fn drop(&mut self) {
            // Root's sudo cannot be signalled from here; the sleep, ours, can, and
            // sudo exits with it.
            if let Some(pid) = self.sleep.and_then(|p| libc::pid_t::try_from(p).ok()) {
                // SAFETY: kill(2) takes plain integers and has no memory effects.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let _ = self.sudo.kill();
            let _ = self.sudo.wait();
        }
    }

    /// An ancestor of another user (docs/SECURITY.md, "Finding the process to act on"): a watchdog that is not root walks up past a root process
    /// (`sudo`, like `login` or `sshd`) to the ancestor it looks for; before,
    /// `PROC_PIDTBSDINFO` failed with EPERM at sudo and the walk said "no".
    #[test]
    fn descends_through_a_root_sudo() {
        let me = os::own_uid();
        assert_ne!(
            me, 0,
            "this test needs a user that is not root and has passwordless sudo (the \
             hosting service's macOS runners do); as root every process can be read, \
             which proves nothing"
        );
        let name = Command::new("/usr/bin/id").arg("-un").output().unwrap();
        let name = String::from_utf8(name.stdout).unwrap().trim().to_owned();
        let check = Command::new("/usr/bin/sudo")
            .args(["-n", "/usr/bin/true"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "`sudo -n true` failed ({}): this test needs passwordless sudo",
            String::from_utf8_lossy(&check.stderr).trim()
        );
        let sudo = Command::new("/usr/bin/sudo")
            .args(["-n", "-u", &name, "/bin/sleep", "30"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut under = UnderSudo { sudo, sleep: None };
        let sudo_pid = under.sudo.id();
        // sudo's command, once it runs as this user (before that it is root's): a
        // child of sudo, or a grandchild when sudo puts a monitor process between (with
        // `use_pty`). Found by walking up from each of this user's processes.
        for _ in 0..200 {
            under.sleep = all_pids().unwrap().into_iter().find(|&p| {
                p != sudo_pid
                    && short_info(p).is_ok_and(|info| info.pbsi_uid == me)
                    && chain(p).contains(&sudo_pid)
            });
            if under.sleep.is_some() {
                break;
            }
            sleep(Duration::from_millis(50));
        }
        let sleep_pid = under.sleep.unwrap_or_else(|| {
            panic!(
                "sudo (PID {sudo_pid}) started no process running as {name} within 10 s: \
                 did it run the command in its own process?"
            )
        });
        // Every process between the sleep and this test is root's (sudo, and its
        // monitor if any): each of them stopped the walk before.
        let between: Vec<u32> = chain(sleep_pid)
            .into_iter()
            .skip(1)
            .take_while(|&p| p != std::process::id())
            .collect();
        assert!(between.contains(&sudo_pid), "{between:?}");
        for &p in &between {
            assert_eq!(short_info(p).unwrap().pbsi_uid, 0, "PID {p} of {between:?}");
            assert!(identity(p).unwrap().is_some());
        }
        assert_eq!(parent_pid(sudo_pid).unwrap(), std::process::id());
        assert!(os::descends_from(sleep_pid, std::process::id()));
        // Its argv stays unreadable to a user that is not root.
        assert!(matches!(
            process_info(sudo_pid),
            Err(OsError::PermissionDenied { .. })
        ));
    }
}
