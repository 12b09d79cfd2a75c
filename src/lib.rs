//! canary: a synthetic probe fleet and quality canary for AI endpoints.
//!
//! # Layout
//!
//! The flow is suite -> plan -> driver -> timeline -> measures + checks -> observation ->
//! aggregation + SLO verdicts -> sinks. One module per stage:
//!
//! - [`suite`]: YAML suites and JSONL golden sets, two-stage loading with located errors.
//! - [`schedule`]: the executor (concurrency limit, hard deadline per case run).
//! - [`drivers`]: one per protocol; each performs a request and records a timeline.
//! - [`timeline`]: events stamped on one monotonic clock; error classes.
//! - [`measure`]: pure latency SLI definitions and the SLI registry.
//! - [`check`]: pure judgments of the answer (schema, golden `expect`, fallback, tier).
//! - [`observation`]: one measured and judged case run.
//! - [`slo`]: per-slice aggregation and SLO verdicts.
//! - [`sink`]: JSON report and terminal table, the metrics model and its outputs.
//! - [`gate`]: the pre-release gate (candidate vs baseline, per slice, with statistics).
//! - [`serve`]: the long-running monitor (schedules, SQLite history, SLO state API, status page).
//! - [`sim`]: the reference simulator with ground truth.
//! - [`bench`]: fidelity and cost benchmarks against the simulator's truth and a peer.
//! - [`cli`]: the command line.
//! - [`exit`]: the exit codes every command uses.
//! - [`quickstart`]: `canary probe URL` and `canary init KIND`, the first ten minutes.
//! - [`examples`]: the example suites and golden sets the demo carries in the binary.
//! - [`secret`]: redaction of credentials from everything that leaves the process.
//! - [`tls`]: TLS client configurations (roots, client certificates), shared by the suite
//!   loader and the drivers.

#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod audio;
pub mod bench;
pub mod check;
pub mod cli;
pub mod drivers;
pub mod examples;
pub mod exit;
pub mod fuzzing;
pub mod gate;
pub mod measure;
pub mod net;
pub mod observation;
pub mod procfs;
pub mod quickstart;
pub mod rng;
pub mod schedule;
pub mod secret;
pub mod serve;
pub mod sim;
pub mod sink;
pub mod slo;
pub mod suite;
pub mod timeline;
