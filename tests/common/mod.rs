//! Shared helpers for the end-to-end tests: start the real `canary sim` binary on a free
//! loopback port, run the real `canary` binary, read the simulator's ground truth.

#![allow(dead_code)]

pub mod serve;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_canary");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A running simulator process, killed on drop.
pub struct Sim {
    pub url: String,
    pub addr: String,
    child: Child,
}

impl Sim {
    /// Starts `canary sim` with a seed and an optional config (YAML text).
    pub fn start(seed: u64, config: Option<&str>) -> Sim {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--seed",
            &seed.to_string(),
        ]);
        let _cfg_dir;
        if let Some(text) = config {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("sim.yaml");
            std::fs::write(&p, text).unwrap();
            cmd.arg("--config").arg(&p);
            _cfg_dir = Some(dir);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("canary sim listening on ")
            .unwrap_or_else(|| panic!("unexpected sim banner {line:?}"))
            .to_string();
        let addr = url.trim_start_matches("http://").to_string();
        Sim { url, addr, child }
    }

    /// GET a path with a plain HTTP/1.0 request; returns the body.
    pub fn get(&self, path: &str) -> String {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        buf.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }

    /// The ground truth records.
    pub fn truth(&self) -> Vec<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(&self.get("/truth")).unwrap();
        v["requests"].as_array().unwrap().clone()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `canary ARGS` with extra environment variables.
pub fn canary(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(repo());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Writes a file into `dir` and returns its path.
pub fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

/// The value at quantile `q` by nearest rank.
pub fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted[rank - 1]
}

pub fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Asserts that a JSON report conforms to the committed `docs/report.schema.json`.
pub fn assert_report_valid(report: &serde_json::Value) {
    let schema = read_json(&repo().join("docs/report.schema.json"));
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// `canary run SUITE -q --report DIR/r.json` (plus `extra`): the process output and the report.
pub fn run_with_report(
    suite: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Output, serde_json::Value) {
    let report = suite.with_file_name("r.json");
    let mut args = vec![
        "run",
        suite.to_str().unwrap(),
        "-q",
        "--report",
        report.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = canary(&args, env);
    let r = read_json(&report);
    (out, r)
}

/// Polls `f` every 200 ms until it holds or `limit` passes; whether it held.
pub fn until(limit: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    false
}
