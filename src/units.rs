//! Durations (`"500ms"`, `"5s"`, `"2m"`, `"1h"`) and sizes (`"512KiB"`, `"10MiB"`,
//! `"1GiB"`) as written in the configuration file (docs/CONFIG.md, "Validation").
//!
//! Parsing errors are plain strings that name the expected form: the caller adds the
//! file, line and column.
//!
//! The same quantities as a person reads them (`human_duration`, `human_size`) and
//! instants (`rfc3339`, `epoch_seconds`) live here too: every layer speaks them, so
//! they sit below all of them (`.ci/layers`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Local, SecondsFormat};

/// The expected form of a duration, quoted in every duration error.
pub const DURATION_FORM: &str = r#"a duration such as "500ms", "5s", "2m" or "1h""#;

/// The expected form of a size, quoted in every size error.
pub const SIZE_FORM: &str = r#"a size such as "512KiB", "10MiB", "1GiB" or a number of bytes"#;

/// Duration units, longest suffix first so that "ms" is not read as "m".
const DURATION_UNITS: &[(&str, u64)] = &[("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)];

/// Size units. Binary units are what `format_size` writes; the decimal ones are accepted
/// because operators write them, and they mean what they say (1 MB = 1,000,000 bytes).
const SIZE_UNITS: &[(&str, u64)] = &[
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("B", 1),
];

/// Parses `"500ms"`, `"5s"`, `"2m"` or `"1h"` (a whole number and one unit).
/// `"0s"` is a valid duration; whether zero is allowed is the caller's decision.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(text);
    if number.is_empty() {
        return Err(bad_form(text, DURATION_FORM));
    }
    let millis_per_unit = match DURATION_UNITS.iter().find(|(name, _)| *name == unit) {
        Some((_, factor)) => *factor,
        None if unit.is_empty() => {
            return Err(format!(
                "missing unit in {text:?}: expected {DURATION_FORM}"
            ));
        }
        None => return Err(bad_form(text, DURATION_FORM)),
    };
    let value = parse_whole(number, text, DURATION_FORM)?;
    let millis = value
        .checked_mul(millis_per_unit)
        .ok_or_else(|| format!("{text:?} is too long: expected {DURATION_FORM}"))?;
    Ok(Duration::from_millis(millis))
}

/// Writes a duration in the largest unit that represents it exactly:
/// 120 s → `"2m"`, 1.5 s → `"1500ms"`. Sub-millisecond parts are dropped, since the
/// configuration cannot express them.
pub fn format_duration(duration: Duration) -> String {
    let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return "0s".to_owned();
    }
    let (unit, factor) = DURATION_UNITS
        .iter()
        .rev()
        .find(|(_, factor)| millis.is_multiple_of(*factor))
        .copied()
        .unwrap_or(("ms", 1));
    format!("{}{unit}", millis / factor)
}

/// Parses `"512KiB"`, `"10MiB"`, `"1GiB"`, `"4096"`, `"4096B"`, and the decimal
/// `"KB"`/`"MB"`/`"GB"`. A space between number and unit is tolerated.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = split_number(text);
    if number.is_empty() {
        return Err(bad_form(text, SIZE_FORM));
    }
    let unit = unit.strip_prefix(' ').unwrap_or(unit);
    let bytes_per_unit = if unit.is_empty() {
        1
    } else {
        match SIZE_UNITS.iter().find(|(name, _)| *name == unit) {
            Some((_, factor)) => *factor,
            None => return Err(bad_form(text, SIZE_FORM)),
        }
    };
    let value = parse_whole(number, text, SIZE_FORM)?;
    value
        .checked_mul(bytes_per_unit)
        .ok_or_else(|| format!("{text:?} is too large: expected {SIZE_FORM}"))
}

/// Writes a size in the largest binary unit that represents it exactly:
/// 10 MiB → `"10MiB"`, 1500 → `"1500B"`.
pub fn format_size(bytes: u64) -> String {
    const BINARY: &[(&str, u64)] = &[
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    if bytes == 0 {
        return "0B".to_owned();
    }
    match BINARY
        .iter()
        .find(|(_, factor)| bytes.is_multiple_of(*factor))
    {
        Some((unit, factor)) => format!("{}{unit}", bytes / factor),
        None => format!("{bytes}B"),
    }
}

/// Splits leading ASCII digits from the rest. A sign or a decimal point is left in
/// the "unit" part, where it fails the unit lookup, unless `parse_whole` sees it first.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

fn parse_whole(number: &str, text: &str, form: &str) -> Result<u64, String> {
    number
        .parse::<u64>()
        .map_err(|_| format!("{text:?} is too large: expected {form}"))
}

/// The error for text that is not of the expected form, with a specific word for the
/// most common mistake (a negative value).
fn bad_form(text: &str, form: &str) -> String {
    if text.trim_start().starts_with('-') {
        format!("{text:?} is negative: expected {form}")
    } else {
        format!("expected {form}, found {text:?}")
    }
}

/// A duration as a person reads it, to the two largest units: `75s` → `"1m 15s"`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

/// A size as a person reads it, in the largest binary unit: `"10.0 MiB"`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// An instant in local time with its offset, to the second: `2026-05-01T12:00:00+02:00`.
pub fn rfc3339(t: SystemTime) -> String {
    DateTime::<Local>::from(t).to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// Whole seconds since the epoch; 0 for an instant before it.
pub fn epoch_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        let cases: &[(&str, u64)] = &[
            ("0s", 0),
            ("0ms", 0),
            ("500ms", 500),
            ("5s", 5_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("120s", 120_000),
            ("007s", 7_000),
        ];
        for (text, millis) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(*millis)),
                "{text}"
            );
        }
    }

    #[test]
    fn durations_rejected_with_expected_form() {
        let cases: &[(&str, &str)] = &[
            ("", "expected a duration"),
            ("5", "missing unit"),
            ("-5s", "negative"),
            ("5 s", "expected a duration"),
            ("1.5s", "expected a duration"),
            ("5sec", "expected a duration"),
            ("s", "expected a duration"),
            ("5d", "expected a duration"),
            (" 5s", "expected a duration"),
            ("1h30m", "expected a duration"),
            ("99999999999999999999s", "too large"),
            ("18446744073709551615h", "too long"),
        ];
        for (text, needle) in cases {
            let err = parse_duration(text).expect_err(text);
            assert!(err.contains(needle), "{text}: {err}");
            assert!(
                err.contains(r#""500ms", "5s", "2m" or "1h""#),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn durations_format_in_largest_exact_unit() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (1, "1ms"),
            (1_500, "1500ms"),
            (5_000, "5s"),
            (90_000, "90s"),
            (120_000, "2m"),
            (3_600_000, "1h"),
            (5_400_000, "90m"),
        ];
        for (millis, text) in cases {
            let duration = Duration::from_millis(*millis);
            assert_eq!(format_duration(duration), *text);
            assert_eq!(parse_duration(text), Ok(duration), "round trip {text}");
        }
        assert_eq!(format_duration(Duration::from_micros(1_500)), "1ms");
    }

    #[test]
    fn sizes_parse() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("4096", 4096),
            ("4096B", 4096),
            ("512KiB", 512 << 10),
            ("10MiB", 10 << 20),
            ("1GiB", 1 << 30),
            ("2TiB", 2 << 40),
            ("10 MiB", 10 << 20),
            ("1KB", 1_000),
            ("10MB", 10_000_000),
            ("1GB", 1_000_000_000),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_size(text), Ok(*bytes), "{text}");
        }
    }

    #[test]
    fn sizes_rejected_with_expected_form() {
        let cases: &[(&str, &str)] = &[
            ("", "expected a size"),
            ("-1", "negative"),
            ("-1MiB", "negative"),
            ("MiB", "expected a size"),
            ("10mib", "expected a size"),
            ("1.5GiB", "expected a size"),
            ("10 M", "expected a size"),
            ("ten", "expected a size"),
            ("99999999999999999999", "too large"),
            ("99999999999TiB", "too large"),
        ];
        for (text, needle) in cases {
            let err = parse_size(text).expect_err(text);
            assert!(err.contains(needle), "{text}: {err}");
            assert!(
                err.contains(r#""512KiB", "10MiB", "1GiB""#),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn sizes_format_in_largest_exact_binary_unit() {
        let cases: &[(u64, &str)] = &[
            (0, "0B"),
            (1, "1B"),
            (1_500, "1500B"),
            (1024, "1KiB"),
            (1536, "1536B"),
            (10 << 20, "10MiB"),
            (1 << 30, "1GiB"),
            (3 << 40, "3TiB"),
            (1_000_000, "1000000B"),
        ];
        for (bytes, text) in cases {
            assert_eq!(format_size(*bytes), *text);
            assert_eq!(parse_size(text), Ok(*bytes), "round trip {text}");
        }
    }

    #[test]
    fn durations_read_naturally() {
        let table = [(5, "5s"), (75, "1m 15s"), (3700, "1h 1m"), (90000, "1d 1h")];
        for (s, text) in table {
            assert_eq!(human_duration(Duration::from_secs(s)), text);
        }
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(10 << 20), "10.0 MiB");
    }
}
