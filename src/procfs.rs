//! Linux `/proc` readings: the CPU time and peak memory of a process or a thread, and the
//! parent of a process. `None` where `/proc` is absent or a file cannot be read.

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

#[cfg(test)]
mod tests {
    use super::*;

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
