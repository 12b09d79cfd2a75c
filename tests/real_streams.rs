//! Real providers' streams, replayed: every recording in `tests/fixtures/real-streams/` (OpenAI,
//! Azure, OpenRouter, DeepSeek, Groq, Mistral, Snowflake, vLLM, Ollama, Anthropic, Responses,
//! Gemini, Bedrock) is served by a loopback replay server written here, in three ways:
//!
//! - **paced**: one write per event (cut on the framing's own boundaries by this file's
//!   splitter, not canary's parser), 60 ms before the first and 15 ms between events, the
//!   body ended by closing the connection;
//! - **bytes7**: the same pauses, but the body goes out in 7-byte writes (chunked), so
//!   events are cut anywhere;
//! - **coalesce**: the whole body in one write (chunked) after 60 ms.
//!
//! The server records when the write holding each event's last byte was called and returned
//! (the bytes reached canary's kernel in between). canary runs
//! each recording through the library's `run_case` (the driver a suite would use) and must
//! agree with a hand-written table of what each recording holds: the event carrying the
//! first token and the first visible token (ttft / ttfvt within that write, 2 ms either side),
//! the terminator (ttc), the assembled answer exactly, the reasoning read, the usage the
//! stream reports and the outcome. Rows whose protocol this build cannot parse yet
//! (`requires_protocol`, the stream-protocols issue) are skipped with a message on stderr
//! and run on their own once the protocol exists.

mod common;

use std::collections::HashMap;
use std::io::Write as _;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canary::drivers::{run_case, RunVars};
use canary::measure;
use canary::suite::{load_suite, ProcessEnv};
use canary::timeline::{Event, Timeline};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOLERANCE: f64 = 0.002;
const FIRST_PAUSE: Duration = Duration::from_millis(60);
const GAP: Duration = Duration::from_millis(15);
const BYTES_PER_WRITE: usize = 7;
/// Bytes a fresh loopback connection takes before the reader must read (a conservative
/// initial receive window): in `coalesce`, events past it may arrive after the write.
const RECEIVE_WINDOW: usize = 64 * 1024;
/// Recordings replayed at once (each is mostly asleep between its events).
const PARALLEL: usize = 4;

/// What the stream reports as its reasoning tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reasoning {
    /// The server's usage says this many.
    Reported(u64),
    /// The server does not say; the stream carries reasoning text, so canary estimates it.
    Estimated,
    /// Neither reported nor any reasoning text.
    Absent,
}

/// What one recording holds, read from the recording itself. Event indexes count the
/// replay's units (SSE events including comment-only ones, NDJSON lines, event-stream
/// frames) from 0.
struct Expect {
    name: &'static str,
    /// The suite protocol the recording speaks.
    protocol: &'static str,
    /// Set when the protocol comes with the stream-protocols issue: the row is skipped
    /// (visibly) while the name does not parse as a suite protocol.
    requires_protocol: bool,
    /// The request path (as the provider's API has it) after the replay's own prefix.
    path: &'static str,
    model: &'static str,
    first_token: Option<usize>,
    first_visible: Option<usize>,
    /// The event that ends the answer (`[DONE]`, `message_stop`, `response.completed`,
    /// `done: true`); `None` when the stream has none or fails first.
    terminator: Option<usize>,
    answer: &'static str,
    /// Characters of reasoning text read (each counted once).
    reasoning_chars: usize,
    input_tokens: Option<u64>,
    /// `None`: the stream reports no output total, so canary's count is an estimate.
    output_tokens: Option<u64>,
    reasoning: Reasoning,
    /// `ok` or the error class.
    outcome: &'static str,
}

const CHAT: &str = "/v1/chat/completions";
const RESPONSES: &str = "/v1/responses";
const MESSAGES: &str = "/v1/messages";

#[allow(clippy::too_many_arguments)]
const fn row(
    name: &'static str,
    protocol: &'static str,
    path: &'static str,
    first_token: Option<usize>,
    first_visible: Option<usize>,
    terminator: Option<usize>,
    answer: &'static str,
    reasoning_chars: usize,
    usage: (Option<u64>, Option<u64>, Reasoning),
    outcome: &'static str,
) -> Expect {
    Expect {
        name,
        protocol,
        requires_protocol: false,
        path,
        model: "replay",
        first_token,
        first_visible,
        terminator,
        answer,
        reasoning_chars,
        input_tokens: usage.0,
        output_tokens: usage.1,
        reasoning: usage.2,
        outcome,
    }
}

const fn pending(mut e: Expect, model: &'static str) -> Expect {
    e.requires_protocol = true;
    e.model = model;
    e
}

use Reasoning::{Absent, Estimated, Reported};

const ROWS: &[Expect] = &[
    // Padded JSON, a ping, one text delta.
    row(
        "anthropic-haiku-ping-padded",
        "anthropic-messages",
        MESSAGES,
        Some(3),
        Some(3),
        Some(6),
        "4",
        0,
        (Some(19), Some(5), Absent),
        "ok",
    ),
    // A 200 stream whose only event is an overloaded error.
    row(
        "anthropic-overloaded",
        "anthropic-messages",
        MESSAGES,
        None,
        None,
        None,
        "",
        0,
        (None, None, Absent),
        "stream_error",
    ),
    // Two redacted_thinking blocks (event 1 is the first): reasoning without text.
    row(
        "anthropic-redacted-thinking",
        "anthropic-messages",
        MESSAGES,
        Some(1),
        Some(9),
        Some(26),
        "I notice that you've sent what appears to be some kind of test string or command. I don't have any special \"magic string\" triggers or backdoor commands that would expose internal systems or change my behavior.\n\nI'm Claude, an AI assistant created by Anthropic to be helpful, harmless, and honest. How can I assist you today with a legitimate task or question?",
        0,
        (Some(92), Some(189), Absent),
        "ok",
    ),
    // Text, server tool use (input_json_delta), a tool result, text, a tool call.
    row(
        "anthropic-server-tool-use",
        "anthropic-messages",
        MESSAGES,
        Some(3),
        Some(3),
        Some(35),
        "Let me search for a tool that can provide current exchange rate information.I found the right tool! Let me fetch the current USD to EUR exchange rate for you.",
        0,
        (Some(1591), Some(175), Absent),
        "ok",
    ),
    // Thinking deltas, a signature, then text.
    row(
        "anthropic-thinking-signature",
        "anthropic-messages",
        MESSAGES,
        Some(3),
        Some(20),
        Some(117),
        "Here are the basic steps for safely crossing the street:\n\n**At intersections with traffic lights:**\n- Wait for the pedestrian \"Walk\" signal\n- Look both ways before stepping into the street\n- Make eye contact with drivers when possible\n- Stay alert for turning vehicles\n\n**At intersections without signals:**\n- Use crosswalks when available\n- Stop at the curb and look left, right, then left again\n- Wait for a clear gap in traffic\n- Walk briskly but don't run\n- Keep looking for traffic as you cross\n\n**General safety tips:**\n- Put away phones and remove headphones\n- Wear bright or reflective clothing in low light\n- Never assume drivers see you\n- Avoid crossing between parked cars\n- Walk facing traffic when there's no sidewalk\n\n**In busy urban areas:**\n- Follow pedestrian signals strictly\n- Be extra cautious of cyclists in bike lanes\n- Watch for buses and large vehicles with blind spots\n\nThe key is to be visible, alert, and predictable in your movements. Always prioritize safety over speed when crossing streets.",
        202,
        (Some(43), Some(282), Estimated),
        "ok",
    ),
    // prompt_filter_results first (choices: []), reasoning tokens only in the usage.
    row(
        "azure-prompt-filter",
        "openai-chat",
        CHAT,
        Some(2),
        Some(2),
        Some(8),
        "Capital of Denmark.",
        0,
        (Some(15), Some(78), Reported(64)),
        "ok",
    ),
    // vLLM: role chunk with content "", whitespace-only " " deltas.
    row(
        "crusoe-vllm",
        "openai-chat",
        CHAT,
        Some(1),
        Some(1),
        Some(16),
        "1, 2, 3, 4, 5",
        0,
        (Some(46), Some(14), Absent),
        "ok",
    ),
    // reasoning_content deltas (content: null), then content (reasoning_content: null).
    row(
        "deepseek-reasoner",
        "openai-chat",
        CHAT,
        Some(1),
        Some(199),
        Some(211),
        "Hello there! 😊 How can I help you today?",
        882,
        (Some(6), Some(212), Reported(198)),
        "ok",
    ),
    // Reasoning, the visible "maybe", then `event: error` and no [DONE].
    row(
        "groq-error-after-text",
        "openai-chat",
        CHAT,
        Some(1),
        Some(84),
        None,
        "maybe",
        361,
        (None, None, Estimated),
        "stream_error",
    ),
    // Reasoning, then a tool call only: no visible token.
    row(
        "groq-gptoss-tool-call",
        "openai-chat",
        CHAT,
        Some(1),
        None,
        Some(25),
        "",
        92,
        (Some(304), Some(49), Reported(23)),
        "ok",
    ),
    // delta.content as a list of thinking parts, then plain strings.
    row(
        "mistral-magistral-thinking",
        "openai-chat",
        CHAT,
        Some(2),
        Some(60),
        Some(158),
        "To cross the street safely, follow these steps:\n\n1. Look both ways to check for oncoming traffic.\n2. Use a crosswalk if one is available.\n3. Obey any traffic signals or signs that may be present.\n4. Proceed with caution until you have safely reached the other side.\n\n```markdown\nTo cross the street safely, follow these steps:\n\n1. Look both ways to check for oncoming traffic.\n2. Use a crosswalk if one is available.\n3. Obey any traffic signals or signs that may be present.\n4. Proceed with caution until you have safely reached the other side.\n```\n\nBy following these steps, you can ensure a safe crossing.",
        421,
        (Some(10), Some(232), Estimated),
        "ok",
    ),
    // Ollama's OpenAI-compatible server: reasoning with content "" on the same chunk.
    row(
        "ollama-openai-compat",
        "openai-chat",
        CHAT,
        Some(0),
        Some(19),
        Some(32),
        "Hello there! 👋 How can I help you today?",
        85,
        (Some(68), Some(41), Estimated),
        "ok",
    ),
    // Obfuscation on every chunk, usage and moderation chunks after the finish.
    row(
        "openai-gpt5-obfuscation-usage",
        "openai-chat",
        CHAT,
        Some(1),
        Some(1),
        Some(6),
        "Paris.",
        0,
        (Some(13), Some(11), Reported(0)),
        "ok",
    ),
    // Parallel tool calls only: scaffolding is not a token.
    row(
        "openai-tool-calls-only",
        "openai-chat",
        CHAT,
        None,
        None,
        Some(16),
        "",
        0,
        (Some(94), Some(48), Reported(0)),
        "ok",
    ),
    // `reasoning` repeated in reasoning_details (counted once), comments between events.
    row(
        "openrouter-claude-reasoning",
        "openai-chat",
        CHAT,
        Some(4),
        Some(13),
        Some(18),
        "2 + 2 = 4",
        51,
        (Some(43), Some(36), Reported(13)),
        "ok",
    ),
    // 17 comments, reasoning only, then an error object with the run's usage.
    row(
        "openrouter-error-chunk",
        "openai-chat",
        CHAT,
        Some(17),
        None,
        None,
        "",
        42,
        (Some(43), Some(10), Reported(11)),
        "stream_error",
    ),
    // `data:` without a space.
    row(
        "proxy-nospace-data",
        "openai-chat",
        CHAT,
        Some(1),
        Some(1),
        Some(11),
        "Hi! How can I assist you today?",
        0,
        (None, None, Absent),
        "ok",
    ),
    // created, in_progress, then `error` (insufficient_quota).
    row(
        "responses-error-quota",
        "openai-responses",
        RESPONSES,
        None,
        None,
        None,
        "",
        0,
        (None, None, Absent),
        "stream_error",
    ),
    // A function call only: argument deltas are not tokens.
    row(
        "responses-function-call",
        "openai-responses",
        RESPONSES,
        None,
        None,
        Some(10),
        "",
        0,
        (Some(255), Some(16), Reported(0)),
        "ok",
    ),
    // OpenRouter's Responses: data-only framing, raw reasoning text, [DONE] after completed.
    row(
        "responses-openrouter-rawcot",
        "openai-responses",
        RESPONSES,
        Some(5),
        Some(33),
        Some(40),
        "4",
        85,
        (Some(78), Some(37), Reported(22)),
        "ok",
    ),
    // 383 reasoning summary deltas, then 271 output text deltas.
    row(
        "responses-reasoning-summary",
        "openai-responses",
        RESPONSES,
        Some(4),
        Some(401),
        Some(675),
        "I'm not a road safety professional, but here are some generally accepted guidelines that might help you cross the street safely:\n\n1. Before approaching the curb, look around and prepare to stop—don’t assume vehicles will see you.\n2. If there’s a crosswalk or pedestrian crossing signal, use it. Wait for the “walk” signal or the gap in traffic before starting to cross.\n3. At the curb, stop and look left, right, then left again. This helps ensure you see vehicles coming from both directions.\n4. Even if the signal is in your favor, remain alert. Some drivers may not stop in time, so keep an eye on the traffic.\n5. If there isn’t a designated crossing area, choose the safest location available—ideally where drivers can see you from a distance.\n6. Avoid distractions (like using your phone) while you’re checking for traffic and crossing.\n7. Cross at a steady pace. Once you’re in the middle of the road, continue looking both ways and be ready to adjust if necessary.\n8. Once you’ve safely reached the other side, take a moment to ensure you’re completely past the area of moving vehicles.\n\nKeep in mind that local traffic laws and conditions might vary, so it’s a good idea to familiarize yourself with the rules specific to your area. Stay safe!",
        2022,
        (Some(13), Some(1680), Reported(1408)),
        "ok",
    ),
    // Reasoning only in delta.reasoning_details[].text.
    row(
        "snowflake-reasoning-details",
        "openai-chat",
        CHAT,
        Some(0),
        Some(4),
        Some(16),
        "15 × 27 = **405**\n\nHere's the breakdown:\n- 15 × 20 = 300\n- 15 × 7 = 105\n- 300 + 105 = **405**",
        13,
        (Some(45), Some(73), Reported(0)),
        "ok",
    ),
    // Native Gemini SSE with CRLF separators and no terminator event (the stream ends after
    // the part with finishReason); the last usageMetadata wins.
    pending(
        row(
            "gemini-native-sse",
            "gemini",
            "/v1beta/models/gemini-2.0-flash-001:streamGenerateContent?alt=sse",
            Some(0),
            Some(0),
            None,
            "The capital of France is Paris.\n",
            0,
            (Some(7), Some(8), Absent),
            "ok",
        ),
        "gemini-2.0-flash-001",
    ),
    // Bedrock ConverseStream: binary event-stream frames; usage in the final `metadata`
    // event, after `messageStop`.
    pending(
        row(
            "bedrock-converse-eventstream",
            "bedrock-converse",
            "/model/us.amazon.nova-micro-v1:0/converse-stream",
            Some(1),
            Some(1),
            None,
            "The capital of France is Paris. Paris is not only the capital city but also the most populous city in France, and it is a major center for culture, commerce, fashion, and international diplomacy. Known for its historical landmarks, such as the Eiffel Tower, the Louvre Museum, and Notre-Dame Cathedral, Paris is often referred to as \"The City of Light\" or \"The City of Love.\"",
            0,
            (Some(13), Some(82), Absent),
            "ok",
        ),
        "us.amazon.nova-micro-v1:0",
    ),
    // Ollama native NDJSON (/api/generate). The recording holds two complete answers; the
    // first `done: true` (line 24) ends the first, and the answer is that one.
    pending(
        row(
            "ollama-native-ndjson",
            "ollama",
            "/api/generate",
            Some(0),
            Some(0),
            Some(24),
            "A rabbit is a small, furry animal with long ears and a short tail, often associated with agility and quick movements.",
            0,
            (Some(28), Some(25), Absent),
            "ok",
        ),
        "qwen2.5vl:7b",
    ),
];

fn fixtures() -> PathBuf {
    common::repo().join("tests/fixtures/real-streams")
}

/// A recording and its sidecar.
struct Recording {
    body: Vec<u8>,
    content_type: String,
    /// The framing's own units, covering the body.
    units: Vec<Range<usize>>,
}

fn load(name: &str) -> Recording {
    let sidecar = common::read_json(&fixtures().join(format!("{name}.json")));
    let file = sidecar["file"].as_str().unwrap();
    let body = std::fs::read(fixtures().join(file)).unwrap();
    let units = if file.ends_with(".sse") {
        split_sse(&body)
    } else if file.ends_with(".ndjson") {
        split_lines(&body)
    } else {
        split_eventstream(&body)
    };
    let mut end = 0;
    for u in &units {
        assert_eq!(u.start, end, "{name}: units must cover the body");
        end = u.end;
    }
    assert_eq!(end, body.len(), "{name}: units must cover the body");
    Recording {
        content_type: sidecar["content_type"].as_str().unwrap().to_string(),
        body,
        units,
    }
}

/// The length of the line terminator at `i` (CRLF, LF or CR).
fn eol(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i) {
        Some(b'\r') if b.get(i + 1) == Some(&b'\n') => Some(2),
        Some(b'\r') | Some(b'\n') => Some(1),
        _ => None,
    }
}

/// SSE events: each ends with the blank line after it (any of the three line terminators).
fn split_sse(b: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        match eol(b, i) {
            Some(n) => {
                let j = i + n;
                if let Some(m) = eol(b, j) {
                    out.push(start..j + m);
                    start = j + m;
                    i = start;
                } else {
                    i = j;
                }
            }
            None => i += 1,
        }
    }
    if start < b.len() {
        out.push(start..b.len());
    }
    out
}

fn split_lines(b: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in b.iter().enumerate() {
        if *c == b'\n' {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < b.len() {
        out.push(start..b.len());
    }
    out
}

/// AWS event-stream messages: each starts with its total length (big-endian u32).
fn split_eventstream(b: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= b.len() {
        let len = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
        assert!(
            len >= 16 && i + len <= b.len(),
            "bad event-stream prelude at {i}"
        );
        out.push(i..i + len);
        i += len;
    }
    assert_eq!(
        i,
        b.len(),
        "trailing bytes after the last event-stream message"
    );
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Paced,
    Bytes7,
    Coalesce,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Paced => "paced",
            Mode::Bytes7 => "bytes7",
            Mode::Coalesce => "coalesce",
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        [Mode::Paced, Mode::Bytes7, Mode::Coalesce]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// When one write was made: called at `start`, returned at `end`. The bytes reached the
/// reader's kernel in between (on loopback, during the call).
#[derive(Debug, Clone, Copy)]
struct Wrote {
    start: Instant,
    end: Instant,
}

/// What the server wrote for one replay: the write holding each unit's last byte (`None`:
/// not written, e.g. the client left after the terminator).
#[derive(Default, Clone)]
struct Replayed {
    done: Vec<Option<Wrote>>,
    /// The server is through with the replay (written all, or the client left).
    finished: bool,
}

/// Every replay by `{mode}/{recording}`.
type Written = Arc<Mutex<HashMap<String, Replayed>>>;

/// Marks a replay finished however the server leaves it.
struct Finish(Written, String);

impl Drop for Finish {
    fn drop(&mut self) {
        if let Ok(mut w) = self.0.lock() {
            w.entry(self.1.clone()).or_default().finished = true;
        }
    }
}

fn note(written: &Written, key: &str, units: Range<usize>, at: Wrote) {
    if let Ok(mut w) = written.lock() {
        let r = w.entry(key.to_string()).or_default();
        for k in units {
            if r.done.len() <= k {
                r.done.resize(k + 1, None);
            }
            r.done[k] = Some(at);
        }
    }
}

/// The replay server: `/{mode}/{recording}/...` replays that recording in that mode.
async fn serve(listener: TcpListener, written: Written) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            return;
        };
        let written = written.clone();
        tokio::spawn(async move {
            let _ = replay(sock, written).await;
        });
    }
}

async fn read_request(sock: &mut TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    Ok(target)
}

async fn replay(mut sock: TcpStream, written: Written) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let target = read_request(&mut sock).await?;
    let mut parts = target.trim_start_matches('/').splitn(3, '/');
    let (Some(mode), Some(name)) = (parts.next().and_then(Mode::parse), parts.next()) else {
        sock.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await?;
        return Ok(());
    };
    let rec = load(name);
    let key = format!("{}/{name}", mode.as_str());
    let _finish = Finish(written.clone(), key.clone());
    let chunked = mode != Mode::Paced;
    let framing = if chunked {
        "Transfer-Encoding: chunked\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\n{framing}Connection: close\r\n\r\n",
        rec.content_type
    );
    sock.write_all(head.as_bytes()).await?;
    // One write of `bytes` (one chunk when chunked).
    async fn put(sock: &mut TcpStream, bytes: &[u8], chunked: bool) -> std::io::Result<Wrote> {
        let start = Instant::now();
        if chunked {
            let mut framed = format!("{:x}\r\n", bytes.len()).into_bytes();
            framed.extend_from_slice(bytes);
            framed.extend_from_slice(b"\r\n");
            sock.write_all(&framed).await?;
        } else {
            sock.write_all(bytes).await?;
        }
        Ok(Wrote {
            start,
            end: Instant::now(),
        })
    }
    match mode {
        Mode::Paced => {
            for (k, u) in rec.units.iter().enumerate() {
                tokio::time::sleep(if k == 0 { FIRST_PAUSE } else { GAP }).await;
                let t = put(&mut sock, &rec.body[u.clone()], chunked).await?;
                note(&written, &key, k..k + 1, t);
            }
        }
        Mode::Bytes7 => {
            let mut next_unit = 0;
            for (p, piece) in rec.body.chunks(BYTES_PER_WRITE).enumerate() {
                let at = p * BYTES_PER_WRITE..p * BYTES_PER_WRITE + piece.len();
                // Pause before the write that starts an event (once, however many start).
                let starts = rec.units.iter().any(|u| at.contains(&u.start));
                if starts {
                    tokio::time::sleep(if p == 0 { FIRST_PAUSE } else { GAP }).await;
                }
                let t = put(&mut sock, piece, chunked).await?;
                let first = next_unit;
                while next_unit < rec.units.len()
                    && dispatch_end(&rec.body, &rec.units[next_unit]) <= at.end
                {
                    next_unit += 1;
                }
                note(&written, &key, first..next_unit, t);
            }
        }
        Mode::Coalesce => {
            tokio::time::sleep(FIRST_PAUSE).await;
            let t = put(&mut sock, &rec.body, chunked).await?;
            note(&written, &key, 0..rec.units.len(), t);
        }
    }
    if chunked {
        sock.write_all(b"0\r\n\r\n").await?;
    }
    sock.shutdown().await
}

/// Where a unit is complete for a reader: its end, except that an SSE event closed by
/// `\r\n\r\n` is dispatched at its second `\r` (a CR alone ends a line; the LF after it only
/// completes the CRLF pair), so the write that carries that CR completes the event.
fn dispatch_end(body: &[u8], u: &std::ops::Range<usize>) -> usize {
    if u.end >= 4 && body.get(u.end - 4..u.end) == Some(b"\r\n\r\n".as_slice()) {
        u.end - 1
    } else {
        u.end
    }
}

/// The outcome of one row in one mode: what failed (empty when all held).
struct Checked {
    name: &'static str,
    skipped: Option<String>,
    failures: Vec<String>,
    summary: String,
}

fn suite_text(e: &Expect, base: &str, mode: Mode) -> String {
    format!(
        "suite: replay\ndefaults: {{ timeout: 60s }}\nendpoints:\n  e:\n    protocol: {}\n    url: \"{base}/{}/{}{}\"\n    model: \"{}\"\nprobes:\n  - {{ name: p, endpoint: e, golden: g.jsonl }}\n",
        e.protocol,
        mode.as_str(),
        e.name,
        e.path,
        e.model
    )
}

async fn run_row(e: &'static Expect, base: String, mode: Mode, written: Written) -> Checked {
    let mut c = Checked {
        name: e.name,
        skipped: None,
        failures: Vec::new(),
        summary: String::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "g.jsonl",
        "{\"id\": \"c\", \"input\": {\"text\": \"Replay the recording.\"}}\n",
    );
    let file = common::write(dir.path(), "s.yaml", &suite_text(e, &base, mode));
    let suite = match load_suite(&file, &ProcessEnv::default()) {
        Ok(s) => s,
        Err(diags) => {
            let text: Vec<String> = diags.iter().map(|d| d.message.clone()).collect();
            let only_the_protocol = diags
                .iter()
                .all(|d| d.field.ends_with(".protocol") && d.message.contains(e.protocol));
            if e.requires_protocol && only_the_protocol {
                c.skipped = Some(format!(
                    "needs protocol `{}`, not in this build yet ({})",
                    e.protocol,
                    text.join("; ")
                ));
            } else {
                c.failures
                    .push(format!("the suite does not load: {text:?}"));
            }
            return c;
        }
    };
    let probe = &suite.probes[0];
    let endpoint = suite.endpoints[&probe.endpoint].clone();
    let case = &probe.cases[0];
    let vars = RunVars {
        run: 1,
        ..RunVars::default()
    };
    // The recorder's clock starts inside `run_case`, synchronously on its first poll.
    let before = Instant::now();
    let t = run_case(&endpoint, case, vars, Duration::from_secs(60)).await;
    let returned = Instant::now();
    // The server may still be writing what follows the terminator (or failing to, once
    // canary has left): wait until it is through.
    let key = format!("{}/{}", mode.as_str(), e.name);
    let waited = Instant::now();
    let done = loop {
        let r = written.lock().ok().and_then(|w| w.get(&key).cloned());
        match r {
            Some(r) if r.finished => break r.done,
            _ if waited.elapsed() > Duration::from_secs(30) => {
                c.failures
                    .push(format!("the server never finished the replay {key}"));
                return c;
            }
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    };
    // One write larger than the receive window reaches canary as fast as canary reads:
    // the events past the window arrive after the write returned (TCP flow control).
    let flow_limited: Vec<bool> = load(e.name)
        .units
        .iter()
        .map(|u| mode == Mode::Coalesce && u.end > RECEIVE_WINDOW)
        .collect();
    let times = Times {
        before,
        returned,
        done: &done,
        flow_limited: &flow_limited,
    };
    check(e, mode, &t, &times, &mut c);
    c
}

/// What the clock says about one replay.
struct Times<'a> {
    /// Just before `run_case` (its recorder starts on the first poll).
    before: Instant,
    /// When `run_case` returned.
    returned: Instant,
    done: &'a [Option<Wrote>],
    flow_limited: &'a [bool],
}

fn check(e: &Expect, mode: Mode, t: &Timeline, times: &Times, c: &mut Checked) {
    let done = times.done;
    let f = &mut c.failures;
    let outcome = t.error.as_ref().map(|x| x.class.as_str()).unwrap_or("ok");
    if outcome != e.outcome {
        f.push(format!(
            "outcome {outcome} ({:?}), expected {}",
            t.error, e.outcome
        ));
    }
    let answer = t.answer_text.as_deref().unwrap_or("");
    if answer != e.answer {
        f.push(format!("answer {answer:?}, expected {:?}", e.answer));
    }
    let reasoning = t
        .doc
        .as_ref()
        .and_then(|d| d.get("reasoning"))
        .and_then(Value::as_str)
        .map(|r| r.chars().count());
    if reasoning.unwrap_or(0) != e.reasoning_chars {
        f.push(format!(
            "reasoning read: {reasoning:?} characters, expected {}",
            e.reasoning_chars
        ));
    }
    match &t.usage {
        None => f.push("no usage".into()),
        Some(u) => {
            if u.input_tokens != e.input_tokens {
                f.push(format!(
                    "input tokens {:?}, expected {:?}",
                    u.input_tokens, e.input_tokens
                ));
            }
            match e.output_tokens {
                Some(n) if u.output_tokens != Some(n) || u.estimated => f.push(format!(
                    "output tokens {:?} (estimated: {}), the stream reports {n}",
                    u.output_tokens, u.estimated
                )),
                None if !u.estimated => {
                    f.push("the stream reports no output total: usage must be estimated".into())
                }
                _ => {}
            }
            let ok = match e.reasoning {
                Reported(n) => u.reasoning_tokens == Some(n),
                Estimated => u.reasoning_tokens.is_some_and(|n| n > 0),
                Absent => u.reasoning_tokens.is_none(),
            };
            if !ok {
                f.push(format!(
                    "reasoning tokens {:?}, expected {:?}",
                    u.reasoning_tokens, e.reasoning
                ));
            }
        }
    }
    // Times: measured from the request written; the truth from the same instant, on the
    // same clock (the replay server runs in this process).
    let Some(sent) = t
        .first(|ev| matches!(ev, Event::RequestSent))
        .map(|d| times.before + d)
    else {
        f.push("no RequestSent on the timeline".into());
        return;
    };
    let secs = |i: Instant| i.saturating_duration_since(sent).as_secs_f64();
    // The write holding the unit's last byte, as (called, returned) after the request.
    let truth = |unit: Option<usize>| -> Result<Option<(f64, f64)>, String> {
        match unit {
            None => Ok(None),
            Some(k) => done
                .get(k)
                .copied()
                .flatten()
                .map(|w| Some((secs(w.start), secs(w.end))))
                .ok_or_else(|| format!("event {k} was never written")),
        }
    };
    let mut line = format!("{:<30} {:<8} {:<12}", e.name, mode.as_str(), outcome);
    let mut time = |what: &str, measured: Option<f64>, unit: Option<usize>, f: &mut Vec<String>| {
        let truth = match truth(unit) {
            Ok(t) => t,
            Err(m) => {
                f.push(format!("{what}: {m}"));
                return;
            }
        };
        match (measured, truth) {
            (None, None) => line += &format!(" {what} -"),
            (Some(m), Some((w0, w1))) => {
                line += &format!(" {what} {:.1}ms ({:+.2})", m * 1e3, (m - w1) * 1e3);
                let k = unit.unwrap_or(0);
                let latest = if times.flow_limited.get(k).copied().unwrap_or(false) {
                    secs(times.returned)
                } else {
                    w1 + TOLERANCE
                };
                if m < w0 - TOLERANCE || m > latest {
                    f.push(format!(
                        "{what}: measured {:.2} ms, event {k} written from {:.2} to {:.2} ms",
                        m * 1e3,
                        w0 * 1e3,
                        w1 * 1e3
                    ));
                }
            }
            (m, w) => f.push(format!(
                "{what}: measured {m:?}, expected {:?} (event {unit:?})",
                w
            )),
        }
    };
    time("ttft", measure::time_to_first_token(t), e.first_token, f);
    time(
        "ttfvt",
        measure::time_to_first_visible_token(t),
        e.first_visible,
        f,
    );
    if e.outcome == "ok" {
        if let Some(k) = e.terminator {
            time("ttc", measure::time_to_completion(t), Some(k), f);
        }
    }
    c.summary = line;
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Timing tests run one at a time: on two cores, parallel tests would measure each other.
static SERIAL: Mutex<()> = Mutex::new(());

/// Replays every row in `mode`; panics with every failure at once.
fn replay_all(mode: Mode) {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let results = runtime().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let written: Written = Arc::default();
        let server = tokio::spawn(serve(listener, written.clone()));
        let slots = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, e) in ROWS.iter().enumerate() {
            let (base, written, slots) = (base.clone(), written.clone(), slots.clone());
            tasks.spawn(async move {
                let _slot = slots.acquire_owned().await.unwrap();
                (i, run_row(e, base, mode, written).await)
            });
        }
        let mut results: Vec<(usize, Checked)> = tasks.join_all().await;
        server.abort();
        results.sort_by_key(|(i, _)| *i);
        results
    });
    // Straight to stderr, past the test harness's capture: a skip must be seen.
    let mut err = std::io::stderr();
    let mut failures = Vec::new();
    for (_, c) in &results {
        if let Some(why) = &c.skipped {
            let _ = writeln!(
                err,
                "real_streams [{}] SKIPPED {}: {why}",
                mode.as_str(),
                c.name
            );
        } else {
            println!("{}", c.summary);
        }
        for f in &c.failures {
            failures.push(format!("{} [{}]: {f}", c.name, mode.as_str()));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_recording_has_a_row_and_every_row_a_recording() {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .filter_map(|d| {
            let p = d.ok()?.path();
            (p.extension()? == "json").then(|| p.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 25, "{names:?}");
    for n in &names {
        let row = ROWS.iter().find(|r| r.name == n);
        let sidecar = common::read_json(&fixtures().join(format!("{n}.json")));
        let Some(row) = row else {
            panic!("{n}: a recording without a row in ROWS: read it and add what it holds");
        };
        // A recording of a protocol canary had before the stream-protocols issue is never
        // pending; one that needs a new protocol says so.
        let supported = sidecar["supported"].as_bool().unwrap_or(false);
        assert_eq!(
            row.requires_protocol, !supported,
            "{n}: requires_protocol must match the sidecar's `supported`"
        );
        if supported {
            assert_eq!(sidecar["protocol"], row.protocol, "{n}");
        }
        assert!(
            sidecar["file"]
                .as_str()
                .is_some_and(|f| fixtures().join(f).is_file()),
            "{n}"
        );
        assert!(sidecar["content_type"].is_string(), "{n}");
    }
    for r in ROWS {
        assert!(
            names.iter().any(|n| n == r.name),
            "{}: no recording",
            r.name
        );
    }
    assert!(fixtures().join("README.md").is_file());
}

#[test]
fn the_splitters_find_every_event() {
    // The rows' event indexes rest on these counts.
    let count = |n: &str| load(n).units.len();
    assert_eq!(count("anthropic-haiku-ping-padded"), 7);
    assert_eq!(count("gemini-native-sse"), 3); // CRLF separators
    assert_eq!(count("openrouter-error-chunk"), 22); // 17 comments, 5 data events
    assert_eq!(count("responses-reasoning-summary"), 676);
    assert_eq!(count("ollama-native-ndjson"), 50);
    assert_eq!(count("bedrock-converse-eventstream"), 33);
    assert_eq!(
        split_sse(b"data: a\r\n\r\ndata: b\n\ndata: c\r\r: x\n\ntail"),
        vec![0..11, 11..20, 20..29, 29..34, 34..38]
    );
}

#[test]
fn paced_one_event_per_write() {
    replay_all(Mode::Paced);
}

#[test]
fn paced_seven_byte_writes() {
    replay_all(Mode::Bytes7);
}

#[test]
fn the_whole_body_in_one_write() {
    replay_all(Mode::Coalesce);
}
