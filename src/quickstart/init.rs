//! `canary init KIND [DIR]`: a commented starter suite (`KIND.yaml`) and golden set
//! (`golden/KIND.jsonl`) for one kind of endpoint. Each validates and runs against
//! `canary sim` as written (URLs default to `${..._URL:-http://127.0.0.1:7070}`), and says in
//! its comments what to change for a real endpoint.

use std::path::{Path, PathBuf};

/// The kinds of starter suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A streaming chat endpoint (OpenAI chat completions; Responses and Messages in comments).
    Chat,
    /// A JSON request/response endpoint.
    Json,
    /// A voice endpoint over a WebSocket (Opus packets), and OpenAI Realtime.
    Voice,
    /// An asynchronous job: submit, then poll until done.
    Job,
    /// Any other streaming endpoint, described as data (`protocol: stream`).
    Stream,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Chat => "chat",
            Kind::Json => "json",
            Kind::Voice => "voice",
            Kind::Job => "job",
            Kind::Stream => "stream",
        }
    }
}

/// `canary init` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct InitArgs {
    /// What the endpoint is.
    #[arg(value_enum)]
    pub kind: Kind,
    /// Where KIND.yaml and golden/KIND.jsonl go (default: the current folder).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Overwrite files that exist.
    #[arg(long)]
    pub force: bool,
}

/// Why nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0} exists; pass --force to overwrite it, or name another folder")]
    Exists(PathBuf),
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("`canary init stream` needs the described-stream protocol (`protocol: stream`), which this build does not have yet; start from `canary init chat` and change `protocol:`")]
    NoStream,
}

const CHAT_YAML: &str = r#"# A streaming chat endpoint, measured as a reader feels it: the first token a person can
# see (reasoning is not an answer), stalls in the stream, and whether the answer is right.
# Try it:   canary sim &   then   canary run chat.yaml
# Yours:    CHAT_URL=https://api.openai.com OPENAI_API_KEY=sk-... CHAT_MODEL=gpt-4o-mini canary run chat.yaml
# Reference: docs/suite-format.md
suite: chat
defaults:
  timeout: 30s          # hard deadline per case run
  runs: 3               # runs of each golden case per `canary run`
  concurrency: 4        # case runs in flight at once

endpoints:
  chat:
    # openai-chat (/v1/chat/completions), openai-responses (/v1/responses) or
    # anthropic-messages (/v1/messages, with `x-api-key` and `params: { max_tokens: 512 }`).
    protocol: openai-chat
    url: "${CHAT_URL:-http://127.0.0.1:7070}/v1/chat/completions"
    # Values interpolated into headers are secrets: redacted from every output.
    headers: { authorization: "Bearer ${OPENAI_API_KEY:-not-a-real-key}" }
    model: "${CHAT_MODEL:-sim-reasoning}"

probes:
  - name: chat-golden
    endpoint: chat
    golden: golden/chat.jsonl   # one case per line: input and what the answer must hold
    stall: 1s                   # a gap between tokens longer than this is a stall

slos:
  - name: chat-visible-latency
    description: "p95 time to first visible token <= 2 s"
    probe: chat-golden
    sli: time_to_first_visible_token
    threshold: 2s
    objective: 95%
  - name: chat-no-stall
    probe: chat-golden
    sli: no_stall
    objective: 95%
  - name: chat-answers
    description: "the answers hold what the golden set expects"
    probe: chat-golden
    sli: checks_passed
    objective: 95%
"#;

const CHAT_JSONL: &str = r#"{"id": "capital-fr", "slice": "factual", "input": {"messages": [{"role": "user", "content": "What is the capital of France?"}]}, "expect": {"contains": ["Paris"], "max_chars": 600}}
{"id": "capital-jp", "slice": "factual", "input": {"messages": [{"role": "user", "content": "What is the capital of Japan?"}]}, "expect": {"contains": ["Tokyo"], "max_chars": 600}}
{"id": "arith", "slice": "multi-step", "input": {"messages": [{"role": "system", "content": "Think step by step."}, {"role": "user", "content": "What is 17 times 3, plus 9?"}]}, "expect": {"contains": ["60"], "max_chars": 600}}
"#;

const JSON_YAML: &str = r#"# A JSON endpoint: one request body in, one JSON answer out, judged by JSON paths.
# Try it:   canary sim &   then   canary run json.yaml
# Yours:    JSON_URL=https://mapper.internal JSON_API_KEY=... canary run json.yaml
# Reference: docs/suite-format.md
suite: json
defaults:
  timeout: 5s
  runs: 5
  concurrency: 4

endpoints:
  mapper:
    protocol: http-json
    method: POST                 # the case's `input.body` is the request body
    url: "${JSON_URL:-http://127.0.0.1:7070}/map"
    headers: { x-api-key: "${JSON_API_KEY:-not-a-real-key}" }
    # Optional: validate every body against a JSON Schema (SLI schema_valid).
    # schema: golden/json.schema.json
    # Optional: which serving tier answered, and when an answer is a fallback.
    fallback: { json: "$.provenance", equals: fallback }

probes:
  - name: map
    endpoint: mapper
    golden: golden/json.jsonl

slos:
  - name: map-latency
    description: "p95 <= 500 ms"
    probe: map
    sli: time_to_completion
    threshold: 500ms
    objective: 95%
  - name: map-answers
    probe: map
    sli: checks_passed
    objective: 90%
"#;

const JSON_JSONL: &str = r#"{"id": "email", "slice": "detector=presidio", "input": {"body": {"detector": "presidio", "output": "EMAIL_ADDRESS"}}, "expect": {"json": {"$.taxonomy[0]": "PII.Contact.Email"}}}
{"id": "phone", "slice": "detector=presidio", "input": {"body": {"detector": "presidio", "output": "PHONE_NUMBER"}}, "expect": {"json": {"$.taxonomy[0]": "PII.Contact.Phone"}}}
"#;

const VOICE_YAML: &str = r#"# A voice endpoint, measured as a caller hears it: the first audible audio (not the first
# packet of silence) and whether playback through a small buffer ever runs dry.
# Try it:   canary sim &   then   canary run voice.yaml
# Yours:    VOICE_URL=wss://voice.internal VOICE_API_KEY=... canary run voice.yaml
# Reference: docs/voice.md
suite: voice
defaults:
  timeout: 15s
  runs: 2
  concurrency: 4

endpoints:
  voice:
    protocol: ws-opus            # one raw Opus packet per binary message; text frames are JSON events
    url: "${VOICE_URL:-ws://127.0.0.1:7070}/v1/voice"
    headers: { authorization: "Bearer ${VOICE_API_KEY:-not-a-real-key}" }
    # The JSON message sent after connecting; {{...}} is filled from the case.
    start: { type: start, text: "{{input.text}}" }
    transcript: { event: transcript, field: text }   # where the spoken text arrives
    done: { event: done }
    prebuffer: 80ms              # the playback buffer the underrun model uses
  realtime:
    protocol: realtime           # OpenAI Realtime events, base64 audio
    url: "${REALTIME_URL:-ws://127.0.0.1:7070}/v1/realtime"
    headers: { authorization: "Bearer ${OPENAI_API_KEY:-not-a-real-key}" }
    audio_format: pcm16

probes:
  - name: voice-greeting
    endpoint: voice
    golden: golden/voice.jsonl
  - name: realtime-greeting
    endpoint: realtime
    golden: golden/voice.jsonl

slos:
  - name: voice-first-audio
    description: "the caller hears a voice within 1 s"
    probe: voice-greeting
    sli: time_to_first_audio
    threshold: 1s
    objective: 95%
  - name: voice-no-underrun
    probe: voice-greeting
    sli: no_underrun
    objective: 90%
  - name: realtime-first-audio
    probe: realtime-greeting
    sli: time_to_first_audio
    threshold: 1s
    objective: 95%
"#;

const VOICE_JSONL: &str = r#"{"id": "hello", "slice": "greeting", "input": {"text": "Hello there"}, "expect": {"transcript_contains": ["hello there"]}}
{"id": "order", "slice": "ordering", "input": {"text": "I want to order a pizza"}, "expect": {"transcript_contains": ["pizza"]}}
"#;

const JOB_YAML: &str = r#"# An asynchronous job: submit, then poll until it is done; time to completion is measured
# from the submit, with the polling error reported.
# Try it:   canary sim &   then   canary run job.yaml
# Yours:    JOB_URL=https://jobs.internal canary run job.yaml
# Reference: docs/suite-format.md (Job endpoints)
suite: job
defaults:
  timeout: 60s
  runs: 3
  concurrency: 4

endpoints:
  preview:
    protocol: job
    submit:
      method: POST
      url: "${JOB_URL:-http://127.0.0.1:7070}/preview"
      body: { asset: "{{input.asset}}", duration_s: "{{input.duration_s}}", kind: "{{input.kind}}" }
    id: { json: "$.id" }                               # where the submit's answer names the job
    poll: { url: "${JOB_URL:-http://127.0.0.1:7070}/preview/{id}", every: 100ms }
    done: { json: "$.status", equals: ready }
    failed: { json: "$.status", equals: failed, reason: "$.error" }

probes:
  - name: preview
    endpoint: preview
    golden: golden/job.jsonl

slos:
  - name: preview-completion
    description: "p95 job completion <= 10 s"
    probe: preview
    sli: time_to_completion
    threshold: 10s
    objective: 95%
  - name: preview-success
    probe: preview
    sli: success
    objective: 99%
"#;

const JOB_JSONL: &str = r#"{"id": "short-clip", "slice": "clip=short", "input": {"asset": "s3://example/clips/beach-12s.mp4", "duration_s": 12, "kind": "render"}}
"#;

/// The suite and golden set of a kind.
pub fn template(kind: Kind) -> Result<(&'static str, &'static str), InitError> {
    Ok(match kind {
        Kind::Chat => (CHAT_YAML, CHAT_JSONL),
        Kind::Json => (JSON_YAML, JSON_JSONL),
        Kind::Voice => (VOICE_YAML, VOICE_JSONL),
        Kind::Job => (JOB_YAML, JOB_JSONL),
        Kind::Stream => return Err(InitError::NoStream),
    })
}

/// Writes `KIND.yaml` and `golden/KIND.jsonl` into `dir`; returns both paths. Nothing is
/// written when either exists (unless `force`).
pub fn write(kind: Kind, dir: &Path, force: bool) -> Result<(PathBuf, PathBuf), InitError> {
    let (yaml, jsonl) = template(kind)?;
    let suite = dir.join(format!("{}.yaml", kind.as_str()));
    let golden = dir.join("golden").join(format!("{}.jsonl", kind.as_str()));
    if !force {
        for p in [&suite, &golden] {
            if p.exists() {
                return Err(InitError::Exists(p.clone()));
            }
        }
    }
    let gdir = dir.join("golden");
    std::fs::create_dir_all(&gdir).map_err(|e| InitError::Write(gdir, e))?;
    std::fs::write(&suite, yaml).map_err(|e| InitError::Write(suite.clone(), e))?;
    std::fs::write(&golden, jsonl).map_err(|e| InitError::Write(golden.clone(), e))?;
    Ok((suite, golden))
}

/// `canary init`: returns the exit code.
pub fn run(a: &InitArgs) -> u8 {
    match write(a.kind, &a.dir, a.force) {
        Ok((suite, golden)) => {
            println!("wrote {} and {}", suite.display(), golden.display());
            println!(
                "next: `canary validate {0}`, then `canary sim &` and `canary run {0}`; edit the URL and headers for your endpoint",
                suite.display()
            );
            crate::exit::EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            crate::exit::EXIT_USAGE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_loads_with_the_simulator_defaults() {
        for kind in [Kind::Chat, Kind::Json, Kind::Voice, Kind::Job] {
            let dir = tempfile::tempdir().unwrap();
            let (suite, golden) = write(kind, dir.path(), false).unwrap();
            assert!(golden.exists());
            let s = crate::suite::load_suite(&suite, &crate::suite::ProcessEnv::default())
                .unwrap_or_else(|d| panic!("{kind:?}: {d:?}"));
            assert!(!s.slos.is_empty(), "{kind:?}");
            assert!(s
                .endpoints
                .values()
                .all(|e| e.url.contains("127.0.0.1:7070")
                    || e.protocol == crate::suite::Protocol::Job));
            // Nothing is overwritten without --force.
            assert!(matches!(
                write(kind, dir.path(), false),
                Err(InitError::Exists(_))
            ));
            assert!(write(kind, dir.path(), true).is_ok());
        }
    }

    #[test]
    fn stream_says_what_it_needs() {
        let dir = tempfile::tempdir().unwrap();
        let e = write(Kind::Stream, dir.path(), false).unwrap_err();
        assert!(e.to_string().contains("protocol: stream"), "{e}");
        assert!(!dir.path().join("stream.yaml").exists());
    }
}
