//! The simulator's described-stream endpoints, written with the simulator's own framing code
//! (its own SSE lines, NDJSON lines, JSON array and AWS event stream encoder with its own
//! CRC32), never the probe's: Gemini (`/v1beta/models/{model}:streamGenerateContent`, SSE with
//! `alt=sse`, a streamed JSON array without), Ollama (`/api/chat`, `/api/generate`), TGI
//! (`/generate_stream`), Bedrock ConverseStream (`/model/{id}/converse-stream`) and an
//! in-house NDJSON example (`/inhouse/stream`, `{"delta": ..., "phase": "thinking"|"answer"}`).
//!
//! Scenarios, write modes (`x-sim-write`), ground truth and the routes are the chat module's
//! ([`super::chat`], which calls [`render`] here): only the rendering of each scheduled event
//! differs. The model comes from
//! the URL (Gemini, Bedrock), the body's `model` (Ollama), or the `x-sim-model` header (TGI,
//! in-house). `throttle` in the model name ends the stream half-way with the protocol's rate
//! limit error (Bedrock's `throttlingException`, Gemini's `RESOURCE_EXHAUSTED`).

use bytes::Bytes;
use serde_json::{json, Value};

use super::api::{Api, Sem};

/// Every string under `text`, `content`, `prompt` or `inputs` in a request, joined: the
/// prompt whatever the protocol's request shape.
pub fn prompt_of(body: &Value) -> String {
    fn walk(v: &Value, key: Option<&str>, out: &mut Vec<String>) {
        match v {
            Value::String(s) if matches!(key, Some("text" | "content" | "prompt" | "inputs")) => {
                out.push(s.clone())
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, key, out)),
            Value::Object(o) => o.iter().for_each(|(k, x)| walk(x, Some(k), out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(body, None, &mut out);
    out.join("\n")
}

fn sse(data: &Value) -> Vec<u8> {
    format!("data: {data}\r\n\r\n").into_bytes()
}

fn line(data: &Value) -> Vec<u8> {
    let mut b = data.to_string().into_bytes();
    b.push(b'\n');
    b
}

/// CRC32 (IEEE), bit by bit: the simulator's own, not the probe's table.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// One AWS event stream message with string headers.
fn frame(headers: &[(&str, &str)], payload: &Value) -> Vec<u8> {
    let payload = payload.to_string().into_bytes();
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7);
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = (16 + h.len() + payload.len()) as u32;
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude = crc32(&out);
    out.extend_from_slice(&prelude.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&payload);
    let all = crc32(&out);
    out.extend_from_slice(&all.to_be_bytes());
    out
}

fn event(kind: &str, payload: Value) -> Vec<u8> {
    frame(
        &[
            (":event-type", kind),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        &payload,
    )
}

fn exception(kind: &str, message: &str) -> Vec<u8> {
    frame(
        &[
            (":exception-type", kind),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        &json!({ "message": message }),
    )
}

fn gemini_chunk(parts: Value, model: &str) -> Value {
    json!({"candidates": [{"content": {"parts": parts, "role": "model"}, "index": 0}],
           "modelVersion": model, "responseId": "sim"})
}

/// Renders one scheduled event of a described-stream protocol.
pub fn render(api: Api, sem: Sem, text: &str, model: &str, words: u32, reasoning: u32) -> Bytes {
    let throttle = text == "throttle";
    let b: Vec<u8> = match api {
        Api::Gemini | Api::GeminiArray => {
            let v = match sem {
                Sem::Meta => gemini_chunk(json!([{"text": ""}]), model),
                Sem::Reasoning => gemini_chunk(json!([{"text": text, "thought": true}]), model),
                Sem::Blank | Sem::Visible => gemini_chunk(json!([{"text": text}]), model),
                Sem::Terminator => json!({
                    "candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "STOP", "index": 0}],
                    "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": words,
                                      "thoughtsTokenCount": reasoning, "totalTokenCount": 12 + words + reasoning},
                    "modelVersion": model}),
                Sem::Error if throttle => {
                    json!({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}})
                }
                Sem::Error => {
                    json!({"error": {"code": 503, "message": "simulated overload", "status": "UNAVAILABLE"}})
                }
            };
            if api == Api::Gemini {
                sse(&v)
            } else {
                // The array opens with the first element and closes after the last.
                let mut b = match sem {
                    Sem::Meta => b"[".to_vec(),
                    _ => b",\r\n".to_vec(),
                };
                b.extend_from_slice(v.to_string().as_bytes());
                if matches!(sem, Sem::Terminator | Sem::Error) {
                    b.extend_from_slice(b"\n]");
                }
                b
            }
        }
        Api::Ollama => {
            let msg = |content: &str, thinking: Option<&str>| {
                let mut m = json!({"role": "assistant", "content": content});
                if let Some(t) = thinking {
                    m["thinking"] = json!(t);
                }
                json!({"model": model, "created_at": "2026-01-01T00:00:00Z", "message": m, "done": false})
            };
            line(&match sem {
                Sem::Meta => msg("", None),
                Sem::Reasoning => msg("", Some(text)),
                Sem::Blank | Sem::Visible => msg(text, None),
                Sem::Terminator => json!({"model": model, "created_at": "2026-01-01T00:00:01Z",
                    "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop",
                    "total_duration": 1_000_000, "prompt_eval_count": 12, "eval_count": words + reasoning}),
                Sem::Error => json!({"error": "simulated overload"}),
            })
        }
        Api::Tgi => match sem {
            // TGI sends nothing before its first token; a comment keeps the schedule's shape.
            Sem::Meta => b":\n\n".to_vec(),
            Sem::Reasoning | Sem::Blank | Sem::Visible => sse(&json!({
                "index": 1, "token": {"id": 1, "text": text, "logprob": -0.1, "special": false},
                "generated_text": null, "details": null})),
            Sem::Terminator => sse(&json!({
                "index": 2, "token": {"id": 2, "text": "</s>", "logprob": -0.1, "special": true},
                "generated_text": "(the whole answer)",
                "details": {"finish_reason": "eos_token", "generated_tokens": words + reasoning, "seed": null}})),
            Sem::Error if throttle => {
                sse(&json!({"error": "Model is overloaded", "error_type": "overloaded"}))
            }
            Sem::Error => sse(&json!({"error": "simulated overload", "error_type": "generation"})),
        },
        Api::BedrockConverse => match sem {
            Sem::Meta => event("messageStart", json!({"role": "assistant", "p": "abc"})),
            Sem::Reasoning => event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": text}}, "p": "abcdef"}),
            ),
            Sem::Blank | Sem::Visible => event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 1, "delta": {"text": text}, "p": "abcdefgh"}),
            ),
            Sem::Terminator => {
                let mut b = event(
                    "contentBlockStop",
                    json!({"contentBlockIndex": 1, "p": "ab"}),
                );
                b.extend(event(
                    "messageStop",
                    json!({"stopReason": "end_turn", "p": "abc"}),
                ));
                b.extend(event(
                    "metadata",
                    json!({"metrics": {"latencyMs": 100}, "p": "abcd",
                           "usage": {"inputTokens": 12, "outputTokens": words + reasoning, "totalTokens": 12 + words + reasoning}}),
                ));
                b
            }
            Sem::Error if throttle => exception(
                "throttlingException",
                "Too many requests, please wait before trying again.",
            ),
            Sem::Error => exception("modelStreamErrorException", "simulated overload"),
        },
        Api::InHouse => line(&match sem {
            Sem::Meta => json!({"phase": "start", "model": model}),
            Sem::Reasoning => json!({"phase": "thinking", "delta": text}),
            Sem::Blank | Sem::Visible => json!({"phase": "answer", "delta": text}),
            Sem::Terminator => {
                json!({"done": true, "usage": {"input": 12, "output": words + reasoning}})
            }
            Sem::Error => json!({"error": {"message": "simulated overload", "code": "overloaded"}}),
        }),
        Api::OpenaiChat | Api::OpenaiResponses | Api::AnthropicMessages => Vec::new(),
    };
    Bytes::from(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn prompts_are_found_in_every_request_shape() {
        let gemini =
            json!({"contents": [{"role": "user", "parts": [{"text": "capital of France?"}]}]});
        assert_eq!(prompt_of(&gemini), "capital of France?");
        assert_eq!(prompt_of(&json!({"inputs": "hi", "parameters": {}})), "hi");
        let bedrock = json!({"messages": [{"role": "user", "content": [{"text": "yo"}]}]});
        assert_eq!(prompt_of(&bedrock), "yo");
    }
}
