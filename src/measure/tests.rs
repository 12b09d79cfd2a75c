//! Every measure on hand-built timelines.

use super::*;
use crate::timeline::Stamped;
use std::time::SystemTime;

fn tl(events: &[(u64, Event)]) -> Timeline {
    Timeline {
        started_at: SystemTime::now(),
        events: events
            .iter()
            .map(|(ms, e)| Stamped {
                at: Duration::from_millis(*ms),
                event: e.clone(),
            })
            .collect(),
        response: None,
        error: None,
        answer_text: None,
        doc: None,
        usage: None,
        job: None,
        stopped_early: false,
        audio: None,
        net: Default::default(),
    }
}

fn tok(kind: TokenKind, tokens: u32, shows: bool) -> Event {
    Event::Token {
        kind,
        tokens,
        shows,
    }
}

const V: TokenKind = TokenKind::Visible;
const R: TokenKind = TokenKind::Reasoning;
const T: TokenKind = TokenKind::Tool;

#[test]
fn ttfb_and_ttc_are_measured_from_the_request_not_the_connect() {
    let t = tl(&[
        (1, Event::Resolved),
        (3, Event::Connected),
        (4, Event::RequestSent),
        (120, Event::Headers { status: 200 }),
        (121, Event::Body { bytes: 10 }),
        (180, Event::Body { bytes: 10 }),
        (181, Event::Done),
    ]);
    assert_eq!(time_to_first_byte(&t), Some(0.116));
    assert_eq!(time_to_completion(&t), Some(0.177));
    assert_eq!(connect_time(&t), Some(0.003));
    assert_eq!(time_to_first_token(&t), None);
    assert_eq!(latencies(&t, None).len(), 2);
}

#[test]
fn an_incomplete_response_has_no_completion_time() {
    let t = tl(&[
        (0, Event::RequestSent),
        (5, Event::Headers { status: 200 }),
        (9, Event::Body { bytes: 3 }),
    ]);
    assert_eq!(time_to_first_byte(&t), Some(0.005));
    assert_eq!(time_to_completion(&t), None);
}

#[test]
fn reasoning_counts_for_ttft_but_not_for_the_first_visible_token() {
    let t = tl(&[
        (0, Event::RequestSent),
        (10, Event::Headers { status: 200 }),
        (50, tok(R, 3, false)),
        (700, tok(R, 3, false)),
        (800, tok(V, 1, false)), // "\n\n": visible kind, nothing to show
        (850, tok(V, 2, true)),
        (900, tok(V, 2, true)),
        (901, Event::Terminator),
        (902, Event::Done),
    ]);
    assert_eq!(time_to_first_token(&t), Some(0.050));
    assert_eq!(time_to_first_visible_token(&t), Some(0.850));
    assert_eq!(
        time_to_completion(&t),
        Some(0.901),
        "completion is the terminator, not the socket close"
    );
    let s = stream_stats(&t, Duration::from_secs(1)).unwrap();
    assert_eq!(s.reasoning_seconds, Some(0.8));
    assert_eq!(s.chunks, 5);
    assert_eq!(s.reasoning_tokens, 6);
    assert_eq!(s.visible_tokens, 5);
    assert_eq!(s.tokens_per_chunk, vec![2, 2]);
    assert_eq!(s.gaps.len(), 1);
    assert!((s.gaps[0] - 0.05).abs() < 1e-9);
    assert_eq!(s.output_tokens_per_second, Some(2.0 / 0.05));
}

#[test]
fn gaps_and_stalls_start_at_the_first_visible_token() {
    let t = tl(&[
        (0, Event::RequestSent),
        (100, tok(R, 1, false)),
        (2100, tok(V, 1, true)), // a 2 s reasoning pause is not a stall
        (2120, tok(V, 1, true)),
        (3400, tok(V, 1, true)), // 1.28 s gap: a stall
        (3420, tok(V, 1, true)),
    ]);
    let s = stream_stats(&t, Duration::from_secs(1)).unwrap();
    assert_eq!(s.stalls, 1);
    assert!((s.longest_gap.unwrap() - 1.28).abs() < 1e-9);
    assert_eq!(s.gaps.len(), 3);
    let l = latencies(&t, Some(&s));
    assert!((l[&Sli::InterChunkGap] - 1.28).abs() < 1e-9);
}

#[test]
fn same_rate_different_chunking_is_distinguishable() {
    // 20 tokens over ~400 ms: one per 20 ms versus five per 100 ms.
    let mut tiny = vec![(0, Event::RequestSent)];
    for i in 0..20 {
        tiny.push((100 + 20 * i, tok(V, 1, true)));
    }
    let mut chunky = vec![(0, Event::RequestSent)];
    for i in 0..4 {
        chunky.push((100 + 100 * i, tok(V, 5, true)));
    }
    let a = stream_stats(&tl(&tiny), Duration::from_secs(1)).unwrap();
    let b = stream_stats(&tl(&chunky), Duration::from_secs(1)).unwrap();
    assert_eq!(a.visible_tokens, b.visible_tokens);
    assert!((a.longest_gap.unwrap() - 0.02).abs() < 1e-9);
    assert!((b.longest_gap.unwrap() - 0.1).abs() < 1e-9);
    assert_eq!(a.tokens_per_chunk.iter().max(), Some(&1));
    assert_eq!(b.tokens_per_chunk.iter().max(), Some(&5));
    // Output rate after the first chunk: 19 tokens / 380 ms versus 15 tokens / 300 ms: both 50/s.
    assert!((a.output_tokens_per_second.unwrap() - 50.0).abs() < 1e-6);
    assert!((b.output_tokens_per_second.unwrap() - 50.0).abs() < 1e-6);
}

#[test]
fn a_stream_of_only_reasoning_has_no_visible_measures() {
    let t = tl(&[(0, Event::RequestSent), (10, tok(R, 1, false))]);
    let s = stream_stats(&t, Duration::from_secs(1)).unwrap();
    assert_eq!(time_to_first_visible_token(&t), None);
    assert!(s.gaps.is_empty() && s.longest_gap.is_none() && s.reasoning_seconds.is_none());
    assert!(stream_stats(&tl(&[(0, Event::RequestSent)]), Duration::from_secs(1)).is_none());
}

#[test]
fn a_stream_cut_by_the_deadline_counts_its_open_gap_as_a_stall() {
    let t = tl(&[
        (0, Event::RequestSent),
        (100, tok(V, 1, true)),
        (120, tok(V, 1, true)),
        (1620, Event::Abort),
    ]);
    let s = stream_stats(&t, Duration::from_secs(1)).unwrap();
    assert_eq!(s.stalls, 1);
    assert!((s.longest_gap.unwrap() - 1.5).abs() < 1e-9);
    // Without the abort, the same pieces show no stall.
    let t = tl(&[
        (0, Event::RequestSent),
        (100, tok(V, 1, true)),
        (120, tok(V, 1, true)),
    ]);
    assert_eq!(stream_stats(&t, Duration::from_secs(1)).unwrap().stalls, 0);
}

#[test]
fn tool_call_scaffolding_is_not_a_token() {
    // A tool call's name and arguments stream first, then reasoning, then the answer.
    let t = tl(&[
        (0, Event::RequestSent),
        (10, Event::Headers { status: 200 }),
        (40, tok(T, 3, false)),
        (60, tok(T, 5, false)),
        (90, tok(R, 2, false)),
        (150, tok(V, 1, true)),
        (170, tok(T, 4, false)),
        (400, tok(V, 1, true)),
        (401, Event::Terminator),
    ]);
    assert_eq!(time_to_first_token(&t), Some(0.09));
    assert_eq!(time_to_first_visible_token(&t), Some(0.15));
    let s = stream_stats(&t, Duration::from_secs(1)).unwrap();
    // Only the reasoning and visible pieces: the tool pieces are neither chunks nor gaps.
    assert_eq!(s.chunks, 3);
    assert_eq!(s.tokens_per_chunk, vec![1, 1]);
    assert_eq!(s.gaps.len(), 1);
    assert!((s.gaps[0] - 0.25).abs() < 1e-9);
    assert!((s.reasoning_seconds.unwrap() - 0.06).abs() < 1e-9);
    assert_eq!((s.visible_tokens, s.reasoning_tokens), (2, 2));
    let l = latencies(&t, Some(&s));
    assert!((l[&Sli::TimeToFirstToken] - 0.09).abs() < 1e-9);
}

#[test]
fn a_tool_call_only_answer_has_no_token_measures() {
    // Chat's function name, Responses' argument deltas, Anthropic's input_json_delta: all
    // are tool pieces, so none of the three protocols gives such an answer a first token.
    let t = tl(&[
        (0, Event::RequestSent),
        (10, Event::Headers { status: 200 }),
        (40, tok(T, 2, false)),
        (60, tok(T, 5, false)),
        (61, Event::Terminator),
        (62, Event::Done),
    ]);
    assert_eq!(time_to_first_token(&t), None);
    assert_eq!(time_to_first_visible_token(&t), None);
    assert!(stream_stats(&t, Duration::from_secs(1)).is_none());
    assert_eq!(time_to_completion(&t), Some(0.061));
    assert!(is_token(R) && is_token(V) && !is_token(T));
}
