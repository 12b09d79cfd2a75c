//! The scheduler of `serve`: one loop per probe that fires on its cron schedule plus a stable
//! per-probe splay (so regions and probes do not fire in lockstep), skips a tick while the
//! previous run is still going (overrun: counted, never stacked), and stops on shutdown.
//! Time comes from tokio's clock, so tests drive it with paused time.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::suite::cron::CronSchedule;

/// A stable offset in `[0, splay)` for one probe of one region (FNV-1a of the names).
pub fn splay_offset(region: &str, suite: &str, probe: &str, splay: Duration) -> Duration {
    if splay.is_zero() {
        return Duration::ZERO;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in region
        .bytes()
        .chain([0])
        .chain(suite.bytes())
        .chain([0])
        .chain(probe.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Duration::from_nanos(h % splay.as_nanos().max(1) as u64)
}

/// Maps tokio's monotonic clock to wall time from a common starting point.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    mono: Instant,
    wall: DateTime<Utc>,
}

impl Clock {
    pub fn start() -> Self {
        Clock {
            mono: Instant::now(),
            wall: Utc::now(),
        }
    }

    pub fn wall_now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(Instant::now() - self.mono).unwrap_or_default();
        self.wall + elapsed
    }

    /// The monotonic instant of the schedule's next firing after now (plus the splay).
    pub fn next_fire(&self, schedule: &CronSchedule, splay: Duration) -> Option<Instant> {
        let now = self.wall_now();
        let next = schedule.next_after(&now)?;
        let ahead = (next - now).to_std().unwrap_or_default();
        Some(Instant::now() + ahead + splay)
    }
}

/// Counters of one probe's loop.
#[derive(Debug, Default)]
pub struct LoopStats {
    pub fired: AtomicU64,
    pub skipped: AtomicU64,
}

/// What a tick runs.
pub type Runner = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Runs `runner` on every firing of `schedule` until `stop` turns true. A tick that finds the
/// previous run still going is skipped and counted. Returns the last run's handle (still
/// running, perhaps) so that shutdown can wait for it.
pub async fn probe_loop(
    schedule: CronSchedule,
    splay: Duration,
    clock: Clock,
    runner: Runner,
    stats: Arc<LoopStats>,
    mut stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let mut running: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        let Some(at) = clock.next_fire(&schedule, splay) else {
            break;
        };
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            _ = stop.changed() => break,
        }
        if running.as_ref().is_some_and(|h| !h.is_finished()) {
            stats.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(schedule = %schedule.expr, "previous run still going: tick skipped");
            continue;
        }
        stats.fired.fetch_add(1, Ordering::Relaxed);
        running = Some(tokio::spawn((runner)()));
    }
    running
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::cron;
    use std::sync::atomic::AtomicUsize;

    fn counting_runner(runs: Arc<AtomicUsize>, takes: Duration) -> Runner {
        Arc::new(move || {
            let runs = runs.clone();
            Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(takes).await;
            })
        })
    }

    #[test]
    fn splay_is_stable_bounded_and_spreads_probes() {
        let s = Duration::from_secs(30);
        let a = splay_offset("eu", "s", "p1", s);
        assert_eq!(a, splay_offset("eu", "s", "p1", s));
        assert!(a < s);
        assert_ne!(a, splay_offset("us", "s", "p1", s));
        assert_ne!(a, splay_offset("eu", "s", "p2", s));
        assert_eq!(splay_offset("eu", "s", "p", Duration::ZERO), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn fires_once_per_period_on_paused_time() {
        let runs = Arc::new(AtomicUsize::new(0));
        let stats = Arc::new(LoopStats::default());
        let (tx, rx) = watch::channel(false);
        let sched = cron::parse("*/10 * * * * *").unwrap(); // every 10 seconds
        let h = tokio::spawn(probe_loop(
            sched,
            Duration::ZERO,
            Clock::start(),
            counting_runner(runs.clone(), Duration::from_millis(10)),
            stats.clone(),
            rx,
        ));
        tokio::time::sleep(Duration::from_secs(95)).await;
        let _ = tx.send(true);
        let _ = h.await;
        let n = runs.load(Ordering::SeqCst);
        assert!((9..=10).contains(&n), "{n} runs in 95 s at one per 10 s");
        assert_eq!(stats.skipped.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_overrunning_probe_skips_ticks_instead_of_stacking() {
        let runs = Arc::new(AtomicUsize::new(0));
        let stats = Arc::new(LoopStats::default());
        let (tx, rx) = watch::channel(false);
        let sched = cron::parse("*/10 * * * * *").unwrap();
        // Each run takes 25 s: of every three ticks, two find it still going.
        let h = tokio::spawn(probe_loop(
            sched,
            Duration::ZERO,
            Clock::start(),
            counting_runner(runs.clone(), Duration::from_secs(25)),
            stats.clone(),
            rx,
        ));
        tokio::time::sleep(Duration::from_secs(120)).await;
        let _ = tx.send(true);
        let last = h.await.unwrap();
        let fired = stats.fired.load(Ordering::SeqCst);
        let skipped = stats.skipped.load(Ordering::SeqCst);
        assert_eq!(fired as usize, runs.load(Ordering::SeqCst));
        assert!((3..=5).contains(&fired), "fired {fired}");
        assert!(skipped >= 6, "skipped {skipped}");
        assert!(last.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn splay_delays_the_first_run() {
        let runs = Arc::new(AtomicUsize::new(0));
        let stats = Arc::new(LoopStats::default());
        let (tx, rx) = watch::channel(false);
        let sched = cron::parse("0 * * * * *").unwrap(); // every minute
        let splay = Duration::from_secs(40);
        let clock = Clock::start();
        // When the first run is due: the next minute boundary plus the splay.
        let first = clock.next_fire(&sched, splay).unwrap() - Instant::now();
        assert!(first >= splay);
        let h = tokio::spawn(probe_loop(
            sched,
            splay,
            clock,
            counting_runner(runs.clone(), Duration::ZERO),
            stats,
            rx,
        ));
        tokio::time::sleep(first - Duration::from_secs(1)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 0, "not before the splay");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1, "right after it");
        let _ = tx.send(true);
        let _ = h.await;
    }
}
