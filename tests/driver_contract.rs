//! The driver contract: every protocol in `Protocol::ALL` is run by its own driver against the
//! simulator in four conditions, and each must hold the same promises:
//!
//! - **healthy**: no error; the timeline's stamps never go back; every response event comes
//!   after the request was sent; it ends with `Done`; every latency SLI the protocol table
//!   says the protocol produces is measured;
//! - **deadline**: a stream that goes quiet past the case's deadline ends as `timeout` at the
//!   deadline (not later), keeping what arrived before it;
//! - **early close**: a connection cut in the middle of the answer is `truncated` (a stream
//!   cut between events or without its terminator) or `reset` (a body cut before it was
//!   whole), with what arrived before it, and never `Done`;
//! - **refused**: a non-2xx answer (503) is `http_status`, with the status kept.
//!
//! `fixture` matches every protocol without a wildcard: a new protocol does not compile
//! until it has its four endpoints here, and then it is checked for free.

mod common;

use std::sync::Arc;
use std::time::Duration;

use canary::drivers::{run_case, RunVars};
use canary::measure::sli::{Sli, SliKind};
use canary::observation::Observation;
use canary::suite::protocol::Family;
use canary::suite::{Endpoint, ProcessEnv, Protocol};
use canary::timeline::{ErrorClass, Event, Timeline};
use common::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cond {
    Healthy,
    Deadline,
    EarlyClose,
    Refused,
}

const CONDS: [Cond; 4] = [
    Cond::Healthy,
    Cond::Deadline,
    Cond::EarlyClose,
    Cond::Refused,
];

impl Cond {
    fn name(self) -> &'static str {
        match self {
            Cond::Healthy => "healthy",
            Cond::Deadline => "deadline",
            Cond::EarlyClose => "early-close",
            Cond::Refused => "refused",
        }
    }
}

/// The deadline of the `deadline` condition; the others get 10 s.
const DEADLINE: Duration = Duration::from_millis(1200);
/// How far past its deadline a case may end (scheduling on a busy 2-core machine).
const DEADLINE_SLACK: Duration = Duration::from_millis(300);

/// One endpoint of the contract: its YAML lines (after `protocol:`) and its golden file.
struct Fixture {
    lines: String,
    golden: &'static str,
}

/// The endpoint that shows `p`'s driver condition `c` on the simulator at `sim`.
fn fixture(p: Protocol, c: Cond, sim: &str) -> Fixture {
    let ws = sim.replace("http://", "ws://");
    let status = "    headers: { x-sim-fault: \"status=503\" }\n";
    let cut = "    headers: { x-sim-fault: truncate }\n";
    // Chat and described streams: the scenario is the model's name.
    let model = match c {
        Cond::Healthy | Cond::Refused => "sim-plain",
        Cond::Deadline => "sim-stall",
        Cond::EarlyClose => "sim-drop",
    };
    let refused = if c == Cond::Refused { status } else { "" };
    let chat = |path: &str| Fixture {
        lines: format!("    url: \"{sim}{path}\"\n    model: {model}\n{refused}"),
        golden: "chat.jsonl",
    };
    let described = |url: String, extra: String| Fixture {
        lines: format!("    url: \"{url}\"\n{extra}{refused}"),
        golden: "text.jsonl",
    };
    // Voice: the scenario is the URL's query. The deadline case pauses for 5 s in the
    // middle of the speech; the early close drops the TCP connection half-way.
    let voice_query = match c {
        Cond::Healthy | Cond::Refused => "speech_ms=400",
        Cond::Deadline => "speech_ms=800&gap_at_ms=200&gap_ms=5000",
        Cond::EarlyClose => "speech_ms=800&fault=close",
    };
    match p {
        Protocol::HttpJson => Fixture {
            lines: format!(
                "    url: \"{sim}/map\"\n{}",
                match c {
                    Cond::Healthy => "",
                    // One byte every 100 ms: the deadline falls in the middle of the body.
                    Cond::Deadline => "    headers: { x-sim-fault: \"drip=100\" }\n",
                    Cond::EarlyClose => cut,
                    Cond::Refused => status,
                }
            ),
            golden: "map.jsonl",
        },
        Protocol::OpenaiChat => chat("/v1/chat/completions"),
        Protocol::OpenaiResponses => chat("/v1/responses"),
        Protocol::AnthropicMessages => chat("/v1/messages"),
        Protocol::WsOpus => Fixture {
            lines: format!(
                "    url: \"{ws}/v1/voice?id=contract&{voice_query}\"\n    start: {{ type: start, text: \"{{{{input.text}}}}\" }}\n{refused}"
            ),
            golden: "text.jsonl",
        },
        Protocol::Realtime => Fixture {
            lines: format!("    url: \"{ws}/v1/realtime?id=contract&{voice_query}\"\n{refused}"),
            golden: "text.jsonl",
        },
        Protocol::HttpAudio => Fixture {
            lines: format!(
                "    url: \"{sim}/v1/audio/speech?id=contract&format=pcm&{voice_query}\"\n{refused}"
            ),
            golden: "speech.jsonl",
        },
        Protocol::WsJsonAudio => Fixture {
            lines: format!(
                "    url: \"{ws}/v1/tts/ws?id=contract&format=pcm&{voice_query}\"\n    start: {{ text: \"{{{{input.text}}}}\" }}\n    stream:\n      events: [{{ audio: $.audio, text: $.text }}]\n      terminator: {{ json: $.isFinal, equals: true }}\n      error: {{ match: {{ json: $.error }}, message: $.error }}\n{refused}"
            ),
            golden: "text.jsonl",
        },
        Protocol::Job => {
            // Jobs are ready 300-400 ms after submission (the simulator's config below); the
            // deadline case polls only every 5 s, so the deadline falls while it waits.
            let every = if c == Cond::Deadline { "5s" } else { "50ms" };
            let headers = match c {
                Cond::EarlyClose => cut,
                Cond::Refused => status,
                _ => "",
            };
            Fixture {
                lines: format!(
                    "    submit: {{ url: \"{sim}/preview\", body: {{ asset: \"{{{{input.asset}}}}\", run: \"{{{{run}}}}\" }} }}\n    id: {{ json: \"$.id\" }}\n    poll: {{ url: \"{sim}/preview/{{id}}\", every: {every} }}\n    done: {{ json: \"$.status\", equals: ready }}\n    failed: {{ json: \"$.status\", equals: failed, reason: \"$.error\" }}\n{headers}"
                ),
                golden: "job.jsonl",
            }
        }
        Protocol::Stream => described(
            format!("{sim}/inhouse/stream"),
            format!(
                "    model: {model}\n    stream: {{ file: \"{}\" }}\n",
                repo()
                    .join("protocols/examples/inhouse-ndjson.yaml")
                    .display()
            ),
        ),
        Protocol::Gemini => described(
            format!("{sim}/v1beta/models/{{model}}:streamGenerateContent?alt=sse"),
            format!("    model: {model}\n"),
        ),
        Protocol::Ollama => described(format!("{sim}/api/chat"), format!("    model: {model}\n")),
        // The model rides in a header, so the fault joins it in the one `headers:` key.
        Protocol::Tgi => Fixture {
            lines: format!(
                "    url: \"{sim}/generate_stream\"\n    headers: {{ x-sim-model: {model}{} }}\n",
                if c == Cond::Refused { ", x-sim-fault: \"status=503\"" } else { "" }
            ),
            golden: "text.jsonl",
        },
        Protocol::BedrockConverse => described(
            format!("{sim}/model/{{model}}/converse-stream"),
            format!("    model: {model}\n"),
        ),
    }
}

/// The simulator: jobs ready 300-400 ms after submission.
const SIM_CONFIG: &str =
    "preview: { miss: { median: 300ms, p95: 400ms }, hit: { median: 300ms, p95: 400ms } }\n";

fn write_suite(dir: &std::path::Path, sim: &str) -> std::path::PathBuf {
    write(
        dir,
        "chat.jsonl",
        "{\"id\": \"fr\", \"input\": {\"messages\": [{\"role\": \"user\", \"content\": \"What is the capital of France?\"}]}}\n",
    );
    write(
        dir,
        "text.jsonl",
        "{\"id\": \"fr\", \"input\": {\"text\": \"What is the capital of France?\"}}\n",
    );
    write(
        dir,
        "speech.jsonl",
        "{\"id\": \"hello\", \"input\": {\"body\": {\"model\": \"tts-1\", \"input\": \"Hello there\", \"voice\": \"alloy\"}}}\n",
    );
    write(
        dir,
        "job.jsonl",
        "{\"id\": \"a\", \"input\": {\"asset\": \"a1\"}}\n",
    );
    write(
        dir,
        "map.jsonl",
        "{\"id\": \"c1\", \"input\": {\"body\": {\"detector\": \"presidio\", \"output\": \"EMAIL_ADDRESS\"}}}\n",
    );
    let mut s = String::from("suite: driver-contract\nendpoints:\n");
    let mut probes = String::from("probes:\n");
    for &p in Protocol::ALL {
        for c in CONDS {
            let name = format!("{}-{}", p.as_str(), c.name());
            let f = fixture(p, c, sim);
            let timeout = if c == Cond::Deadline {
                format!("{}ms", DEADLINE.as_millis())
            } else {
                "10s".into()
            };
            s += &format!(
                "  {name}:\n    protocol: {}\n    timeout: {timeout}\n{}",
                p.as_str(),
                f.lines
            );
            probes += &format!(
                "  - {{ name: {name}, endpoint: {name}, golden: {} }}\n",
                f.golden
            );
        }
    }
    write(dir, "contract.yaml", &(s + &probes))
}

/// Whether an event is part of the server's answer (not a phase of the connection: a
/// WebSocket's `Upgraded` comes before the request, which is the first message).
fn from_server(e: &Event) -> bool {
    matches!(
        e,
        Event::Headers { .. }
            | Event::Body { .. }
            | Event::Token { .. }
            | Event::Audio { .. }
            | Event::Poll { .. }
            | Event::Terminator
    )
}

/// The promises every timeline keeps, whatever its outcome.
fn ordered(name: &str, tl: &Timeline) -> Result<(), String> {
    if let Some(w) = tl.events.windows(2).find(|w| w[1].at < w[0].at) {
        return Err(format!(
            "{name}: stamps go back: {:?} at {:?} after {:?} at {:?}",
            w[1].event, w[1].at, w[0].event, w[0].at
        ));
    }
    // A refused WebSocket upgrade never gets to send its request message.
    match tl.events.iter().position(|e| e.event == Event::RequestSent) {
        Some(sent) => {
            if let Some(e) = tl.events[..sent].iter().find(|e| from_server(&e.event)) {
                return Err(format!("{name}: {:?} before the request was sent", e.event));
            }
        }
        None if heard_something(tl) => {
            return Err(format!(
                "{name}: an answer without RequestSent: {:?}",
                tl.events
            ))
        }
        None => {}
    }
    if tl.events.iter().filter(|e| e.event == Event::Done).count() > 1 {
        return Err(format!("{name}: more than one Done"));
    }
    Ok(())
}

fn heard_something(tl: &Timeline) -> bool {
    tl.events.iter().any(|e| from_server(&e.event))
}

fn check(
    p: Protocol,
    c: Cond,
    ep: &Endpoint,
    case: &canary::suite::Case,
    tl: &Timeline,
) -> Result<(), String> {
    let name = format!("{}-{}", p.as_str(), c.name());
    ordered(&name, tl)?;
    let class = tl.error.as_ref().map(|e| e.class);
    let last = tl.events.last().map(|e| (e.event.clone(), e.at));
    match c {
        Cond::Healthy => {
            if let Some(e) = &tl.error {
                return Err(format!("{name}: failed: {:?} {}", e.class, e.message));
            }
            // A stream ends with its terminator and then `Done`; a job with its final poll's
            // terminator (its `Done` is the submit's answer, early in the timeline).
            if !matches!(last, Some((Event::Done | Event::Terminator, _))) {
                return Err(format!("{name}: does not end complete: {:?}", tl.events));
            }
            let tokens = tl
                .events
                .iter()
                .any(|e| matches!(e.event, Event::Token { .. }));
            let obs = Observation::from_timeline(ep, &name, case, 1, Duration::from_secs(1), tl);
            let missing: Vec<&str> = p
                .info()
                .slis
                .iter()
                .filter(|s| s.kind() == SliKind::Latency && **s != Sli::ConversationDuration)
                // Speech without a transcript (OpenAI's speech API) has no token to time.
                .filter(|s| {
                    tokens || p.info().family != Family::Voice || **s != Sli::TimeToFirstToken
                })
                .filter(|s| obs.samples(**s).is_empty())
                .map(|s| s.name())
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "{name}: the protocol table promises {missing:?}, not measured on a healthy run"
                ));
            }
        }
        Cond::Deadline => {
            if class != Some(ErrorClass::Timeout) {
                return Err(format!("{name}: {class:?}, not a timeout: {:?}", tl.error));
            }
            if !heard_something(tl) {
                return Err(format!(
                    "{name}: nothing kept from before the deadline: {:?}",
                    tl.events
                ));
            }
            match last {
                Some((Event::Abort, at)) if at >= DEADLINE && at < DEADLINE + DEADLINE_SLACK => {}
                other => {
                    return Err(format!(
                        "{name}: ends with {other:?}, not an Abort at the {DEADLINE:?} deadline"
                    ))
                }
            }
        }
        Cond::EarlyClose => {
            if !matches!(class, Some(ErrorClass::Truncated | ErrorClass::Reset)) {
                return Err(format!(
                    "{name}: {class:?}, not truncated or reset: {:?}",
                    tl.error
                ));
            }
            if !heard_something(tl) {
                return Err(format!(
                    "{name}: nothing kept from before the cut: {:?} {:?}",
                    tl.events, tl.error
                ));
            }
            if tl.events.iter().any(|e| e.event == Event::Done) {
                return Err(format!("{name}: a cut answer is Done"));
            }
        }
        Cond::Refused => {
            if class != Some(ErrorClass::HttpStatus) {
                return Err(format!(
                    "{name}: {class:?}, not http_status: {:?}",
                    tl.error
                ));
            }
            let status = tl.response.as_ref().map(|r| r.status);
            if status != Some(503) {
                return Err(format!("{name}: status {status:?} kept, not 503"));
            }
        }
    }
    Ok(())
}

#[test]
fn every_protocol_keeps_the_driver_contract() {
    let sim = Sim::start(5, Some(SIM_CONFIG));
    let dir = tempfile::tempdir().unwrap();
    let path = write_suite(dir.path(), &sim.url);
    let suite = canary::suite::load_suite(&path, &ProcessEnv::default())
        .unwrap_or_else(|d| panic!("the contract suite loads: {d:?}"));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let results: Vec<(Protocol, Cond, Result<(), String>)> = rt.block_on(async {
        let mut runs = Vec::new();
        for &p in Protocol::ALL {
            for c in CONDS {
                let name = format!("{}-{}", p.as_str(), c.name());
                let ep: Arc<Endpoint> = suite.endpoints[&name].clone();
                let probe = suite.probes.iter().find(|x| x.name == name).unwrap();
                let case = probe.cases[0].clone();
                runs.push(tokio::spawn(async move {
                    let vars = RunVars {
                        run: 1,
                        ..RunVars::default()
                    };
                    let tl = run_case(&ep, &case, vars, ep.timeout).await;
                    (p, c, check(p, c, &ep, &case, &tl))
                }));
            }
        }
        let mut out = Vec::new();
        for r in runs {
            out.push(r.await.unwrap());
        }
        out
    });

    assert_eq!(results.len(), Protocol::ALL.len() * CONDS.len());
    let failed: Vec<String> = results
        .into_iter()
        .filter_map(|(_, _, r)| r.err())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} contract runs broke it:\n{}",
        failed.len(),
        Protocol::ALL.len() * CONDS.len(),
        failed.join("\n")
    );
}

#[test]
fn a_deadline_is_hard_even_when_nothing_ever_arrives() {
    // The simulator's `hang` on `/map`: no response head at all.
    let sim = Sim::start(5, None);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "map.jsonl",
        "{\"id\": \"c1\", \"input\": {\"body\": {\"detector\": \"presidio\", \"output\": \"EMAIL_ADDRESS\"}}}\n",
    );
    let path = write(
        dir.path(),
        "s.yaml",
        &format!("suite: hang\nendpoints:\n  h:\n    protocol: http-json\n    url: \"{}/map\"\n    timeout: 400ms\n    headers: {{ x-sim-fault: hang }}\nprobes:\n  - {{ name: h, endpoint: h, golden: map.jsonl }}\n", sim.url),
    );
    let suite = canary::suite::load_suite(&path, &ProcessEnv::default()).unwrap();
    let ep = suite.endpoints["h"].clone();
    let case = suite.probes[0].cases[0].clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tl = rt.block_on(run_case(&ep, &case, RunVars::default(), ep.timeout));
    assert_eq!(
        tl.error.as_ref().map(|e| e.class),
        Some(ErrorClass::Timeout),
        "{:?} {:?}",
        tl.error,
        tl.events
    );
    ordered("hang", &tl).unwrap();
    assert!(!heard_something(&tl), "{:?}", tl.events);
    let end = tl.events.last().map(|e| e.at).unwrap();
    assert!(
        end >= Duration::from_millis(400) && end < Duration::from_millis(400) + DEADLINE_SLACK,
        "ended at {end:?}"
    );
}
