//! FD targets (src/probe/fds.rs, src/probe/census.rs): the names of the target's open
//! files, which it chooses, and the socket descriptions the census gives them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::{any_text, edits, mutate};
use crate::config::FdPathRule;
use crate::probe::census;
use crate::probe::os::FdEntry;

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        any_text(),
        "/[^\0]{0,20}( \\(deleted\\))?",
        "(socket|pipe|anon_inode):\\[[^\\]]{0,20}\\]",
        (any::<prop::sample::Index>(), edits()).prop_map(|(pick, edits)| {
            let samples = [
                "socket:[tcp 127.0.0.1:8787 LISTEN]",
                "socket:[tcp6 [::1]:8787->[::1]:5000 ESTABLISHED]",
                "anon_inode:[eventpoll]",
                "/data/state.db-wal",
            ];
            mutate(samples[pick.index(samples.len())], &edits)
        }),
    ]
}

fn endpoint(v6: bool) -> BoxedStrategy<SocketAddr> {
    if v6 {
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
            .boxed()
    } else {
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
            .boxed()
    }
}

proptest! {
    #![proptest_config(super::config(128))]

    /// Any targets and any path rules: a census, never a panic, and every FD counted.
    #[test]
    fn any_targets_make_a_census(
        targets in prop::collection::vec(target(), 0..20),
        patterns in prop::collection::vec(any_text(), 0..3),
    ) {
        let entries: Vec<FdEntry> = targets
            .into_iter()
            .zip(0..)
            .map(|(target, fd)| FdEntry { fd, link: target })
            .collect();
        let rules: Vec<FdPathRule> = patterns.into_iter().map(|pattern| FdPathRule { pattern, max: 10 }).collect();
        let census = census::build(&entries, None, &rules, |_, _| None);
        prop_assert_eq!(census.reading.total, entries.len() as u64);
        prop_assert_eq!(census.kinds.values().sum::<u64>(), entries.len() as u64);
    }

    /// A TCP socket described as the census describes it comes back as its ends and
    /// its state.
    #[test]
    fn tcp_descriptions_round_trip(
        ends in any::<bool>().prop_flat_map(|v6| (endpoint(v6), proptest::option::of(endpoint(v6)))),
        state in prop::sample::select(vec!["LISTEN", "ESTABLISHED", "TIME_WAIT", "CLOSE_WAIT", "UNKNOWN"]),
    ) {
        let (local, remote) = ends;
        let v6 = local.is_ipv6();
        let proto = if v6 { "tcp6" } else { "tcp" };
        let text = match remote {
            Some(remote) => format!("{local}->{remote}"),
            None => local.to_string(),
        };
        let entries = vec![FdEntry { fd: 3, link: format!("socket:[{proto} {text} {state}]") }];
        let census = census::build(&entries, None, &[], |_, _| None);
        prop_assert_eq!(census.tcp.len(), 1);
        let socket = &census.tcp[0];
        prop_assert_eq!(socket.fd, 3);
        prop_assert_eq!(&socket.proto, proto);
        prop_assert_eq!(&socket.local, &local.to_string());
        let unspecified = if v6 { "[::]:0" } else { "0.0.0.0:0" };
        prop_assert_eq!(socket.remote.clone(), remote.map_or(unspecified.to_string(), |r| r.to_string()));
        prop_assert_eq!(&socket.state, state);
        prop_assert_eq!(census.kinds.get(proto), Some(&1));
    }
}
