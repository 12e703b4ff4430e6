//! Sizes, rates and durations as people read and type them: `100M`, `1.5 GiB`, `108.7 MB/s`,
//! `1.9 ms`. Output uses decimal units (1 MB = 1,000,000 bytes), like network rates.

use std::time::Duration;

/// Parses a byte count: a number (a decimal fraction is allowed) optionally followed by a unit:
/// `k`/`kB`, `M`/`MB`, `G`/`GB`, `T`/`TB` (powers of 1000) or `KiB`, `MiB`, `GiB`, `TiB` (powers
/// of 1024), case-insensitive, with or without a space.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use k, M, G, T, KiB, MiB, GiB or TiB)"
            ))
        }
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(format!(
            "{text:?} is not a size (expected e.g. 100M or 1.5GiB)"
        ));
    }
    let too_large = || format!("{text:?} is too large");
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let mut bytes = whole.checked_mul(multiplier).ok_or_else(too_large)?;
    if !fraction.is_empty() {
        let not_a_size = || format!("{text:?} is not a size (expected e.g. 100M or 1.5GiB)");
        if fraction.len() > 18 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(not_a_size());
        }
        // Exact: multiplier * fraction / 10^digits, rounded down.
        let numerator: u128 = fraction.parse().map_err(|_| not_a_size())?;
        let digits = u32::try_from(fraction.len()).map_err(|_| not_a_size())?;
        let part = u128::from(multiplier) * numerator / 10u128.pow(digits);
        let part = u64::try_from(part).map_err(|_| too_large())?;
        bytes = bytes.checked_add(part).ok_or_else(too_large)?;
    }
    Ok(bytes)
}

/// `512 B`, `1.5 kB`, `100.0 MB`, `2.10 GB`.
pub fn fmt_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Bytes per second over `elapsed`, as `108.7 MB/s (869.6 Mbit/s)`.
pub fn fmt_rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return "-".to_owned();
    }
    let per_sec = bytes as f64 / secs;
    format!(
        "{}/s ({:.1} Mbit/s)",
        fmt_bytes(per_sec as u64),
        per_sec * 8.0 / 1e6
    )
}

/// `250 µs`, `1.90 ms`, `920 ms`, `1.92 s`, `12.3 s`.
pub fn fmt_duration(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.0} µs")
    } else if micros < 1e5 {
        format!("{:.2} ms", micros / 1e3)
    } else if micros < 1e6 {
        format!("{:.0} ms", micros / 1e3)
    } else if micros < 1e7 {
        format!("{:.2} s", micros / 1e6)
    } else {
        format!("{:.1} s", micros / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_decimal_and_binary_units() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1234"), Ok(1234));
        assert_eq!(parse_size("100M"), Ok(100_000_000));
        assert_eq!(parse_size("100 MB"), Ok(100_000_000));
        assert_eq!(parse_size("1.5k"), Ok(1500));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("0.5GiB"), Ok(1 << 29));
        assert_eq!(parse_size(".5kb"), Ok(500));
        assert!(parse_size("").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("1.2.3M").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(100_000_000), "100.0 MB");
        assert_eq!(fmt_bytes(1_500), "1.5 kB");
        assert_eq!(
            fmt_rate(100_000_000, Duration::from_secs(1)),
            "100.0 MB/s (800.0 Mbit/s)"
        );
        assert_eq!(fmt_duration(Duration::from_micros(250)), "250 µs");
        assert_eq!(fmt_duration(Duration::from_micros(1900)), "1.90 ms");
        assert_eq!(fmt_duration(Duration::from_millis(920)), "920 ms");
        assert_eq!(fmt_duration(Duration::from_millis(1920)), "1.92 s");
    }
}
