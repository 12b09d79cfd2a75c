//! What reading one streamed chunk costs in canary's own code, without sockets: the SSE
//! parser and the `openai-chat` event table on the bytes of the benchmark's plain scenario
//! (a role chunk, a blank, 40 words, the finish chunk, the usage chunk and `[DONE]`, as the
//! simulator writes them, each event fed as its own read). One thread, CPU time from
//! `/proc/thread-self/stat`, at least 2 s of it.
//!
//! Run: `cargo bench --bench parse` (prints ns per event and per stream).

use std::time::Instant;

use canary::drivers::chat_events::Interpreter;
use canary::drivers::sse::SseParser;
use canary::suite::Protocol;

/// The plain scenario's 44 events, as the simulator's `openai-chat` route writes them.
fn stream() -> Vec<Vec<u8>> {
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-sim\",\"object\":\"chat.completion.chunk\",\"model\":\"sim-plain\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
        )
        .into_bytes()
    };
    let mut out = vec![
        chunk(r#"{"role":"assistant","content":""}"#, "null"),
        chunk(r#"{"content":"\n\n"}"#, "null"),
    ];
    for i in 0..40 {
        out.push(chunk(&format!(r#"{{"content":" word{i}"}}"#), "null"));
    }
    out.push(chunk("{}", r#""stop""#));
    out.push(
        b"data: {\"id\":\"chatcmpl-sim\",\"object\":\"chat.completion.chunk\",\"model\":\"sim-plain\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":40,\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\ndata: [DONE]\n\n"
            .to_vec(),
    );
    out
}

fn cpu() -> f64 {
    canary::procfs::thread_cpu_seconds().unwrap_or(0.0)
}

fn main() {
    let reads = stream();
    let events = reads.len() + 1;
    let mut pieces = 0usize;
    let mut one = || {
        let mut parser = SseParser::new(1 << 20);
        let mut interp = Interpreter::new(Protocol::OpenaiChat);
        let (mut evs, mut out) = (Vec::new(), Vec::new());
        for r in &reads {
            if parser.feed(Instant::now(), r, &mut evs).is_err() {
                std::process::exit(1);
            }
            for ev in evs.drain(..) {
                if interp.on_event(&ev, &mut out).is_err() {
                    std::process::exit(1);
                }
            }
        }
        pieces += out.len();
    };
    for _ in 0..1000 {
        one();
    }
    let c0 = cpu();
    let mut streams = 0u64;
    while cpu() - c0 < 2.0 || streams < 1000 {
        for _ in 0..1000 {
            one();
        }
        streams += 1000;
    }
    let spent = cpu() - c0;
    let per_stream = spent / streams as f64;
    println!(
        "{streams} streams of {events} events: {:.0} ns per event, {:.2} us per stream ({pieces} pieces)",
        per_stream * 1e9 / events as f64,
        per_stream * 1e6
    );
}
