//! `/proc/PID/net/{tcp,tcp6,udp,unix,netlink}` (src/probe/os/linux/sockets.rs, and the
//! listening rows in src/probe/os/linux.rs) and `NETLINK_SOCK_DIAG` replies
//! (src/probe/os/linux/sock_diag.rs).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::{any_bytes, any_text, edits, mutate, mutate_bytes};
use crate::probe::os::linux::parse_listening_inodes;
use crate::probe::os::linux::sock_diag::parse_messages;
use crate::probe::os::linux::sockets::{
    parse_inet_rows, parse_inet_table, parse_netlink_table, parse_unix_table,
};

const TCP: &str = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2254 00000000:0000 0A 00000000:00000000 00:00000000 00000000   501        0 43210 1 0000000000000000 100 0 0 10 0
   1: 0100007F:2254 0100007F:C350 06 00000000:00000000 03:00000F5B 00000000     0        0 0 3 0000000000000000
   2: 0100007F:C350 0100007F:2254 01 00000000:00000000 00:00000000 00000000   501        0 55555 1 0000000000000000 20 4 30 10 -1
";
const UNIX: &str = "\
Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 21805 /run/systemd/notify
0000000000000000: 00000003 00000000 00000000 0001 03 37617 @/tmp/.X11-unix/X0
0000000000000000: 00000003 00000000 00000000 0001 03 37616
";

/// One socket row as the kernel prints it (`tcp4_seq_show`, `tcp6_seq_show`).
#[derive(Debug, Clone)]
struct Row {
    local: SocketAddr,
    remote: SocketAddr,
    state: u8,
    inode: u64,
}

/// An address as the kernel prints it: each 32-bit word of the network-order address
/// read as a native (little-endian here) integer, in `%08X`.
fn hex_address(ip: IpAddr) -> String {
    let octets = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    octets
        .chunks(4)
        .map(|w| format!("{:08X}", u32::from_le_bytes([w[0], w[1], w[2], w[3]])))
        .collect()
}

fn row_text(n: usize, row: &Row) -> String {
    format!(
        "{n:4}: {}:{:04X} {}:{:04X} {:02X} 00000000:00000000 00:00000000 00000000 {:5} {:8} {} 1 0000000000000000 100 0 0 10 0",
        hex_address(row.local.ip()),
        row.local.port(),
        hex_address(row.remote.ip()),
        row.remote.port(),
        row.state,
        1000,
        0,
        row.inode,
    )
}

fn table(rows: &[Row]) -> String {
    let mut text = String::from(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n",
    );
    for (n, row) in rows.iter().enumerate() {
        text.push_str(&row_text(n, row));
        text.push('\n');
    }
    text
}

fn ip(v6: bool) -> BoxedStrategy<IpAddr> {
    if v6 {
        prop_oneof![
            any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
            Just(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            Just(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        ]
        .boxed()
    } else {
        prop_oneof![
            any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
            Just(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            Just(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ]
        .boxed()
    }
}

fn rows(v6: bool) -> impl Strategy<Value = Vec<Row>> {
    let row = (
        ip(v6),
        any::<u16>(),
        ip(v6),
        prop_oneof![Just(0u16), any::<u16>()],
        prop_oneof![Just(0x0Au8), 1u8..=0x0B, any::<u8>()],
        1u64..,
    )
        .prop_map(|(lip, lport, rip, rport, state, inode)| Row {
            local: SocketAddr::new(lip, lport),
            remote: SocketAddr::new(rip, rport),
            state,
            inode,
        });
    prop::collection::vec(row, 0..8)
}

/// The TCP state names of include/net/tcp_states.h.
fn state_name(state: u8) -> &'static str {
    const NAMES: [&str; 11] = [
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "CLOSING",
    ];
    usize::from(state)
        .checked_sub(1)
        .and_then(|i| NAMES.get(i))
        .unwrap_or(&"UNKNOWN")
}

proptest! {
    #![proptest_config(super::config(256))]

    #[test]
    fn inet_tables_never_panic(text in any_text(), edits in edits(), v6: bool) {
        let _ = parse_inet_table(&text, "tcp", v6).len();
        let mutated = mutate(TCP, &edits);
        let _ = parse_inet_table(&mutated, "udp", v6).len();
        let _ = parse_listening_inodes(&mutated, 8788, v6);
    }

    #[test]
    fn inet_rows_round_trip(v6: bool, rows in any::<bool>().prop_flat_map(rows), port: u16) {
        // Rows are drawn for one family; the table must be of the same one.
        let v6 = rows.first().map_or(v6, |r| r.local.is_ipv6());
        let text = table(&rows);
        let parsed: Vec<_> = parse_inet_rows(&text, v6).collect();
        prop_assert_eq!(parsed.len(), rows.len());
        for (got, want) in parsed.iter().zip(&rows) {
            prop_assert_eq!(got.local, want.local);
            prop_assert_eq!(got.remote, want.remote);
            prop_assert_eq!(got.state, want.state);
            prop_assert_eq!(got.inode, want.inode);
        }

        let listening: Vec<u64> = rows.iter()
            .filter(|r| r.state == 0x0A && r.local.port() == port)
            .map(|r| r.inode)
            .collect();
        prop_assert_eq!(parse_listening_inodes(&text, port, v6), listening);

        let described = parse_inet_table(&text, if v6 { "tcp6" } else { "tcp" }, v6);
        for ((inode, description), row) in described.iter().zip(&rows) {
            prop_assert_eq!(*inode, row.inode);
            let ends = if row.remote.port() == 0 && row.remote.ip().is_unspecified() {
                row.local.to_string()
            } else {
                format!("{}->{}", row.local, row.remote)
            };
            let proto = if v6 { "tcp6" } else { "tcp" };
            prop_assert_eq!(description, &format!("{proto} {ends} {}", state_name(row.state)));
        }
        // A row of the other family's width is not a row of this table.
        prop_assert_eq!(parse_inet_rows(&text, !v6).count(), 0);
    }

    #[test]
    fn unix_and_netlink_tables_never_panic(text in any_text(), edits in edits()) {
        let _ = parse_unix_table(&text);
        let _ = parse_netlink_table(&text);
        let _ = parse_unix_table(&mutate(UNIX, &edits));
    }

    /// `unix_seq_show`: `%pK: %08X %08X %08X %04X %02X %5lu`, then a space and the path
    /// as bound (no escaping: spaces stay) for a named socket.
    #[test]
    fn unix_table_round_trips(
        sockets in prop::collection::vec((any::<u64>(), proptest::option::of("[@/][^\n\r]{0,30}")), 0..8),
    ) {
        let mut text = String::from("Num       RefCount Protocol Flags    Type St Inode Path\n");
        for (inode, path) in &sockets {
            text.push_str(&format!("0000000000000000: 00000002 00000000 00010000 0001 01 {inode:5}"));
            if let Some(path) = path {
                text.push(' ');
                text.push_str(path);
            }
            text.push('\n');
        }
        let expected: Vec<(u64, String)> = sockets
            .iter()
            .map(|(inode, path)| {
                (*inode, path.as_ref().map_or("unix".to_string(), |p| format!("unix {p}")))
            })
            .collect();
        prop_assert_eq!(parse_unix_table(&text), expected);
    }

    #[test]
    fn netlink_table_round_trips(inodes in prop::collection::vec(any::<u64>(), 0..8)) {
        let mut text = String::from("sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n");
        for inode in &inodes {
            text.push_str(&format!("0000000000000000 0   1          00000001 0        0        0     2        0        {inode:<8}\n"));
        }
        let expected: Vec<(u64, String)> = inodes.iter().map(|&i| (i, "netlink".to_string())).collect();
        prop_assert_eq!(parse_netlink_table(&text), expected);
    }

    #[test]
    fn sock_diag_never_panics(
        bytes in any_bytes(400),
        edits in edits(),
        code in prop_oneof![Just(i32::MIN), Just(-1), any::<i32>()],
    ) {
        let mut found = Vec::new();
        let _ = parse_messages(&bytes, &mut found);
        let mut reply = message(2, &code.to_ne_bytes());
        reply.extend(message(20, &diag(10, 8787, 1)));
        let _ = parse_messages(&mutate_bytes(&reply, &edits), &mut found);
    }

    #[test]
    fn sock_diag_round_trips(
        sockets in prop::collection::vec((any::<u8>(), any::<u16>(), any::<u32>()), 0..10),
        done: bool,
    ) {
        let mut data = Vec::new();
        for &(state, port, inode) in &sockets {
            data.extend(message(20, &diag(state, port, inode)));
        }
        if done {
            data.extend(message(3, &[0; 4]));
        }
        let mut found = Vec::new();
        prop_assert_eq!(parse_messages(&data, &mut found).map_err(|e| TestCaseError::fail(e.to_string()))?, done);
        let got: Vec<(u8, u32)> = found.iter().map(|m| (m.state, m.inode)).collect();
        let want: Vec<(u8, u32)> = sockets.iter().map(|&(s, _, i)| (s, i)).collect();
        prop_assert_eq!(got, want);
    }
}

/// A netlink message: `nlmsghdr` (length, type, flags, sequence, port) and payload,
/// padded to 4 bytes.
fn message(kind: u16, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(16 + payload.len()).unwrap();
    let mut bytes = Vec::new();
    bytes.extend(len.to_ne_bytes());
    bytes.extend(kind.to_ne_bytes());
    bytes.extend(2u16.to_ne_bytes());
    bytes.extend(1u32.to_ne_bytes());
    bytes.extend(0u32.to_ne_bytes());
    bytes.extend(payload);
    while bytes.len() % 4 != 0 {
        bytes.push(0);
    }
    bytes
}

/// An `inet_diag_msg` (72 bytes): family, state, timer, retrans, the socket id (ports
/// big-endian, addresses, interface, cookie), expires, queues, uid, inode.
fn diag(state: u8, port: u16, inode: u32) -> Vec<u8> {
    let mut bytes = vec![2, state, 0, 0];
    bytes.extend(port.to_be_bytes());
    bytes.extend([0u8; 2 + 32 + 4 + 8]);
    bytes.extend([0u8; 16]);
    bytes.extend(inode.to_ne_bytes());
    assert_eq!(bytes.len(), 72);
    bytes
}
