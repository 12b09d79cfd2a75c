//! Shards: N replicas of `serve` split the probes with no coordinator. A probe belongs to
//! shard `fnv1a64("SUITE/PROBE") mod N` — FNV-1a, 64 bits, over the UTF-8 bytes of the suite
//! name, a `/` and the probe name. The hash is fully specified (offset basis
//! 0xcbf29ce484222325, prime 0x100000001b3), so every version of canary on every platform
//! puts a probe in the same shard; std's hasher is randomly keyed and would not.
//! `--shard I/N` names the shard; `--shard auto/N` reads I from the pod's hostname, the
//! ordinal a StatefulSet gives its pods (`canary-monitor-2` is shard 2).

use crate::sink::metrics::{Family, Kind, MetricsModel, Value};
use crate::suite::Suite;

/// The metric with the number of probes this replica runs.
pub const SHARD_PROBES: &str = "canary_shard_probes";

/// Why a `--shard` value is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShardError {
    #[error("--shard {0:?}: write I/N (0 <= I < N), e.g. 0/3, or auto/N to take I from the pod's hostname ordinal")]
    Syntax(String),
    #[error("--shard {index}/{count}: the shard index runs from 0 to {}", count.saturating_sub(1))]
    Range { index: u32, count: u32 },
    #[error("--shard auto/{count}: the hostname {host:?} does not end in `-ORDINAL` (a StatefulSet pod's name does, e.g. canary-monitor-0); give --shard I/{count}")]
    NoOrdinal { host: String, count: u32 },
}

/// This replica's shard: `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    /// One replica runs everything.
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The shard (of `count`) a probe belongs to.
pub fn shard_of(suite: &str, probe: &str, count: u32) -> u32 {
    let key = format!("{suite}/{probe}");
    (fnv1a64(key.as_bytes()) % u64::from(count.max(1))) as u32
}

/// The ordinal at the end of a StatefulSet pod's name (`web-2` -> 2).
fn ordinal(host: &str) -> Option<u32> {
    let short = host.split('.').next().unwrap_or(host);
    let (_, n) = short.rsplit_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// This host's name: `HOSTNAME` (set in every Kubernetes container to the pod's name), else
/// the kernel's.
pub fn hostname() -> String {
    if let Some(h) = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()) {
        return h;
    }
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

impl Shard {
    /// Parses `I/N` or `auto/N` (`host` gives the ordinal of `auto`).
    pub fn parse(text: &str, host: impl FnOnce() -> String) -> Result<Shard, ShardError> {
        let syntax = || ShardError::Syntax(text.chars().take(40).collect());
        let (i, n) = text.trim().split_once('/').ok_or_else(syntax)?;
        let count: u32 = n.trim().parse().map_err(|_| syntax())?;
        if count == 0 {
            return Err(syntax());
        }
        let index = if i.trim().eq_ignore_ascii_case("auto") {
            let host = host();
            ordinal(&host).ok_or(ShardError::NoOrdinal { host, count })?
        } else {
            i.trim().parse().map_err(|_| syntax())?
        };
        if index >= count {
            return Err(ShardError::Range { index, count });
        }
        Ok(Shard { index, count })
    }

    pub fn owns(&self, suite: &str, probe: &str) -> bool {
        shard_of(suite, probe, self.count) == self.index
    }

    /// The suites as this shard runs them: only its own probes and their SLOs. A suite none
    /// of whose probes is here stays, empty, so its name is still known (the gate route runs
    /// the full suites, kept apart).
    pub fn own(&self, suites: &[Suite]) -> Vec<Suite> {
        suites
            .iter()
            .map(|s| {
                let mut s = s.clone();
                let name = s.name.clone();
                s.probes.retain(|p| self.owns(&name, &p.name));
                let kept: Vec<String> = s.probes.iter().map(|p| p.name.clone()).collect();
                s.slos.retain(|slo| kept.contains(&slo.probe));
                s
            })
            .collect()
    }

    /// Sets `canary_shard_probes{region, shard, shards}` in a metrics model.
    pub fn export(&self, model: &mut MetricsModel, probes: usize) {
        let mut series = std::collections::BTreeMap::new();
        series.insert(
            vec![
                ("region".to_string(), model.region.clone()),
                ("shard".to_string(), self.index.to_string()),
                ("shards".to_string(), self.count.to_string()),
            ],
            Value::Gauge(probes as f64),
        );
        model.families.insert(
            SHARD_PROBES.to_string(),
            Family {
                name: SHARD_PROBES.to_string(),
                help: "Probes this replica runs: its shard of the suites (shard I of shards N)."
                    .to_string(),
                kind: Kind::Gauge,
                unit: None,
                buckets: vec![],
                series,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_is_the_published_function() {
        // The reference vectors of the FNV specification.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn a_probe_stays_in_its_shard_across_versions() {
        // Fixed here: changing the hash or the key moves every probe of every fleet.
        assert_eq!(fnv1a64(b"monitor/map"), 0x8b18_0764_b8ab_602c);
        assert_eq!(shard_of("monitor", "map", 3), 0);
        assert_eq!(shard_of("monitor", "map", 1), 0);
        let n = 3;
        let all: Vec<u32> = (0..300)
            .map(|i| shard_of("fleet", &format!("probe-{i}"), n))
            .collect();
        for s in 0..n {
            let c = all.iter().filter(|x| **x == s).count();
            assert!((70..=130).contains(&c), "shard {s} holds {c} of 300");
        }
    }

    #[test]
    fn shards_parse_from_flags_and_hostnames() {
        let none = || String::new();
        assert_eq!(Shard::parse("1/3", none), Ok(Shard { index: 1, count: 3 }));
        assert_eq!(
            Shard::parse("auto/3", || "canary-monitor-2".into()),
            Ok(Shard { index: 2, count: 3 })
        );
        assert_eq!(
            Shard::parse("auto/3", || "canary-monitor-1.canary.svc".into()),
            Ok(Shard { index: 1, count: 3 })
        );
        assert!(matches!(
            Shard::parse("auto/3", || "laptop".into()),
            Err(ShardError::NoOrdinal { .. })
        ));
        assert!(matches!(
            Shard::parse("auto/3", || "canary-monitor-7".into()),
            Err(ShardError::Range { index: 7, count: 3 })
        ));
        assert_eq!(
            Shard::parse("3/3", none),
            Err(ShardError::Range { index: 3, count: 3 })
        );
        for bad in ["3", "1/0", "a/3", "-1/3", "1/3/4", ""] {
            assert!(
                matches!(Shard::parse(bad, none), Err(ShardError::Syntax(_))),
                "{bad}"
            );
        }
    }
}
