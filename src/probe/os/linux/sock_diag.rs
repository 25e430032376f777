//! Listening TCP sockets through `NETLINK_SOCK_DIAG`, as `ss -lt` finds them. A dump
//! limited to the LISTEN state walks only the kernel's small listening hash; reading
//! `/proc/net/tcp` walks every established and TIME_WAIT socket on the box, which on a
//! busy server costs milliseconds per run. `/proc/net/tcp` stays the fallback.

use std::collections::HashSet;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// The kernel's TCP_LISTEN state, in sock_diag and in /proc/net/tcp alike.
pub(super) const TCP_LISTEN: u8 = 10;
/// A dump is answered at once; this only guards against a kernel that never answers.
const RECEIVE_TIMEOUT_S: libc::time_t = 1;

/// The kernel's name of a TCP state, as `ss` prints it: the same numbers in sock_diag
/// and in /proc/net/tcp (src/probe/os/linux/sockets.rs reads both).
pub(super) fn tcp_state_name(state: u8) -> &'static str {
    match state {
        0x01 => "ESTABLISHED",
        0x02 => "SYN_SENT",
        0x03 => "SYN_RECV",
        0x04 => "FIN_WAIT1",
        0x05 => "FIN_WAIT2",
        0x06 => "TIME_WAIT",
        0x07 => "CLOSE",
        0x08 => "CLOSE_WAIT",
        0x09 => "LAST_ACK",
        0x0A => "LISTEN",
        0x0B => "CLOSING",
        _ => "UNKNOWN",
    }
}

/// `struct inet_diag_sockid` (linux/inet_diag.h). Ports are big-endian.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct SockId {
    sport: u16,
    dport: u16,
    src: [u32; 4],
    dst: [u32; 4],
    interface: u32,
    cookie: [u32; 2],
}

/// `struct inet_diag_req_v2`.
#[repr(C)]
#[derive(Clone, Copy)]
struct RequestBody {
    family: u8,
    protocol: u8,
    ext: u8,
    pad: u8,
    states: u32,
    id: SockId,
}

#[repr(C)]
struct Request {
    header: libc::nlmsghdr,
    body: RequestBody,
}

/// `struct inet_diag_msg`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct DiagMsg {
    family: u8,
    pub(crate) state: u8,
    timer: u8,
    retrans: u8,
    id: SockId,
    expires: u32,
    rqueue: u32,
    wqueue: u32,
    uid: u32,
    pub(crate) inode: u32,
}

const _: () = assert!(size_of::<SockId>() == 48);
const _: () = assert!(size_of::<RequestBody>() == 56);
const _: () = assert!(size_of::<libc::nlmsghdr>() == 16);
const _: () = assert!(size_of::<DiagMsg>() == 72);

/// Socket inodes of the TCP sockets (IPv4 and IPv6) LISTENing on `port`.
pub fn listening_inodes(port: u16) -> io::Result<HashSet<u64>> {
    let mut inodes = HashSet::new();
    for family in [libc::AF_INET, libc::AF_INET6] {
        for msg in dump(family as u8, 1 << TCP_LISTEN)? {
            if msg.state == TCP_LISTEN && u16::from_be(msg.id.sport) == port {
                inodes.insert(u64::from(msg.inode));
            }
        }
    }
    Ok(inodes)
}

/// Every TCP socket in this network namespace as `(inode, "tcp L[->R] STATE")`, the
/// census's description. One netlink dump costs a fraction of reading
/// `/proc/net/tcp`, which the kernel walks again for every page it returns.
pub fn tcp_descriptions() -> io::Result<Vec<(u64, String)>> {
    let mut found = Vec::new();
    for (family, proto) in [(libc::AF_INET, "tcp"), (libc::AF_INET6, "tcp6")] {
        for msg in dump(family as u8, ALL_STATES)? {
            if msg.inode == 0 {
                continue;
            }
            let v6 = family == libc::AF_INET6;
            let local = endpoint(&msg.id.src, msg.id.sport, v6);
            let remote = endpoint(&msg.id.dst, msg.id.dport, v6);
            let ends = if remote.port() == 0 && remote.ip().is_unspecified() {
                local.to_string()
            } else {
                format!("{local}->{remote}")
            };
            let state = tcp_state_name(msg.state);
            found.push((u64::from(msg.inode), format!("{proto} {ends} {state}")));
        }
    }
    Ok(found)
}

const ALL_STATES: u32 = 0xFFF;

fn endpoint(words: &[u32; 4], port_be: u16, v6: bool) -> std::net::SocketAddr {
    // The address words hold network-order bytes as they lie in memory.
    let ip: std::net::IpAddr = if v6 {
        let mut bytes = [0u8; 16];
        for (i, w) in words.iter().enumerate() {
            bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
        }
        std::net::Ipv6Addr::from(bytes).into()
    } else {
        std::net::Ipv4Addr::from(words[0].to_ne_bytes()).into()
    };
    std::net::SocketAddr::new(ip, u16::from_be(port_be))
}

fn dump(family: u8, states: u32) -> io::Result<Vec<DiagMsg>> {
    let socket = open_socket()?;
    send_request(&socket, family, states)?;
    let mut buffer = vec![0u8; 32 * 1024];
    let mut messages = Vec::new();
    loop {
        // SAFETY: recv writes at most buffer.len() bytes into the buffer we own.
        let received = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                0,
            )
        };
        let received = usize::try_from(received).map_err(|_| io::Error::last_os_error())?;
        if received == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "sock_diag closed",
            ));
        }
        if parse_messages(&buffer[..received], &mut messages)? {
            return Ok(messages);
        }
    }
}

fn open_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let timeout = libc::timeval {
        tv_sec: RECEIVE_TIMEOUT_S,
        tv_usec: 0,
    };
    // SAFETY: the option value points at a timeval of the size given.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if set != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

fn send_request(socket: &OwnedFd, family: u8, states: u32) -> io::Result<()> {
    let request = Request {
        header: libc::nlmsghdr {
            nlmsg_len: size_of::<Request>() as u32,
            nlmsg_type: SOCK_DIAG_BY_FAMILY,
            nlmsg_flags: (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
            nlmsg_seq: 1,
            nlmsg_pid: 0,
        },
        body: RequestBody {
            family,
            protocol: libc::IPPROTO_TCP as u8,
            ext: 0,
            pad: 0,
            states,
            id: SockId::default(),
        },
    };
    // SAFETY: an all-zero sockaddr_nl is valid; it addresses the kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: both pointers refer to live values of the sizes passed.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            (&raw const request).cast(),
            size_of::<Request>(),
            0,
            (&raw const kernel).cast(),
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads one datagram of netlink messages; `Ok(true)` once the dump is complete.
pub(crate) fn parse_messages(mut data: &[u8], messages: &mut Vec<DiagMsg>) -> io::Result<bool> {
    let header_len = size_of::<libc::nlmsghdr>();
    while data.len() >= header_len {
        // SAFETY: at least header_len bytes remain; read_unaligned copes with any
        // alignment of the receive buffer.
        let header: libc::nlmsghdr = unsafe { std::ptr::read_unaligned(data.as_ptr().cast()) };
        let length = header.nlmsg_len as usize;
        if length < header_len || length > data.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "malformed sock_diag message",
            ));
        }
        let payload = &data[header_len..length];
        match i32::from(header.nlmsg_type) {
            libc::NLMSG_DONE => return Ok(true),
            libc::NLMSG_ERROR => {
                let code = payload
                    .get(..4)
                    .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                if code != 0 {
                    // A negative errno; saturating, as `-i32::MIN` does not exist.
                    return Err(io::Error::from_raw_os_error(code.saturating_neg()));
                }
            }
            _ if header.nlmsg_type == SOCK_DIAG_BY_FAMILY
                && payload.len() >= size_of::<DiagMsg>() =>
            {
                // SAFETY: the payload holds at least one DiagMsg.
                messages.push(unsafe { std::ptr::read_unaligned(payload.as_ptr().cast()) });
            }
            _ => {}
        }
        // Messages are 4-byte aligned.
        let next = (length + 3) & !3;
        data = data.get(next..).unwrap_or(&[]);
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn message(kind: u16, payload: &[u8]) -> Vec<u8> {
        let len = (size_of::<libc::nlmsghdr>() + payload.len()) as u32;
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&len.to_ne_bytes());
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(&0u16.to_ne_bytes());
        bytes.extend_from_slice(&1u32.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        bytes.extend_from_slice(payload);
        while bytes.len() % 4 != 0 {
            bytes.push(0);
        }
        bytes
    }

    fn diag(state: u8, port: u16, inode: u32) -> Vec<u8> {
        let mut bytes = vec![libc::AF_INET as u8, state, 0, 0];
        bytes.extend_from_slice(&port.to_be_bytes());
        bytes.extend_from_slice(&[0u8; 46]);
        bytes.extend_from_slice(&[0u8; 16]);
        bytes.extend_from_slice(&inode.to_ne_bytes());
        bytes
    }

    #[test]
    fn parses_a_dump_until_done() {
        let mut data = message(SOCK_DIAG_BY_FAMILY, &diag(TCP_LISTEN, 8787, 111));
        data.extend(message(SOCK_DIAG_BY_FAMILY, &diag(1, 8787, 333)));
        let mut messages = Vec::new();
        assert!(!parse_messages(&data, &mut messages).unwrap());
        let seen: Vec<(u8, u16, u32)> = messages
            .iter()
            .map(|m| (m.state, u16::from_be(m.id.sport), m.inode))
            .collect();
        assert_eq!(seen, vec![(TCP_LISTEN, 8787, 111), (1, 8787, 333)]);
        let done = message(libc::NLMSG_DONE as u16, &0i32.to_ne_bytes());
        assert!(parse_messages(&done, &mut messages).unwrap());
    }

    #[test]
    fn rejects_malformed_and_reports_kernel_errors() {
        let mut messages = Vec::new();
        let mut bad = message(SOCK_DIAG_BY_FAMILY, &diag(TCP_LISTEN, 1, 1));
        bad[0] = 200; // length past the end
        assert!(parse_messages(&bad, &mut messages).is_err());
        let error = message(libc::NLMSG_ERROR as u16, &(-libc::EPERM).to_ne_bytes());
        let err = parse_messages(&error, &mut messages).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
        assert!(
            !parse_messages(&[1, 2, 3], &mut messages).unwrap(),
            "short tail ignored"
        );
    }

    #[test]
    fn an_error_code_that_cannot_be_negated_is_an_error_not_a_panic() {
        let error = message(libc::NLMSG_ERROR as u16, &i32::MIN.to_ne_bytes());
        assert!(parse_messages(&error, &mut Vec::new()).is_err());
    }

    #[test]
    fn finds_a_real_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let inodes = listening_inodes(port).unwrap();
        assert_eq!(inodes.len(), 1, "{inodes:?}");
        let link = std::fs::read_link(format!("/proc/self/fd/{}", listener.as_raw_fd())).unwrap();
        let expected = format!("socket:[{}]", inodes.iter().next().unwrap());
        assert_eq!(link.to_string_lossy(), expected);
        drop(listener);
        assert!(listening_inodes(port).unwrap().is_empty());
    }
}
