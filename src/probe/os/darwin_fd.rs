//! Naming a macOS file descriptor from the raw values `proc_pidfdinfo` returns, in the
//! Linux `/proc/PID/fd` style the platform-free classifier (`probe::fds`) reads:
//! a path for a vnode, `socket:[...]`, `pipe:[...]`, `kqueue`, `anon_inode:[...]`.
//! Pure (numbers and byte arrays in, strings out), so it is compiled and tested
//! everywhere; `macos.rs` only copies fields out of the kernel's structs.
//!
//! The constants are those of Apple's `sys/proc_info.h`, `sys/socket.h`,
//! `netinet/in.h` and `sys/vnode.h`, repeated here so that Linux can test the naming;
//! on macOS they are checked against `libc` at compile time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

// `proc_fdinfo.proc_fdtype` (PROX_FDTYPE_*).
pub const PROX_FDTYPE_ATALK: u32 = 0;
pub const PROX_FDTYPE_VNODE: u32 = 1;
pub const PROX_FDTYPE_SOCKET: u32 = 2;
pub const PROX_FDTYPE_PSHM: u32 = 3;
pub const PROX_FDTYPE_PSEM: u32 = 4;
pub const PROX_FDTYPE_KQUEUE: u32 = 5;
pub const PROX_FDTYPE_PIPE: u32 = 6;
pub const PROX_FDTYPE_FSEVENTS: u32 = 7;
pub const PROX_FDTYPE_NETPOLICY: u32 = 9;
pub const PROX_FDTYPE_CHANNEL: u32 = 10;
pub const PROX_FDTYPE_NEXUS: u32 = 11;

// `socket_info.soi_kind` (SOCKINFO_*): which member of `soi_proto` the kernel filled.
pub const SOCKINFO_GENERIC: i32 = 0;
pub const SOCKINFO_IN: i32 = 1;
pub const SOCKINFO_TCP: i32 = 2;
pub const SOCKINFO_UN: i32 = 3;
pub const SOCKINFO_NDRV: i32 = 4;
pub const SOCKINFO_KERN_EVENT: i32 = 5;
pub const SOCKINFO_KERN_CTL: i32 = 6;
pub const SOCKINFO_VSOCK: i32 = 7;

// `in_sockinfo.insi_vflag`.
pub const INI_IPV4: u8 = 0x1;
pub const INI_IPV6: u8 = 0x2;

// `tcp_sockinfo.tcpsi_state` (TSI_S_*).
pub const TSI_S_LISTEN: i32 = 1;

// Address families, socket types and protocols as macOS numbers them (AF_INET6 is 30
// there, not Linux's 10).
pub const AF_UNIX: i32 = 1;
pub const AF_INET: i32 = 2;
pub const AF_ROUTE: i32 = 17;
pub const AF_NDRV: i32 = 27;
pub const AF_INET6: i32 = 30;
pub const AF_SYSTEM: i32 = 32;
pub const AF_VSOCK: i32 = 40;
pub const SOCK_STREAM: i32 = 1;
pub const SOCK_DGRAM: i32 = 2;
pub const IPPROTO_TCP: i32 = 6;
pub const IPPROTO_UDP: i32 = 17;

// `vnode_info.vi_type` (enum vtype): VREG.
pub const VREG: i32 = 1;

// The errno values `proc_pidfdinfo` answers with, as macOS numbers them (ENOTSOCK is 38
// there, Linux's 88; EOPNOTSUPP 102, Linux's 95).
pub const EPERM: i32 = 1;
pub const ESRCH: i32 = 3;
pub const EBADF: i32 = 9;
pub const EACCES: i32 = 13;
pub const ENOTSOCK: i32 = 38;
pub const EOPNOTSUPP: i32 = 102;

#[cfg(target_os = "macos")]
const _: () = {
    assert!(PROX_FDTYPE_ATALK == libc::PROX_FDTYPE_ATALK as u32);
    assert!(PROX_FDTYPE_VNODE == libc::PROX_FDTYPE_VNODE as u32);
    assert!(PROX_FDTYPE_SOCKET == libc::PROX_FDTYPE_SOCKET as u32);
    assert!(PROX_FDTYPE_PSHM == libc::PROX_FDTYPE_PSHM as u32);
    assert!(PROX_FDTYPE_PSEM == libc::PROX_FDTYPE_PSEM as u32);
    assert!(PROX_FDTYPE_KQUEUE == libc::PROX_FDTYPE_KQUEUE as u32);
    assert!(PROX_FDTYPE_PIPE == libc::PROX_FDTYPE_PIPE as u32);
    assert!(PROX_FDTYPE_FSEVENTS == libc::PROX_FDTYPE_FSEVENTS as u32);
    assert!(PROX_FDTYPE_NETPOLICY == libc::PROX_FDTYPE_NETPOLICY as u32);
    assert!(PROX_FDTYPE_CHANNEL == libc::PROX_FDTYPE_CHANNEL as u32);
    assert!(PROX_FDTYPE_NEXUS == libc::PROX_FDTYPE_NEXUS as u32);
    assert!(AF_UNIX == libc::AF_UNIX);
    assert!(AF_INET == libc::AF_INET);
    assert!(AF_ROUTE == libc::AF_ROUTE);
    assert!(AF_NDRV == libc::AF_NDRV);
    assert!(AF_INET6 == libc::AF_INET6);
    assert!(AF_SYSTEM == libc::AF_SYSTEM);
    assert!(AF_VSOCK == libc::AF_VSOCK);
    assert!(SOCK_STREAM == libc::SOCK_STREAM);
    assert!(SOCK_DGRAM == libc::SOCK_DGRAM);
    assert!(IPPROTO_TCP == libc::IPPROTO_TCP);
    assert!(IPPROTO_UDP == libc::IPPROTO_UDP);
    assert!(EPERM == libc::EPERM);
    assert!(ESRCH == libc::ESRCH);
    assert!(EBADF == libc::EBADF);
    assert!(EACCES == libc::EACCES);
    assert!(ENOTSOCK == libc::ENOTSOCK);
    assert!(EOPNOTSUPP == libc::EOPNOTSUPP);
};

/// Why `proc_pidfdinfo` gave nothing for one FD of the table `PROC_PIDLISTFDS` listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdInfoFailure {
    /// The FD was closed since the table was read.
    Closed,
    /// The FD number now names a file of another type: the file listed was closed and
    /// the number reused. Like `Closed`, it is not counted (the census is of the table
    /// as read, less what was closed since, as an FD opened after the read is not in
    /// it either), and it cannot be the listener the port scan looks for.
    Replaced,
    /// The process is gone.
    ProcessGone,
    /// Another user's process.
    Denied,
    /// Anything else: the FD may still be what the table said, its details unknown.
    Unknown,
}

/// What a `proc_pidfdinfo` failure with `errno` means (xnu bsd/kern/proc_info.c,
/// `proc_pidfdinfo`):
/// - ESRCH: `proc_find` found no process.
/// - EPERM (EACCES kept for safety): `proc_security_policy`, another user's process.
/// - EBADF: `fp_get_ftype` (bsd/kern/kern_descrip.c) found no open file at that FD,
///   or one being opened or closed (`UF_RESERVED`); for the vnode, pipe and other
///   flavours also a file of another type, which they report as EBADF too.
/// - ENOTSOCK: for `PROC_PIDFDSOCKETINFO`, `fp_get_ftype(p, fd, DTYPE_SOCKET, ENOTSOCK)`:
///   an open file that is not a socket (xnu-7195, macOS 11, and later).
/// - EOPNOTSUPP: the same on earlier releases, whose `fp_getfsock` answered it for a
///   file that is not a socket ("EOPNOTSUPP should probably be ENOTSOCK", its comment
///   says). No current path returns it for a socket: `fill_socketinfo`
///   (bsd/kern/socket_info.c) describes every family and kind and returns 0.
///
/// The table said the FD was a socket when it was read, so both mean the socket was
/// closed and its number reused. Anything else (ENOMEM for a size this code got wrong,
/// EFAULT, a MAC policy's answer, errno 0) is `Unknown`.
pub fn fdinfo_failure(errno: i32) -> FdInfoFailure {
    match errno {
        EBADF => FdInfoFailure::Closed,
        ENOTSOCK | EOPNOTSUPP => FdInfoFailure::Replaced,
        ESRCH => FdInfoFailure::ProcessGone,
        EPERM | EACCES => FdInfoFailure::Denied,
        _ => FdInfoFailure::Unknown,
    }
}

/// The TSI_S_* state names, as netstat and lsof print them.
pub fn tcp_state_name(state: i32) -> Option<&'static str> {
    Some(match state {
        0 => "CLOSED",
        1 => "LISTEN",
        2 => "SYN_SENT",
        3 => "SYN_RECEIVED",
        4 => "ESTABLISHED",
        5 => "CLOSE_WAIT",
        6 => "FIN_WAIT_1",
        7 => "CLOSING",
        8 => "LAST_ACK",
        9 => "FIN_WAIT_2",
        10 => "TIME_WAIT",
        _ => return None,
    })
}

/// The port in `insi_lport` / `insi_fport`: an `int` that holds the kernel's
/// `u_short` port in network byte order in its low 16 bits (lsof and psutil apply
/// `ntohs` to it).
pub fn port_from_raw(raw: i32) -> u16 {
    u16::from_be(raw as u16)
}

/// The address in an `insi_laddr`/`insi_faddr` union (16 bytes: `in6_addr`, or
/// `in4in6_addr` whose last 4 bytes are the IPv4 address). The kernel fills the IPv6
/// form when the socket does IPv6 (`INI_IPV6`; a dual-stack socket bound to no address
/// has both flags, and its address is the wildcard either way) and the IPv4 form
/// otherwise, including an IPv6 socket bound or connected to a v4-mapped address.
pub fn inet_addr(vflag: u8, family: i32, raw: &[u8; 16]) -> IpAddr {
    let v4 = || IpAddr::V4(Ipv4Addr::new(raw[12], raw[13], raw[14], raw[15]));
    let v6 = || IpAddr::V6(Ipv6Addr::from(*raw));
    if vflag & INI_IPV6 != 0 {
        v6()
    } else if vflag & INI_IPV4 != 0 || family != AF_INET6 {
        v4()
    } else {
        v6()
    }
}

/// Local and remote ends of an IPv4/IPv6 socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InetEndpoints {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

impl InetEndpoints {
    /// From the raw `in_sockinfo` fields.
    pub fn from_raw(
        vflag: u8,
        family: i32,
        laddr: &[u8; 16],
        lport_raw: i32,
        faddr: &[u8; 16],
        fport_raw: i32,
    ) -> InetEndpoints {
        InetEndpoints {
            local: SocketAddr::new(inet_addr(vflag, family, laddr), port_from_raw(lport_raw)),
            remote: SocketAddr::new(inet_addr(vflag, family, faddr), port_from_raw(fport_raw)),
        }
    }

    fn is_v6(&self) -> bool {
        self.local.is_ipv6()
    }

    /// `local` or `local->remote` when connected.
    fn text(&self) -> String {
        if self.remote.port() == 0 && self.remote.ip().is_unspecified() {
            self.local.to_string()
        } else {
            format!("{}->{}", self.local, self.remote)
        }
    }
}

/// What one socket FD is, from `socket_fdinfo.psi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSummary {
    /// `soi_family` (AF_*).
    pub family: i32,
    /// `soi_type` (SOCK_*).
    pub sock_type: i32,
    /// `soi_protocol` (IPPROTO_*).
    pub protocol: i32,
    /// `soi_kind` (SOCKINFO_*).
    pub kind: i32,
    /// For SOCKINFO_IN and SOCKINFO_TCP.
    pub inet: Option<InetEndpoints>,
    /// For SOCKINFO_TCP: `tcpsi_state`.
    pub tcp_state: Option<i32>,
    /// For SOCKINFO_UN: the bound path and the peer's bound path, when there are any.
    pub unix_path: Option<String>,
    pub unix_peer: Option<String>,
}

impl SocketSummary {
    /// The local TCP port, if this is a TCP socket in LISTEN.
    pub fn tcp_listen_port(&self) -> Option<u16> {
        if self.kind != SOCKINFO_TCP || self.tcp_state != Some(TSI_S_LISTEN) {
            return None;
        }
        self.inet.map(|e| e.local.port())
    }

    /// `socket:[tcp 127.0.0.1:8787 LISTEN]`, `socket:[tcp6 [::1]:8787->[::1]:50000
    /// ESTABLISHED]`, `socket:[udp 0.0.0.0:5353]`, `socket:[unix /var/run/x.sock]`,
    /// `socket:[route]`, ...
    pub fn target(&self) -> String {
        let inner = match (self.kind, self.inet) {
            (SOCKINFO_TCP, Some(ends)) => {
                let proto = if ends.is_v6() { "tcp6" } else { "tcp" };
                let state = match self.tcp_state {
                    Some(s) => tcp_state_name(s).map_or_else(|| format!("state {s}"), String::from),
                    None => "state ?".to_owned(),
                };
                format!("{proto} {} {state}", ends.text())
            }
            (SOCKINFO_IN, Some(ends)) => {
                let v6 = ends.is_v6();
                let proto = if self.protocol == IPPROTO_UDP || self.sock_type == SOCK_DGRAM {
                    if v6 {
                        "udp6".to_owned()
                    } else {
                        "udp".to_owned()
                    }
                } else {
                    let ip = if v6 { "ip6" } else { "ip" };
                    format!("{ip} proto {}", self.protocol)
                };
                format!("{proto} {}", ends.text())
            }
            (SOCKINFO_UN, _) => match (&self.unix_path, &self.unix_peer) {
                (Some(path), _) => format!("unix {path}"),
                (None, Some(peer)) => format!("unix ->{peer}"),
                (None, None) => "unix".to_owned(),
            },
            _ => match self.family {
                AF_UNIX => "unix".to_owned(),
                AF_INET => "ip".to_owned(),
                AF_INET6 => "ip6".to_owned(),
                AF_ROUTE => "route".to_owned(),
                AF_NDRV => "ndrv".to_owned(),
                AF_SYSTEM => match self.kind {
                    SOCKINFO_KERN_CTL => "system kctl".to_owned(),
                    SOCKINFO_KERN_EVENT => "system kevent".to_owned(),
                    _ => "system".to_owned(),
                },
                AF_VSOCK => "vsock".to_owned(),
                other => format!("family {other}"),
            },
        };
        format!("socket:[{inner}]")
    }
}

/// The path in a `sockaddr_un` held in `un_sockinfo`'s 255-byte address union
/// (`sun_len`, `sun_family`, then `sun_path`), if it names one.
pub fn unix_path_from_sockaddr(raw: &[u8]) -> Option<String> {
    let sun_len = usize::from(*raw.first()?);
    // `get` is `None` when `sun_len` < 2 (the range would run backwards).
    let path = raw.get(2..sun_len.min(raw.len()))?;
    let path = c_str_bytes(path);
    (!path.is_empty()).then(|| String::from_utf8_lossy(path).into_owned())
}

/// The bytes of a C string held in a fixed buffer: up to the first NUL, or all of it.
pub fn c_str_bytes(buf: &[u8]) -> &[u8] {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    &buf[..end]
}

/// A vnode FD: its path, with ` (deleted)` for a regular file with no links left (as
/// Linux marks it). A vnode the kernel could not name has no path; it is counted as
/// "other" rather than given a made-up one.
pub fn vnode_target(path: &[u8], vtype: i32, nlink: u16, ino: u64) -> String {
    let path = c_str_bytes(path);
    if path.is_empty() {
        return format!("anon_inode:[vnode ino {ino}]");
    }
    let path = String::from_utf8_lossy(path);
    if vtype == VREG && nlink == 0 {
        format!("{path} (deleted)")
    } else {
        path.into_owned()
    }
}

/// A pipe FD, named by the kernel's handle of its end when known (lsof prints the
/// same handle).
pub fn pipe_target(handle: Option<u64>) -> String {
    match handle {
        Some(h) => format!("pipe:[{h:#x}]"),
        None => "pipe:[?]".to_owned(),
    }
}

/// The short name of a PROX_FDTYPE_* value.
pub fn fdtype_name(fdtype: u32) -> Option<&'static str> {
    Some(match fdtype {
        PROX_FDTYPE_ATALK => "atalk",
        PROX_FDTYPE_VNODE => "vnode",
        PROX_FDTYPE_SOCKET => "socket",
        PROX_FDTYPE_PSHM => "pshm",
        PROX_FDTYPE_PSEM => "psem",
        PROX_FDTYPE_KQUEUE => "kqueue",
        PROX_FDTYPE_PIPE => "pipe",
        PROX_FDTYPE_FSEVENTS => "fsevents",
        PROX_FDTYPE_NETPOLICY => "netpolicy",
        PROX_FDTYPE_CHANNEL => "channel",
        PROX_FDTYPE_NEXUS => "nexus",
        _ => return None,
    })
}

/// The name of an FD whose details were not (or could not be) read: a kqueue is
/// `kqueue`, a socket `socket:[?]`, a pipe `pipe:[?]`, a vnode
/// `anon_inode:[vnode]`, the rest `anon_inode:[<type>]`. Keeps the classifier's kind
/// right even when `proc_pidfdinfo` fails.
pub fn generic_target(fdtype: u32) -> String {
    match fdtype {
        PROX_FDTYPE_KQUEUE => "kqueue".to_owned(),
        PROX_FDTYPE_SOCKET => "socket:[?]".to_owned(),
        PROX_FDTYPE_PIPE => pipe_target(None),
        other => match fdtype_name(other) {
            Some(name) => format!("anon_inode:[{name}]"),
            None => format!("anon_inode:[fdtype {other}]"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::os::FdKind;

    /// An `in_sockinfo` address union holding an IPv4 address (in4in6_addr form).
    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut raw = [0; 16];
        raw[12..].copy_from_slice(&a);
        raw
    }

    /// A port as the kernel stores it in `insi_lport`: the network-order u16 read as
    /// a native integer.
    fn raw_port(port: u16) -> i32 {
        i32::from(u16::from_ne_bytes(port.to_be_bytes()))
    }

    fn tcp(
        vflag: u8,
        family: i32,
        l: [u8; 16],
        lp: u16,
        f: [u8; 16],
        fp: u16,
        state: i32,
    ) -> SocketSummary {
        SocketSummary {
            family,
            sock_type: SOCK_STREAM,
            protocol: IPPROTO_TCP,
            kind: SOCKINFO_TCP,
            inet: Some(InetEndpoints::from_raw(
                vflag,
                family,
                &l,
                raw_port(lp),
                &f,
                raw_port(fp),
            )),
            tcp_state: Some(state),
            unix_path: None,
            unix_peer: None,
        }
    }

    #[test]
    fn ports_are_in_network_byte_order() {
        assert_eq!(port_from_raw(raw_port(8787)), 8787);
        assert_eq!(port_from_raw(raw_port(1)), 1);
        assert_eq!(port_from_raw(raw_port(65535)), 65535);
        // 8787 = 0x2253: stored as bytes 22 53, which a little-endian host reads as
        // 0x5322.
        #[cfg(target_endian = "little")]
        assert_eq!(port_from_raw(0x5322), 8787);
        // Only the low 16 bits count.
        assert_eq!(port_from_raw(raw_port(8787) | 0x7fff_0000), 8787);
    }

    #[test]
    fn tcp_state_names() {
        let names: Vec<_> = (0..=10).map(|s| tcp_state_name(s).unwrap()).collect();
        assert_eq!(
            names,
            [
                "CLOSED",
                "LISTEN",
                "SYN_SENT",
                "SYN_RECEIVED",
                "ESTABLISHED",
                "CLOSE_WAIT",
                "FIN_WAIT_1",
                "CLOSING",
                "LAST_ACK",
                "FIN_WAIT_2",
                "TIME_WAIT"
            ]
        );
        assert_eq!(tcp_state_name(11), None);
        assert_eq!(tcp_state_name(-1), None);
    }

    #[test]
    fn ipv4_listener() {
        let s = tcp(
            INI_IPV4,
            AF_INET,
            v4([127, 0, 0, 1]),
            8787,
            [0; 16],
            0,
            TSI_S_LISTEN,
        );
        assert_eq!(s.target(), "socket:[tcp 127.0.0.1:8787 LISTEN]");
        assert_eq!(s.tcp_listen_port(), Some(8787));
        assert_eq!(FdKind::of(&s.target()), FdKind::Socket);
    }

    #[test]
    fn ipv4_established() {
        let s = tcp(
            INI_IPV4,
            AF_INET,
            v4([127, 0, 0, 1]),
            8787,
            v4([127, 0, 0, 1]),
            53122,
            4,
        );
        assert_eq!(
            s.target(),
            "socket:[tcp 127.0.0.1:8787->127.0.0.1:53122 ESTABLISHED]"
        );
        assert_eq!(s.tcp_listen_port(), None, "only LISTEN sockets hold a port");
    }

    #[test]
    fn ipv6_loopback_listener() {
        let s = tcp(
            INI_IPV6,
            AF_INET6,
            Ipv6Addr::LOCALHOST.octets(),
            8787,
            [0; 16],
            0,
            TSI_S_LISTEN,
        );
        assert_eq!(s.target(), "socket:[tcp6 [::1]:8787 LISTEN]");
        assert_eq!(s.tcp_listen_port(), Some(8787));
    }

    #[test]
    fn dual_stack_wildcard_listener() {
        let s = tcp(
            INI_IPV4 | INI_IPV6,
            AF_INET6,
            [0; 16],
            8787,
            [0; 16],
            0,
            TSI_S_LISTEN,
        );
        assert_eq!(s.target(), "socket:[tcp6 [::]:8787 LISTEN]");
        assert_eq!(s.tcp_listen_port(), Some(8787));
    }

    #[test]
    fn v4_mapped_on_an_ipv6_socket() {
        // An AF_INET6 socket connected to a v4-mapped address: the kernel clears
        // INI_IPV6 and the address is in the in4in6 form (last 4 bytes).
        let mapped = Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped().octets();
        let s = tcp(INI_IPV4, AF_INET6, mapped, 50000, mapped, 8787, 4);
        assert_eq!(
            s.target(),
            "socket:[tcp 127.0.0.1:50000->127.0.0.1:8787 ESTABLISHED]"
        );
        // The same bytes read as IPv6 print the mapped form.
        let s = tcp(INI_IPV6, AF_INET6, mapped, 8787, [0; 16], 0, TSI_S_LISTEN);
        assert_eq!(s.target(), "socket:[tcp6 [::ffff:127.0.0.1]:8787 LISTEN]");
    }

    #[test]
    fn unknown_tcp_state_is_shown_by_number() {
        let s = tcp(INI_IPV4, AF_INET, v4([10, 0, 0, 1]), 80, [0; 16], 0, 42);
        assert_eq!(s.target(), "socket:[tcp 10.0.0.1:80 state 42]");
    }

    #[test]
    fn udp_and_other_ip() {
        let mut s = SocketSummary {
            family: AF_INET,
            sock_type: SOCK_DGRAM,
            protocol: IPPROTO_UDP,
            kind: SOCKINFO_IN,
            inet: Some(InetEndpoints::from_raw(
                INI_IPV4,
                AF_INET,
                &[0; 16],
                raw_port(5353),
                &[0; 16],
                0,
            )),
            tcp_state: None,
            unix_path: None,
            unix_peer: None,
        };
        assert_eq!(s.target(), "socket:[udp 0.0.0.0:5353]");
        assert_eq!(s.tcp_listen_port(), None);
        s.inet = Some(InetEndpoints::from_raw(
            INI_IPV6,
            AF_INET6,
            &Ipv6Addr::LOCALHOST.octets(),
            raw_port(5000),
            &Ipv6Addr::LOCALHOST.octets(),
            raw_port(6000),
        ));
        assert_eq!(s.target(), "socket:[udp6 [::1]:5000->[::1]:6000]");
        s.sock_type = 3;
        s.protocol = 1;
        s.inet = Some(InetEndpoints::from_raw(
            INI_IPV4, AF_INET, &[0; 16], 0, &[0; 16], 0,
        ));
        assert_eq!(s.target(), "socket:[ip proto 1 0.0.0.0:0]");
    }

    #[test]
    fn unix_sockets() {
        let mut addr = [0u8; 255];
        let path = b"/var/run/mDNSResponder";
        addr[0] = (2 + path.len()) as u8;
        addr[1] = AF_UNIX as u8;
        addr[2..2 + path.len()].copy_from_slice(path);
        let bound = unix_path_from_sockaddr(&addr);
        assert_eq!(bound.as_deref(), Some("/var/run/mDNSResponder"));
        // Unbound: sun_len 0 or an empty path.
        assert_eq!(unix_path_from_sockaddr(&[0u8; 255]), None);
        assert_eq!(unix_path_from_sockaddr(&[16, 1, 0, 0]), None);
        // sun_len larger than the buffer, and no NUL: bounded by the buffer.
        assert_eq!(
            unix_path_from_sockaddr(&[200, 1, b'/', b'x']).as_deref(),
            Some("/x")
        );
        assert_eq!(unix_path_from_sockaddr(&[]), None);
        assert_eq!(unix_path_from_sockaddr(&[1]), None);

        let mut s = SocketSummary {
            family: AF_UNIX,
            sock_type: SOCK_STREAM,
            protocol: 0,
            kind: SOCKINFO_UN,
            inet: None,
            tcp_state: None,
            unix_path: bound.clone(),
            unix_peer: None,
        };
        assert_eq!(s.target(), "socket:[unix /var/run/mDNSResponder]");
        s.unix_path = None;
        s.unix_peer = bound;
        assert_eq!(s.target(), "socket:[unix ->/var/run/mDNSResponder]");
        s.unix_peer = None;
        assert_eq!(s.target(), "socket:[unix]");
        assert_eq!(FdKind::of(&s.target()), FdKind::Socket);
    }

    #[test]
    fn other_families() {
        let base = SocketSummary {
            family: AF_ROUTE,
            sock_type: 3,
            protocol: 0,
            kind: SOCKINFO_GENERIC,
            inet: None,
            tcp_state: None,
            unix_path: None,
            unix_peer: None,
        };
        assert_eq!(base.target(), "socket:[route]");
        let kctl = SocketSummary {
            family: AF_SYSTEM,
            kind: SOCKINFO_KERN_CTL,
            ..base.clone()
        };
        assert_eq!(kctl.target(), "socket:[system kctl]");
        let kev = SocketSummary {
            family: AF_SYSTEM,
            kind: SOCKINFO_KERN_EVENT,
            ..base.clone()
        };
        assert_eq!(kev.target(), "socket:[system kevent]");
        let ndrv = SocketSummary {
            family: AF_NDRV,
            kind: SOCKINFO_NDRV,
            ..base.clone()
        };
        assert_eq!(ndrv.target(), "socket:[ndrv]");
        let vsock = SocketSummary {
            family: AF_VSOCK,
            kind: SOCKINFO_VSOCK,
            ..base.clone()
        };
        assert_eq!(vsock.target(), "socket:[vsock]");
        let odd = SocketSummary {
            family: 99,
            ..base.clone()
        };
        assert_eq!(odd.target(), "socket:[family 99]");
        // An inet kind without the inet part (should not happen) still names a socket.
        let bare = SocketSummary {
            family: AF_INET6,
            kind: SOCKINFO_TCP,
            ..base
        };
        assert_eq!(bare.target(), "socket:[ip6]");
        assert_eq!(bare.tcp_listen_port(), None);
    }

    #[test]
    fn vnodes() {
        let mut buf = [0u8; 1024];
        let path = b"/Users/me/.hermes/state.db-wal";
        buf[..path.len()].copy_from_slice(path);
        let t = vnode_target(&buf, VREG, 1, 42);
        assert_eq!(t, "/Users/me/.hermes/state.db-wal");
        assert_eq!(FdKind::of(&t), FdKind::File);
        assert_eq!(
            vnode_target(&buf, VREG, 0, 42),
            "/Users/me/.hermes/state.db-wal (deleted)"
        );
        // A directory or device with nlink 0 is not marked (only regular files are).
        assert_eq!(vnode_target(b"/dev/null\0", 4, 0, 3), "/dev/null");
        // A full buffer with no NUL is used whole.
        assert_eq!(vnode_target(b"/abc", VREG, 1, 1), "/abc");
        let unnamed = vnode_target(&[0u8; 1024], VREG, 0, 77);
        assert_eq!(unnamed, "anon_inode:[vnode ino 77]");
        assert_eq!(FdKind::of(&unnamed), FdKind::Other);
    }

    /// A reused FD number is no unknown socket (docs/SECURITY.md, "Finding the process to act on"): ENOTSOCK and EOPNOTSUPP (an FD reused as a non-socket since
    /// the table was read) were `Unknown`, counted as `socket:[?]`, and made the port
    /// scan unsure.
    #[test]
    fn fdinfo_errnos() {
        let table = [
            (EBADF, FdInfoFailure::Closed),
            (ENOTSOCK, FdInfoFailure::Replaced),
            (EOPNOTSUPP, FdInfoFailure::Replaced),
            (ESRCH, FdInfoFailure::ProcessGone),
            (EPERM, FdInfoFailure::Denied),
            (EACCES, FdInfoFailure::Denied),
            (0, FdInfoFailure::Unknown),
            (12, FdInfoFailure::Unknown), // ENOMEM: a buffer smaller than the flavour's
            (14, FdInfoFailure::Unknown), // EFAULT
            (22, FdInfoFailure::Unknown), // EINVAL: an unknown flavour
            (45, FdInfoFailure::Unknown), // ENOTSUP (not EOPNOTSUPP on macOS)
            (88, FdInfoFailure::Unknown), // Linux's ENOTSOCK is not macOS's
            (95, FdInfoFailure::Unknown), // nor Linux's EOPNOTSUPP
            (-1, FdInfoFailure::Unknown),
        ];
        for (errno, want) in table {
            assert_eq!(fdinfo_failure(errno), want, "errno {errno}");
        }
    }

    #[test]
    fn pipes_kqueues_and_the_rest() {
        let p = pipe_target(Some(0xffff_ff80_1234_5678));
        assert_eq!(p, "pipe:[0xffffff8012345678]");
        assert_eq!(FdKind::of(&p), FdKind::Pipe);
        assert_eq!(FdKind::of(&pipe_target(None)), FdKind::Pipe);

        let expect = [
            (PROX_FDTYPE_ATALK, "anon_inode:[atalk]", FdKind::Other),
            (PROX_FDTYPE_VNODE, "anon_inode:[vnode]", FdKind::Other),
            (PROX_FDTYPE_SOCKET, "socket:[?]", FdKind::Socket),
            (PROX_FDTYPE_PSHM, "anon_inode:[pshm]", FdKind::Other),
            (PROX_FDTYPE_PSEM, "anon_inode:[psem]", FdKind::Other),
            (PROX_FDTYPE_KQUEUE, "kqueue", FdKind::Other),
            (PROX_FDTYPE_PIPE, "pipe:[?]", FdKind::Pipe),
            (PROX_FDTYPE_FSEVENTS, "anon_inode:[fsevents]", FdKind::Other),
            (8, "anon_inode:[fdtype 8]", FdKind::Other),
            (
                PROX_FDTYPE_NETPOLICY,
                "anon_inode:[netpolicy]",
                FdKind::Other,
            ),
            (PROX_FDTYPE_CHANNEL, "anon_inode:[channel]", FdKind::Other),
            (PROX_FDTYPE_NEXUS, "anon_inode:[nexus]", FdKind::Other),
            (1234, "anon_inode:[fdtype 1234]", FdKind::Other),
        ];
        for (fdtype, name, kind) in expect {
            assert_eq!(generic_target(fdtype), name, "fdtype {fdtype}");
            assert_eq!(FdKind::of(name), kind, "{name}");
        }
    }
}
