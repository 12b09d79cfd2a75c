//! Real networks: probes through a real nginx (Debian's `nginx-light`) that terminates TLS
//! and speaks HTTP/2 in front of `canary sim`.
//!
//! nginx runs from a temporary directory (config, certificate, pid, logs, temp paths), in
//! the foreground, as the current user, and is killed when the test ends. Without nginx
//! installed (`/usr/sbin/nginx`) the tests say so and fail: `.ci/run` installs it.

mod common;
use common::*;
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NGINX: &str = "/usr/sbin/nginx";
const TOLERANCE: f64 = 0.002;

/// A CA and a server certificate for 127.0.0.1 and api.canary.test signed by it (PEM).
fn pki() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    // A name too, for `resolve:` (the name stays the TLS server name; DNS never sees it).
    let mut srv =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "api.canary.test".to_string()])
            .unwrap();
    srv.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let srv_key = KeyPair::generate().unwrap();
    let srv_cert = srv.signed_by(&srv_key, &ca, &ca_key).unwrap();
    (ca.pem(), srv_cert.pem(), srv_key.serialize_pem())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &mut Child, log: &Path) {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "server exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {port} after 10 s");
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// nginx in front of the simulator: `tls_h2` (TLS, ALPN h2 and http/1.1), `h2c` (HTTP/2
/// with prior knowledge, no TLS) and `tls_h1` (TLS, HTTP/1.1 only). Killed on drop.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    tls_h2: u16,
    h2c: u16,
    tls_h1: u16,
    ca: PathBuf,
}

impl Nginx {
    fn start(upstream: &str) -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} is missing: install Debian's nginx-light (.ci/run does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (ca, cert, key) = pki();
        let ca_path = write(d, "ca.pem", &ca);
        write(d, "cert.pem", &cert);
        write(d, "key.pem", &key);
        let (tls_h2, h2c, tls_h1) = (free_port(), free_port(), free_port());
        let ds = d.display();
        // As root, nginx would hand its workers to `nobody`; keep them the current user.
        let user = if current_user() == "root" {
            "user root;\n"
        } else {
            ""
        };
        let proxy = format!(
            "proxy_pass http://{upstream}; proxy_http_version 1.1; proxy_buffering off; \
             proxy_request_buffering off; proxy_set_header Connection \"\";"
        );
        let conf = format!(
            r#"{user}worker_processes 1;
pid {ds}/nginx.pid;
error_log {ds}/error.log info;
events {{ worker_connections 256; }}
http {{
  log_format canary '$connection $connection_requests $server_port "$request" $status';
  access_log {ds}/access.log canary;
  client_body_temp_path {ds}/body;
  proxy_temp_path {ds}/proxy;
  fastcgi_temp_path {ds}/fastcgi;
  uwsgi_temp_path {ds}/uwsgi;
  scgi_temp_path {ds}/scgi;
  ssl_certificate {ds}/cert.pem;
  ssl_certificate_key {ds}/key.pem;
  server {{
    listen 127.0.0.1:{tls_h2} ssl http2;
    location / {{ {proxy} }}
  }}
  server {{
    listen 127.0.0.1:{h2c} http2;
    location / {{ {proxy} }}
  }}
  server {{
    listen 127.0.0.1:{tls_h1} ssl;
    location / {{ {proxy} }}
  }}
}}
"#
        );
        let conf_path = write(d, "nginx.conf", &conf);
        let log = d.join("stderr.log");
        // Its own process group: the workers go with the master when the test ends.
        let mut child = Command::new(NGINX)
            .process_group(0)
            .args(["-p", &ds.to_string(), "-c"])
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        for port in [tls_h2, h2c, tls_h1] {
            wait_for_port(port, &mut child, &log);
        }
        Nginx {
            child,
            dir,
            tls_h2,
            h2c,
            tls_h1,
            ca: ca_path,
        }
    }

    /// The protocol nginx logged for each request (`HTTP/2.0`, `HTTP/1.1`).
    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGKILL to the whole group: killing only the master would leave its workers
        // running (with every descriptor the test process gave them).
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on the process group this test created for nginx.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

/// One server test at a time: each starts nginx (and tinyproxy) and the simulator, and the
/// fidelity test holds measures to 2 ms, which two busy neighbours on two cores would break.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn cases<'a>(r: &'a Value, probe: &str) -> Vec<&'a Value> {
    r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["probe"] == probe)
        .collect()
}

#[test]
fn http2_through_nginx_measures_first_token_as_the_simulator_wrote_it() {
    let _serial = one_at_a_time();
    let sim = Sim::start(3, None);
    let nginx = Nginx::start(&sim.addr);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(&nginx.ca, d.join("ca.pem")).unwrap();
    write(d, "g.jsonl", "{\"id\": \"fr\", \"slice\": \"factual\", \"input\": {\"text\": \"What is the capital of France?\"}, \"expect\": {\"contains\": [\"Paris\"]}}\n");
    write(
        d,
        "jobs.jsonl",
        "{\"id\": \"a\", \"input\": {\"asset\": \"a.mp4\", \"kind\": \"render\"}}\n",
    );
    let chat = "/v1/chat/completions";
    let (h2, h2c, h1) = (nginx.tls_h2, nginx.h2c, nginx.tls_h1);
    let s = write(
        d,
        "s.yaml",
        &format!(
            r#"suite: h2
defaults: {{ timeout: 10s, concurrency: 1 }}
endpoints:
  auto:
    protocol: openai-chat
    url: "https://127.0.0.1:{h2}{chat}"
    model: sim-plain
    tls: {{ ca: ca.pem }}
  stall:
    protocol: openai-chat
    url: "https://127.0.0.1:{h2}{chat}"
    model: sim-stall
    tls: {{ ca: ca.pem }}
  forced-1:
    protocol: openai-chat
    url: "https://127.0.0.1:{h2}{chat}"
    model: sim-plain
    tls: {{ ca: ca.pem }}
    http: 1.1
  h2c:
    protocol: openai-chat
    url: "http://127.0.0.1:{h2c}{chat}"
    model: sim-plain
    http: 2
  h1-only:
    protocol: openai-chat
    url: "https://127.0.0.1:{h1}{chat}"
    model: sim-plain
    tls: {{ ca: ca.pem }}
  h1-only-forced-2:
    protocol: openai-chat
    url: "https://127.0.0.1:{h1}{chat}"
    model: sim-plain
    tls: {{ ca: ca.pem }}
    http: "2"
  json:
    protocol: http-json
    method: GET
    url: "https://127.0.0.1:{h2}/truth"
    tls: {{ ca: ca.pem }}
  job:
    protocol: job
    tls: {{ ca: ca.pem }}
    submit: {{ url: "https://127.0.0.1:{h2}/preview", body: {{ asset: "{{{{input.asset}}}}", kind: "{{{{input.kind}}}}" }} }}
    id: {{ json: "$.id" }}
    poll: {{ url: "https://127.0.0.1:{h2}/preview/{{id}}", every: 20ms }}
    done: {{ json: "$.status", equals: ready }}
    failed: {{ json: "$.status", equals: failed, reason: "$.error" }}
probes:
  - {{ name: auto, endpoint: auto, golden: g.jsonl, runs: 5 }}
  - {{ name: stall, endpoint: stall, golden: g.jsonl, runs: 2, stall: 1s }}
  - {{ name: forced-1, endpoint: forced-1, golden: g.jsonl, runs: 2 }}
  - {{ name: h2c, endpoint: h2c, golden: g.jsonl, runs: 3 }}
  - {{ name: h1-only, endpoint: h1-only, golden: g.jsonl, runs: 1 }}
  - {{ name: h1-only-forced-2, endpoint: h1-only-forced-2, golden: g.jsonl, runs: 1 }}
  - {{ name: json, endpoint: json, golden: g.jsonl, runs: 1 }}
  - {{ name: job, endpoint: job, golden: jobs.jsonl, runs: 1 }}
"#
        ),
    );
    // One unrecorded round first: nginx's and the simulator's first request of a process
    // (worker start-up, the first upstream connection) is not the network being measured.
    let (out, r) = run_with_report(&s, &["--warmup", "1"], &[]);
    assert_report_valid(&r);
    let (_, stderr) = text(&out);
    let version = |probe: &str| -> Vec<String> {
        cases(&r, probe)
            .iter()
            .map(|c| c["http_version"].as_str().unwrap_or("none").to_string())
            .collect()
    };
    // ALPN: nginx offers h2 and canary prefers it; forced 1.1 stays on 1.1; h2c by prior
    // knowledge; a server without h2 gets 1.1 under `auto` and a protocol error under `2`.
    assert_eq!(version("auto"), vec!["h2"; 5], "{stderr}");
    assert_eq!(version("stall"), vec!["h2"; 2]);
    assert_eq!(version("forced-1"), vec!["http/1.1"; 2]);
    assert_eq!(version("h2c"), vec!["h2c"; 3]);
    assert_eq!(version("h1-only"), vec!["http/1.1"]);
    assert_eq!(version("json"), vec!["h2"]);
    assert_eq!(version("job"), vec!["h2"]);
    let forced = cases(&r, "h1-only-forced-2")[0];
    assert_eq!(forced["outcome"], "protocol", "{forced}");
    assert!(
        forced["error"]
            .as_str()
            .unwrap()
            .contains("did not agree to HTTP/2"),
        "{forced}"
    );
    for p in ["auto", "stall", "forced-1", "h2c", "h1-only", "json", "job"] {
        for c in cases(&r, p) {
            assert_eq!(c["outcome"], "ok", "{p}: {c}");
        }
    }
    // nginx saw both versions (its own log, not canary's word).
    let log = nginx.access_log();
    assert!(log.contains("HTTP/2.0"), "{log}");
    assert!(log.contains("HTTP/1.1"), "{log}");

    // Fidelity through h2: each chat stream's measures against the simulator's own write
    // times (its truth counts from the request's arrival, so nginx's two loopback hops are
    // inside the 2 ms).
    // One case at a time: the simulator's streams, in arrival order, are the chat cases
    // that reached it, in the report's order.
    let truth: Value = serde_json::from_str(&sim.get("/truth")).unwrap();
    let mut streams: Vec<&Value> = truth["streams"].as_array().unwrap().iter().collect();
    streams.sort_by_key(|t| t["seq"].as_u64());
    let mut chat: Vec<&Value> = r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] == "ok" && !matches!(c["probe"].as_str(), Some("json" | "job")))
        .collect();
    // In the order they ran (rounds over runs, not the report's order).
    chat.sort_by(|a, b| a["started_at"].as_str().cmp(&b["started_at"].as_str()));
    // The warm-up round's streams came first: one per chat endpoint that reaches the
    // simulator (all but the refused `h1-only-forced-2`).
    assert_eq!(streams.len(), chat.len() + 5, "{truth}");
    let streams = &streams[5..];
    let mut h2_checked = 0;
    let mut misses = Vec::new();
    for (c, t) in chat.iter().zip(streams) {
        let probe = c["probe"].as_str().unwrap();
        let model = if probe == "stall" {
            "sim-stall"
        } else {
            "sim-plain"
        };
        assert_eq!(
            t["model"], model,
            "{probe} run {} is stream {}",
            c["run"], t["seq"]
        );
        let lat = |k: &str| c["latency"][k].as_f64();
        for (measure, truth_key) in [
            ("time_to_first_byte", "headers"),
            ("time_to_first_token", "first_token"),
            ("time_to_first_visible_token", "first_visible"),
            ("time_to_completion", "terminator"),
        ] {
            let (m, tr) = (lat(measure), t[truth_key].as_f64());
            // nginx (1.22) over TLS with h2 sends a response's HEADERS frame with the first
            // DATA frame, not when the upstream's head arrives (its h2c and HTTP/1.1 ports
            // forward the head at once, and those are held to the truth). There the head
            // cannot have come before the simulator wrote it, nor after the first token.
            if measure == "time_to_first_byte" && c["http_version"] == "h2" {
                let ttft = lat("time_to_first_token");
                match (m, tr, ttft) {
                    (Some(m), Some(tr), Some(f)) if m >= tr - TOLERANCE && m <= f + TOLERANCE => {}
                    _ => misses.push(format!(
                        "{probe} run {} head: measured {m:?}, written {tr:?}, first token {ttft:?}",
                        c["run"]
                    )),
                }
                continue;
            }
            match (m, tr) {
                (Some(m), Some(tr)) if (m - tr).abs() <= TOLERANCE => {}
                _ => misses.push(format!(
                    "{probe} run {} {measure}: measured {m:?}, truth {tr:?}",
                    c["run"]
                )),
            }
        }
        if c["http_version"] == "h2" || c["http_version"] == "h2c" {
            h2_checked += 1;
        }
    }
    assert!(misses.is_empty(), "beyond {TOLERANCE} s: {misses:#?}");
    assert_eq!(h2_checked, 10);
    // The stall is seen through h2 as it was written (a frame is not held back).
    for c in cases(&r, "stall") {
        assert_eq!(c["stream"]["stalls"], 1, "{c}");
    }
}

#[test]
fn an_unknown_http_version_or_http_on_a_websocket_is_a_load_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "g.jsonl",
        "{\"id\": \"a\", \"input\": {\"text\": \"hi\"}}\n",
    );
    let s = write(
        dir.path(),
        "s.yaml",
        "suite: v\nendpoints:\n  e:\n    protocol: openai-chat\n    url: \"https://127.0.0.1:1/v1/chat/completions\"\n    model: m\n    http: 3\n  w:\n    protocol: ws-opus\n    url: \"wss://127.0.0.1:1/v1/voice\"\n    http: 2\nprobes:\n  - { name: p, endpoint: e, golden: g.jsonl }\n",
    );
    let out = canary(&["validate", s.to_str().unwrap()], &[]);
    let (_, e) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(
        e.contains("s.yaml:7") && e.contains("unknown HTTP version 3"),
        "{e}"
    );
    assert!(e.contains("`1.1` or `2`"), "{e}");
    assert!(
        e.contains("s.yaml:11") && e.contains("`http` applies to protocols over HTTP"),
        "{e}"
    );
}

const TINYPROXY: &str = "/usr/bin/tinyproxy";

/// A real forward proxy (Debian's `tinyproxy`) on loopback, run in the foreground from a
/// temporary directory, asking for Basic credentials when given. Killed on drop.
struct Tinyproxy {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Tinyproxy {
    fn start(auth: Option<(&str, &str)>) -> Tinyproxy {
        assert!(
            Path::new(TINYPROXY).exists(),
            "{TINYPROXY} is missing: install Debian's tinyproxy (.ci/run does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let port = free_port();
        let ds = d.display();
        // No ConnectPort line: CONNECT to any port (the test servers are not on 443).
        let mut conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{ds}/tinyproxy.log\"\nLogLevel Info\nPidFile \"{ds}/tinyproxy.pid\"\nMaxClients 50\nAllow 127.0.0.1\n"
        );
        if let Some((u, p)) = auth {
            conf.push_str(&format!("BasicAuth {u} {p}\n"));
        }
        let conf_path = write(d, "tinyproxy.conf", &conf);
        let log = d.join("stderr.log");
        let mut child = Command::new(TINYPROXY)
            .process_group(0)
            .args(["-d", "-c"])
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_for_port(port, &mut child, &log);
        Tinyproxy { child, dir, port }
    }

    /// The requests tinyproxy logged (`CONNECT host:port`, `GET http://...`).
    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("tinyproxy.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once("]: Request (file descriptor "))
            .filter_map(|(_, r)| r.split_once("): ").map(|(_, req)| req.to_string()))
            .collect()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on the process group this test created for tinyproxy.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

fn case<'a>(r: &'a Value, probe: &str) -> &'a Value {
    cases(r, probe)
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no case of {probe}"))
}

#[test]
fn http_and_https_probes_pass_through_a_real_proxy_and_no_proxy_bypasses_it() {
    let _serial = one_at_a_time();
    const USER: &str = "canary";
    const PASS: &str = "tp-Planted-Secret-7391";
    let sim = Sim::start(3, None);
    let nginx = Nginx::start(&sim.addr);
    let proxy = Tinyproxy::start(Some((USER, PASS)));
    let dead = free_port();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(&nginx.ca, d.join("ca.pem")).unwrap();
    write(d, "proxy.pass", &format!("{PASS}\n"));
    write(d, "g.jsonl", "{\"id\": \"fr\", \"slice\": \"factual\", \"input\": {\"text\": \"What is the capital of France?\"}, \"expect\": {\"contains\": [\"Paris\"]}}\n");
    let (h2, h1, pp) = (nginx.tls_h2, nginx.tls_h1, proxy.port);
    let chat = "/v1/chat/completions";
    let sim_addr = &sim.addr;
    let s = write(
        d,
        "s.yaml",
        &format!(
            r#"suite: proxied
defaults: {{ timeout: 10s, concurrency: 1 }}
endpoints:
  https-env:
    protocol: openai-chat
    url: "https://127.0.0.1:{h2}{chat}"
    model: sim-plain
    tls: {{ ca: ca.pem }}
  https-h1-env:
    protocol: openai-chat
    url: "https://127.0.0.1:{h1}{chat}"
    model: sim-plain
    tls: {{ ca: ca.pem }}
  http-env:
    protocol: openai-chat
    url: "http://{sim_addr}{chat}"
    model: sim-plain
  direct:
    protocol: openai-chat
    url: "http://{sim_addr}{chat}"
    model: sim-plain
    proxy: none
  fixed:
    protocol: http-json
    method: GET
    url: "https://127.0.0.1:{h2}/truth"
    tls: {{ ca: ca.pem }}
    proxy: {{ url: "http://127.0.0.1:{pp}", username: {USER}, password: "${{file:proxy.pass}}" }}
  no-credentials:
    protocol: http-json
    method: GET
    url: "https://127.0.0.1:{h2}/truth"
    tls: {{ ca: ca.pem }}
    proxy: "http://127.0.0.1:{pp}"
  no-credentials-http:
    protocol: http-json
    method: GET
    url: "http://{sim_addr}/truth"
    proxy: "http://127.0.0.1:{pp}"
  dead-proxy:
    protocol: http-json
    method: GET
    url: "https://127.0.0.1:{h2}/truth"
    tls: {{ ca: ca.pem }}
    proxy: "http://127.0.0.1:{dead}"
probes:
  - {{ name: https-env, endpoint: https-env, golden: g.jsonl, runs: 2 }}
  - {{ name: https-h1-env, endpoint: https-h1-env, golden: g.jsonl, runs: 1 }}
  - {{ name: http-env, endpoint: http-env, golden: g.jsonl, runs: 2 }}
  - {{ name: direct, endpoint: direct, golden: g.jsonl, runs: 1 }}
  - {{ name: fixed, endpoint: fixed, golden: g.jsonl, runs: 1 }}
  - {{ name: no-credentials, endpoint: no-credentials, golden: g.jsonl, runs: 1 }}
  - {{ name: no-credentials-http, endpoint: no-credentials-http, golden: g.jsonl, runs: 1 }}
  - {{ name: dead-proxy, endpoint: dead-proxy, golden: g.jsonl, runs: 1 }}
"#
        ),
    );
    let env_proxy = format!("http://{USER}:{PASS}@127.0.0.1:{pp}");
    let env = [
        ("HTTPS_PROXY", env_proxy.as_str()),
        ("http_proxy", env_proxy.as_str()),
        ("NO_PROXY", "localhost,.internal.example"),
    ];
    let t0 = Instant::now();
    let (out, r) = run_with_report(&s, &[], &env);
    // A refusing or absent proxy is an answer, not a hang.
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    assert_report_valid(&r);
    let (stdout, stderr) = text(&out);
    for p in ["https-env", "https-h1-env", "http-env", "direct", "fixed"] {
        for c in cases(&r, p) {
            assert_eq!(c["outcome"], "ok", "{p}: {c}\n{stderr}");
        }
    }
    let proxy_name = format!("127.0.0.1:{pp}");
    // Through the proxy: its own phase, no TCP phase to the target (that connect is the
    // proxy's), TLS after the tunnel, and the total is the sum of the phases.
    for p in ["https-env", "https-h1-env", "fixed"] {
        for c in cases(&r, p) {
            assert_eq!(c["proxy"], proxy_name.as_str(), "{c}");
            let phase = |k: &str| c[k].as_f64();
            assert!(phase("proxy_seconds").is_some_and(|s| s > 0.0), "{c}");
            assert!(c.get("tcp_seconds").is_none(), "{c}");
            assert!(phase("tls_seconds").is_some_and(|s| s > 0.0), "{c}");
            let sum = phase("dns_seconds").unwrap_or(0.0)
                + phase("proxy_seconds").unwrap()
                + phase("tls_seconds").unwrap();
            assert!(
                (c["connect_seconds"].as_f64().unwrap() - sum).abs() < 1e-9,
                "{c}"
            );
        }
    }
    for c in cases(&r, "http-env") {
        assert_eq!(c["proxy"], proxy_name.as_str(), "{c}");
        assert!(c["proxy_seconds"].as_f64().is_some(), "{c}");
        assert!(c.get("tls_seconds").is_none(), "{c}");
    }
    let direct = case(&r, "direct");
    assert!(direct.get("proxy").is_none(), "{direct}");
    assert!(direct.get("proxy_seconds").is_none(), "{direct}");
    assert!(direct["tcp_seconds"].as_f64().is_some(), "{direct}");
    // Refusals are classified: 407 for the tunnel without credentials (the plain-http
    // request gets tinyproxy's 407 page as its answer), nothing listening at all.
    let nc = case(&r, "no-credentials");
    assert_eq!(nc["outcome"], "proxy", "{nc}");
    assert!(
        nc["error"]
            .as_str()
            .unwrap()
            .contains("requires authentication"),
        "{nc}"
    );
    let nch = case(&r, "no-credentials-http");
    assert_eq!(nch["outcome"], "proxy", "{nch}");
    let dp = case(&r, "dead-proxy");
    assert_eq!(dp["outcome"], "proxy", "{dp}");
    assert!(
        dp["error"]
            .as_str()
            .unwrap()
            .contains(&format!("proxy 127.0.0.1:{dead}")),
        "{dp}"
    );
    // tinyproxy's own log: a tunnel per https case, an absolute-form request per http case.
    let logged = proxy.requests();
    let count = |needle: &str| logged.iter().filter(|l| l.contains(needle)).count();
    // https-env (2) + fixed (1) + no-credentials (1, refused) to the h2 port.
    assert_eq!(count(&format!("CONNECT 127.0.0.1:{h2} ")), 4, "{logged:#?}");
    assert_eq!(count(&format!("CONNECT 127.0.0.1:{h1} ")), 1, "{logged:#?}");
    assert_eq!(
        count(&format!("POST http://{sim_addr}{chat} ")),
        2,
        "{logged:#?}"
    );
    assert_eq!(
        count(&format!("GET http://{sim_addr}/truth ")),
        1,
        "{logged:#?}"
    );
    // The password (and its Basic form) appears nowhere canary writes.
    let report_text = std::fs::read_to_string(s.with_file_name("r.json")).unwrap();
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"));
    for (what, text) in [
        ("report", &report_text),
        ("stdout", &stdout),
        ("stderr", &stderr),
    ] {
        assert!(!text.contains(PASS), "{what} holds the proxy password");
        assert!(!text.contains(&basic), "{what} holds the proxy credentials");
    }

    // NO_PROXY names the targets: the same environment, and nothing goes through the proxy.
    let before = proxy.requests().len();
    let env = [
        ("HTTPS_PROXY", env_proxy.as_str()),
        ("http_proxy", env_proxy.as_str()),
        ("no_proxy", "localhost,127.0.0.0/8"),
    ];
    let (_, r) = run_with_report(&s, &[], &env);
    for p in ["https-env", "https-h1-env", "http-env", "direct"] {
        for c in cases(&r, p) {
            assert_eq!(c["outcome"], "ok", "{p}: {c}");
            assert!(c.get("proxy").is_none(), "{p}: {c}");
            assert!(c["tcp_seconds"].as_f64().is_some(), "{p}: {c}");
        }
    }
    // Only the endpoints with their own `proxy:` used it (NO_PROXY is for the environment's).
    let after = proxy.requests();
    assert_eq!(after.len() - before, 3, "{:#?}", &after[before..]);
}

#[test]
fn reused_connections_carry_several_cases_over_tls_with_h2_and_http1() {
    let _serial = one_at_a_time();
    let sim = Sim::start(4, None);
    let nginx = Nginx::start(&sim.addr);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(&nginx.ca, d.join("ca.pem")).unwrap();
    write(d, "g.jsonl", "{\"id\": \"fr\", \"slice\": \"factual\", \"input\": {\"text\": \"What is the capital of France?\"}, \"expect\": {\"contains\": [\"Paris\"]}}\n");
    let chat = "/v1/chat/completions";
    let (h2, h1) = (nginx.tls_h2, nginx.tls_h1);
    let s = write(
        d,
        "s.yaml",
        &format!(
            r#"suite: reuse
defaults: {{ timeout: 10s, concurrency: 1 }}
endpoints:
  h2:
    protocol: openai-chat
    url: "https://127.0.0.1:{h2}{chat}"
    model: sim-plain
    tls: {{ ca: ca.pem }}
    connection: reuse
  h1:
    protocol: openai-chat
    url: "https://127.0.0.1:{h1}{chat}"
    model: sim-plain
    tls: {{ ca: ca.pem }}
    connection: reuse
  pinned:
    protocol: openai-chat
    url: "https://api.canary.test:{h2}{chat}"
    resolve: {{ api.canary.test: 127.0.0.1 }}
    model: sim-plain
    tls: {{ ca: ca.pem }}
  unpinned:
    protocol: openai-chat
    url: "https://127.0.0.1:{h2}{chat}"
    model: sim-plain
    tls: {{ ca: ca.pem }}
    resolve: {{ api.canary.test: 127.0.0.1 }}
probes:
  - {{ name: h2, endpoint: h2, golden: g.jsonl, runs: 3 }}
  - {{ name: h1, endpoint: h1, golden: g.jsonl, runs: 3 }}
  - {{ name: pinned, endpoint: pinned, golden: g.jsonl, runs: 1 }}
"#
        ),
    );
    let (out, r) = run_with_report(&s, &[], &[]);
    assert_report_valid(&r);
    let (_, stderr) = text(&out);
    for (p, version) in [("h2", "h2"), ("h1", "http/1.1")] {
        for (i, c) in cases(&r, p).iter().enumerate() {
            assert_eq!(c["outcome"], "ok", "{p}: {c}\n{stderr}");
            assert_eq!(c["http_version"], version, "{c}");
            assert_eq!(c["reused"], i > 0, "{c}");
            assert_eq!(c["tls_seconds"].as_f64().is_some(), i == 0, "{c}");
        }
    }
    // `resolve:` pins the address; the URL's name is the TLS server name the certificate
    // is checked against, and no DNS phase is reported.
    let pinned = cases(&r, "pinned")[0];
    assert_eq!(pinned["outcome"], "ok", "{pinned}");
    assert_eq!(pinned["http_version"], "h2", "{pinned}");
    assert!(pinned.get("dns_seconds").is_none(), "{pinned}");
    assert!(pinned["tls_seconds"].as_f64().is_some(), "{pinned}");
    // nginx's own log: one connection per port, its request count rising 1, 2, 3.
    let log = nginx.access_log();
    for port in [h2, h1] {
        let lines: Vec<Vec<&str>> = log
            .lines()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .filter(|f| f.get(2) == Some(&port.to_string().as_str()))
            .collect();
        // The pinned case opened its own connection to the h2 port (another origin).
        let first = lines[0][0];
        let lines: Vec<Vec<&str>> = lines.into_iter().filter(|f| f[0] == first).collect();
        assert_eq!(lines.len(), 3, "{log}");
        assert!(lines.iter().all(|f| f[0] == lines[0][0]), "{log}");
        let counts: Vec<&str> = lines.iter().map(|f| f[1]).collect();
        assert_eq!(counts, vec!["1", "2", "3"], "{log}");
    }
}
