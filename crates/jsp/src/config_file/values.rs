//! How individual values of a config file are written: durations (`"30s"`), limits (a positive
//! integer or `"unlimited"`), names of cipher suites and congestion controllers, addresses,
//! fingerprints and authority keys. Every parser says what it expected and what it got.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use jsp_proto::crypto::CipherSuite;
use jsp_proto::identity::{Fingerprint, PublicKey};
use jsp_proto::recovery::congestion::{BbrConfig, CongestionControl, CubicConfig};
use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::Deserialize;

use super::identity_files::parse_public_key;

const DURATION_EXPECTED: &str =
    "a duration such as \"250ms\", \"30s\", \"5m\", \"1h\" or \"7d\" (a whole number and a unit)";

/// Parses `<digits><unit>` with unit `ms`, `s`, `m`, `h` or `d` (`"0"` alone is zero).
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let secs_per_unit = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(secs_per_unit).map(Duration::from_secs)
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(DURATION_EXPECTED)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).ok_or_else(|| E::invalid_value(Unexpected::Str(v), &self))
    }
}

/// `deserialize_with` for an optional duration field.
pub(crate) fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    d.deserialize_any(DurationVisitor).map(Some)
}

/// A count that may be unbounded: a positive integer, or `"unlimited"` in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// At most this many (at least 1).
    Finite(u64),
    /// No limit.
    Unlimited,
}

impl Limit {
    /// The bound, `None` when unlimited.
    pub fn finite(self) -> Option<u64> {
        match self {
            Limit::Finite(n) => Some(n),
            Limit::Unlimited => None,
        }
    }
}

struct LimitVisitor;

impl Visitor<'_> for LimitVisitor {
    type Value = Limit;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a positive integer or \"unlimited\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Limit, E> {
        if v == 0 {
            return Err(E::invalid_value(Unexpected::Unsigned(v), &self));
        }
        Ok(Limit::Finite(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Limit, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::invalid_value(Unexpected::Signed(v), &self)),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Limit, E> {
        if v == "unlimited" {
            Ok(Limit::Unlimited)
        } else {
            Err(E::invalid_value(Unexpected::Str(v), &self))
        }
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LimitVisitor)
    }
}

/// A cipher suite as named in a config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum SuiteName {
    /// `"aes-256-gcm"`.
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    /// `"chacha20-poly1305"`.
    #[serde(rename = "chacha20-poly1305")]
    ChaCha20Poly1305,
}

impl SuiteName {
    /// The engine's suite.
    pub fn suite(self) -> CipherSuite {
        match self {
            SuiteName::Aes256Gcm => CipherSuite::Aes256Gcm,
            SuiteName::ChaCha20Poly1305 => CipherSuite::ChaCha20Poly1305,
        }
    }

    /// The name used in config files.
    pub fn name(self) -> &'static str {
        match self {
            SuiteName::Aes256Gcm => "aes-256-gcm",
            SuiteName::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }
}

/// A congestion controller as named in a config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CongestionName {
    /// `"cubic"`: CUBIC with HyStart++.
    Cubic,
    /// `"newreno"`: NewReno.
    NewReno,
    /// `"bbr"`: BBR with the queue-qualified loss response (the default).
    Bbr,
}

impl CongestionName {
    /// The engine's controller with its default settings.
    pub fn controller(self) -> CongestionControl {
        match self {
            CongestionName::Cubic => CongestionControl::Cubic(CubicConfig::default()),
            CongestionName::NewReno => CongestionControl::NewReno,
            CongestionName::Bbr => CongestionControl::Bbr(BbrConfig::default()),
        }
    }
}

/// A compression mode as named in a config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressionName {
    /// `"off"`: never compress what we send.
    Off,
    /// `"on"`: compress every frame of at least `compression_min_size` bytes that shrinks.
    On,
    /// `"auto"` (the default): as `on`, but stop trying for a while on incompressible data.
    Auto,
}

impl CompressionName {
    /// The engine's mode.
    pub fn mode(self) -> jsp_proto::compression::CompressionMode {
        use jsp_proto::compression::CompressionMode;
        match self {
            CompressionName::Off => CompressionMode::Off,
            CompressionName::On => CompressionMode::On,
            CompressionName::Auto => CompressionMode::Auto,
        }
    }
}

/// A string parsed with `FromStr`-like function, for list elements.
macro_rules! parsed_string {
    ($name:ident, $target:ty, $parse:expr, $expected:literal) => {
        struct $name($target);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                let parse: fn(&str) -> Result<$target, String> = $parse;
                parse(&s).map($name).map_err(|why| {
                    de::Error::custom(format_args!(
                        concat!("expected ", $expected, ", got {:?}: {}"),
                        s, why
                    ))
                })
            }
        }
    };
}

parsed_string!(
    FingerprintValue,
    Fingerprint,
    |s| s.parse::<Fingerprint>().map_err(|e| e.to_string()),
    "a fingerprint \"SHA256:<64 hex digits>\""
);
parsed_string!(
    PublicKeyValue,
    PublicKey,
    |s| parse_public_key(s).map_err(|e| e.to_string()),
    "a public key \"jsp-ed25519 <64 hex digits>\""
);
parsed_string!(
    SocketAddrValue,
    SocketAddr,
    |s| s.parse::<SocketAddr>().map_err(|e| e.to_string()),
    "an IP address and port such as \"0.0.0.0:4433\" or \"[::]:4433\""
);

/// `deserialize_with` for a list of fingerprints.
pub(crate) fn fingerprints<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Fingerprint>, D::Error> {
    Ok(Vec::<FingerprintValue>::deserialize(d)?
        .into_iter()
        .map(|v| v.0)
        .collect())
}

/// `deserialize_with` for a list of authority public keys.
pub(crate) fn public_keys<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PublicKey>, D::Error> {
    Ok(Vec::<PublicKeyValue>::deserialize(d)?
        .into_iter()
        .map(|v| v.0)
        .collect())
}

/// `deserialize_with` for a list of socket addresses.
pub(crate) fn socket_addrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    Ok(Vec::<SocketAddrValue>::deserialize(d)?
        .into_iter()
        .map(|v| v.0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        let cases = [
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("250ms", Duration::from_millis(250)),
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
            ("7d", Duration::from_secs(7 * 86_400)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Some(want), "{text}");
        }
        for bad in [
            "",
            "30",
            "s",
            "1.5s",
            " 1s",
            "1s ",
            "-1s",
            "1 s",
            "1sec",
            "1S",
            "1h30m",
            "99999999999999999999s",
            "213503982334602d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
