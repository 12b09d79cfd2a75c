//! The in-process load runner: many case runs with a bounded number in flight, closed-loop
//! (a run starts as soon as a slot is free) or open-loop (each run is due at a scheduled time
//! and waits for a slot if none is free, as a fixed-rate prober does). Each run keeps its
//! timeline and its observation, built by the same drivers and measures as `canary run`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::drivers::{self, RunVars};
use crate::observation::Observation;
use crate::suite::{Case, Endpoint};
use crate::timeline::Timeline;

/// One case run to make.
#[derive(Clone)]
pub struct Job {
    pub endpoint: Arc<Endpoint>,
    pub case: Arc<Case>,
    pub run: u32,
    /// Open loop: when the run is due, after the start of the load.
    pub due: Option<Duration>,
}

/// One finished run.
pub struct Done {
    /// Position of the job in the list given.
    pub index: usize,
    pub timeline: Timeline,
    pub observation: Observation,
    /// Open loop: wall-clock time the run was due (seconds since the Unix epoch).
    pub due_unix: Option<f64>,
}

/// Probe name the runs carry.
pub const PROBE: &str = "bench";

/// Runs `jobs` in order with at most `in_flight` at once, each under `deadline`.
pub async fn run(jobs: Vec<Job>, in_flight: usize, deadline: Duration) -> Vec<Done> {
    let permits = Arc::new(Semaphore::new(in_flight.max(1)));
    let start = tokio::time::Instant::now();
    let start_unix = super::fidelity::unix(SystemTime::now());
    let mut set = JoinSet::new();
    for (index, job) in jobs.into_iter().enumerate() {
        if let Some(due) = job.due {
            tokio::time::sleep_until(start + due).await;
        }
        // The slot is taken in order: a run that finds none waits here, late for its schedule.
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        set.spawn(async move {
            let _permit = permit;
            let vars = RunVars {
                run: job.run,
                ..RunVars::default()
            };
            let timeline = drivers::run_case(&job.endpoint, &job.case, vars, deadline).await;
            let observation = Observation::from_timeline(
                &job.endpoint,
                PROBE,
                &job.case,
                job.run,
                Duration::from_secs(1),
                &timeline,
            );
            Done {
                index,
                timeline,
                observation,
                due_unix: job.due.map(|d| start_unix + d.as_secs_f64()),
            }
        });
    }
    let mut out = Vec::new();
    while let Some(j) = set.join_next().await {
        if let Ok(d) = j {
            out.push(d);
        }
    }
    out.sort_by_key(|d| d.index);
    out
}
