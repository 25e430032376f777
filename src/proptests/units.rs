//! Durations and sizes of the configuration (src/units.rs) and the health
//! body's busy fields (src/decide.rs, on the JSON src/probe/health.rs parses).

use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::{any_text, edits, mutate};
use crate::config::signal::{name as signal_name, parse_pre_kill};
use crate::config::url::{HttpUrl, parse_http_url};
use crate::units::{format_duration, format_size, parse_duration, parse_size};

const DURATION_UNITS: [(&str, u64); 4] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)];
const SIZE_UNITS: [(&str, u64); 10] = [
    ("", 1),
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];

proptest! {
    #![proptest_config(super::config(256))]

    #[test]
    fn units_never_panic(text in any_text(), edits in edits()) {
        let _ = parse_duration(&text);
        let _ = parse_size(&text);
        let _ = parse_duration(&mutate("1500ms", &edits));
        let _ = parse_size(&mutate("10 MiB", &edits));
    }

    #[test]
    fn durations_round_trip(millis: u64, n in prop_oneof![0u64..100_000, any::<u64>()], unit in 0usize..4) {
        let written = format_duration(Duration::from_millis(millis));
        prop_assert_eq!(parse_duration(&written), Ok(Duration::from_millis(millis)));
        let (name, factor) = DURATION_UNITS[unit];
        let parsed = parse_duration(&format!("{n}{name}"));
        match n.checked_mul(factor) {
            Some(ms) => prop_assert_eq!(parsed, Ok(Duration::from_millis(ms))),
            None => prop_assert!(parsed.is_err()),
        }
    }

    #[test]
    fn sizes_round_trip(bytes: u64, n in prop_oneof![0u64..100_000, any::<u64>()], unit in 0usize..10, space: bool) {
        prop_assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
        let (name, factor) = SIZE_UNITS[unit];
        let gap = if space && !name.is_empty() { " " } else { "" };
        let parsed = parse_size(&format!("{n}{gap}{name}"));
        match n.checked_mul(factor) {
            Some(b) => prop_assert_eq!(parsed, Ok(b)),
            None => prop_assert!(parsed.is_err()),
        }
    }
}

// --- the health URL and the pre-kill signal ------------------------------------------

proptest! {
    #![proptest_config(super::config(256))]

    #[test]
    fn urls_and_signals_never_panic(text in any_text(), edits in edits()) {
        let _ = parse_http_url(&text);
        let _ = parse_http_url(&mutate("http://[::1]:8787/health?x=1", &edits));
        let _ = parse_pre_kill(&text);
    }

    #[test]
    fn urls_round_trip(
        host in prop_oneof![
            "[A-Za-z0-9_-][A-Za-z0-9._-]{0,20}".boxed(),
            any::<std::net::Ipv4Addr>().prop_map(|ip| ip.to_string()).boxed(),
        ],
        v6: Option<std::net::Ipv6Addr>,
        port: Option<u16>,
        path in "(/[A-Za-z0-9._~%?=&#-]{0,12}){0,3}",
        scheme in prop::sample::select(vec!["http://", "HTTP://", "Http://", "https://", "HTTPS://"]),
    ) {
        let port = port.filter(|&p| p != 0);
        let authority = v6.map_or(host.clone(), |ip| format!("[{ip}]"));
        let written = match port {
            Some(p) => format!("{scheme}{authority}:{p}{path}"),
            None => format!("{scheme}{authority}{path}"),
        };
        let https = scheme.eq_ignore_ascii_case("https://");
        let expected = HttpUrl {
            host: v6.map_or(host, |ip| ip.to_string()),
            port: port.unwrap_or(if https { 443 } else { 80 }),
            path: if path.is_empty() { "/".to_string() } else { path },
            https,
        };
        prop_assert_eq!(parse_http_url(&written), Ok(expected));
    }

    #[test]
    fn signals_round_trip(number in 1i32..65) {
        if let Some(name) = signal_name(number) {
            prop_assert_eq!(parse_pre_kill(name), Ok(number));
            prop_assert_eq!(parse_pre_kill(&format!("SIG{name}")), Ok(number));
            prop_assert_eq!(parse_pre_kill(&name.to_ascii_lowercase()), Ok(number));
        }
    }
}

// --- the health body's busy fields ----------------------------------------------------

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z0-9]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn busy_of(json: Option<Value>, fields: &[String]) -> Option<String> {
    use crate::decide::busy;
    use crate::probe::Observation;
    use crate::probe::discover::Discovery;
    use crate::probe::health::HealthResult;
    use crate::probe::supervisor::Resolution;
    let obs = Observation {
        discovery: Discovery {
            target: None,
            findings: Vec::new(),
            port_owner: None,
            port_holders: Vec::new(),
        },
        health: HealthResult {
            ok: true,
            status: Some(200),
            latency_ms: Some(1),
            error: None,
            attempts: Vec::new(),
            json,
            tls_refused: false,
        },
        fds: None,
        files: Vec::new(),
        restart: Resolution::plain(crate::config::Method::Builtin),
        readiness: None,
        at: SystemTime::UNIX_EPOCH,
    };
    let mut cfg = crate::config::defaults(None);
    cfg.health.busy_fields = fields.to_vec();
    busy(&obs, &cfg)
}

proptest! {
    #![proptest_config(super::config(128))]

    /// Any JSON the server answers with: a busy field or none, never a panic.
    #[test]
    fn any_health_body_is_busy_or_not(json in json_value(), fields in prop::collection::vec("[a-z_]{1,8}", 0..4)) {
        let _ = busy_of(Some(json), &fields);
    }

    /// The first configured field whose number is above zero, as `name=value`.
    #[test]
    fn busy_is_the_first_positive_field(
        values in prop::collection::vec(prop_oneof![
            (0u64..5).prop_map(|n| json!(n)),
            any::<i64>().prop_map(|n| json!(n)),
            Just(json!(0.5)),
            Just(json!("3")),
            Just(Value::Null),
        ], 1..5),
    ) {
        let fields: Vec<String> = (0..values.len()).map(|i| format!("field_{i}")).collect();
        let body: Map<String, Value> = fields.iter().cloned().zip(values.iter().cloned()).collect();
        let expected = fields.iter().zip(&values).find_map(|(name, value)| {
            let number = value.as_f64()?;
            (number > 0.0).then(|| format!("{name}={number}"))
        });
        prop_assert_eq!(busy_of(Some(Value::Object(body)), &fields), expected);
        prop_assert_eq!(busy_of(None, &fields), None);
    }
}
