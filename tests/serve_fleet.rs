//! `canary serve` for a fleet, end to end: the bearer token (401 without it, 200 with it,
//! `--private`), the refusal to open the gate on a network address without a token, three
//! shards that cover every probe exactly once, and breach notifications (Alertmanager webhook
//! and JSON) that reach a real receiver once per state change, and again after it was down.

mod common;
use common::serve::*;
use common::*;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const TOKEN: &str = "3f1c9b0e7a5d42c8b6e1f0a9d8c7b6a5";
const HEALTHY: &str = r#"{"latency": {"median": "5ms", "p95": "10ms"}, "detectors": {}, "schema_invalid_rate": 0.0, "fallback_rate": 0.0}"#;
const BROKEN: &str = r#"{"latency": {"median": "5ms", "p95": "10ms"}, "detectors": {}, "schema_invalid_rate": 1.0, "fallback_rate": 0.0}"#;

fn bearer(t: &str) -> String {
    format!("Authorization: Bearer {t}\r\n")
}

const JSON: &str = "Content-Type: application/json\r\n";

/// A chat suite the gate can run (identical candidate: pass) on an hourly schedule.
fn gate_suite(dir: &std::path::Path, base: &str) -> std::path::PathBuf {
    std::fs::copy(repo().join("golden/chat.jsonl"), dir.join("chat.jsonl")).unwrap();
    write(
        dir,
        "chat.yaml",
        &format!("suite: chat-gate\ndefaults: {{ schedule: \"0 0 * * * *\", timeout: 10s }}\nendpoints:\n  chat:\n    protocol: openai-chat\n    url: \"{base}/v1/chat/completions\"\n    model: sim-plain\nprobes:\n  - {{ name: answers, endpoint: chat, golden: chat.jsonl }}\ngate: {{ slis: [checks_passed], min_runs: 2, allowed_hosts: [127.0.0.1] }}\n"),
    )
}

#[test]
fn the_token_guards_the_gate_and_private_closes_the_read_routes() {
    let base = Sim::start(21, None);
    let dir = tempfile::tempdir().unwrap();
    let s = gate_suite(dir.path(), &base.url);
    let srv = Serve::with_suite(
        &s,
        &dir.path().join("a.db"),
        &["--allow-gate"],
        &[("CANARY_TOKEN", TOKEN)],
    );
    let a = srv.addr.clone();
    let flagger = |extra: &str| {
        format!(
            r#"{{"name":"llm-gateway","namespace":"ml","phase":"Progressing","metadata":{{"suite":"chat-gate","candidate":"{}","runs":"3"{extra}}}}}"#,
            base.url
        )
    };
    // No token, a wrong one, another scheme, a prefix of the right one: 401 with the challenge.
    for headers in [
        JSON.to_string(),
        format!("{JSON}{}", bearer("0000000000000000000000000000000")),
        format!("{JSON}Authorization: Basic {TOKEN}\r\n"),
        format!("{JSON}{}", bearer(&TOKEN[..20])),
    ] {
        let (code, head, body) = request(&a, "POST", "/api/v1/gate", &headers, &flagger(""));
        assert_eq!(code, 401, "{headers}: {body}");
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: bearer realm=\"canary\""),
            "{head}"
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["error"].as_str().unwrap().contains("Bearer"), "{body}");
        assert!(!body.contains(TOKEN));
    }
    // The right token: the gate runs, and passes an identical candidate.
    let (code, _, body) = request(
        &a,
        "POST",
        "/api/v1/gate",
        &format!("{JSON}{}", bearer(TOKEN)),
        &flagger(""),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["verdict"],
        "pass"
    );
    // Flagger cannot send headers: the token in its metadata passes too (an unknown suite
    // answers 400, after the token was accepted); a wrong one does not.
    let unknown = |t: &str| {
        format!(
            r#"{{"metadata":{{"suite":"nope","candidate":"http://127.0.0.1:9","token":"{t}"}}}}"#
        )
    };
    assert_eq!(
        request(&a, "POST", "/api/v1/gate", JSON, &unknown(TOKEN)).0,
        400
    );
    assert_eq!(
        request(
            &a,
            "POST",
            "/api/v1/gate",
            JSON,
            &unknown("wrong-token-wrong-token")
        )
        .0,
        401
    );
    // Read-only routes stay open by default.
    for path in ["/api/v1/slo", "/metrics", "/api/v1/probes", "/", "/healthz"] {
        assert_eq!(get(&a, path).0, 200, "{path}");
    }
    drop(srv);

    // --private: the read-only routes need the token too (from a file here); health checks
    // stay open for the kubelet.
    let tf = write(dir.path(), "token", &format!("{TOKEN}\n"));
    let private = Serve::with_suite(
        &s,
        &dir.path().join("b.db"),
        &["--private", "--token-file", tf.to_str().unwrap()],
        &[],
    );
    let p = private.addr.clone();
    for path in [
        "/api/v1/slo",
        "/metrics",
        "/api/v1/probes",
        "/",
        "/api/v1/runs/1",
    ] {
        let (code, head, _) = request(&p, "GET", path, "", "");
        assert_eq!(code, 401, "{path}");
        assert!(head.to_ascii_lowercase().contains("www-authenticate"));
        assert_eq!(
            request(&p, "GET", path, &bearer("x".repeat(32).as_str()), "").0,
            401,
            "{path}"
        );
    }
    for path in ["/api/v1/slo", "/metrics", "/api/v1/probes", "/"] {
        let (code, _, body) = request(&p, "GET", path, &bearer(TOKEN), "");
        assert_eq!(code, 200, "{path}: {body}");
    }
    assert_eq!(get(&p, "/healthz").0, 200);
    assert_eq!(get(&p, "/readyz").0, 200);
}

/// Runs `canary serve ARGS` expecting it to refuse to start: its exit code and stderr.
/// Fails if it is still running after 20 s (it started instead).
fn refused(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .args(args)
        .current_dir(repo())
        .env_remove("CANARY_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), err);
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve {args:?} started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_unprotected_gate_on_a_network_address_is_refused_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let s = gate_suite(dir.path(), "http://127.0.0.1:9");
    let db = dir.path().join("c.db");
    let (s, db) = (s.to_str().unwrap(), db.to_str().unwrap());
    // Refused before anything is bound: the address is never listened on.
    let (code, err) = refused(
        &[s, "--db", db, "--allow-gate", "--listen", "0.0.0.0:0"],
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--allow-gate on 0.0.0.0:0, which is not a loopback address, needs a token"),
        "{err}"
    );
    assert!(!db_exists(db), "refused before the database was opened");
    let (code, err) = refused(&[s, "--db", db, "--allow-gate", "--listen", "[::]:0"], &[]);
    assert_eq!(code, Some(2), "{err}");
    let (code, err) = refused(
        &[s, "--db", db, "--private", "--listen", "127.0.0.1:0"],
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--private"), "{err}");
    // A short token, a missing token file, a bad shard: each refused with its reason.
    let (code, err) = refused(
        &[s, "--db", db, "--allow-gate", "--listen", "0.0.0.0:0"],
        &[("CANARY_TOKEN", "short")],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("CANARY_TOKEN: the token is 5 bytes"), "{err}");
    assert!(!err.contains("short\n"), "{err}");
    let (code, err) = refused(
        &[
            s,
            "--db",
            db,
            "--token-file",
            "/nonexistent/token",
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("/nonexistent/token"), "{err}");
    let (code, err) = refused(
        &[
            s,
            "--db",
            db,
            "--notify-webhook",
            "ftp://127.0.0.1/x",
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--notify-webhook"), "{err}");
    let (code, err) = refused(
        &[s, "--db", db, "--shard", "3/3", "--listen", "127.0.0.1:0"],
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("from 0 to 2"), "{err}");
    let (code, err) = refused(
        &[
            s,
            "--db",
            db,
            "--shard",
            "auto/3",
            "--listen",
            "127.0.0.1:0",
        ],
        &[("HOSTNAME", "laptop")],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("\"laptop\""), "{err}");
}

fn db_exists(db: &str) -> bool {
    std::path::Path::new(db).exists()
}

/// A suite of `n` probes (hourly: they are scheduled, not run) with one SLO each.
fn fleet_suite(dir: &std::path::Path, n: usize, url: &str) -> std::path::PathBuf {
    std::fs::copy(
        repo().join("golden/llama-mapper.schema.json"),
        dir.join("schema.json"),
    )
    .unwrap();
    let golden: String = std::fs::read_to_string(repo().join("golden/llama-mapper.jsonl"))
        .unwrap()
        .lines()
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    write(dir, "g.jsonl", &golden);
    let mut y = format!("suite: fleet\ndefaults: {{ schedule: \"0 0 * * * *\", timeout: 3s }}\nendpoints:\n  mapper:\n    protocol: http-json\n    url: \"{url}/map\"\n    schema: schema.json\nprobes:\n");
    for i in 0..n {
        y.push_str(&format!(
            "  - {{ name: probe-{i:02}, endpoint: mapper, golden: g.jsonl }}\n"
        ));
    }
    y.push_str("slos:\n");
    for i in 0..n {
        y.push_str(&format!("  - {{ name: schema-{i:02}, probe: probe-{i:02}, sli: schema_valid, objective: 99%, window: 1h }}\n"));
    }
    write(dir, "fleet.yaml", &y)
}

/// The value of `canary_shard_probes` in an exposition, with its `shard` and `shards`.
fn shard_probes(metrics: &str) -> (f64, String, String) {
    let line = metrics
        .lines()
        .find(|l| l.starts_with("canary_shard_probes{"))
        .unwrap_or_else(|| panic!("no canary_shard_probes in\n{metrics}"));
    let label = |name: &str| {
        line.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
            .to_string()
    };
    let value = line.rsplit(' ').next().unwrap().parse().unwrap();
    (value, label("shard"), label("shards"))
}

#[test]
fn three_shards_started_together_cover_every_probe_exactly_once() {
    const N: usize = 24;
    let sim = Sim::start(22, Some(&format!("mapper: {HEALTHY}")));
    let dir = tempfile::tempdir().unwrap();
    let s = fleet_suite(dir.path(), N, &sim.url);
    // Shards 0 and 1 by flag, shard 2 from a StatefulSet pod's hostname.
    let shards: Vec<Serve> = (0..3)
        .map(|i| {
            let db = dir.path().join(format!("s{i}.db"));
            if i == 2 {
                Serve::with_suite(
                    &s,
                    &db,
                    &["--shard", "auto/3"],
                    &[("HOSTNAME", "canary-monitor-2")],
                )
            } else {
                Serve::with_suite(&s, &db, &["--shard", &format!("{i}/3")], &[])
            }
        })
        .collect();
    let mut seen: Vec<String> = Vec::new();
    let mut exported = 0.0;
    for (i, srv) in shards.iter().enumerate() {
        let probes: Vec<String> = json(&srv.addr, "/api/v1/probes")["probes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["probe"].as_str().unwrap().to_string())
            .collect();
        // The documented hash decides: FNV-1a 64 of SUITE/PROBE, mod N.
        for p in &probes {
            assert_eq!(
                canary::serve::shard::shard_of("fleet", p, 3),
                i as u32,
                "{p}"
            );
        }
        // The SLO API lists the replica's own SLOs, and says which shard it is.
        let slo = json(&srv.addr, "/api/v1/slo");
        assert_eq!(slo["shard"], format!("{i}/3"));
        let slo_probes: BTreeSet<String> = slo["slos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["probe"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            slo_probes,
            probes.iter().cloned().collect::<BTreeSet<_>>(),
            "shard {i}"
        );
        // The status page says it shows one shard.
        assert!(
            get(&srv.addr, "/")
                .1
                .contains(&format!("shard {i}/3 (this replica")),
            "shard {i}'s page"
        );
        let (count, shard, of) = shard_probes(&get(&srv.addr, "/metrics").1);
        assert_eq!((shard.as_str(), of.as_str()), (i.to_string().as_str(), "3"));
        assert_eq!(count, probes.len() as f64, "shard {i}");
        exported += count;
        seen.extend(probes);
    }
    let all: BTreeSet<String> = (0..N).map(|i| format!("probe-{i:02}")).collect();
    let distinct: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), N, "no probe runs twice: {seen:?}");
    assert_eq!(distinct, all, "every probe runs somewhere");
    assert_eq!(
        exported, N as f64,
        "sum(canary_shard_probes) is the fleet's probe count"
    );
}

/// A webhook receiver on a loopback port: records (path, JSON body) and answers 200; it can
/// go down (the port refuses connections) and come back on the same port.
struct Receiver {
    addr: String,
    got: Arc<Mutex<Vec<(String, Value)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(addr: &str, got: Arc<Mutex<Vec<(String, Value)>>>) -> Receiver {
        let listener = TcpListener::bind(addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let (g, st) = (got.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 8192];
                        let (head, body) = loop {
                            let n = s.read(&mut chunk).unwrap_or(0);
                            if n == 0 {
                                break (String::new(), Vec::new());
                            }
                            buf.extend_from_slice(&chunk[..n]);
                            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head = String::from_utf8_lossy(&buf[..at]).into_owned();
                                let len: usize = head
                                    .lines()
                                    .find_map(|l| {
                                        let (k, v) = l.split_once(':')?;
                                        k.eq_ignore_ascii_case("content-length")
                                            .then(|| v.trim().parse().ok())?
                                    })
                                    .unwrap_or(0);
                                let mut body = buf[at + 4..].to_vec();
                                while body.len() < len {
                                    let n = s.read(&mut chunk).unwrap_or(0);
                                    if n == 0 {
                                        break;
                                    }
                                    body.extend_from_slice(&chunk[..n]);
                                }
                                break (head, body);
                            }
                        };
                        let target = head.split_whitespace().nth(1).unwrap_or("");
                        let path = target.split('?').next().unwrap_or("").to_string();
                        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        g.lock().unwrap().push((path, v));
                        let _ = s.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Receiver {
            addr,
            got,
            stop,
            thread: Some(thread),
        }
    }

    /// Down: the port refuses connections until `start` binds it again.
    fn down(mut self) -> String {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.addr.clone()
    }

    fn on(&self, path: &str) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_receiver_gets_one_notification_per_state_change_and_the_missed_one_after_it_was_down() {
    let sim = Sim::start(23, Some(&format!("mapper: {HEALTHY}")));
    let got = Arc::new(Mutex::new(Vec::new()));
    let rcv = Receiver::start("127.0.0.1:0", got.clone());
    let dir = tempfile::tempdir().unwrap();
    let s = {
        let mut y = std::fs::read_to_string(fleet_suite(dir.path(), 1, "${MAPPER_URL}")).unwrap();
        y = y
            .replace("0 0 * * * *", "* * * * * *")
            .replace("objective: 99%", "objective: 99.5%");
        write(dir.path(), "one.yaml", &y)
    };
    let db = dir.path().join("n.db");
    let am = format!("http://{}/am", rcv.addr);
    let hook = format!("http://{}/hook?secret=abc", rcv.addr);
    let srv = Serve::with_suite(
        &s,
        &db,
        &[
            "--splay",
            "0s",
            "--notify-alertmanager",
            &am,
            "--notify-webhook",
            &hook,
            "--notify-every",
            "1s",
        ],
        &[("MAPPER_URL", &sim.url)],
    );
    let a = srv.addr.clone();
    let events = |a: &str| {
        json(a, "/api/v1/slo")["slos"][0]["slices"][0]["total"]
            .as_u64()
            .unwrap_or(0)
    };
    assert!(until(Duration::from_secs(20), || events(&a) >= 8));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        got.lock().unwrap().is_empty(),
        "a healthy start is not a change: {:?}",
        got.lock().unwrap()
    );

    // Breach: one firing alert and one JSON change, no more.
    put(&sim.addr, "/config/mapper", BROKEN);
    assert!(
        until(Duration::from_secs(30), || json(&a, "/api/v1/slo")
            ["breached"]
            == true),
        "never breached"
    );
    assert!(
        until(Duration::from_secs(15), || rcv.on("/am").len() == 1
            && rcv.on("/hook").len() == 1),
        "{:?}",
        got.lock().unwrap()
    );
    std::thread::sleep(Duration::from_secs(3));
    let firing = rcv.on("/am");
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(firing[0]["version"], "4");
    assert_eq!(firing[0]["status"], "firing");
    let alert = &firing[0]["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "CanarySLOErrorBudgetBurn");
    assert_eq!(alert["labels"]["severity"], "page");
    assert_eq!(alert["labels"]["slo"], "schema-00");
    assert_eq!(alert["labels"]["slice"], "*");
    assert_eq!(alert["labels"]["region"], "local");
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    let change = rcv.on("/hook");
    assert_eq!(change.len(), 1, "{change:?}");
    assert_eq!(change[0]["kind"], "canary.slo_state_change");
    assert_eq!(change[0]["from"], "ok");
    assert_eq!(change[0]["to"], "breached");
    assert_eq!(change[0]["probe"], "probe-00");
    assert_eq!(change[0]["shard"], "0/1");

    // The receiver goes down; the SLO recovers meanwhile: the change waits in the spool.
    let addr = rcv.down();
    put(&sim.addr, "/config/mapper", HEALTHY);
    assert!(
        until(Duration::from_secs(150), || json(&a, "/api/v1/slo")
            ["breached"]
            == false),
        "never recovered"
    );
    let spool = db.with_extension("spool");
    assert!(
        until(Duration::from_secs(10), || std::fs::read_dir(&spool)
            .map(|d| d.count() == 2)
            .unwrap_or(false)),
        "one waiting notification per receiver in {}",
        spool.display()
    );
    assert!(
        !srv.stderr().contains("secret=abc"),
        "a receiver's URL is logged without its query: {}",
        srv.stderr()
    );

    // Back up on the same port: the resolved alert and the JSON change arrive, once each.
    let rcv = Receiver::start(&addr, got.clone());
    assert!(
        until(Duration::from_secs(15), || rcv.on("/am").len() == 2
            && rcv.on("/hook").len() == 2),
        "{:?}",
        got.lock().unwrap()
    );
    std::thread::sleep(Duration::from_secs(3));
    let am = rcv.on("/am");
    assert_eq!(am.len(), 2, "{am:?}");
    assert_eq!(am[1]["status"], "resolved");
    assert_eq!(
        am[1]["alerts"][0]["fingerprint"],
        am[0]["alerts"][0]["fingerprint"]
    );
    assert_ne!(am[1]["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    let hook = rcv.on("/hook");
    assert_eq!(hook.len(), 2, "{hook:?}");
    assert_eq!(
        (hook[1]["from"].as_str(), hook[1]["to"].as_str()),
        (Some("breached"), Some("ok"))
    );
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "delivered notifications leave the spool"
    );
}
