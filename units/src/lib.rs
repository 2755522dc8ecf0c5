//! Kubernetes-style durations (`60s`, `1m30s`, `500ms`) and byte quantities (`100Mi`, `1G`).
//!
//! The operator validates and derives settings from these strings, and the sidecar reads the same
//! strings from its `MODELSERVER_*` environment, so both parse them here, the same way. Durations
//! follow Go's `time.ParseDuration` (what CEL's `duration()` accepts in the API server); quantities
//! follow `resource.Quantity` (what CEL's `quantity()` accepts).

use std::time::Duration;

/// Why a duration or quantity string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitsError {
    /// The string is not a duration such as `30s`, `1m30s` or `500ms`.
    #[error(
        "invalid duration {input:?}: expected a number with a unit (h, m, s, ms, us, ns), e.g. 30s or 1m30s"
    )]
    Duration {
        /// The rejected input.
        input: String,
    },
    /// The string is not a byte quantity such as `100Mi`, `1G` or `1048576`.
    #[error(
        "invalid byte quantity {input:?}: expected a number with an optional suffix (Ki, Mi, Gi, Ti, k, M, G, T), e.g. 100Mi"
    )]
    Quantity {
        /// The rejected input.
        input: String,
    },
}

/// Parses a non-negative Go-style duration: one or more `<number><unit>` terms, units `h`, `m`,
/// `s`, `ms`, `us` (or `µs`), `ns`; the number may have a fraction (`1.5h`). A bare `0` is zero.
pub fn parse_duration(input: &str) -> Result<Duration, UnitsError> {
    let err = || UnitsError::Duration {
        input: input.to_owned(),
    };
    let s = input.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() {
        return Err(err());
    }
    let mut total_nanos: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(err());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            _ => return Err(err()),
        };
        total_nanos = total_nanos
            .checked_add(scale_decimal(number, unit_nanos).ok_or_else(err)?)
            .ok_or_else(err)?;
        rest = after;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| err())?;
    // The remainder of a division by 1e9 always fits in u32.
    let nanos = (total_nanos % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

/// Formats a duration the way [`parse_duration`] reads it and people write it: in the largest
/// exact unit, except that a unit is only used from 100 of the next smaller one (`60s`, `90s`,
/// `2m`, `10m`, `60m`, `2h`, `1500ms`), so rendered values stay short, stable and familiar.
pub fn format_duration(duration: Duration) -> String {
    const UNITS: [(&str, u128); 6] = [
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    for pair in UNITS.windows(2) {
        let [(unit, size), (_, smaller)] = pair else {
            continue;
        };
        if nanos.is_multiple_of(*size) && nanos / smaller >= 100 {
            return format!("{}{unit}", nanos / size);
        }
    }
    format!("{nanos}ns")
}

/// Formats a byte count the way [`parse_quantity_bytes`] reads it, in its shortest exact form
/// (`100Mi`, `500M`, `1536`), preferring a binary suffix on a tie.
pub fn format_bytes(bytes: u64) -> String {
    let mut best = bytes.to_string();
    if bytes == 0 {
        return best;
    }
    for (suffix, size) in [
        ("Ei", 1u64 << 60),
        ("Pi", 1 << 50),
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
        ("E", 1_000_000_000_000_000_000),
        ("P", 1_000_000_000_000_000),
        ("T", 1_000_000_000_000),
        ("G", 1_000_000_000),
        ("M", 1_000_000),
        ("k", 1_000),
    ] {
        if bytes.is_multiple_of(size) {
            let text = format!("{}{suffix}", bytes / size);
            if text.len() < best.len() {
                best = text;
            }
        }
    }
    best
}

/// Multiplies a decimal string such as `1.25` by `unit`, exactly, rounding a fraction of the
/// smallest unit up.
fn scale_decimal(number: &str, unit: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut value = whole.checked_mul(unit)?;
    if !fraction.is_empty() {
        let digits = fraction.len().min(30) as u32;
        let fraction: u128 = fraction[..digits as usize].parse().ok()?;
        let denominator = 10u128.checked_pow(digits)?;
        let scaled = fraction.checked_mul(unit)?;
        value = value.checked_add(scaled.div_ceil(denominator))?;
    }
    Some(value)
}

/// Parses a Kubernetes quantity as a whole number of bytes: a decimal number with an optional
/// binary suffix (`Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`), decimal suffix (`k`, `M`, `G`, `T`, `P`,
/// `E`) or exponent (`1e6`). A fraction of a byte rounds up. Negative values are rejected.
pub fn parse_quantity_bytes(input: &str) -> Result<u64, UnitsError> {
    let err = || UnitsError::Quantity {
        input: input.to_owned(),
    };
    let s = input.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    let number_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_len);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(err());
    }
    let multiplier: u128 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        exponent if exponent.starts_with(['e', 'E']) => {
            let power: u32 = exponent[1..].parse().map_err(|_| err())?;
            10u128.checked_pow(power).ok_or_else(err)?
        }
        _ => return Err(err()),
    };
    let bytes = scale_decimal(number, multiplier).ok_or_else(err)?;
    u64::try_from(bytes).map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        let cases = [
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("60s", Duration::from_secs(60)),
            ("10m", Duration::from_secs(600)),
            ("1h", Duration::from_secs(3600)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5s", Duration::from_millis(1500)),
            ("500ms", Duration::from_millis(500)),
            ("250us", Duration::from_micros(250)),
            ("250µs", Duration::from_micros(250)),
            ("7ns", Duration::from_nanos(7)),
            ("1h2m3s4ms", Duration::new(3723, 4_000_000)),
            (".5s", Duration::from_millis(500)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn bad_durations_are_rejected_with_the_input_named() {
        for input in [
            "",
            "s",
            "10",
            "10x",
            "-5s",
            "1..5s",
            "ten seconds",
            "5 s",
            ".",
        ] {
            let error = parse_duration(input).expect_err(input);
            assert!(error.to_string().contains(&format!("{input:?}")), "{error}");
        }
    }

    #[test]
    fn durations_format_in_the_largest_exact_unit_and_round_trip() {
        for (duration, text) in [
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(60), "60s"),
            (Duration::from_secs(120), "2m"),
            (Duration::from_secs(3600), "60m"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(20), "20ms"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::from_secs(600), "10m"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(format_duration(duration), text);
            assert_eq!(parse_duration(text), Ok(duration));
        }
    }

    #[test]
    fn byte_counts_format_in_their_shortest_exact_form_and_round_trip() {
        for (bytes, text) in [
            (100 << 20, "100Mi"),
            (1 << 30, "1Gi"),
            (10 << 20, "10Mi"),
            (500_000_000, "500M"),
            (1536, "1536"),
            (1000, "1k"),
            (1024, "1Ki"),
            (0, "0"),
        ] {
            assert_eq!(format_bytes(bytes), text);
            assert_eq!(parse_quantity_bytes(text), Ok(bytes));
        }
    }

    #[test]
    fn quantities_parse_as_bytes() {
        let cases = [
            ("100Mi", 100 << 20),
            ("1Ki", 1024),
            ("1Gi", 1 << 30),
            ("1G", 1_000_000_000),
            ("5k", 5_000),
            ("1048576", 1_048_576),
            ("1.5Ki", 1536),
            ("0.5", 1),
            ("1e3", 1000),
            ("2E", 2_000_000_000_000_000_000),
        ];
        for (input, want) in cases {
            assert_eq!(parse_quantity_bytes(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn bad_quantities_are_rejected() {
        for input in ["", "Mi", "-1Mi", "10MB", "1.2.3", "ten", "100 Mi", "20Ei"] {
            assert!(parse_quantity_bytes(input).is_err(), "{input}");
        }
    }
}
