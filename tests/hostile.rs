//! Hostile input, end to end with the real binary and the real Prometheus tools.
//!
//! - Label values a target or a golden file controls (quotes, backslashes, a line feed,
//!   `<script>`, `}{"x":"`, invalid UTF-8) through a tier read from `$.model`, a tier read from
//!   a header, a constant `model` label and a slice, into every exposition: the textfile, the
//!   Pushgateway push body (captured, and through a real Pushgateway), serve's `/metrics`
//!   (both formats, and scraped by a real Prometheus). `promtool check metrics` accepts each,
//!   and each label reads back equal to the original.
//! - A nested-alias YAML bomb: refused by every command that loads a suite, quickly, with
//!   `file:line`, within a small peak RSS measured by `wait4`.
//! - serve's `POST /api/v1/gate` from a browser: `text/plain`, a foreign `Origin` and a host
//!   the suite does not allow are refused with no connection reaching the target.

mod common;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A tier the target puts in `$.model`.
const TIER_JSON: &str = "<script>alert(1)</script>\"}{\"x\":\"\\";
/// A tier header with bytes that are not UTF-8 (read lossily).
const TIER_HEADER: &[u8] = b"\xff\xfe\"}{\"x\":\"\\";
/// What the header tier becomes.
const TIER_HEADER_TEXT: &str = "\u{FFFD}\u{FFFD}\"}{\"x\":\"\\";
/// The suite's constant `model` label (YAML escapes below).
const MODEL: &str = "m\"o\\d\nel<script>}{\"x\":\"";
const MODEL_YAML: &str = "\"m\\\"o\\\\d\\nel<script>}{\\\"x\\\":\\\"\"";
/// The golden case's slice (JSON escapes below).
const SLICE: &str = "sl\"ice\\}{\"x\":\"<b>";
const SLICE_JSON: &str = "\"sl\\\"ice\\\\}{\\\"x\\\":\\\"<b>\"";

type Handler = dyn Fn(&str, &str, &[u8]) -> (u16, Vec<(String, Vec<u8>)>, Vec<u8>) + Send + Sync;

/// A one-request-per-connection HTTP/1.1 server on loopback, counting connections.
struct Http {
    addr: String,
    connections: Arc<AtomicUsize>,
}

impl Http {
    fn start(handler: Box<Handler>) -> Http {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let handler: Arc<Handler> = Arc::from(handler);
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                let h = handler.clone();
                std::thread::spawn(move || answer(s, &*h));
            }
        });
        Http { addr, connections }
    }
}

fn answer(mut s: TcpStream, h: &Handler) {
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut first = head.split_whitespace();
    let (method, path) = (
        first.next().unwrap_or("").to_string(),
        first.next().unwrap_or("").to_string(),
    );
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = &buf[head_end..buf.len().min(head_end + len)];
    let (code, headers, out) = h(&method, &path, body);
    let mut resp = format!(
        "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        out.len()
    )
    .into_bytes();
    for (k, v) in headers {
        resp.extend_from_slice(k.as_bytes());
        resp.extend_from_slice(b": ");
        resp.extend_from_slice(&v);
        resp.extend_from_slice(b"\r\n");
    }
    resp.extend_from_slice(b"\r\n");
    resp.extend_from_slice(&out);
    let _ = s.write_all(&resp);
}

/// The target: `/a` answers a hostile `$.model`, `/b` a hostile `x-tier` header.
fn hostile_target() -> Http {
    Http::start(Box::new(|_, path, _| {
        let json = vec![("content-type".to_string(), b"application/json".to_vec())];
        if path.starts_with("/a") {
            let body = serde_json::json!({"model": TIER_JSON, "answer": "ok"}).to_string();
            (200, json, body.into_bytes())
        } else {
            let mut h = json;
            h.push(("x-tier".into(), TIER_HEADER.to_vec()));
            (200, h, b"{\"answer\":\"ok\"}".to_vec())
        }
    }))
}

fn hostile_suite(dir: &std::path::Path, target: &str, schedule: &str) -> std::path::PathBuf {
    write(
        dir,
        "g.jsonl",
        &format!("{{\"id\":\"c1\",\"slice\":{SLICE_JSON},\"input\":{{\"body\":{{\"q\":1}}}}}}\n"),
    );
    write(
        dir,
        "hostile.yaml",
        &format!(
            "suite: hostile\nlabels: {{ model: {MODEL_YAML} }}\ndefaults: {{ schedule: \"{schedule}\", timeout: 5s }}\nendpoints:\n  json_tier:\n    protocol: http-json\n    url: \"http://{target}/a\"\n    tier: {{ json: \"$.model\" }}\n  header_tier:\n    protocol: http-json\n    url: \"http://{target}/b\"\n    tier: {{ header: x-tier }}\nprobes:\n  - {{ name: a, endpoint: json_tier, golden: g.jsonl }}\n  - {{ name: b, endpoint: header_tier, golden: g.jsonl }}\n"
        ),
    )
}

/// `promtool check metrics` on `text`: exit code and output.
fn promtool(text: &str) -> (Option<i32>, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) is needed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// promtool accepts the text format as it is, without a single lint problem.
fn assert_promtool_clean(what: &str, text: &str) {
    let (code, out) = promtool(text);
    assert_eq!(code, Some(0), "{what}: promtool: {out}\n{text}");
}

/// Both tiers' series carry the hostile values, read back equal to the originals, and the
/// text holds them escaped.
fn assert_round_trip(what: &str, text: &str) {
    let samples = canary::sink::expfmt::parse(text);
    let has = |tier: &str| {
        samples.iter().any(|s| {
            let l = |k: &str| {
                s.labels
                    .iter()
                    .find(|(a, _)| a == k)
                    .map(|(_, v)| v.as_str())
            };
            s.name == "canary_tier_total"
                && l("tier") == Some(tier)
                && l("slice") == Some(SLICE)
                && l("model") == Some(MODEL)
        })
    };
    assert!(has(TIER_JSON), "{what}: no tier from $.model\n{text}");
    assert!(
        has(TIER_HEADER_TEXT),
        "{what}: no tier from the header\n{text}"
    );
    for v in [TIER_JSON, TIER_HEADER_TEXT, MODEL, SLICE] {
        let escaped = canary::sink::expfmt::escape_label_value(v);
        assert!(
            text.contains(&format!("\"{escaped}\"")),
            "{what}: {escaped}"
        );
    }
    assert!(
        !text.contains(MODEL) && !text.contains(TIER_JSON),
        "{what}: unescaped"
    );
}

fn have(bin: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET with optional extra header lines; status and body.
fn get(addr: &str, path: &str, extra: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{extra}\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let buf = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_string())
}

/// `canary serve ARGS` on a free loopback port; its address from the banner.
fn serve(args: &[&str]) -> (Proc, String) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected banner {line:?}"))
        .to_string();
    (Proc(child), addr)
}

#[test]
fn hostile_label_values_are_valid_and_read_back_in_every_exposition() {
    assert!(
        have("promtool") && have("prometheus") && have("prometheus-pushgateway"),
        "this test needs Debian's prometheus and prometheus-pushgateway"
    );
    let target = hostile_target();
    let dir = tempfile::tempdir().unwrap();
    let suite = hostile_suite(dir.path(), &target.addr, "* * * * * *");
    let suite_arg = suite.to_str().unwrap();

    // The textfile.
    let tf = dir.path().join("canary.prom");
    let out = canary(
        &[
            "run",
            suite_arg,
            "--quiet",
            "--textfile",
            tf.to_str().unwrap(),
        ],
        &[],
    );
    let (so, se) = text(&out);
    assert!(matches!(out.status.code(), Some(0) | Some(1)), "{so}{se}");
    assert!(
        target.connections.load(Ordering::SeqCst) >= 2,
        "the probes never reached the target"
    );
    let textfile = std::fs::read_to_string(&tf).unwrap();
    assert_promtool_clean("textfile", &textfile);
    assert_round_trip("textfile", &textfile);

    // The Pushgateway push body, as sent.
    let pushed = Arc::new(Mutex::new(Vec::<u8>::new()));
    let keep = pushed.clone();
    let capture = Http::start(Box::new(move |method, _, body| {
        if method == "PUT" {
            *keep.lock().unwrap() = body.to_vec();
        }
        (200, Vec::new(), Vec::new())
    }));
    let out = canary(
        &[
            "run",
            suite_arg,
            "--quiet",
            "--push",
            &format!("http://{}", capture.addr),
        ],
        &[],
    );
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "{:?}",
        text(&out)
    );
    let body = String::from_utf8(pushed.lock().unwrap().clone()).unwrap();
    assert_promtool_clean("push body", &body);
    assert_round_trip("push body", &body);

    // Through a real Pushgateway: it parses the body and exposes it again.
    let pg_addr = format!("127.0.0.1:{}", free_port());
    let _pg = Proc(
        Command::new("prometheus-pushgateway")
            .args([
                format!("--web.listen-address={pg_addr}"),
                "--persistence.file=".into(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(until(Duration::from_secs(30), || get(
        &pg_addr, "/-/ready", ""
    )
    .0 == 200));
    let out = canary(
        &[
            "run",
            suite_arg,
            "--quiet",
            "--push",
            &format!("http://{pg_addr}"),
        ],
        &[],
    );
    let (so, se) = text(&out);
    assert!(matches!(out.status.code(), Some(0) | Some(1)), "{so}{se}");
    let (code, exposed) = get(&pg_addr, "/metrics", "");
    assert_eq!(code, 200);
    assert_round_trip("pushgateway", &exposed);

    // serve's /metrics in both formats, and scraped by Prometheus.
    let db = dir.path().join("serve.db");
    let (_srv, addr) = serve(&[suite_arg, "--db", db.to_str().unwrap(), "--splay", "0s"]);
    assert!(
        until(Duration::from_secs(30), || get(&addr, "/metrics", "")
            .1
            .contains("canary_tier_total{")),
        "serve never ran the probes"
    );
    let (_, plain) = get(&addr, "/metrics", "Accept: text/plain\r\n");
    assert_promtool_clean("serve text/plain", &plain);
    assert_round_trip("serve text/plain", &plain);
    let (_, om) = get(&addr, "/metrics", "");
    assert!(om.trim_end().ends_with("# EOF"), "{om}");
    assert_round_trip("serve openmetrics", &om);
    // promtool reads OpenMetrics with the 0.0.4 parser: every sample must parse; its only
    // complaint may be the lint that counters' HELP names the family without `_total`. That
    // parser knows no exemplars (` # {trace_id=...} v t` after a bucket; tests/otel.rs checks
    // them with an OpenMetrics parser), so they are cut off first.
    let without_exemplars: String = om
        .lines()
        .map(|l| format!("{}\n", l.split(" # {trace_id=").next().unwrap_or(l)))
        .collect();
    assert!(
        om.contains(" # {trace_id="),
        "serve's buckets carry exemplars"
    );
    let (code, out) = promtool(&without_exemplars);
    assert!(
        code == Some(0)
            || (code == Some(3)
                && out
                    .lines()
                    .all(|l| l.trim().is_empty() || l.ends_with("no help text"))),
        "serve openmetrics: promtool {code:?}: {out}"
    );

    let prom_addr = format!("127.0.0.1:{}", free_port());
    let cfg = write(
        dir.path(),
        "prometheus.yml",
        &format!("global: {{ scrape_interval: 1s }}\nscrape_configs:\n  - job_name: serve\n    static_configs: [{{ targets: ['{addr}'] }}]\n"),
    );
    let _prom = Proc(
        Command::new("prometheus")
            .args([
                format!("--config.file={}", cfg.display()),
                format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
                format!("--web.listen-address={prom_addr}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut series: Vec<Value> = Vec::new();
    let found = until(Duration::from_secs(60), || {
        let (code, body) = get(&prom_addr, "/api/v1/query?query=canary_tier_total", "");
        if code != 200 {
            return false;
        }
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        series = v["data"]["result"].as_array().cloned().unwrap_or_default();
        series.len() >= 2
    });
    assert!(
        found,
        "Prometheus never stored canary_tier_total: {series:?}"
    );
    for tier in [TIER_JSON, TIER_HEADER_TEXT] {
        assert!(
            series.iter().any(|s| s["metric"]["tier"] == tier
                && s["metric"]["slice"] == SLICE
                && s["metric"]["model"] == MODEL),
            "Prometheus: no series with tier {tier:?}: {series:?}"
        );
    }
    let (_, up) = get(&prom_addr, "/api/v1/query?query=up", "");
    assert!(up.contains("\"1\""), "the scrape failed: {up}");
}

/// Runs `canary ARGS`, waits with `wait4` and returns exit code, stderr, wall time and the
/// child's own peak RSS in bytes.
fn run_measured(args: &[&str]) -> (Option<i32>, String, Duration, u64) {
    let t0 = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value; wait4 writes it for our own child's pid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed");
    let elapsed = t0.elapsed();
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let stderr = reader.join().unwrap();
    std::mem::forget(child); // already reaped
    (code, stderr, elapsed, usage.ru_maxrss as u64 * 1024)
}

#[test]
fn an_alias_bomb_is_refused_by_every_command_quickly_and_in_little_memory() {
    let bomb = "fuzz/corpus/suite_loader/alias-bomb.yaml";
    let size = std::fs::metadata(repo().join(bomb)).unwrap().len();
    assert!(size < 400, "the bomb is a few hundred bytes ({size})");
    let db = tempfile::tempdir().unwrap();
    let db = db.path().join("s.db");
    for args in [
        vec!["validate", bomb],
        vec!["run", bomb],
        vec!["plan", bomb],
        vec!["rules", bomb],
        vec!["gate", bomb, "--candidate", "http://127.0.0.1:9"],
        vec![
            "serve",
            bomb,
            "--listen",
            "127.0.0.1:0",
            "--db",
            db.to_str().unwrap(),
        ],
    ] {
        let (code, stderr, elapsed, rss) = run_measured(&args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("{bomb}:7:8:")) && stderr.contains("aliases expand"),
            "{args:?}: {stderr}"
        );
        assert!(elapsed < Duration::from_secs(5), "{args:?}: {elapsed:?}");
        assert!(rss < 100 << 20, "{args:?}: peak RSS {} MB", rss >> 20);
        if args[0] == "validate" {
            eprintln!("validate: {elapsed:?}, peak RSS {} MB", rss >> 20);
        }
    }
}

#[test]
fn gate_allowed_hosts_entries_are_validated_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "g.jsonl",
        "{\"id\":\"c\",\"input\":{\"body\":{}}}\n",
    );
    let s = write(
        dir.path(),
        "s.yaml",
        "suite: s\nendpoints:\n  e: { protocol: http-json, url: \"http://127.0.0.1:1/x\" }\nprobes:\n  - { name: p, endpoint: e, golden: g.jsonl }\ngate:\n  allowed_hosts:\n    - canary.example.com\n    - \"http://evil.example/\"\n    - \"*\"\n",
    );
    let out = canary(&["validate", s.to_str().unwrap()], &[]);
    let (_, se) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{se}");
    assert!(
        se.contains("s.yaml:9:7:") && se.contains("not a host"),
        "{se}"
    );
    assert!(se.contains("s.yaml:10:7:"), "{se}");
}

/// A listener that must never see a connection.
struct Trap(TcpListener);
impl Trap {
    fn new() -> Trap {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        Trap(l)
    }
    fn url(&self) -> String {
        format!("http://{}", self.0.local_addr().unwrap())
    }
    fn untouched(&self) -> bool {
        matches!(self.0.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

fn post(addr: &str, headers: &str, body: &str) -> (u16, String) {
    let (code, _, body) = common::serve::request(addr, "POST", "/api/v1/gate", headers, body);
    (code, body)
}

#[test]
fn the_gate_api_refuses_browsers_and_unlisted_hosts_before_sending_anything() {
    let base = Sim::start(6, None);
    let other = Sim::start(7, None);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo().join("golden/chat.jsonl"),
        dir.path().join("chat.jsonl"),
    )
    .unwrap();
    let chat = |name: &str, gate: &str| {
        write(
            dir.path(),
            &format!("{name}.yaml"),
            &format!("suite: {name}\ndefaults: {{ schedule: \"0 0 * * * *\", timeout: 10s }}\nendpoints:\n  chat:\n    protocol: openai-chat\n    url: \"{}/v1/chat/completions\"\n    headers: {{ authorization: \"Bearer sk-hostile-test-secret\" }}\n    model: sim-plain\nprobes:\n  - {{ name: answers, endpoint: chat, golden: chat.jsonl }}\ngate: {{ slis: [checks_passed], min_runs: 2{gate} }}\n", base.url),
        )
    };
    // `own`: no allowed_hosts (the API may target the suite's own endpoint only);
    // `listed`: the second simulator's host and port only.
    let own = chat("own", "");
    let listed = chat("listed", &format!(", allowed_hosts: [\"{}\"]", other.addr));
    let db = dir.path().join("g.db");
    let (_srv, addr) = serve(&[
        own.to_str().unwrap(),
        listed.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--allow-gate",
    ]);
    let trap = Trap::new();
    let json = "Content-Type: application/json\r\n";
    let body = |suite: &str, candidate: &str| {
        format!(r#"{{"suite":"{suite}","candidate":"{candidate}","runs":3}}"#)
    };

    // A simple cross-site request a page may send without a preflight.
    let (code, msg) = post(
        &addr,
        "Content-Type: text/plain\r\n",
        &body("listed", &trap.url()),
    );
    assert_eq!(code, 415, "{msg}");
    assert!(msg.contains("application/json"), "{msg}");
    let (code, _) = post(&addr, "", &body("listed", &trap.url()));
    assert_eq!(code, 415);
    assert!(trap.untouched());

    // JSON from a foreign page, and from a page under a name (possibly rebound to us).
    for origin in [
        "http://evil.example",
        "null",
        &format!("http://localhost.evil.example:{}", 1),
    ] {
        let (code, msg) = post(
            &addr,
            &format!("{json}Origin: {origin}\r\n"),
            &body("listed", &other.url),
        );
        assert_eq!(code, 403, "{origin}: {msg}");
        assert!(msg.contains("Origin"), "{msg}");
    }
    assert!(trap.untouched());

    // Unlisted hosts: as candidate and as baseline, listed or by default.
    let (code, msg) = post(&addr, json, &body("listed", &trap.url()));
    assert_eq!(code, 403, "{msg}");
    assert!(
        msg.contains("allowed_hosts") && msg.contains(&other.addr),
        "{msg}"
    );
    let (code, msg) = post(
        &addr,
        json,
        &format!(
            r#"{{"suite":"listed","candidate":"{}","baseline":"{}"}}"#,
            other.url,
            trap.url()
        ),
    );
    assert_eq!(code, 403, "{msg}");
    let (code, msg) = post(&addr, json, &body("own", &trap.url()));
    assert_eq!(code, 403, "{msg}");
    assert!(msg.contains("own endpoints"), "{msg}");
    let (code, msg) = post(&addr, json, &body("own", &other.url));
    assert_eq!(
        code, 403,
        "another port of the same host is another service: {msg}"
    );
    assert!(!msg.contains("sk-hostile-test-secret"));
    assert!(trap.untouched(), "a refused gate reached the target");

    // The CLI applies a suite's list too.
    let out = canary(
        &["gate", listed.to_str().unwrap(), "--candidate", &trap.url()],
        &[],
    );
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{so}{se}");
    assert!(se.contains("allowed_hosts"), "{se}");
    assert!(trap.untouched(), "the CLI reached an unlisted host");

    // Valid requests still work: a listed host, the suite's own endpoint, and a same-origin
    // request by address.
    let (code, msg) = post(&addr, json, &body("listed", &other.url));
    assert_eq!(code, 200, "{msg}");
    let (code, msg) = post(
        &addr,
        &format!("{json}Origin: http://{addr}\r\n"),
        &body("own", &base.url),
    );
    assert_eq!(code, 200, "{msg}");
    assert!(trap.untouched());
}
