//! `canary probe URL`: one endpoint, one prompt, no suite file. The command writes the suite
//! that would repeat it (one endpoint, one probe, one case), loads it through the normal
//! loader (same validation, defaults and secret handling as `canary run`), runs it through the
//! same executor and drivers, and prints the answer's timeline as a person reads it: connect,
//! head, first token, first visible token, each stall, completion, tokens and cadence (for
//! voice: first audible audio and underruns), with `-n` the percentiles, with `--json` the
//! report.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::measure::sli::Sli;
use crate::observation::Observation;
use crate::schedule::executor::RunOptions;
use crate::suite::{ProcessEnv, Suite};

/// Exit codes (as `canary run`): 0 every run answered, 1 some run failed, 2 usage, 3 nothing
/// could be measured.
const EXIT_OK: u8 = crate::exit::EXIT_OK;
const EXIT_SOME_FAILED: u8 = crate::exit::EXIT_SLO_MISSED;
const EXIT_USAGE: u8 = crate::exit::EXIT_USAGE;
const EXIT_NOTHING: u8 = crate::exit::EXIT_NOTHING_MEASURED;

/// The prompt sent when none is given: short, so the probe is cheap, and with an answer that
/// streams over several tokens.
pub const DEFAULT_PROMPT: &str = "In one sentence, what is the capital of France?";

/// `canary probe` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct ProbeArgs {
    /// The endpoint: `http(s)://…/v1/chat/completions`, `…/v1/responses`, `…/v1/messages`,
    /// any other http(s) URL (a JSON endpoint), or `ws(s)://…` (voice).
    pub url: String,
    /// The protocol (default: guessed from the URL's scheme and path).
    #[arg(long, short = 'p')]
    pub protocol: Option<String>,
    /// What to ask (chat and voice).
    #[arg(long, default_value = DEFAULT_PROMPT)]
    pub prompt: String,
    /// The model field of chat requests.
    #[arg(long, short = 'm')]
    pub model: Option<String>,
    /// A request header, `Name: value` (repeatable). Credentials are redacted from
    /// everything printed, and `--save` writes them as `${CANARY_<NAME>}` references.
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// JSON body for an `http-json` endpoint (POST; without it the request is a GET) or an
    /// `http-audio` one (default: `{"model", "input": PROMPT, "voice": "alloy"}`).
    #[arg(long)]
    pub body: Option<String>,
    /// Runs.
    #[arg(long, short = 'n', default_value_t = 1)]
    pub runs: u32,
    /// Runs in flight at once.
    #[arg(long, short = 'c', default_value_t = 1)]
    pub concurrency: usize,
    /// Hard deadline per run.
    #[arg(long, default_value = "30s", value_parser = parse_dur)]
    pub timeout: Duration,
    /// A gap between chunks longer than this is a stall.
    #[arg(long, default_value = "1s", value_parser = parse_dur)]
    pub stall: Duration,
    /// Print the JSON report (as `canary run --report`) instead of the timeline.
    #[arg(long)]
    pub json: bool,
    /// Write the suite that repeats this probe here (and its golden set next to it, as
    /// FILE's stem `.jsonl`).
    #[arg(long)]
    pub save: Option<PathBuf>,
}

fn parse_dur(s: &str) -> Result<Duration, String> {
    crate::suite::units::parse_duration(s)
}

/// What could stop a probe before it ran.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProbeSetupError {
    #[error("{0}: not a URL canary can probe: {1}")]
    Url(String, String),
    #[error(
        "this build has no protocol `{name}` yet ({why}); pass --protocol with one of: {known}"
    )]
    UnknownProtocol {
        name: String,
        why: String,
        known: String,
    },
    #[error("-H {0:?}: a header is `Name: value`")]
    Header(String),
    #[error("--body is not JSON: {0}")]
    Body(String),
    #[error("protocol `job` needs submit and poll settings a URL cannot carry: run `canary init job` and edit job.yaml")]
    Job,
    #[error("-n must be at least 1")]
    Runs,
}

/// How an http(s) URL's path names its protocol: the first row whose pattern the path
/// (without its query, trailing `/` removed) ends with wins; no row: `http-json`. Adding a
/// protocol is one row.
pub const HTTP_GUESSES: &[(&str, &str)] = &[
    ("/chat/completions", "openai-chat"),
    ("/responses", "openai-responses"),
    ("/messages", "anthropic-messages"),
    (":streamGenerateContent", "gemini"),
    ("/api/chat", "ollama"),
    ("/audio/speech", "http-audio"),
];
/// The same for ws(s) URLs; no row: `ws-opus`.
pub const WS_GUESSES: &[(&str, &str)] = &[("/realtime", "realtime")];

/// The protocol of a URL and why it was chosen.
pub fn guess(url: &str) -> Result<(String, String), ProbeSetupError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| ProbeSetupError::Url(url.into(), e.to_string()))?;
    let path = uri.path().trim_end_matches('/');
    let (table, default) = match uri.scheme_str() {
        Some("http") | Some("https") => (HTTP_GUESSES, "http-json"),
        Some("ws") | Some("wss") => (WS_GUESSES, "ws-opus"),
        _ => {
            return Err(ProbeSetupError::Url(
                url.into(),
                "the scheme must be http, https, ws or wss".into(),
            ))
        }
    };
    for (pattern, proto) in table {
        if path.ends_with(pattern) {
            return Ok((
                (*proto).to_string(),
                format!("guessed from `{pattern}` in the path"),
            ));
        }
    }
    let scheme = uri.scheme_str().unwrap_or_default();
    Ok((
        default.to_string(),
        format!("the default for a {scheme} URL whose path names no other protocol; --protocol to choose"),
    ))
}

/// The protocols this build can run.
fn known_protocols() -> Vec<&'static str> {
    crate::suite::Protocol::ALL
        .iter()
        .filter(|p| p.implemented())
        .map(|p| p.as_str())
        .collect()
}

/// What to probe, parsed and checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub url: String,
    pub protocol: String,
    pub why: String,
    pub model: Option<String>,
    /// `(name, value)`; sensitive ones go through the environment (see [`Plan::env`]).
    pub headers: Vec<(String, String)>,
    pub prompt: String,
    pub body: Option<serde_json::Value>,
    pub runs: u32,
    pub concurrency: usize,
    pub timeout: Duration,
    pub stall: Duration,
}

/// The environment variable a sensitive header's value is read from in the written suite.
pub fn header_var(name: &str) -> String {
    let mut v = String::from("CANARY_");
    for c in name.chars() {
        v.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        });
    }
    v
}

impl Plan {
    pub fn from_args(a: &ProbeArgs) -> Result<Plan, ProbeSetupError> {
        if a.runs == 0 {
            return Err(ProbeSetupError::Runs);
        }
        let (protocol, why) = match &a.protocol {
            Some(p) => (p.clone(), "from --protocol".to_string()),
            None => guess(&a.url)?,
        };
        if protocol == "job" {
            return Err(ProbeSetupError::Job);
        }
        if !known_protocols().contains(&protocol.as_str()) {
            return Err(ProbeSetupError::UnknownProtocol {
                name: protocol,
                why,
                known: known_protocols().join(", "),
            });
        }
        let mut headers = Vec::new();
        for h in &a.headers {
            let (n, v) = h
                .split_once(':')
                .filter(|(n, _)| {
                    !n.trim().is_empty() && n.trim().bytes().all(|b| b.is_ascii_graphic())
                })
                .ok_or_else(|| ProbeSetupError::Header(crate::secret::redact(h)))?;
            // A credential is secret from the moment it is read.
            if crate::secret::is_sensitive_header(n.trim()) {
                crate::secret::register(v.trim());
            }
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let body = match &a.body {
            Some(b) => {
                Some(serde_json::from_str(b).map_err(|e| ProbeSetupError::Body(e.to_string()))?)
            }
            None => None,
        };
        Ok(Plan {
            url: a.url.clone(),
            protocol,
            why,
            model: a.model.clone(),
            headers,
            prompt: a.prompt.clone(),
            body,
            runs: a.runs,
            concurrency: a.concurrency.max(1),
            timeout: a.timeout,
            stall: a.stall,
        })
    }

    fn is_chat(&self) -> bool {
        !matches!(self.protocol.as_str(), "http-json" | "ws-opus" | "realtime")
    }

    /// The values the written suite reads from the environment: sensitive headers.
    pub fn env(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter(|(n, _)| crate::secret::is_sensitive_header(n))
            .map(|(n, v)| (header_var(n), v.clone()))
            .collect()
    }

    /// The suite (YAML) that repeats this probe; its golden set is `golden` (relative path).
    pub fn suite_yaml(&self, golden: &str) -> String {
        let q = |s: &str| yaml_str(s);
        let mut y = String::new();
        y.push_str(
            "# Written by `canary probe`; `canary run THIS_FILE` repeats the measurement.\n",
        );
        let vars = self.env();
        if !vars.is_empty() {
            let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
            y.push_str(&format!(
                "# Credentials are read from the environment: set {} first.\n",
                names.join(", ")
            ));
        }
        y.push_str("suite: probe\n");
        y.push_str(&format!(
            "defaults: {{ timeout: {}ms, runs: {}, concurrency: {} }}\n",
            self.timeout.as_millis().max(1),
            self.runs,
            self.concurrency
        ));
        y.push_str("endpoints:\n  target:\n");
        y.push_str(&format!("    protocol: {}\n", self.protocol));
        y.push_str(&format!("    url: {}\n", q(&self.url)));
        if let Some(m) = &self.model {
            y.push_str(&format!("    model: {}\n", q(m)));
        }
        if self.protocol == "http-json" {
            let m = if self.body.is_some() { "POST" } else { "GET" };
            y.push_str(&format!("    method: {m}\n"));
        }
        if !self.headers.is_empty() {
            y.push_str("    headers:\n");
            for (n, v) in &self.headers {
                let value = if crate::secret::is_sensitive_header(n) {
                    format!("\"${{{}}}\"", header_var(n))
                } else {
                    q(v)
                };
                y.push_str(&format!("      {}: {value}\n", q(n)));
            }
        }
        y.push_str("probes:\n");
        y.push_str(&format!(
            "  - {{ name: probe, endpoint: target, golden: {}",
            q(golden)
        ));
        if self.is_chat() {
            y.push_str(&format!(", stall: {}ms", self.stall.as_millis().max(1)));
        }
        y.push_str(" }\n");
        y
    }

    /// The one golden case.
    pub fn golden_line(&self) -> String {
        let input = match self.protocol.as_str() {
            "http-json" => match &self.body {
                Some(b) => serde_json::json!({ "body": b }),
                None => serde_json::json!({}),
            },
            // A speech request in OpenAI's shape unless `--body` gives one.
            "http-audio" => serde_json::json!({ "body": self.body.clone().unwrap_or_else(|| {
                serde_json::json!({
                    "model": self.model.clone().unwrap_or_else(|| "tts-1".into()),
                    "input": self.prompt,
                    "voice": "alloy",
                })
            }) }),
            _ => serde_json::json!({ "text": self.prompt }),
        };
        let case = serde_json::json!({ "id": "probe", "slice": "probe", "input": input });
        format!("{case}\n")
    }
}

/// A YAML double-quoted scalar holding `s` literally (a JSON string is one; `${` is escaped
/// so the loader does not interpolate it).
fn yaml_str(s: &str) -> String {
    serde_json::Value::String(s.replace("${", "$${")).to_string()
}

/// A scratch folder removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!("canary-probe-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Loads the plan's suite through the normal loader (with the credentials in the environment
/// overrides, so they are interpolated into headers and registered as secrets).
pub fn load(plan: &Plan) -> Result<Suite, String> {
    let scratch = Scratch::new().map_err(|e| format!("cannot create a scratch folder: {e}"))?;
    let file = scratch.0.join("probe.yaml");
    std::fs::write(&file, plan.suite_yaml("probe.jsonl"))
        .and_then(|()| std::fs::write(scratch.0.join("probe.jsonl"), plan.golden_line()))
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    let mut env = ProcessEnv::default();
    env.overrides.extend(plan.env());
    crate::suite::load_suite(&file, &env).map_err(|d| {
        d.iter()
            .map(|x| crate::secret::redact(&x.message))
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Writes the suite and its golden set for `--save`; returns the golden set's path.
pub fn save(plan: &Plan, path: &Path) -> std::io::Result<PathBuf> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "probe".into());
    let golden = path.with_file_name(format!("{stem}.jsonl"));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, plan.suite_yaml(&format!("{stem}.jsonl")))?;
    std::fs::write(&golden, plan.golden_line())?;
    Ok(golden)
}

/// `canary probe`: returns the exit code.
pub async fn run(args: ProbeArgs) -> u8 {
    let plan = match Plan::from_args(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {}", crate::secret::redact(&e.to_string()));
            return EXIT_USAGE;
        }
    };
    let suite = match load(&plan) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}: {e}", crate::secret::redact(&plan.url));
            return EXIT_USAGE;
        }
    };
    if let Some(path) = &args.save {
        match save(&plan, path) {
            Ok(golden) => {
                let vars: Vec<String> = plan.env().into_iter().map(|(n, _)| n).collect();
                eprintln!(
                    "saved: {} and {}{}",
                    path.display(),
                    golden.display(),
                    if vars.is_empty() {
                        String::new()
                    } else {
                        format!(" (set {} before `canary run`)", vars.join(", "))
                    }
                );
            }
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", path.display());
                return EXIT_USAGE;
            }
        }
    }
    let r = crate::cli::run::run_suite(&suite, "local", &RunOptions::default()).await;
    let url = crate::secret::redact(&plan.url);
    if args.json {
        let mut out = r.report.to_json();
        out.push('\n');
        let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
    } else {
        print!("{}", render(&plan, &url, &r.observations));
    }
    let failed = r
        .observations
        .iter()
        .filter(|o| o.outcome.is_error())
        .count();
    if failed == r.observations.len() {
        let reason = r
            .observations
            .iter()
            .find_map(|o| o.error.as_ref())
            .map(|e| format!("{}: {}", e.class, e.message))
            .unwrap_or_else(|| "no run finished".into());
        eprintln!(
            "error: {url}: {}",
            crate::secret::redact(&reason).replace('\n', " ")
        );
        EXIT_NOTHING
    } else if failed > 0 {
        EXIT_SOME_FAILED
    } else {
        EXIT_OK
    }
}

/// Seconds as a person reads them: `340.1 ms`, `1.234 s`.
pub fn fmt_s(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.3} s")
    }
}

fn line(out: &mut String, what: &str, value: &str, note: &str) {
    let note = if note.is_empty() {
        String::new()
    } else {
        format!("   {note}")
    };
    out.push_str(&format!("  {what:<15}{value:>11}{note}\n"));
}

/// The human output: the header, the first run's timeline, and with several runs a line per
/// run (up to 20) and the percentiles.
pub fn render(plan: &Plan, url: &str, obs: &[Observation]) -> String {
    let mut out = format!(
        "canary probe {url}\n  protocol {} ({}), {}, {} at once\n\n",
        plan.protocol,
        plan.why,
        crate::sink::table::plural(plan.runs as usize, "run"),
        plan.concurrency
    );
    let mut sorted: Vec<&Observation> = obs.iter().collect();
    sorted.sort_by_key(|o| o.run);
    if let Some(first) = sorted.first() {
        if sorted.len() > 1 {
            out.push_str(&format!("run {}:\n", first.run));
        }
        out.push_str(&timeline(plan, first));
    }
    if sorted.len() > 1 {
        out.push('\n');
        for o in sorted.iter().take(20) {
            let l = |s| o.latency_of(s).map(fmt_s).unwrap_or_else(|| "-".into());
            out.push_str(&format!(
                "  run {:>3}  {:<10} head {:>10}  first visible {:>10}  complete {:>10}\n",
                o.run,
                o.outcome.as_str(),
                l(Sli::TimeToFirstByte),
                l(
                    if plan.protocol == "ws-opus" || plan.protocol == "realtime" {
                        Sli::TimeToFirstAudio
                    } else {
                        Sli::TimeToFirstVisibleToken
                    }
                ),
                l(Sli::TimeToCompletion)
            ));
        }
        if sorted.len() > 20 {
            out.push_str(&format!("  … {} more\n", sorted.len() - 20));
        }
        out.push_str(&percentiles(obs));
    }
    out
}

/// One run's timeline.
pub fn timeline(plan: &Plan, o: &Observation) -> String {
    let mut out = String::new();
    let https = plan.url.starts_with("https://") || plan.url.starts_with("wss://");
    if let Some(c) = o.connect_seconds {
        line(
            &mut out,
            "connect",
            &fmt_s(c),
            if https {
                "DNS + TCP + TLS handshake"
            } else {
                "DNS + TCP"
            },
        );
    }
    if let Some(h) = o.latency_of(Sli::TimeToFirstByte) {
        let note = o.status.map(|s| format!("HTTP {s}")).unwrap_or_default();
        line(&mut out, "head", &fmt_s(h), &note);
    }
    let voice = matches!(plan.protocol.as_str(), "ws-opus" | "realtime");
    if let Some(t) = o.latency_of(Sli::TimeToFirstToken) {
        if voice {
            line(
                &mut out,
                "first text",
                &fmt_s(t),
                "the transcript's first piece",
            );
        } else {
            line(&mut out, "first token", &fmt_s(t), "reasoning included");
        }
    }
    if let Some(v) = o.latency_of(Sli::TimeToFirstVisibleToken) {
        let note = o
            .stream
            .as_ref()
            .and_then(|s| s.reasoning_seconds)
            .filter(|r| *r > 0.0)
            .map(|r| format!("after {} of reasoning", fmt_s(r)))
            .unwrap_or_default();
        line(&mut out, "first visible", &fmt_s(v), &note);
        if let Some(s) = &o.stream {
            // Each stall where it began: gaps run from the first visible piece on.
            let mut at = v;
            for g in &s.gaps {
                if *g > plan.stall.as_secs_f64() {
                    line(
                        &mut out,
                        "stall",
                        &fmt_s(*g),
                        &format!("no token from {} on", fmt_s(at)),
                    );
                }
                at += g;
            }
        }
    }
    if let Some(a) = o.latency_of(Sli::TimeToFirstAudio) {
        line(&mut out, "first audio", &fmt_s(a), "first audible sample");
    }
    if let Some(c) = o.latency_of(Sli::TimeToCompletion) {
        line(&mut out, "complete", &fmt_s(c), "");
    }
    if let Some(s) = &o.stream {
        let mut note = String::from("visible");
        if s.reasoning_tokens > 0 {
            note.push_str(&format!(", and {} reasoning", s.reasoning_tokens));
        }
        if let Some(u) = &o.usage {
            if let (Some(i), Some(out_t)) = (u.input_tokens, u.output_tokens) {
                note.push_str(&format!(
                    "; usage {i} in / {out_t} out{}",
                    if u.estimated { " (estimated)" } else { "" }
                ));
            }
        }
        line(&mut out, "tokens", &s.visible_tokens.to_string(), &note);
        let mut cadence = format!("{} chunks", s.chunks);
        if let Some(g) = s.longest_gap {
            cadence.push_str(&format!(", longest gap {}", fmt_s(g)));
        }
        if let Some(r) = s.output_tokens_per_second {
            cadence.push_str(&format!(", {r:.1} tokens/s"));
        }
        line(
            &mut out,
            "cadence",
            &crate::sink::table::plural(s.stalls as usize, "stall"),
            &cadence,
        );
    }
    if let Some(a) = &o.audio {
        line(
            &mut out,
            "audio",
            &format!("{:.2} s", a.audio_seconds),
            &match a.real_time_factor {
                Some(r) => format!(
                    "{} in {} chunks, delivered at {r:.2}x real time",
                    a.format, a.chunks
                ),
                None => format!("{} in {} chunks, all in one read", a.format, a.chunks),
            },
        );
        line(
            &mut out,
            "underruns",
            &a.underruns.to_string(),
            &format!(
                "with a {} buffer; stood still {} (longest {}); {} would have been enough",
                fmt_s(a.prebuffer),
                fmt_s(a.stalled_seconds),
                fmt_s(a.longest_stall),
                fmt_s(a.prebuffer_needed)
            ),
        );
    }
    if let Some(e) = &o.error {
        line(
            &mut out,
            "error",
            e.class.as_str(),
            &e.message.replace('\n', " "),
        );
    }
    if let Some(a) = &o.answer {
        let mut a: String = a.replace('\n', " ");
        if a.chars().count() > 100 {
            a = a.chars().take(100).collect::<String>() + "…";
        }
        out.push_str(&format!("  {:<15}{a:?}\n", "answer"));
    }
    out
}

/// Nearest-rank percentile of sorted values.
fn rank(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let r = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted[r - 1]
}

/// The percentiles of every latency the runs measured.
pub fn percentiles(obs: &[Observation]) -> String {
    let mut out = format!(
        "\n  {:<15}{:>11}{:>11}{:>11}{:>11}{:>6}\n",
        "", "p50", "p95", "p99", "max", "n"
    );
    type Get = fn(&Observation) -> Option<f64>;
    let rows: [(&str, Get); 6] = [
        ("connect", |o| o.connect_seconds),
        ("head", |o| o.latency_of(Sli::TimeToFirstByte)),
        ("first token", |o| o.latency_of(Sli::TimeToFirstToken)),
        ("first visible", |o| {
            o.latency_of(Sli::TimeToFirstVisibleToken)
        }),
        ("first audio", |o| o.latency_of(Sli::TimeToFirstAudio)),
        ("complete", |o| o.latency_of(Sli::TimeToCompletion)),
    ];
    for (name, get) in rows.iter() {
        let mut v: Vec<f64> = obs.iter().filter_map(get).collect();
        if v.is_empty() {
            continue;
        }
        v.sort_by(f64::total_cmp);
        out.push_str(&format!(
            "  {name:<15}{:>11}{:>11}{:>11}{:>11}{:>6}\n",
            fmt_s(rank(&v, 0.5)),
            fmt_s(rank(&v, 0.95)),
            fmt_s(rank(&v, 0.99)),
            fmt_s(v[v.len() - 1]),
            v.len()
        ));
    }
    let errors = obs.iter().filter(|o| o.outcome.is_error()).count();
    out.push_str(&format!("  {} of {} runs failed\n", errors, obs.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str) -> ProbeArgs {
        ProbeArgs {
            url: url.into(),
            protocol: None,
            prompt: DEFAULT_PROMPT.into(),
            model: None,
            headers: vec![],
            body: None,
            runs: 1,
            concurrency: 1,
            timeout: Duration::from_secs(30),
            stall: Duration::from_secs(1),
            json: false,
            save: None,
        }
    }

    #[test]
    fn protocols_are_guessed_from_the_path() {
        let g = |u: &str| guess(u).map(|(p, _)| p);
        assert_eq!(g("http://h/v1/chat/completions").unwrap(), "openai-chat");
        assert_eq!(g("https://h/v1/responses/").unwrap(), "openai-responses");
        assert_eq!(
            g("https://h/v1/messages?beta=1").unwrap(),
            "anthropic-messages"
        );
        assert_eq!(
            g("https://h/v1beta/models/gemini-2.0:streamGenerateContent?alt=sse").unwrap(),
            "gemini"
        );
        assert_eq!(g("http://h:11434/api/chat").unwrap(), "ollama");
        assert_eq!(g("http://h/map").unwrap(), "http-json");
        assert_eq!(g("ws://h/v1/voice").unwrap(), "ws-opus");
        assert_eq!(g("wss://h/v1/realtime?model=x").unwrap(), "realtime");
        assert!(matches!(g("ftp://h/x"), Err(ProbeSetupError::Url(..))));
    }

    #[test]
    fn a_protocol_this_build_lacks_is_named() {
        // Once the described-stream protocols are built in, the guesses simply work.
        for (url, name) in [
            ("http://h/v1beta/models/g:streamGenerateContent", "gemini"),
            ("http://h/api/chat", "ollama"),
        ] {
            let r = Plan::from_args(&args(url));
            if known_protocols().contains(&name) {
                assert_eq!(r.unwrap().protocol, name);
            } else {
                let msg = r.unwrap_err().to_string();
                assert!(msg.contains(&format!("no protocol `{name}` yet")), "{msg}");
                assert!(msg.contains("--protocol"), "{msg}");
            }
        }
    }

    #[test]
    fn credentials_go_through_the_environment() {
        let mut a = args("http://127.0.0.1:9/v1/chat/completions");
        a.headers = vec![
            "Authorization: Bearer sk-probe-unit-secret".into(),
            "x-sim-write: bytes".into(),
        ];
        a.model = Some("m-${X}".into());
        let p = Plan::from_args(&a).unwrap();
        let y = p.suite_yaml("g.jsonl");
        assert!(!y.contains("sk-probe-unit-secret"), "{y}");
        assert!(
            y.contains("\"authorization\": \"${CANARY_AUTHORIZATION}\""),
            "{y}"
        );
        assert!(y.contains("\"x-sim-write\": \"bytes\""), "{y}");
        assert!(y.contains("m-$${X}"), "{y}");
        assert_eq!(crate::secret::redact("sk-probe-unit-secret"), "***");
        let s = load(&p).unwrap();
        let e = s.endpoints.get("target").unwrap();
        assert_eq!(e.model.as_deref(), Some("m-${X}"));
        assert_eq!(s.probes[0].cases.len(), 1);
    }

    #[test]
    fn bad_headers_and_bodies_are_usage_errors() {
        let mut a = args("http://h/x");
        a.headers = vec!["no colon".into()];
        assert!(matches!(
            Plan::from_args(&a),
            Err(ProbeSetupError::Header(_))
        ));
        let mut a = args("http://h/x");
        a.body = Some("{not json".into());
        assert!(matches!(Plan::from_args(&a), Err(ProbeSetupError::Body(_))));
        let mut a = args("http://h/x");
        a.runs = 0;
        assert_eq!(Plan::from_args(&a).unwrap_err(), ProbeSetupError::Runs);
    }

    #[test]
    fn every_guessable_kind_loads() {
        for (url, body) in [
            ("http://127.0.0.1:9/v1/chat/completions", None),
            ("http://127.0.0.1:9/v1/responses", None),
            ("http://127.0.0.1:9/v1/messages", None),
            ("http://127.0.0.1:9/map", Some("{\"a\": 1}")),
            ("http://127.0.0.1:9/health", None),
            ("ws://127.0.0.1:9/v1/voice", None),
            ("ws://127.0.0.1:9/v1/realtime", None),
        ] {
            let mut a = args(url);
            a.body = body.map(String::from);
            let p = Plan::from_args(&a).unwrap();
            if let Err(e) = load(&p) {
                panic!("{url}: {e}\n{}", p.suite_yaml("probe.jsonl"));
            }
        }
    }
}
