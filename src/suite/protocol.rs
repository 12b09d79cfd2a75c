//! The protocol table: one entry per protocol saying what it is (its family, the URL schemes
//! it takes, whether it answers text and counts tokens, the SLIs its driver produces, the
//! endpoint keys that belong to it). Validation, the SLI registry, planning, rotation, the
//! metrics model and the OpenTelemetry export read this table instead of testing protocols
//! one by one; adding a protocol is adding an entry (and its driver). docs/suite-format.md's
//! "Protocols" table is generated from it and held to it by a test.

use serde::{Deserialize, Serialize};

use crate::measure::sli::Sli;

/// The wire protocol of an endpoint; one driver each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    HttpJson,
    OpenaiChat,
    OpenaiResponses,
    AnthropicMessages,
    WsOpus,
    Realtime,
    /// Audio in an HTTP response: a chunked body of PCM, WAV, Ogg Opus or MP3, or SSE/NDJSON
    /// events carrying base64 audio (text-to-speech services).
    HttpAudio,
    /// JSON messages over a WebSocket carrying base64 audio (text-to-speech services).
    WsJsonAudio,
    Job,
    /// A stream described in the suite (`stream:`).
    Stream,
    /// Built-in stream descriptions (`protocols/*.yaml`).
    Gemini,
    Ollama,
    Tgi,
    BedrockConverse,
}

impl Protocol {
    pub const ALL: &'static [Protocol] = &[
        Protocol::HttpJson,
        Protocol::OpenaiChat,
        Protocol::OpenaiResponses,
        Protocol::AnthropicMessages,
        Protocol::WsOpus,
        Protocol::Realtime,
        Protocol::HttpAudio,
        Protocol::WsJsonAudio,
        Protocol::Job,
        Protocol::Stream,
        Protocol::Gemini,
        Protocol::Ollama,
        Protocol::Tgi,
        Protocol::BedrockConverse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::HttpJson => "http-json",
            Protocol::OpenaiChat => "openai-chat",
            Protocol::OpenaiResponses => "openai-responses",
            Protocol::AnthropicMessages => "anthropic-messages",
            Protocol::WsOpus => "ws-opus",
            Protocol::Realtime => "realtime",
            Protocol::HttpAudio => "http-audio",
            Protocol::WsJsonAudio => "ws-json-audio",
            Protocol::Job => "job",
            Protocol::Stream => "stream",
            Protocol::Gemini => "gemini",
            Protocol::Ollama => "ollama",
            Protocol::Tgi => "tgi",
            Protocol::BedrockConverse => "bedrock-converse",
        }
    }

    /// Whether this build has a driver for the protocol.
    pub fn implemented(self) -> bool {
        true
    }

    /// Voice protocols: audio answers (over a WebSocket or an HTTP response).
    pub fn is_voice(self) -> bool {
        self.info().family == Family::Voice
    }

    /// Protocols spoken over a WebSocket (`ws://`, `wss://`).
    pub fn is_websocket(self) -> bool {
        self.info().websocket
    }

    /// Chat protocols: text answers, possibly streamed (described streams included).
    pub fn is_chat(self) -> bool {
        self.info().family == Family::Chat
    }

    /// Streams read through a description (`stream`, and the built-in descriptions).
    pub fn is_described(self) -> bool {
        self.info().described
    }
}

/// What kind of answer a protocol gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A JSON document (`http-json`).
    Json,
    /// Text, possibly streamed (the chat protocols and the described streams).
    Chat,
    /// Audio (and a transcript where the protocol sends one).
    Voice,
    /// An asynchronous job followed to its end.
    Job,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Json => "json",
            Family::Chat => "chat",
            Family::Voice => "voice",
            Family::Job => "job",
        }
    }
}

/// One protocol's entry.
#[derive(Debug)]
pub struct ProtocolInfo {
    pub protocol: Protocol,
    pub family: Family,
    /// The schemes `url` may have (the first is the one to suggest).
    pub schemes: &'static [&'static str],
    /// Whether the endpoint's `url` is read (`job` reads `submit.url` and `poll.url`).
    pub needs_url: bool,
    /// Spoken over a WebSocket.
    pub websocket: bool,
    /// Read through a stream description (`stream:`, `protocols/*.yaml`).
    pub described: bool,
    /// Audio arrives inside described events (base64 at the description's `audio` paths).
    pub audio_events: bool,
    /// The driver assembles an answer text (chat text, a voice transcript): escalation
    /// phrases apply by default and its tokens are counted even without a `price`.
    pub answers_text: bool,
    /// The GenAI semantic conventions' `gen_ai.system`, where the protocol names one vendor.
    pub gen_ai_system: Option<&'static str>,
    /// Endpoint keys only this protocol (or its family) takes, beyond the common ones.
    pub keys: &'static [&'static str],
    /// The SLIs its driver produces (the validator rejects the others).
    pub slis: &'static [Sli],
}

impl ProtocolInfo {
    /// Runs are accounted in tokens (server usage, else estimated) without a `price`.
    pub fn counts_tokens(&self) -> bool {
        self.answers_text
    }
}

use Sli::*;

const JSON_SLIS: &[Sli] = &[
    TimeToFirstByte,
    TimeToCompletion,
    Success,
    ChecksPassed,
    SchemaValid,
    NotFallback,
    NotEscalated,
    CacheHit,
    TierPrimary,
    JudgePassed,
    Similar,
];

const CHAT_SLIS: &[Sli] = &[
    TimeToFirstByte,
    TimeToFirstToken,
    TimeToFirstVisibleToken,
    TimeToCompletion,
    InterChunkGap,
    NoStall,
    Success,
    ChecksPassed,
    SchemaValid,
    NotFallback,
    NotEscalated,
    CacheHit,
    TierPrimary,
    JudgePassed,
    Similar,
    ConversationDuration,
];

const VOICE_SLIS: &[Sli] = &[
    TimeToFirstByte,
    TimeToFirstToken,
    TimeToFirstAudio,
    LeadingSilence,
    TimeToCompletion,
    NoUnderrun,
    Success,
    ChecksPassed,
    NotEscalated,
    TierPrimary,
    JudgePassed,
    Similar,
];

const JOB_SLIS: &[Sli] = &[
    TimeToFirstByte,
    TimeToCompletion,
    Success,
    ChecksPassed,
    SchemaValid,
    NotFallback,
    CacheHit,
    TierPrimary,
    JudgePassed,
    Similar,
];

const HTTP: &[&str] = &["http", "https"];
const WS: &[&str] = &["ws", "wss"];
const CHAT_KEYS: &[&str] = &["model", "stream", "params", "max_tokens"];
const VOICE_KEYS: &[&str] = &["audible_threshold", "prebuffer"];

const fn chat(protocol: Protocol, gen_ai_system: Option<&'static str>) -> ProtocolInfo {
    ProtocolInfo {
        protocol,
        family: Family::Chat,
        schemes: HTTP,
        needs_url: true,
        websocket: false,
        described: false,
        audio_events: false,
        answers_text: true,
        gen_ai_system,
        keys: CHAT_KEYS,
        slis: CHAT_SLIS,
    }
}

const fn described(protocol: Protocol, gen_ai_system: Option<&'static str>) -> ProtocolInfo {
    ProtocolInfo {
        described: true,
        ..chat(protocol, gen_ai_system)
    }
}

const fn voice(protocol: Protocol, websocket: bool, audio_events: bool) -> ProtocolInfo {
    ProtocolInfo {
        protocol,
        family: Family::Voice,
        schemes: if websocket { WS } else { HTTP },
        needs_url: true,
        websocket,
        described: false,
        audio_events,
        answers_text: true,
        gen_ai_system: None,
        keys: VOICE_KEYS,
        slis: VOICE_SLIS,
    }
}

/// Every protocol, in `Protocol::ALL`'s order.
pub static PROTOCOLS: &[ProtocolInfo] = &[
    ProtocolInfo {
        protocol: Protocol::HttpJson,
        family: Family::Json,
        schemes: HTTP,
        needs_url: true,
        websocket: false,
        described: false,
        audio_events: false,
        answers_text: false,
        gen_ai_system: None,
        keys: &[],
        slis: JSON_SLIS,
    },
    chat(Protocol::OpenaiChat, Some("openai")),
    chat(Protocol::OpenaiResponses, Some("openai")),
    chat(Protocol::AnthropicMessages, Some("anthropic")),
    ProtocolInfo {
        keys: &[
            "start",
            "transcript",
            "done",
            "container",
            "sample_rate",
            "audible_threshold",
            "prebuffer",
        ],
        ..voice(Protocol::WsOpus, true, false)
    },
    ProtocolInfo {
        gen_ai_system: Some("openai"),
        keys: &[
            "audio_format",
            "api",
            "session",
            "audible_threshold",
            "prebuffer",
        ],
        ..voice(Protocol::Realtime, true, false)
    },
    ProtocolInfo {
        keys: &[
            "audio_format",
            "sample_rate",
            "stream",
            "audible_threshold",
            "prebuffer",
        ],
        ..voice(Protocol::HttpAudio, false, true)
    },
    ProtocolInfo {
        keys: &[
            "audio_format",
            "sample_rate",
            "stream",
            "start",
            "audible_threshold",
            "prebuffer",
        ],
        ..voice(Protocol::WsJsonAudio, true, true)
    },
    ProtocolInfo {
        protocol: Protocol::Job,
        family: Family::Job,
        schemes: HTTP,
        needs_url: false,
        websocket: false,
        described: false,
        audio_events: false,
        answers_text: false,
        gen_ai_system: None,
        keys: &["submit", "id", "poll", "done", "failed", "queue"],
        slis: JOB_SLIS,
    },
    described(Protocol::Stream, None),
    described(Protocol::Gemini, Some("gcp.gemini")),
    described(Protocol::Ollama, None),
    described(Protocol::Tgi, None),
    described(Protocol::BedrockConverse, Some("aws.bedrock")),
];

impl Protocol {
    /// This protocol's entry in the table.
    pub fn info(self) -> &'static ProtocolInfo {
        // `PROTOCOLS` is in `ALL`'s order (a test keeps it so); the search is the fallback
        // that keeps a misordered table correct.
        let i = Protocol::ALL.iter().position(|p| *p == self).unwrap_or(0);
        match PROTOCOLS.get(i) {
            Some(e) if e.protocol == self => e,
            _ => PROTOCOLS
                .iter()
                .find(|e| e.protocol == self)
                .unwrap_or(&PROTOCOLS[0]),
        }
    }
}

/// The "Protocols" table of docs/suite-format.md, generated from [`PROTOCOLS`].
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| `protocol` | family | `url` schemes | answer text, tokens counted | protocol keys | SLIs |\n\
         |---|---|---|---|---|---|\n",
    );
    for e in PROTOCOLS {
        let code = |xs: &[&str]| {
            if xs.is_empty() {
                "none".to_string()
            } else {
                xs.iter()
                    .map(|x| format!("`{x}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let schemes = if e.needs_url {
            code(e.schemes)
        } else {
            "not read (`submit.url`, `poll.url`)".to_string()
        };
        let slis: Vec<&str> = e.slis.iter().map(|s| s.name()).collect();
        out.push_str(&format!(
            "| `{}` | {}{} | {} | {} | {} | {} |\n",
            e.protocol.as_str(),
            e.family.as_str(),
            if e.described { " (described)" } else { "" },
            schemes,
            if e.answers_text { "yes" } else { "no" },
            code(e.keys),
            code(&slis),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protocol_has_its_entry_in_order() {
        assert_eq!(PROTOCOLS.len(), Protocol::ALL.len());
        for (p, e) in Protocol::ALL.iter().zip(PROTOCOLS) {
            assert_eq!(*p, e.protocol, "PROTOCOLS is not in Protocol::ALL's order");
            assert!(std::ptr::eq(p.info(), e));
            assert!(
                !e.slis.is_empty() && e.slis.contains(&Sli::Success),
                "{p:?}"
            );
            assert!(!e.schemes.is_empty());
            assert_eq!(e.websocket, e.schemes == WS, "{p:?}");
        }
    }

    #[test]
    fn families_and_flags_agree() {
        for e in PROTOCOLS {
            if e.described {
                assert_eq!(e.family, Family::Chat, "{:?}", e.protocol);
            }
            if e.audio_events {
                assert_eq!(e.family, Family::Voice);
            }
            if e.family == Family::Chat {
                assert!(e.slis.contains(&Sli::TimeToFirstVisibleToken));
            }
            if e.family == Family::Voice {
                assert!(e.slis.contains(&Sli::TimeToFirstAudio));
            }
        }
        assert!(Protocol::Gemini.info().described && !Protocol::OpenaiChat.info().described);
        assert!(!Protocol::Job.info().needs_url);
    }

    #[test]
    fn every_protocol_key_is_a_documented_endpoint_key() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/suite-format.md"),
        )
        .unwrap();
        for e in PROTOCOLS {
            for k in e.keys {
                assert!(
                    doc.contains(&format!("| `{k}`")) || doc.contains(&format!(", `{k}`")),
                    "{:?}: `{k}` is not a documented endpoint key",
                    e.protocol
                );
            }
        }
    }

    #[test]
    fn the_suite_format_reference_shows_the_table() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/suite-format.md"),
        )
        .unwrap();
        let table = markdown_table();
        assert!(
            doc.contains(&table),
            "docs/suite-format.md's \"Protocols\" table differs from src/suite/protocol.rs; \
             replace it with:\n{table}"
        );
    }
}
