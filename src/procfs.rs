//! Linux `/proc` readings and process limits: the CPU time and peak memory of a process or a
//! thread, the parent of a process, resetting a peak, and the open-file limit
//! (`RLIMIT_NOFILE`), which a probe holding one socket per stream in flight raises at start.
//! `None` where `/proc` is absent or a file cannot be read.

/// Clock ticks per second of `/proc` CPU times (`getconf CLK_TCK`, 100 on Linux).
const CLK_TCK: f64 = 100.0;

/// The fields of a `stat` line after the command name (field 3 on), so that index `k` is
/// field `k + 3` of proc(5); the name may hold spaces and parentheses.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    Some(stat.rsplit_once(')')?.1.split_whitespace().collect())
}

fn ticks(stat_file: &str, a: usize, b: usize) -> Option<f64> {
    let stat = std::fs::read_to_string(stat_file).ok()?;
    let f = stat_fields(&stat)?;
    Some((f.get(a)?.parse::<f64>().ok()? + f.get(b)?.parse::<f64>().ok()?) / CLK_TCK)
}

/// User + system CPU seconds from a `stat` file: `/proc/self/stat`, `/proc/PID/stat` or
/// `/proc/thread-self/stat`.
pub fn cpu_seconds(stat_file: &str) -> Option<f64> {
    ticks(stat_file, 11, 12)
}

/// User + system CPU seconds of the calling thread.
pub fn thread_cpu_seconds() -> Option<f64> {
    cpu_seconds("/proc/thread-self/stat")
}

/// CPU seconds of this process's children that it has waited for (`cutime + cstime`).
pub fn children_cpu_seconds() -> Option<f64> {
    ticks("/proc/self/stat", 13, 14)
}

/// The parent of a process.
pub fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&stat)?.get(1)?.parse().ok()
}

/// Peak resident memory in bytes (`VmHWM`) from a `status` file: `/proc/self/status` or
/// `/proc/PID/status`.
pub fn peak_rss(status_file: &str) -> Option<u64> {
    let status = std::fs::read_to_string(status_file).ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Resets the peak resident memory (`VmHWM`) of a process to its current size, so that a
/// later [`peak_rss`] covers only what came after (`clear_refs` value 5; this process, or
/// `pid`, a child of the same user). False where the kernel refuses.
pub fn reset_peak_rss(pid: Option<u32>) -> bool {
    let path = match pid {
        Some(p) => format!("/proc/{p}/clear_refs"),
        None => "/proc/self/clear_refs".to_string(),
    };
    std::fs::write(path, "5").is_ok()
}

/// The open-file limit of this process: (soft, hard).
// `rlim_t` is `u64` here but not on every target.
#[allow(clippy::unnecessary_cast)]
pub fn nofile_limit() -> Option<(u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives on this stack.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    (rc == 0).then_some((r.rlim_cur as u64, r.rlim_max as u64))
}

/// Raises the soft open-file limit to the hard one, as Go's runtime does at start: each
/// stream in flight holds a socket, and many systems still start processes with a soft limit
/// of 1024 under a much higher hard one. An unlimited hard limit is taken as the kernel's
/// `fs.nr_open`. Returns the soft limit in force afterwards.
#[allow(clippy::unnecessary_cast)]
pub fn raise_nofile_limit() -> Option<u64> {
    let (soft, hard) = nofile_limit()?;
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    let target = hard.min(nr_open);
    if soft >= target {
        return Some(soft);
    }
    let r = libc::rlimit {
        rlim_cur: target as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit only reads the struct it is given.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
    Some(if rc == 0 { target } else { soft })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unnecessary_cast)]
    fn the_open_file_limit_is_raised_to_the_hard_one() {
        let (_, hard) = nofile_limit().unwrap();
        let soft = raise_nofile_limit().unwrap();
        assert_eq!(nofile_limit().unwrap().0, soft);
        // Up to the hard limit, or the kernel's own cap on open files when that is lower.
        let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(1 << 20);
        assert_eq!(soft, hard.min(nr_open), "hard {hard}, nr_open {nr_open}");
        // Lower the soft limit a little (other tests of this process keep their files), then
        // raise it again.
        let low = libc::rlimit {
            rlim_cur: (soft - 1) as libc::rlim_t,
            rlim_max: hard as libc::rlim_t,
        };
        // SAFETY: setrlimit only reads the struct.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);
        assert_eq!(nofile_limit().unwrap().0, soft - 1);
        assert_eq!(raise_nofile_limit(), Some(soft));
    }

    #[test]
    fn a_reset_peak_is_the_current_size() {
        let big = vec![1u8; 128 << 20];
        std::hint::black_box(&big);
        drop(big);
        let before = peak_rss("/proc/self/status").unwrap();
        assert!(reset_peak_rss(None));
        let after = peak_rss("/proc/self/status").unwrap();
        assert!(after + (64 << 20) < before, "{before} -> {after}");
    }

    #[test]
    fn stat_fields_survive_spaces_and_parens_in_the_name() {
        let f = stat_fields("42 (a (b) c) S 7 42 42 0 -1").unwrap();
        assert_eq!(f[0], "S");
        assert_eq!(f[1], "7");
    }

    #[test]
    fn this_process_has_cpu_memory_and_a_parent() {
        if std::fs::metadata("/proc/self/stat").is_err() {
            return; // not Linux
        }
        assert!(cpu_seconds("/proc/self/stat").is_some());
        assert!(cpu_seconds("/proc/thread-self/stat").is_some());
        assert!(children_cpu_seconds().is_some());
        assert!(peak_rss("/proc/self/status").unwrap() > 100_000);
        assert_eq!(
            parent(std::process::id()),
            Some(std::os::unix::process::parent_id())
        );
        assert!(cpu_seconds("/proc/no-such/stat").is_none());
    }
}
