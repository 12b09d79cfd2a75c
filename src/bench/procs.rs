//! Child processes of the benchmark: the simulator (`canary sim`, a process of its own so its
//! work is not counted as canary's), and measured commands (`canary run`, a peer tool) with
//! the CPU time and peak memory of their whole process tree.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::BenchError;
use crate::procfs;

/// The simulator in a child process; killed when dropped.
pub struct SimProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl SimProcess {
    /// Starts `exe sim --listen 127.0.0.1:0 --seed SEED` and waits for its address.
    pub fn start(exe: &Path, seed: u64) -> Result<SimProcess, BenchError> {
        let mut cmd = Command::new(exe);
        die_with_parent(&mut cmd);
        let mut child = cmd
            .args([
                "sim",
                "--listen",
                "127.0.0.1:0",
                "--seed",
                &seed.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| BenchError::Spawn(format!("{} sim: {e}", exe.display())))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err(BenchError::Spawn("the simulator has no stdout".into()));
        };
        // The first line, read on a thread of its own so that a simulator that never says
        // where it listens cannot hang the benchmark; the rest is drained so that a full pipe
        // never blocks it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout);
            let mut first = String::new();
            let read = lines.read_line(&mut first);
            let _ = tx.send(read.map(|_| first));
            let mut sink = Vec::new();
            let _ = lines.read_to_end(&mut sink);
        });
        let first = rx
            .recv_timeout(Duration::from_secs(10))
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let Some(base) = first
            .trim()
            .strip_prefix("canary sim listening on ")
            .map(str::to_string)
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(BenchError::Spawn(format!(
                "the simulator did not say where it listens within 10 s (said {first:?})"
            )));
        };
        Ok(SimProcess { child, base })
    }

    /// The process id (for its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a measured command cost.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Cost {
    pub wall_seconds: f64,
    /// User + system CPU of the command and every descendant it waited for.
    pub cpu_seconds: f64,
    /// Sum over the process tree of each process's peak resident set: for a single process
    /// its peak; for several, an upper bound (peaks at different times, and pages shared
    /// between processes, are added up).
    pub peak_rss_bytes: u64,
    /// Processes seen in the tree.
    pub processes: usize,
    pub exit_code: Option<i32>,
    /// Wall-clock time of the spawn (seconds since the Unix epoch).
    pub spawned_unix: f64,
}

/// CPU seconds a process has spent so far (`utime + stime`).
pub fn process_cpu(pid: u32) -> Option<f64> {
    procfs::cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// Parent of every process now running.
fn parents() -> HashMap<u32, u32> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(ppid) = procfs::parent(pid) {
            out.insert(pid, ppid);
        }
    }
    out
}

/// `root` and its descendants now running.
fn tree(root: u32) -> Vec<u32> {
    let parents = parents();
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, ppid) in &parents {
        children.entry(*ppid).or_default().push(*pid);
    }
    let mut out = vec![root];
    let mut k = 0;
    while k < out.len() {
        if let Some(c) = children.get(&out[k]) {
            out.extend(c);
        }
        k += 1;
    }
    out
}

/// Peak resident set of a process so far (`VmHWM`), in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    procfs::peak_rss(&format!("/proc/{pid}/status"))
}

/// A child that the kernel kills when this process ends (Ctrl-C, a crash), so that no
/// simulator is left listening.
fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
}

/// Kills every process of the group `pgid` (a measured command and what it started).
fn kill_group(pgid: u32) {
    if let Ok(pgid) = i32::try_from(pgid) {
        // SAFETY: a plain syscall; a negative pid names the process group.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Runs `cmd` to its end in a process group of its own (the whole group is killed after
/// `limit`, and whatever it leaves behind when it ends), sampling its process tree every
/// 20 ms for peak memory; CPU comes from the kernel's accounting of waited-for children, so
/// it is exact whatever the sampling missed. Blocking: call from a blocking thread.
pub fn run_measured(cmd: &mut Command, limit: Duration) -> Result<Cost, BenchError> {
    use std::os::unix::process::CommandExt;
    let cpu0 = procfs::children_cpu_seconds();
    let spawned_unix = super::fidelity::unix(std::time::SystemTime::now());
    let started = Instant::now();
    die_with_parent(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| BenchError::Spawn(format!("{cmd:?}: {e}")))?;
    let root = child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut peaks: BTreeMap<u32, u64> = BTreeMap::new();
            while !stop.load(Ordering::Relaxed) {
                for pid in tree(root) {
                    if let Some(hwm) = peak_rss(pid) {
                        let e = peaks.entry(pid).or_default();
                        *e = (*e).max(hwm);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            peaks
        })
    };
    let mut killed = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if started.elapsed() > limit => {
                killed = true;
                kill_group(root);
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => break None,
        }
    };
    kill_group(root);
    let wall = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let peaks = sampler.join().unwrap_or_default();
    let cpu = match (cpu0, procfs::children_cpu_seconds()) {
        (Some(a), Some(b)) => b - a,
        _ => 0.0,
    };
    if killed {
        return Err(BenchError::Spawn(format!(
            "{cmd:?} did not finish within {}s",
            limit.as_secs()
        )));
    }
    Ok(Cost {
        wall_seconds: wall,
        cpu_seconds: cpu,
        peak_rss_bytes: peaks.values().sum(),
        processes: peaks.len(),
        exit_code: status.and_then(|s| s.code()),
        spawned_unix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measured_command_reports_its_cpu_and_memory() {
        // A shell that burns CPU in a child for a while.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"]);
        let c = run_measured(&mut cmd, Duration::from_secs(60)).unwrap();
        assert_eq!(c.exit_code, Some(0));
        assert!(c.cpu_seconds > 0.0, "{c:?}");
        assert!(c.cpu_seconds <= c.wall_seconds + 0.05, "{c:?}");
        assert!(c.peak_rss_bytes > 0 && c.processes >= 1, "{c:?}");
    }

    #[test]
    fn a_command_past_its_limit_is_killed_and_reported() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let t = Instant::now();
        let e = run_measured(&mut cmd, Duration::from_millis(200));
        assert!(e.is_err());
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
