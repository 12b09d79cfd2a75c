//! The SLI registry: one definition per SLI with its name, kind, unit, help text and default
//! histogram buckets. Everything that names an SLI (suite validation, reports, metrics,
//! generated rules) reads it from here.

use serde::{Serialize, Serializer};

use crate::suite::Protocol;

/// Whether an SLI is a duration per run or a good/bad outcome per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliKind {
    /// Seconds; an SLO on it is "share of runs with value <= threshold".
    Latency,
    /// Good or bad per run; an SLO on it is "share of good runs".
    Ratio,
}

macro_rules! slis {
    ($( $variant:ident => $name:literal, $kind:ident, $help:literal; )*) => {
        /// Every SLI canary measures.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Sli { $( $variant, )* }

        impl Sli {
            pub const ALL: &'static [Sli] = &[ $( Sli::$variant, )* ];

            /// The name used in suites, reports and metric names.
            pub fn name(self) -> &'static str {
                match self { $( Sli::$variant => $name, )* }
            }

            pub fn kind(self) -> SliKind {
                match self { $( Sli::$variant => SliKind::$kind, )* }
            }

            /// One line saying what the SLI measures.
            pub fn help(self) -> &'static str {
                match self { $( Sli::$variant => $help, )* }
            }
        }
    };
}

slis! {
    TimeToFirstByte => "time_to_first_byte", Latency,
        "Request start to the response headers (what naive dashboards report).";
    TimeToFirstToken => "time_to_first_token", Latency,
        "Request start to the first token of any kind, reasoning included.";
    TimeToFirstVisibleToken => "time_to_first_visible_token", Latency,
        "Request start to the first content a renderer would show (no reasoning, no whitespace-only deltas).";
    TimeToFirstAudio => "time_to_first_audio", Latency,
        "Request start to the first audio frame whose decoded signal is audible.";
    LeadingSilence => "leading_silence", Latency,
        "Decoded audio before the audible onset (silence or noise the provider sent first).";
    TimeToCompletion => "time_to_completion", Latency,
        "Request start to the last byte or the done event.";
    InterChunkGap => "inter_chunk_gap", Latency,
        "Gaps between consecutive content chunks after the first visible token (each gap is an event).";
    FreshnessLag => "freshness_lag", Latency,
        "Time from writing a canary fact to the first answer that reflects it.";
    AnswerStaleness => "answer_staleness", Latency,
        "How long the truth reflected by a stale answer has been superseded.";
    ConversationDuration => "conversation_duration", Latency,
        "First turn sent to the last turn's answer complete, tool rounds included (conversation cases).";
    Success => "success", Ratio,
        "The run got a complete answer: no transport, HTTP status or protocol error.";
    ChecksPassed => "checks_passed", Ratio,
        "Every golden check of the case passed.";
    SchemaValid => "schema_valid", Ratio,
        "The response body is valid JSON and conforms to the JSON schema.";
    NotFallback => "not_fallback", Ratio,
        "The answer did not come from the fallback path.";
    NotEscalated => "not_escalated", Ratio,
        "The answer was not an escalation or refusal.";
    CacheHit => "cache_hit", Ratio,
        "The response was served from cache.";
    Fresh => "fresh", Ratio,
        "The answer reflects the current value of the source of truth.";
    NoStall => "no_stall", Ratio,
        "No inter-chunk gap exceeded the stall threshold.";
    NoUnderrun => "no_underrun", Ratio,
        "The playout buffer model never ran dry.";
    TierPrimary => "tier_primary", Ratio,
        "The answer was served by a primary tier.";
    JudgePassed => "judge_passed", Ratio,
        "The judge endpoint passed the answer against its rubric (a judge error is not a pass).";
    Similar => "similar", Ratio,
        "The answer's embedding is at least the threshold close (cosine) to the reference's.";
}

impl Sli {
    pub fn parse(name: &str) -> Option<Sli> {
        Sli::ALL.iter().copied().find(|s| s.name() == name)
    }

    pub fn names() -> Vec<&'static str> {
        Sli::ALL.iter().map(|s| s.name()).collect()
    }

    /// Default histogram buckets in seconds (upper bounds, `+Inf` implied).
    pub fn buckets(self) -> &'static [f64] {
        match self {
            Sli::TimeToFirstByte
            | Sli::TimeToFirstToken
            | Sli::TimeToFirstVisibleToken
            | Sli::TimeToFirstAudio
            | Sli::LeadingSilence => &[
                0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0,
                5.0, 10.0,
            ],
            Sli::TimeToCompletion | Sli::ConversationDuration => &[
                0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 60.0, 120.0,
            ],
            Sli::InterChunkGap => &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0],
            Sli::FreshnessLag | Sli::AnswerStaleness => &[
                1.0,
                10.0,
                60.0,
                300.0,
                900.0,
                3600.0,
                6.0 * 3600.0,
                86400.0,
                3.0 * 86400.0,
                7.0 * 86400.0,
            ],
            _ => &[],
        }
    }

    /// The SLIs a protocol's driver produces in this build (the validator rejects the
    /// others): the protocol table's (`suite::protocol`).
    pub fn produced_by(protocol: Protocol) -> &'static [Sli] {
        protocol.info().slis
    }
}

impl Serialize for Sli {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl std::fmt::Display for Sli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for s in Sli::ALL {
            assert_eq!(Sli::parse(s.name()), Some(*s));
            assert!(seen.insert(s.name()));
            assert!(!s.help().is_empty());
        }
        assert_eq!(Sli::parse("ttft"), None);
    }

    #[test]
    fn latency_slis_have_increasing_buckets_and_ratios_have_none() {
        for s in Sli::ALL {
            let b = s.buckets();
            match s.kind() {
                SliKind::Latency => {
                    assert!(!b.is_empty(), "{s}");
                    assert!(b.windows(2).all(|w| w[0] < w[1]), "{s}");
                }
                SliKind::Ratio => assert!(b.is_empty(), "{s}"),
            }
        }
    }

    #[test]
    fn http_json_cannot_promise_a_visible_token() {
        assert!(!Sli::produced_by(Protocol::HttpJson).contains(&Sli::TimeToFirstVisibleToken));
        assert!(Sli::produced_by(Protocol::OpenaiChat).contains(&Sli::TimeToFirstVisibleToken));
    }
}
