//! The wire formats the simulator speaks ([`Api`]: its routes and content types) and the
//! semantic kinds of the events it schedules ([`Sem`]), shared by the chat routes and the
//! described-stream renderers.

use serde::{Deserialize, Serialize};

/// Which wire format to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Api {
    OpenaiChat,
    OpenaiResponses,
    AnthropicMessages,
    /// The described-stream protocols ([`super::streams`]).
    Gemini,
    /// Gemini without `alt=sse`: one streamed JSON array.
    GeminiArray,
    Ollama,
    Tgi,
    BedrockConverse,
    /// The in-house NDJSON example (`{"delta": ..., "phase": "thinking"|"answer"}`).
    InHouse,
}

/// The semantic kind of one scheduled event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sem {
    Meta,
    Reasoning,
    /// A visible delta that holds only whitespace.
    Blank,
    Visible,
    Terminator,
    Error,
}

impl Api {
    /// The route the simulator serves this API on.
    pub fn path(self) -> &'static str {
        match self {
            Api::OpenaiChat => "/v1/chat/completions",
            Api::OpenaiResponses => "/v1/responses",
            Api::AnthropicMessages => "/v1/messages",
            Api::Gemini | Api::GeminiArray => "/v1beta/models/{call}",
            Api::Ollama => "/api/chat",
            Api::Tgi => "/generate_stream",
            Api::BedrockConverse => "/model/{id}/converse-stream",
            Api::InHouse => "/inhouse/stream",
        }
    }

    /// The described-stream routes answer with a stream whatever the body says.
    pub fn always_streams(self) -> bool {
        !matches!(
            self,
            Api::OpenaiChat | Api::OpenaiResponses | Api::AnthropicMessages
        )
    }

    /// The content type of a streamed answer.
    pub fn content_type(self) -> &'static str {
        match self {
            Api::Ollama | Api::InHouse => "application/x-ndjson",
            Api::GeminiArray => "application/json",
            Api::BedrockConverse => "application/vnd.amazon.eventstream",
            _ => "text/event-stream",
        }
    }
}
