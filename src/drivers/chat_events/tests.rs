//! The traps from the peers' bug trackers, one test each.

use super::*;
use std::time::Instant;

fn ev(event: &str, data: &str) -> SseEvent {
    SseEvent {
        at: Instant::now(),
        event: event.into(),
        data: data.into(),
        id: None,
    }
}

fn pieces(protocol: Protocol, events: &[(&str, &str)]) -> Vec<Piece> {
    let mut i = Interpreter::new(protocol);
    let mut out = Vec::new();
    for (e, d) in events {
        i.on_event(&ev(e, d), &mut out).unwrap();
    }
    out
}

fn texts(p: &[Piece]) -> Vec<(TokenKind, String)> {
    p.iter()
        .filter_map(|p| match p {
            Piece::Text { kind, text, .. } => Some((*kind, text.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn openai_role_only_chunk_is_not_a_token() {
    let p = pieces(
        Protocol::OpenaiChat,
        &[
            (
                "",
                r#"{"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            ),
            ("", r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#),
            ("", "[DONE]"),
        ],
    );
    assert_eq!(texts(&p), vec![(TokenKind::Visible, "Hi".to_string())]);
    assert!(p.contains(&Piece::Model("m".into())));
    assert_eq!(p.last(), Some(&Piece::Terminator));
}

#[test]
fn openai_reasoning_content_and_reasoning_are_never_visible() {
    let p = pieces(
        Protocol::OpenaiChat,
        &[
            (
                "",
                r#"{"choices":[{"index":0,"delta":{"reasoning_content":"think"}}]}"#,
            ),
            (
                "",
                r#"{"choices":[{"index":0,"delta":{"reasoning":"more"}}]}"#,
            ),
            (
                "",
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"name":"f","arguments":"{}"}}]}}]}"#,
            ),
            (
                "",
                r#"{"choices":[{"index":0,"delta":{"content":"Answer"},"finish_reason":"stop"}]}"#,
            ),
        ],
    );
    assert_eq!(
        texts(&p),
        vec![
            (TokenKind::Reasoning, "think".into()),
            (TokenKind::Reasoning, "more".into()),
            (TokenKind::Tool, "f{}".into()),
            (TokenKind::Visible, "Answer".into())
        ]
    );
    assert!(p.contains(&Piece::Finish("stop".into())));
}

#[test]
fn openai_error_object_in_a_200_stream_is_an_error() {
    let p = pieces(
        Protocol::OpenaiChat,
        &[(
            "",
            r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
        )],
    );
    assert_eq!(p, vec![Piece::Error("server_error: overloaded".into())]);
    let p = pieces(Protocol::OpenaiChat, &[("error", r#"{"message":"boom"}"#)]);
    assert_eq!(p, vec![Piece::Error("boom".into())]);
}

#[test]
fn openai_cumulative_usage_gives_exact_tokens_per_chunk() {
    let p = pieces(
        Protocol::OpenaiChat,
        &[
            (
                "",
                r#"{"choices":[{"index":0,"delta":{"content":"Hello there"}}],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#,
            ),
            (
                "",
                r#"{"choices":[{"index":0,"delta":{"content":" my friend, hi"}}],"usage":{"prompt_tokens":5,"completion_tokens":6}}"#,
            ),
            (
                "",
                r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":6}}"#,
            ),
        ],
    );
    let tokens: Vec<Option<u32>> = p
        .iter()
        .filter_map(|p| match p {
            Piece::Text { tokens, .. } => Some(*tokens),
            _ => None,
        })
        .collect();
    assert_eq!(tokens, vec![Some(2), Some(4)]);
}

#[test]
fn other_choices_are_ignored() {
    let p = pieces(
        Protocol::OpenaiChat,
        &[("", r#"{"choices":[{"index":1,"delta":{"content":"B"}}]}"#)],
    );
    assert!(texts(&p).is_empty());
}

#[test]
fn non_json_data_is_a_protocol_error() {
    let mut i = Interpreter::new(Protocol::OpenaiChat);
    let e = i.on_event(&ev("", "{oops"), &mut Vec::new()).unwrap_err();
    assert_eq!(e.class, ErrorClass::Protocol);
}

#[test]
fn responses_events() {
    let p = pieces(
        Protocol::OpenaiResponses,
        &[
            (
                "response.created",
                r#"{"type":"response.created","response":{"model":"gpt-r"}}"#,
            ),
            (
                "response.reasoning_summary_text.delta",
                r#"{"type":"response.reasoning_summary_text.delta","delta":"plan"}"#,
            ),
            (
                "response.reasoning_text.delta",
                r#"{"type":"response.reasoning_text.delta","delta":"deep"}"#,
            ),
            (
                "response.output_text.delta",
                r#"{"type":"response.output_text.delta","delta":"Yes"}"#,
            ),
            (
                "response.completed",
                r#"{"type":"response.completed","response":{"model":"gpt-r","usage":{"input_tokens":3,"output_tokens":9,"output_tokens_details":{"reasoning_tokens":7}}}}"#,
            ),
        ],
    );
    assert_eq!(
        texts(&p),
        vec![
            (TokenKind::Reasoning, "plan".into()),
            (TokenKind::Reasoning, "deep".into()),
            (TokenKind::Visible, "Yes".into())
        ]
    );
    assert!(p.contains(&Piece::Usage {
        input: Some(3),
        output: Some(9),
        reasoning: Some(7)
    }));
    assert_eq!(p.last(), Some(&Piece::Terminator));
    let f = pieces(
        Protocol::OpenaiResponses,
        &[(
            "response.failed",
            r#"{"type":"response.failed","response":{"error":{"code":"server_error","message":"x"}}}"#,
        )],
    );
    assert_eq!(f, vec![Piece::Error("server_error: x".into())]);
}

#[test]
fn anthropic_thinking_blocks_are_reasoning_and_text_blocks_visible() {
    let p = pieces(
        Protocol::AnthropicMessages,
        &[
            (
                "message_start",
                r#"{"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":10,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"abc"}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
            ),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Paris"}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","name":"t"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"a\""}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":12}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ],
    );
    assert_eq!(
        texts(&p),
        vec![
            (TokenKind::Reasoning, "hmm".into()),
            (TokenKind::Visible, "Paris".into()),
            (TokenKind::Tool, "{\"a\"".into())
        ]
    );
    assert!(p.contains(&Piece::Model("claude-x".into())));
    assert!(p.contains(&Piece::Usage {
        input: None,
        output: Some(12),
        reasoning: None
    }));
    assert_eq!(p.last(), Some(&Piece::Terminator));
    let e = pieces(
        Protocol::AnthropicMessages,
        &[(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )],
    );
    assert_eq!(e, vec![Piece::Error("overloaded_error: Overloaded".into())]);
}

#[test]
fn non_streamed_bodies() {
    let chat = serde_json::json!({"model":"m","choices":[{"index":0,"message":{"role":"assistant","reasoning_content":"r","content":"A"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2}});
    assert_eq!(
        texts(&full_body(Protocol::OpenaiChat, &chat)),
        vec![
            (TokenKind::Reasoning, "r".into()),
            (TokenKind::Visible, "A".into())
        ]
    );
    let resp = serde_json::json!({"model":"m","output":[{"type":"reasoning","summary":[{"type":"summary_text","text":"s"}]},{"type":"message","content":[{"type":"output_text","text":"B"}]}],"usage":{"input_tokens":1,"output_tokens":2}});
    assert_eq!(
        texts(&full_body(Protocol::OpenaiResponses, &resp)),
        vec![
            (TokenKind::Reasoning, "s".into()),
            (TokenKind::Visible, "B".into())
        ]
    );
    let anth = serde_json::json!({"model":"c","content":[{"type":"thinking","thinking":"t"},{"type":"text","text":"C"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":2}});
    assert_eq!(
        texts(&full_body(Protocol::AnthropicMessages, &anth)),
        vec![
            (TokenKind::Reasoning, "t".into()),
            (TokenKind::Visible, "C".into())
        ]
    );
    let err = serde_json::json!({"type":"error","error":{"type":"invalid_request_error","message":"bad"}});
    assert_eq!(
        full_body(Protocol::AnthropicMessages, &err),
        vec![Piece::Error("invalid_request_error: bad".into())]
    );
}

#[test]
fn token_estimates() {
    assert_eq!(estimate_tokens("Hello"), 1);
    assert_eq!(estimate_tokens("internationalization"), 4);
    assert_eq!(estimate_tokens(" the"), 1);
    assert_eq!(estimate_tokens("Paris."), 2);
    assert_eq!(estimate_tokens("\n\n"), 1);
    assert_eq!(estimate_tokens(""), 0);
    assert_eq!(estimate_tokens("The capital of France is Paris."), 8);
}

#[test]
fn openai_content_parts_thinking_is_reasoning_and_text_is_visible() {
    // Mistral magistral: thinking parts holding text parts, then plain string content.
    let p = pieces(
        Protocol::OpenaiChat,
        &[
            ("", r#"{"choices":[{"index":0,"delta":{"content":""}}]}"#),
            (
                "",
                r#"{"choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":[{"type":"text","text":"Okay"}]}]}}]}"#,
            ),
            (
                "",
                r#"{"choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":"plain"}]}}]}"#,
            ),
            (
                "",
                r#"{"choices":[{"index":0,"delta":{"content":[{"type":"text","text":"To"},{"type":"reference","reference_ids":[1]},{"type":"image_url","image_url":"x"}]}}]}"#,
            ),
            (
                "",
                r#"{"choices":[{"index":0,"delta":{"content":" cross"}}]}"#,
            ),
            ("", r#"{"choices":[{"index":0,"delta":{"content":[]}}]}"#),
            (
                "",
                r#"{"choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":[{"type":"text","text":""}]},{"type":"text","text":""}]}}]}"#,
            ),
        ],
    );
    assert_eq!(
        texts(&p),
        vec![
            (TokenKind::Reasoning, "Okay".into()),
            (TokenKind::Reasoning, "plain".into()),
            (TokenKind::Visible, "To".into()),
            (TokenKind::Visible, " cross".into()),
        ]
    );
}

#[test]
fn openai_an_answer_sent_only_as_text_parts_is_visible_text() {
    let p = pieces(
        Protocol::OpenaiChat,
        &[(
            "",
            r#"{"choices":[{"index":0,"delta":{"content":[{"type":"text","text":"Paris"},{"type":"text","text":"."}]}}]}"#,
        )],
    );
    assert_eq!(
        texts(&p),
        vec![
            (TokenKind::Visible, "Paris".into()),
            (TokenKind::Visible, ".".into())
        ]
    );
    // The same in a non-streamed message, with its reasoning as a thinking part.
    let body = serde_json::json!({"choices":[{"index":0,"message":{"role":"assistant","content":[{"type":"thinking","thinking":[{"type":"text","text":"hm"}]},{"type":"text","text":"Paris."}]},"finish_reason":"stop"}]});
    assert_eq!(
        texts(&full_body(Protocol::OpenaiChat, &body)),
        vec![
            (TokenKind::Reasoning, "hm".into()),
            (TokenKind::Visible, "Paris.".into())
        ]
    );
}

#[test]
fn openai_reasoning_details_alone_are_reasoning() {
    // Snowflake Cortex: reasoning only in reasoning_details, with "" content and refusal.
    let p = pieces(
        Protocol::OpenaiChat,
        &[
            (
                "",
                r#"{"choices":[{"delta":{"content":"","reasoning_details":[{"format":"anthropic-claude-v1","id":"r1","index":0,"text":"15","type":"reasoning.text"}],"refusal":"","role":"assistant","tool_calls":null},"index":0}]}"#,
            ),
            (
                "",
                r#"{"choices":[{"index":0,"delta":{"reasoning_details":[{"type":"reasoning.summary","summary":"plan"}]}}]}"#,
            ),
            (
                "",
                r#"{"choices":[{"index":0,"delta":{"reasoning_details":[{"type":"reasoning.text","text":"","signature":"sig"}]}}]}"#,
            ),
            (
                "",
                r#"{"choices":[{"delta":{"content":"405","refusal":"","role":"assistant"},"index":0}]}"#,
            ),
        ],
    );
    assert_eq!(
        texts(&p),
        vec![
            (TokenKind::Reasoning, "15".into()),
            (TokenKind::Reasoning, "plan".into()),
            (TokenKind::Visible, "405".into())
        ]
    );
}

#[test]
fn openai_reasoning_repeated_in_reasoning_details_counts_once() {
    // OpenRouter sends the same text as `reasoning` and as a reasoning_details entry.
    let p = pieces(
        Protocol::OpenaiChat,
        &[
            (
                "",
                r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":"This","reasoning_details":[{"type":"reasoning.text","text":"This","format":"anthropic-claude-v1","index":0}]}}]}"#,
            ),
            (
                "",
                r#"{"choices":[{"index":0,"delta":{"reasoning_content":"same","reasoning":"same"}}]}"#,
            ),
            (
                "",
                r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":null,"reasoning_details":[]}}]}"#,
            ),
        ],
    );
    assert_eq!(
        texts(&p),
        vec![
            (TokenKind::Reasoning, "This".into()),
            (TokenKind::Reasoning, "same".into())
        ]
    );
}

#[test]
fn openai_encrypted_reasoning_is_a_reasoning_piece_without_text() {
    let p = pieces(
        Protocol::OpenaiChat,
        &[
            (
                "",
                r#"{"choices":[{"index":0,"delta":{"reasoning_details":[{"type":"reasoning.encrypted","data":"gAAA..."}]}}]}"#,
            ),
            // With readable reasoning in the same delta, the encrypted entry adds nothing.
            (
                "",
                r#"{"choices":[{"index":0,"delta":{"reasoning_details":[{"type":"reasoning.summary","summary":"s"},{"type":"reasoning.encrypted","data":"gAAA..."}]}}]}"#,
            ),
            (
                "",
                r#"{"choices":[{"index":0,"delta":{"reasoning_details":[{"type":"reasoning.encrypted","data":""}]}}]}"#,
            ),
        ],
    );
    assert_eq!(
        texts(&p),
        vec![
            (TokenKind::Reasoning, String::new()),
            (TokenKind::Reasoning, "s".into())
        ]
    );
}

#[test]
fn openai_usage_on_the_error_chunk_is_kept_before_the_error() {
    // OpenRouter: the error object and the run's usage on one chunk.
    let p = pieces(
        Protocol::OpenaiChat,
        &[(
            "",
            r#"{"id":"gen-1","error":{"code":400,"message":"Token limit reached"},"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":{"prompt_tokens":43,"completion_tokens":10,"total_tokens":53,"completion_tokens_details":{"reasoning_tokens":11}}}"#,
        )],
    );
    assert_eq!(
        p,
        vec![
            Piece::Usage {
                input: Some(43),
                output: Some(10),
                reasoning: Some(11)
            },
            Piece::Error("Token limit reached".into())
        ]
    );
}

#[test]
fn tool_scaffolding_is_a_tool_piece_in_every_protocol() {
    // Tool pieces are recorded (they count towards an estimated output) but are never a
    // token for the measures (`measure::is_token`).
    let chat = pieces(
        Protocol::OpenaiChat,
        &[(
            "",
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}"#,
        )],
    );
    let resp = pieces(
        Protocol::OpenaiResponses,
        &[(
            "response.function_call_arguments.delta",
            r#"{"type":"response.function_call_arguments.delta","delta":"{\"city\""}"#,
        )],
    );
    let anth = pieces(
        Protocol::AnthropicMessages,
        &[
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"s","name":"tool_search","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"q\""}}"#,
            ),
        ],
    );
    for p in [chat, resp, anth] {
        let t = texts(&p);
        assert_eq!(t.len(), 1, "{p:?}");
        assert_eq!(t[0].0, TokenKind::Tool);
    }
}

#[test]
fn anthropic_redacted_thinking_is_a_reasoning_piece_without_text() {
    let p = pieces(
        Protocol::AnthropicMessages,
        &[
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"redacted_thinking","data":"EqkECkYIBxgC"}  }"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0  }"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"I notice"}}"#,
            ),
        ],
    );
    assert_eq!(
        texts(&p),
        vec![
            (TokenKind::Reasoning, String::new()),
            (TokenKind::Visible, "I notice".into())
        ]
    );
    let body = serde_json::json!({"content":[{"type":"redacted_thinking","data":"Eq"},{"type":"text","text":"Hi"}],"stop_reason":"end_turn"});
    assert_eq!(
        texts(&full_body(Protocol::AnthropicMessages, &body)),
        vec![
            (TokenKind::Reasoning, String::new()),
            (TokenKind::Visible, "Hi".into())
        ]
    );
}

#[test]
fn responses_failed_keeps_its_usage_and_done_is_nothing() {
    let p = pieces(
        Protocol::OpenaiResponses,
        &[
            (
                "response.failed",
                r#"{"type":"response.failed","response":{"error":{"code":"server_error","message":"x"},"usage":{"input_tokens":5,"output_tokens":2}}}"#,
            ),
            ("", "[DONE]"),
        ],
    );
    assert_eq!(
        p,
        vec![
            Piece::Usage {
                input: Some(5),
                output: Some(2),
                reasoning: None
            },
            Piece::Error("server_error: x".into())
        ]
    );
}
