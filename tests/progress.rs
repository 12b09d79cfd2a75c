//! The progress line of `canary run`: drawn on stderr when it is a terminal (a real
//! pseudo-terminal here), never when stderr is piped or with `--quiet`.

mod common;
use common::*;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

/// Runs `canary ARGS` with stderr on a fresh pseudo-terminal; returns the exit code and what
/// the terminal showed.
fn on_a_terminal(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors into the integers given; the rest may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned here alone.
    let (master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            OwnedFd::from_raw_fd(slave),
        )
    };
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(slave));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    // The parent's copy of the terminal side goes with `cmd`: reading ends when the child exits.
    drop(cmd);
    let reader = std::thread::spawn(move || {
        let mut master = master;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once the last holder of the terminal side has closed it.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let status = child.wait().unwrap();
    (status.code(), reader.join().unwrap())
}

fn suite(dir: &std::path::Path, sim: &str) -> std::path::PathBuf {
    write(
        dir,
        "g.jsonl",
        "{\"id\": \"fr\", \"input\": {\"text\": \"What is the capital of France?\"}}\n",
    );
    write(
        dir,
        "s.yaml",
        &format!(
            "suite: progress\ndefaults: {{ runs: 4, concurrency: 1, timeout: 10s }}\nendpoints:\n  chat:\n    protocol: openai-chat\n    url: \"{sim}/v1/chat/completions\"\n    model: sim-plain\nprobes:\n  - {{ name: p, endpoint: chat, golden: g.jsonl }}\n"
        ),
    )
}

#[test]
fn progress_appears_on_a_terminal_and_not_when_piped_or_quiet() {
    let sim = Sim::start(8, None);
    let dir = tempfile::tempdir().unwrap();
    let s = suite(dir.path(), &sim.url);
    let s = s.to_str().unwrap();

    let (code, shown) = on_a_terminal(&["run", s], &[]);
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("progress: "), "{shown}");
    assert!(shown.contains("/4 case runs, 0 errors, "), "{shown}");
    assert!(
        shown.contains(" elapsed, ") && shown.contains(" left"),
        "{shown}"
    );
    // The line is erased before the table, so nothing of it is left behind.
    assert!(shown.contains("\r\x1b[2K"), "{shown:?}");

    let (code, shown) = on_a_terminal(&["run", s, "--quiet"], &[]);
    assert_eq!(code, Some(0), "{shown}");
    assert!(!shown.contains("/4 case runs"), "{shown}");

    let out = canary(&["run", s], &[]);
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{so}\n{se}");
    assert!(
        !se.contains("/4 case runs") && !so.contains("/4 case runs"),
        "{se}"
    );
    assert!(!se.contains('\r'), "{se:?}");
}
