//! History: every observation `serve` makes, in an embedded SQLite database (WAL mode),
//! written as runs complete. Each run's SLO judgments are stored as events, so burn rates and
//! budgets resume where they were after a restart.
//!
//! Retention and compaction keep it bounded: full case records for `records_for` (default 1
//! day); SLO events older than 1 day rolled up into hourly sums; everything older than the
//! longest SLO window + 1 day deleted; the file's free pages returned by incremental vacuum.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::slo::burn::Events;

/// A history error: the database could not be opened, read or written (SQLite's own error
/// is kept as the source, so a caller can tell a busy or full database from a corrupt one).
#[derive(Debug, thiserror::Error)]
#[error("history database: {source}")]
pub struct HistoryError {
    #[from]
    source: rusqlite::Error,
}

impl HistoryError {
    /// SQLite's error code, when SQLite itself failed (not a type conversion).
    pub fn sqlite_code(&self) -> Option<rusqlite::ErrorCode> {
        self.source.sqlite_error_code()
    }
}

/// One stored case run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: i64,
    pub ts: f64,
    pub suite: String,
    pub endpoint: String,
    pub probe: String,
    pub case_id: String,
    pub slice: String,
    pub outcome: String,
    pub error: Option<String>,
    /// Latency SLIs as JSON (`{"time_to_first_byte": 0.12, ...}`).
    pub latency: String,
    /// The full case record (the report's case JSON).
    pub record: String,
}

/// One SLO judgment of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct SloEvent {
    pub ts: f64,
    pub suite: String,
    pub slo: String,
    pub slice: String,
    pub good: u64,
    pub total: u64,
}

/// The database.
pub struct History {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL, suite TEXT NOT NULL, endpoint TEXT NOT NULL, probe TEXT NOT NULL,
    case_id TEXT NOT NULL, slice TEXT NOT NULL, outcome TEXT NOT NULL, error TEXT,
    latency TEXT NOT NULL, record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_probe_ts ON runs(suite, probe, ts);
CREATE INDEX IF NOT EXISTS runs_ts ON runs(ts);
CREATE TABLE IF NOT EXISTS slo_events (
    ts REAL NOT NULL, suite TEXT NOT NULL, slo TEXT NOT NULL, slice TEXT NOT NULL,
    good INTEGER NOT NULL, total INTEGER NOT NULL, rolled INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS slo_events_key ON slo_events(suite, slo, ts);
";

impl History {
    /// Opens (or creates) the database in WAL mode.
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    /// An in-memory database (tests).
    pub fn in_memory() -> Result<History, HistoryError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<History, HistoryError> {
        // auto_vacuum must be chosen before the first table exists.
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")?;
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;")?;
        conn.execute_batch(SCHEMA)?;
        Ok(History {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores runs and their SLO events in one transaction; returns the runs' ids.
    pub fn insert(&self, runs: &[RunRow], events: &[SloEvent]) -> Result<Vec<i64>, HistoryError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut ids = Vec::with_capacity(runs.len());
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO runs (ts, suite, endpoint, probe, case_id, slice, outcome, error, latency, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            for r in runs {
                st.execute(params![
                    r.ts, r.suite, r.endpoint, r.probe, r.case_id, r.slice, r.outcome, r.error,
                    r.latency, r.record
                ])?;
                ids.push(tx.last_insert_rowid());
            }
            let mut ev = tx.prepare_cached("INSERT INTO slo_events (ts, suite, slo, slice, good, total) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
            for e in events {
                ev.execute(params![
                    e.ts,
                    e.suite,
                    e.slo,
                    e.slice,
                    e.good as i64,
                    e.total as i64
                ])?;
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    /// SLO events of one SLO since `since`, per slice (the aggregate is their sum).
    pub fn slo_events(
        &self,
        suite: &str,
        slo: &str,
        since: f64,
    ) -> Result<Vec<(String, Events)>, HistoryError> {
        let conn = self.lock();
        let mut st = conn.prepare_cached(
            "SELECT slice, ts, good, total FROM slo_events WHERE suite = ?1 AND slo = ?2 AND ts > ?3 ORDER BY ts",
        )?;
        let rows = st.query_map(params![suite, slo, since], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Events {
                    at: r.get(1)?,
                    good: r.get::<_, i64>(2)?.max(0) as u64,
                    total: r.get::<_, i64>(3)?.max(0) as u64,
                },
            ))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// The most recent runs of a probe (newest first).
    pub fn recent_runs(
        &self,
        suite: &str,
        probe: &str,
        limit: usize,
    ) -> Result<Vec<RunRow>, HistoryError> {
        let conn = self.lock();
        let mut st = conn.prepare_cached(
            "SELECT id, ts, suite, endpoint, probe, case_id, slice, outcome, error, latency, record
             FROM runs WHERE suite = ?1 AND probe = ?2 ORDER BY ts DESC, id DESC LIMIT ?3",
        )?;
        let rows = st.query_map(params![suite, probe, limit as i64], row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// `(ts, slice, outcome, latency JSON)` of a probe's runs since `since`, oldest first: what the
    /// status page charts (without reading the full case records).
    pub fn latencies_since(
        &self,
        suite: &str,
        probe: &str,
        since: f64,
    ) -> Result<Vec<(f64, String, String, String)>, HistoryError> {
        let conn = self.lock();
        let mut st = conn.prepare_cached("SELECT ts, slice, outcome, latency FROM runs WHERE suite = ?1 AND probe = ?2 AND ts > ?3 ORDER BY ts")?;
        let rows = st.query_map(params![suite, probe, since], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// The most recent failed runs across all probes (newest first).
    pub fn recent_failures(&self, limit: usize) -> Result<Vec<RunRow>, HistoryError> {
        let conn = self.lock();
        let mut st = conn.prepare_cached(
            "SELECT id, ts, suite, endpoint, probe, case_id, slice, outcome, error, latency, record
             FROM runs WHERE outcome != 'ok' ORDER BY ts DESC, id DESC LIMIT ?1",
        )?;
        let rows = st.query_map(params![limit as i64], row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// One run by id.
    pub fn run(&self, id: i64) -> Result<Option<RunRow>, HistoryError> {
        let conn = self.lock();
        Ok(conn
            .query_row(
                "SELECT id, ts, suite, endpoint, probe, case_id, slice, outcome, error, latency, record FROM runs WHERE id = ?1",
                params![id],
                row,
            )
            .optional()?)
    }

    /// Applies retention and compaction at `now`: case records older than `records_for` go;
    /// SLO events older than a day become hourly sums; events older than `keep` go.
    pub fn compact(
        &self,
        now: f64,
        records_for: Duration,
        keep: Duration,
    ) -> Result<(), HistoryError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM runs WHERE ts < ?1",
            params![now - records_for.as_secs_f64()],
        )?;
        tx.execute(
            "DELETE FROM slo_events WHERE ts < ?1",
            params![now - keep.as_secs_f64()],
        )?;
        // Whole hours before an hour-aligned cut, each stamped at its last event (never later).
        let cut = ((now - 86400.0) / 3600.0).floor() * 3600.0;
        tx.execute(
            "INSERT INTO slo_events (ts, suite, slo, slice, good, total, rolled)
             SELECT MAX(ts), suite, slo, slice, SUM(good), SUM(total), 1
             FROM slo_events WHERE ts < ?1 AND rolled = 0 GROUP BY CAST(ts / 3600 AS INTEGER), suite, slo, slice",
            params![cut],
        )?;
        tx.execute(
            "DELETE FROM slo_events WHERE ts < ?1 AND rolled = 0",
            params![cut],
        )?;
        tx.commit()?;
        conn.execute_batch("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }

    /// Row counts (runs, slo events), for health and benchmarks.
    pub fn counts(&self) -> Result<(i64, i64), HistoryError> {
        let conn = self.lock();
        let runs = conn.query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0))?;
        let events = conn.query_row("SELECT COUNT(*) FROM slo_events", [], |r| r.get(0))?;
        Ok((runs, events))
    }

    /// Flushes the WAL into the database file (on shutdown).
    pub fn checkpoint(&self) -> Result<(), HistoryError> {
        self.lock()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }
}

fn row(r: &rusqlite::Row) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        ts: r.get(1)?,
        suite: r.get(2)?,
        endpoint: r.get(3)?,
        probe: r.get(4)?,
        case_id: r.get(5)?,
        slice: r.get(6)?,
        outcome: r.get(7)?,
        error: r.get(8)?,
        latency: r.get(9)?,
        record: r.get(10)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unopenable_database_keeps_sqlites_error_as_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let Err(e) = History::open(&dir.path().join("no-such-dir/h.db")) else {
            panic!("a database in a missing directory opened");
        };
        assert_eq!(e.sqlite_code(), Some(rusqlite::ErrorCode::CannotOpen));
        let source = std::error::Error::source(&e).map(|s| s.to_string());
        assert!(source.is_some_and(|s| s.contains("unable to open")), "{e}");
        assert!(e.to_string().starts_with("history database: "), "{e}");
    }

    fn run(ts: f64, outcome: &str) -> RunRow {
        RunRow {
            id: 0,
            ts,
            suite: "s".into(),
            endpoint: "e".into(),
            probe: "p".into(),
            case_id: "c".into(),
            slice: "a".into(),
            outcome: outcome.into(),
            error: None,
            latency: "{}".into(),
            record: "{}".into(),
        }
    }

    fn ev(ts: f64, good: u64) -> SloEvent {
        SloEvent {
            ts,
            suite: "s".into(),
            slo: "x".into(),
            slice: "a".into(),
            good,
            total: 1,
        }
    }

    #[test]
    fn stores_and_reads_back_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        {
            let h = History::open(&path).unwrap();
            let ids = h
                .insert(
                    &[run(10.0, "ok"), run(20.0, "timeout")],
                    &[ev(10.0, 1), ev(20.0, 0)],
                )
                .unwrap();
            assert_eq!(ids.len(), 2);
            assert_eq!(h.run(ids[1]).unwrap().unwrap().outcome, "timeout");
            h.checkpoint().unwrap();
        }
        let h = History::open(&path).unwrap();
        let e = h.slo_events("s", "x", 0.0).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].1.good, 0);
        assert_eq!(h.recent_runs("s", "p", 1).unwrap()[0].ts, 20.0);
        assert_eq!(h.recent_failures(10).unwrap().len(), 1);
        assert!(h.run(999).unwrap().is_none());
    }

    #[test]
    fn compaction_rolls_up_old_events_and_keeps_the_sums() {
        let h = History::in_memory().unwrap();
        let now = 10.0 * 86400.0;
        let mut events = Vec::new();
        // Two days ago: 120 events over one hour, 30 bad.
        for i in 0..120 {
            events.push(ev(
                now - 2.0 * 86400.0 + i as f64 * 30.0,
                u64::from(i % 4 != 0),
            ));
        }
        // Recent: 10 events kept raw.
        for i in 0..10 {
            events.push(ev(now - 100.0 + i as f64, 1));
        }
        // Too old: beyond retention.
        events.push(ev(now - 40.0 * 86400.0, 0));
        h.insert(
            &[run(now - 3.0 * 86400.0, "ok"), run(now - 10.0, "ok")],
            &events,
        )
        .unwrap();
        h.compact(
            now,
            Duration::from_secs(86400),
            Duration::from_secs(31 * 86400),
        )
        .unwrap();
        let e = h.slo_events("s", "x", 0.0).unwrap();
        let (good, total) = e
            .iter()
            .fold((0, 0), |(g, t), (_, x)| (g + x.good, t + x.total));
        assert_eq!(
            (good, total),
            (90 + 10, 120 + 10),
            "sums survive the rollup"
        );
        // 120 events over one hour (crossing at most one hour boundary) became 1 or 2 rows.
        let rolled: Vec<&(String, Events)> =
            e.iter().filter(|(_, x)| x.at < now - 86400.0).collect();
        assert!((1..=2).contains(&rolled.len()), "{}", rolled.len());
        assert_eq!(e.len() - rolled.len(), 10, "recent events stay raw");
        // A rolled row is stamped at its last event, never later.
        let last_old = now - 2.0 * 86400.0 + 119.0 * 30.0;
        assert!(rolled.iter().all(|(_, x)| x.at <= last_old), "{rolled:?}");
        assert_eq!(h.counts().unwrap().0, 1, "old case records are gone");
    }
}
