//! What each socket inode of a process is, from its network namespace's tables
//! (`/proc/PID/net/{tcp,tcp6,udp,udp6,unix,netlink}`), named the way the macOS layer
//! names them: `tcp 127.0.0.1:8787 LISTEN`, `tcp 127.0.0.1:5->127.0.0.1:8787
//! ESTABLISHED`, `udp 0.0.0.0:5353`, `unix /run/x.sock`, `netlink`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// Socket descriptions by inode. Tables that cannot be read are skipped: a socket
/// left undescribed is still counted as a socket.
pub fn descriptions(pid: u32) -> HashMap<u64, String> {
    let mut found = HashMap::new();
    let read = |table: &str| std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok();
    // TCP through netlink when the target shares our network namespace (the usual
    // case): the /proc tables cost milliseconds each on a box with a big hash table.
    let tcp_tables: &[(&str, &str, bool)] = match super::sock_diag::tcp_descriptions() {
        Ok(rows) if same_network_namespace(pid) => {
            found.extend(rows);
            &[]
        }
        _ => &[("tcp", "tcp", false), ("tcp6", "tcp6", true)],
    };
    for &(table, proto, v6) in tcp_tables
        .iter()
        .chain(&[("udp", "udp", false), ("udp6", "udp6", true)])
    {
        if let Some(text) = read(table) {
            found.extend(parse_inet_table(&text, proto, v6));
        }
    }
    if let Some(text) = read("unix") {
        found.extend(parse_unix_table(&text));
    }
    if let Some(text) = read("netlink") {
        found.extend(parse_netlink_table(&text));
    }
    found
}

fn same_network_namespace(pid: u32) -> bool {
    let ours = std::fs::read_link("/proc/self/ns/net");
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net"));
    matches!((ours, theirs), (Ok(a), Ok(b)) if a == b)
}

/// One socket of a `/proc/net/tcp`-shaped table.
pub struct InetRow {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: u8,
    pub inode: u64,
}

/// The rows of a `/proc/net/tcp`-shaped table (`sl local rem st ... uid timeout
/// inode`) that belong to a socket (inode not 0); lines that do not parse are skipped.
pub fn parse_inet_rows(text: &str, v6: bool) -> impl Iterator<Item = InetRow> + '_ {
    text.lines().skip(1).filter_map(move |line| {
        let columns: Vec<&str> = line.split_whitespace().collect();
        let row = InetRow {
            local: parse_endpoint(columns.get(1)?, v6)?,
            remote: parse_endpoint(columns.get(2)?, v6)?,
            state: u8::from_str_radix(columns.get(3)?, 16).ok()?,
            inode: columns.get(9)?.parse().ok()?,
        };
        (row.inode != 0).then_some(row)
    })
}

/// Descriptions by inode of a table's sockets, as the census names them.
pub fn parse_inet_table(text: &str, proto: &str, v6: bool) -> Vec<(u64, String)> {
    parse_inet_rows(text, v6)
        .map(|row| {
            let InetRow {
                local,
                remote,
                state,
                inode,
            } = row;
            let ends = if remote.port() == 0 && remote.ip().is_unspecified() {
                local.to_string()
            } else {
                format!("{local}->{remote}")
            };
            let text = if proto.starts_with("tcp") {
                format!("{proto} {ends} {}", super::sock_diag::tcp_state_name(state))
            } else {
                format!("{proto} {ends}")
            };
            (inode, text)
        })
        .collect()
}

/// `0100007F:1F90` (IPv4) or 32 hex digits (IPv6): each 32-bit word in the kernel's
/// byte order, which is little-endian on every platform this runs on; the port in
/// plain hex.
fn parse_endpoint(field: &str, v6: bool) -> Option<SocketAddr> {
    let (address, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..address.len() / 8)
        .map(|i| u32::from_str_radix(address.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    let ip = match (v6, words.as_slice()) {
        (false, [w]) => Ipv4Addr::from(w.swap_bytes()).into(),
        (true, [a, b, c, d]) => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            Ipv6Addr::from(bytes).into()
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// `/proc/net/unix`: `Num RefCount Protocol Flags Type St Inode [Path]`. The path is
/// printed as bound, spaces and all, after one space: it is the rest of the line.
pub fn parse_unix_table(text: &str) -> Vec<(u64, String)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let inode_column = *line.split_whitespace().collect::<Vec<_>>().get(6)?;
            let inode: u64 = inode_column.parse().ok()?;
            // Where the inode column ends in `line` (it is a slice of it).
            let end = inode_column.as_ptr() as usize - line.as_ptr() as usize + inode_column.len();
            let text = match line.get(end + 1..).filter(|path| !path.is_empty()) {
                Some(path) => format!("unix {path}"),
                None => "unix".to_string(),
            };
            Some((inode, text))
        })
        .collect()
}

/// `/proc/net/netlink`: the inode is the last column.
pub fn parse_netlink_table(text: &str) -> Vec<(u64, String)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let inode: u64 = line.split_whitespace().last()?.parse().ok()?;
            Some((inode, "netlink".to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2253 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:2253 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 41240 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:2253 0100007F:C351 06 00000000:00000000 03:00000AB1 00000000     0        0 0 3 0000000000000000
";

    #[test]
    fn ipv4_rows() {
        let rows = parse_inet_table(TCP, "tcp", false);
        assert_eq!(
            rows,
            vec![
                (41234, "tcp 127.0.0.1:8787 LISTEN".to_string()),
                (
                    41240,
                    "tcp 127.0.0.1:8787->127.0.0.1:50000 ESTABLISHED".to_string()
                ),
            ],
            "the TIME_WAIT row has no inode"
        );
    }

    #[test]
    fn ipv6_rows() {
        let text = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:2253 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:2253 0000000000000000FFFF00000100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 778 1 0000000000000000 100 0 0 10 0
";
        let rows = parse_inet_table(text, "tcp6", true);
        assert_eq!(rows[0], (777, "tcp6 [::1]:8787 LISTEN".to_string()));
        assert_eq!(
            rows[1],
            (
                778,
                "tcp6 [::ffff:127.0.0.1]:8787->[::ffff:127.0.0.1]:54321 ESTABLISHED".to_string()
            )
        );
    }

    #[test]
    fn udp_unix_and_netlink_rows() {
        let udp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  12: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 9001 2 0000000000000000 0
";
        assert_eq!(
            parse_inet_table(udp, "udp", false),
            vec![(9001, "udp 0.0.0.0:5353".to_string())]
        );
        let unix = "Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 12345 /run/supervisor.sock
0000000000000000: 00000003 00000000 00000000 0001 03 12346
";
        assert_eq!(
            parse_unix_table(unix),
            vec![
                (12345, "unix /run/supervisor.sock".to_string()),
                (12346, "unix".to_string())
            ]
        );
        let netlink = "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
0000000000000000 0   4242       00000000 0        0        0     2        0        5555
";
        assert_eq!(
            parse_netlink_table(netlink),
            vec![(5555, "netlink".to_string())]
        );
    }

    #[test]
    fn unix_paths_keep_their_spaces() {
        let unix = "Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 12345 /run/user/1000/My App/ipc sock
0000000000000000: 00000002 00000000 00010000 0001 01   777 @\u{b}abstract
";
        assert_eq!(
            parse_unix_table(unix),
            vec![
                (12345, "unix /run/user/1000/My App/ipc sock".to_string()),
                (777, "unix @\u{b}abstract".to_string())
            ]
        );
    }

    #[test]
    fn garbage_rows_are_skipped() {
        assert!(parse_inet_table("header\nnot a row\n 0: zz:zz\n", "tcp", false).is_empty());
        assert!(parse_unix_table("header\n\n").is_empty());
    }

    #[test]
    fn describes_a_real_connection_like_proc_net_tcp_does() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let client_port = client.local_addr().unwrap().port();
        let described = super::super::sock_diag::tcp_descriptions().unwrap();
        let listen = format!("tcp 127.0.0.1:{port} LISTEN");
        let connected = format!("tcp 127.0.0.1:{client_port}->127.0.0.1:{port} ESTABLISHED");
        assert!(
            described.iter().any(|(_, d)| *d == listen),
            "{listen} not in {described:?}"
        );
        assert!(
            described.iter().any(|(_, d)| *d == connected),
            "{connected} not in {described:?}"
        );
        // The same inodes and text as the /proc table gives.
        let proc_rows = parse_inet_table(
            &std::fs::read_to_string("/proc/self/net/tcp").unwrap(),
            "tcp",
            false,
        );
        for row in proc_rows
            .iter()
            .filter(|(_, d)| d.contains(&format!(":{port}")))
        {
            assert!(
                described.contains(row),
                "{row:?} missing from netlink's {described:?}"
            );
        }
    }
}
