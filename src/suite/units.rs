//! Units in suite files: durations (`250ms`, `1.5s`, `10m`, `30d`), percentages (`99.5%`) and
//! byte sizes (`16MiB`). Each parser's error says what would be valid.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

pub const DURATION_SYNTAX: &str =
    "a number with a unit: us, ms, s, m, h or d (e.g. 250ms, 1.5s, 10m, 30d; 1m30s also works)";

/// Parses `250ms`, `1.5s`, `10m`, `2h`, `30d`, `1m30s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("empty duration; expected {DURATION_SYNTAX}"));
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!(
                "invalid duration `{s}`; expected {DURATION_SYNTAX}"
            ));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid duration `{s}`; expected {DURATION_SYNTAX}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        let scale = match unit {
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "" => {
                return Err(format!(
                    "duration `{s}` has no unit; expected {DURATION_SYNTAX}"
                ))
            }
            other => {
                return Err(format!(
                    "unknown unit `{other}` in duration `{s}`; expected {DURATION_SYNTAX}"
                ))
            }
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 400.0 * 86400.0 {
        return Err(format!("duration `{s}` is out of range (at most 400d)"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Parses `99.5%` or a fraction `0.995` into a fraction in (0, 1].
pub fn parse_percent_str(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = if let Some(p) = t.strip_suffix('%') {
        p.trim()
            .parse::<f64>()
            .map_err(|_| format!("invalid percentage `{s}`; expected e.g. 99.5% or 0.995"))?
            / 100.0
    } else {
        t.parse::<f64>()
            .map_err(|_| format!("invalid percentage `{s}`; expected e.g. 99.5% or 0.995"))?
    };
    check_fraction(v, s)
}

fn check_fraction(v: f64, shown: &str) -> Result<f64, String> {
    // 99.9% / 100 is 0.9990000000000001 in binary: keep the decimal the user wrote.
    let v = (v * 1e12).round() / 1e12;
    if !(v > 0.0 && v <= 1.0) {
        // `objective: 80` is almost always 80% written without its sign.
        let bare = shown.trim();
        let meant = if v > 1.0 && v <= 100.0 && !bare.ends_with('%') {
            format!("; did you mean `{bare}%`?")
        } else {
            String::new()
        };
        return Err(format!(
            "percentage `{shown}` is out of range; expected more than 0% and at most 100% (e.g. 99.5% or 0.995){meant}"
        ));
    }
    Ok(v)
}

/// Parses `16MiB`, `512KiB`, `1MB`, `1024` (bytes).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let value: f64 = t[..split].parse().map_err(|_| {
        format!("invalid size `{s}`; expected e.g. 16MiB, 512KiB, 1MB or a number of bytes")
    })?;
    let scale = match t[split..].trim() {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{s}`; expected B, KB, MB, GB, KiB, MiB or GiB"
            ))
        }
    };
    Ok((value * scale) as u64)
}

/// A duration field in a suite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "{DURATION_SYNTAX}")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Dur, E> {
                parse_duration(s).map(Dur).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "duration `{v}` has no unit; expected {DURATION_SYNTAX}"
                )))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "duration `{v}` has no unit; expected {DURATION_SYNTAX}"
                )))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "duration `{v}` has no unit; expected {DURATION_SYNTAX}"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// A share in (0, 1], written `99.5%` or `0.995`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(pub f64);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Percent;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a percentage such as 99.5% or a fraction such as 0.995")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Percent, E> {
                parse_percent_str(s).map(Percent).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Percent, E> {
                check_fraction(v, &v.to_string())
                    .map(Percent)
                    .map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Percent, E> {
                check_fraction(v as f64, &v.to_string())
                    .map(Percent)
                    .map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Percent, E> {
                check_fraction(v as f64, &v.to_string())
                    .map(Percent)
                    .map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A byte size, written `16MiB` or as a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 16MiB or a number of bytes")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ByteSize, E> {
                parse_bytes(s).map(ByteSize).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("size must not be negative"))
            }
        }
        d.deserialize_any(V)
    }
}

/// A string or a list of strings (`contains: Paris` or `contains: [Paris, France]`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![s.to_string()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86400)
        );
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(parse_duration("5 minutes")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_duration("ms").unwrap_err().contains("250ms"));
    }

    #[test]
    fn percentages() {
        assert!((parse_percent_str("99.5%").unwrap() - 0.995).abs() < 1e-12);
        assert!((parse_percent_str("0.9").unwrap() - 0.9).abs() < 1e-12);
        assert!(parse_percent_str("150%").is_err());
        let e = parse_percent_str("80").unwrap_err();
        assert!(e.ends_with("did you mean `80%`?"), "{e}");
        assert!(!parse_percent_str("150%")
            .unwrap_err()
            .contains("did you mean"));
        assert!(parse_percent_str("0%").is_err());
        assert!(parse_percent_str("abc").unwrap_err().contains("99.5%"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("16MiB").unwrap(), 16 * 1024 * 1024);
        assert_eq!(parse_bytes("1MB").unwrap(), 1_000_000);
        assert_eq!(parse_bytes("42").unwrap(), 42);
        assert!(parse_bytes("3 parsecs").is_err());
    }

    #[test]
    fn serde_forms() {
        let d: Dur = serde_json::from_value(serde_json::json!("2s")).unwrap();
        assert_eq!(d.0, Duration::from_secs(2));
        assert!(serde_json::from_value::<Dur>(serde_json::json!(2)).is_err());
        let p: Percent = serde_json::from_value(serde_json::json!(0.95)).unwrap();
        assert!((p.0 - 0.95).abs() < 1e-12);
        let o: OneOrMany = serde_json::from_value(serde_json::json!("x")).unwrap();
        assert_eq!(o.0, vec!["x"]);
        let o: OneOrMany = serde_json::from_value(serde_json::json!(["x", "y"])).unwrap();
        assert_eq!(o.0, vec!["x", "y"]);
    }
}
