//! Listening TCP sockets through `NETLINK_SOCK_DIAG`, as `ss -lt` finds them. A dump
//! limited to the LISTEN state walks only the kernel's small listening hash; reading
//! `/proc/net/tcp` walks every established and TIME_WAIT socket on the box, which on a
//! busy server costs milliseconds per run. `/proc/net/tcp` stays the fallback.

use std::collections::HashSet;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const TCP_LISTEN: u8 = 10;
/// A dump is answered at once; this only guards against a kernel that never answers.
const RECEIVE_TIMEOUT_S: libc::time_t = 1;

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
struct DiagMsg {
    family: u8,
    state: u8,
    timer: u8,
    retrans: u8,
    id: SockId,
    expires: u32,
    rqueue: u32,
    wqueue: u32,
    uid: u32,
    inode: u32,
}

const _: () = assert!(size_of::<SockId>() == 48);
const _: () = assert!(size_of::<RequestBody>() == 56);
const _: () = assert!(size_of::<libc::nlmsghdr>() == 16);
const _: () = assert!(size_of::<DiagMsg>() == 72);

/// Socket inodes of the TCP sockets (IPv4 and IPv6) LISTENing on `port`.
pub fn listening_inodes(port: u16) -> io::Result<HashSet<u64>> {
    let mut inodes = HashSet::new();
    for family in [libc::AF_INET, libc::AF_INET6] {
        dump_listeners(family as u8, port, &mut inodes)?;
    }
    Ok(inodes)
}

fn dump_listeners(family: u8, port: u16, inodes: &mut HashSet<u64>) -> io::Result<()> {
    let socket = open_socket()?;
    send_request(&socket, family)?;
    let mut buffer = vec![0u8; 32 * 1024];
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
        if parse_messages(&buffer[..received], port, inodes)? {
            return Ok(());
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

fn send_request(socket: &OwnedFd, family: u8) -> io::Result<()> {
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
            states: 1 << TCP_LISTEN,
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
fn parse_messages(mut data: &[u8], port: u16, inodes: &mut HashSet<u64>) -> io::Result<bool> {
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
                    return Err(io::Error::from_raw_os_error(-code));
                }
            }
            _ if header.nlmsg_type == SOCK_DIAG_BY_FAMILY
                && payload.len() >= size_of::<DiagMsg>() =>
            {
                // SAFETY: the payload holds at least one DiagMsg.
                let msg: DiagMsg = unsafe { std::ptr::read_unaligned(payload.as_ptr().cast()) };
                if msg.state == TCP_LISTEN && u16::from_be(msg.id.sport) == port {
                    inodes.insert(u64::from(msg.inode));
                }
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
    fn parses_a_dump_and_keeps_only_listeners_on_the_port() {
        let mut data = message(SOCK_DIAG_BY_FAMILY, &diag(TCP_LISTEN, 8787, 111));
        data.extend(message(SOCK_DIAG_BY_FAMILY, &diag(TCP_LISTEN, 9999, 222)));
        data.extend(message(SOCK_DIAG_BY_FAMILY, &diag(1, 8787, 333)));
        let mut inodes = HashSet::new();
        assert!(!parse_messages(&data, 8787, &mut inodes).unwrap());
        assert_eq!(inodes, HashSet::from([111]));
        let done = message(libc::NLMSG_DONE as u16, &0i32.to_ne_bytes());
        assert!(parse_messages(&done, 8787, &mut inodes).unwrap());
    }

    #[test]
    fn rejects_malformed_and_reports_kernel_errors() {
        let mut inodes = HashSet::new();
        let mut bad = message(SOCK_DIAG_BY_FAMILY, &diag(TCP_LISTEN, 1, 1));
        bad[0] = 200; // length past the end
        assert!(parse_messages(&bad, 1, &mut inodes).is_err());
        let error = message(libc::NLMSG_ERROR as u16, &(-libc::EPERM).to_ne_bytes());
        let err = parse_messages(&error, 1, &mut inodes).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
        assert!(
            !parse_messages(&[1, 2, 3], 1, &mut inodes).unwrap(),
            "short tail ignored"
        );
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
