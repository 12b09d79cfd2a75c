//! Progress of a long `canary run` on a terminal: one stderr line redrawn in place with the
//! case runs done of the total, errors so far, time elapsed and an estimate of the time left.
//! Nothing is drawn when stderr is not a terminal (piped, a CronJob's log) or with `--quiet`;
//! the line is erased before the run's table is printed.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::schedule::executor::ProgressSink;

/// How often the line is redrawn.
const EVERY: Duration = Duration::from_millis(200);

/// A progress line shared by the executor (which counts) and a drawing thread.
#[derive(Debug)]
pub struct Progress {
    total: AtomicUsize,
    done: AtomicUsize,
    errors: AtomicUsize,
    active: AtomicBool,
    /// The suite being run and when it started; the lock also keeps a draw and an erase apart.
    state: Mutex<(String, Instant, bool)>,
}

impl Progress {
    /// A progress line on stderr when it is a terminal and the run is not quiet.
    pub fn for_terminal(quiet: bool) -> Option<Arc<dyn ProgressSink>> {
        if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            return None;
        }
        let p = Arc::new(Progress {
            total: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            errors: AtomicUsize::new(0),
            active: AtomicBool::new(false),
            state: Mutex::new((String::new(), Instant::now(), false)),
        });
        let weak = Arc::downgrade(&p);
        // The thread ends with the last reference to the progress.
        let spawned = std::thread::Builder::new()
            .name("canary-progress".into())
            .spawn(move || loop {
                std::thread::sleep(EVERY);
                let Some(p) = weak.upgrade() else { return };
                p.draw();
            });
        spawned.ok().map(|_| p as Arc<dyn ProgressSink>)
    }

    /// A suite of `total` case runs starts.
    pub fn begin(&self, suite: &str, total: usize) {
        if let Ok(mut s) = self.state.lock() {
            *s = (suite.to_string(), Instant::now(), false);
        }
        self.total.store(total, Ordering::SeqCst);
        self.done.store(0, Ordering::SeqCst);
        self.errors.store(0, Ordering::SeqCst);
        self.active.store(true, Ordering::SeqCst);
    }

    /// A case run finished.
    pub fn finished(&self, error: bool) {
        self.done.fetch_add(1, Ordering::SeqCst);
        if error {
            self.errors.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The suite's runs are over: the line is erased.
    pub fn end(&self) {
        self.active.store(false, Ordering::SeqCst);
        if let Ok(mut s) = self.state.lock() {
            if s.2 {
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[2K");
                let _ = err.flush();
                s.2 = false;
            }
        }
    }

    fn draw(&self) {
        if !self.active.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut s) = self.state.lock() else { return };
        let line = line(
            &s.0,
            self.done.load(Ordering::SeqCst),
            self.total.load(Ordering::SeqCst),
            self.errors.load(Ordering::SeqCst),
            s.1.elapsed(),
        );
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        s.2 = true;
    }
}

impl ProgressSink for Progress {
    fn begin(&self, suite: &str, total: usize) {
        Progress::begin(self, suite, total);
    }
    fn finished(&self, error: bool) {
        Progress::finished(self, error);
    }
    fn end(&self) {
        Progress::end(self);
    }
}

/// `chat: 37/120 case runs, 2 errors, 12s elapsed, ~28s left`.
pub fn line(suite: &str, done: usize, total: usize, errors: usize, elapsed: Duration) -> String {
    let left = if done == 0 || done >= total {
        "?".to_string()
    } else {
        let per = elapsed.as_secs_f64() / done as f64;
        format!("~{}", secs((per * (total - done) as f64).round()))
    };
    format!(
        "{suite}: {done}/{total} case runs, {}, {} elapsed, {left} left",
        crate::sink::table::plural(errors, "error"),
        secs(elapsed.as_secs_f64().floor())
    )
}

/// `45s`, `3m05s`, `1h02m`.
fn secs(s: f64) -> String {
    let s = s.max(0.0) as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_done_errors_elapsed_and_left() {
        let l = line("chat", 30, 120, 2, Duration::from_secs(15));
        assert_eq!(
            l,
            "chat: 30/120 case runs, 2 errors, 15s elapsed, ~45s left"
        );
        let l = line("chat", 0, 10, 0, Duration::from_millis(300));
        assert_eq!(l, "chat: 0/10 case runs, 0 errors, 0s elapsed, ? left");
        assert_eq!(secs(185.0), "3m05s");
        assert_eq!(secs(3720.0), "1h02m");
    }

    #[test]
    fn no_progress_when_stderr_is_not_a_terminal() {
        // `cargo test` captures stderr through a pipe or a file.
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            assert!(Progress::for_terminal(false).is_none());
        }
        assert!(Progress::for_terminal(true).is_none());
    }
}
