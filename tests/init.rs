//! `canary init KIND` writes a suite and golden set that validate, and run against the real
//! simulator as written (exit 0 or 1: measured, whatever the SLO verdicts).

mod common;
use common::*;

#[test]
fn every_kind_validates_and_runs_against_the_simulator() {
    let sim = Sim::start(7, None);
    let ws = sim.url.replace("http://", "ws://");
    for kind in ["chat", "json", "voice", "job"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let out = canary(&["init", kind, d], &[]);
        assert_eq!(out.status.code(), Some(0), "{kind}: {:?}", text(&out));
        let suite = dir.path().join(format!("{kind}.yaml"));
        assert!(dir.path().join(format!("golden/{kind}.jsonl")).exists());
        let head = std::fs::read_to_string(&suite).unwrap();
        assert!(
            head.starts_with('#'),
            "{kind}: the suite opens with comments"
        );
        let s = suite.to_str().unwrap();
        let v = canary(&["validate", s], &[]);
        assert_eq!(v.status.code(), Some(0), "{kind}: {:?}", text(&v));
        // The simulator listens on a free port, not 7070: point the suite's variables at it.
        let env = [
            ("CHAT_URL", sim.url.as_str()),
            ("JSON_URL", sim.url.as_str()),
            ("JOB_URL", sim.url.as_str()),
            ("VOICE_URL", ws.as_str()),
            ("REALTIME_URL", ws.as_str()),
        ];
        let r = canary(&["run", s, "--runs", "1"], &env);
        let (so, se) = text(&r);
        assert!(
            matches!(r.status.code(), Some(0) | Some(1)),
            "{kind}: exit {:?}\n{so}\n{se}",
            r.status.code()
        );
        // Writing again does not overwrite.
        let again = canary(&["init", kind, d], &[]);
        assert_eq!(again.status.code(), Some(2), "{kind}");
        assert!(text(&again).1.contains("--force"));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = canary(&["init", "stream", dir.path().to_str().unwrap()], &[]);
    let (_, se) = text(&out);
    // `stream` needs the described-stream protocol: either it works or it says so.
    if out.status.code() == Some(2) {
        assert!(se.contains("protocol: stream"), "{se}");
    } else {
        assert_eq!(out.status.code(), Some(0), "{se}");
    }
}

#[test]
fn init_defaults_to_the_current_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["init", "json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert!(dir.path().join("json.yaml").exists());
    assert!(dir.path().join("golden/json.jsonl").exists());
}
