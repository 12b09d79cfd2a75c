//! Delivers one run's metrics to every configured output (Pushgateway, remote write,
//! textfile), delivering spooled leftovers first and spooling what fails, so that nothing
//! measured is lost. Returns what went wrong for the operator; a result that could be
//! neither delivered nor spooled is an error.

use std::path::PathBuf;
use std::time::SystemTime;

use base64::Engine;

use super::http_out::Failure;
use super::metrics::MetricsModel;
use super::spool::{self, Entry};
use super::{otlp, push, remote_write, textfile};
use crate::observation::Observation;
use crate::suite::Suite;

/// Where a run's results go besides the terminal.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub report: Option<PathBuf>,
    pub push: Option<String>,
    pub remote_write: Option<String>,
    pub textfile: Option<PathBuf>,
    pub spool: Option<PathBuf>,
    /// OTLP metrics and traces (`--otlp`, `--otlp-traces`, `OTEL_EXPORTER_OTLP_*`).
    pub otlp: otlp::Config,
}

impl Outputs {
    pub fn wants_metrics(&self) -> bool {
        self.push.is_some()
            || self.remote_write.is_some()
            || self.textfile.is_some()
            || self.otlp.enabled()
    }
}

/// The outcome of an export: warnings (delivered later from the spool) or a loss.
#[derive(Debug, Default)]
pub struct Delivery {
    pub warnings: Vec<String>,
    /// Results that could be neither delivered nor spooled.
    pub lost: Vec<String>,
}

fn spool_or_lose(out: &Outputs, entry: &Entry, why: String, d: &mut Delivery) {
    match &out.spool {
        Some(dir) => match spool::save(dir, entry) {
            Ok(p) => d
                .warnings
                .push(format!("{why}; kept in {} for the next run", p.display())),
            Err(e) => d.lost.push(format!("{why}; and spooling failed: {e}")),
        },
        None => d
            .lost
            .push(format!("{why}; no --spool folder to keep it in")),
    }
}

/// Exports one suite's run.
pub async fn export(
    suite: &Suite,
    region: &str,
    observations: &[Observation],
    started: SystemTime,
    finished: SystemTime,
    out: &Outputs,
) -> Delivery {
    let mut d = Delivery::default();
    let model = MetricsModel::from_run(suite, region, observations, finished);

    if let Some(url) = &out.push {
        let mut m = model.clone();
        let own_text = model.encode_text();
        // Spooled counts of this group join this run's before the carry forward.
        let spooled: Vec<(PathBuf, Entry)> = out
            .spool
            .as_deref()
            .map(spool::load)
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, e)| matches!(e, Entry::Push { url: u, region: r, suite: s, .. } if u == url && r == region && s == &suite.name))
            .collect();
        for (_, e) in &spooled {
            if let Entry::Push { text, .. } = e {
                m.carry_forward(&super::expfmt::parse(text));
            }
        }
        match push::push(url, &mut m).await {
            Ok(()) => {
                for (p, _) in &spooled {
                    spool::remove(p);
                }
            }
            // A rejected push would be rejected again: not spooled, reported as lost.
            Err(Failure::Rejected(e)) => d.lost.push(e),
            Err(Failure::Unavailable(e)) => {
                let entry = Entry::Push {
                    url: url.clone(),
                    region: region.to_string(),
                    suite: suite.name.clone(),
                    text: own_text,
                };
                spool_or_lose(out, &entry, e, &mut d);
            }
        }
    }

    if let Some(url) = &out.remote_write {
        let spooled: Vec<(PathBuf, Entry)> = out
            .spool
            .as_deref()
            .map(spool::load)
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, e)| matches!(e, Entry::RemoteWrite { url: u, .. } if u == url))
            .collect();
        let mut blocked = false;
        for (p, e) in &spooled {
            if let Entry::RemoteWrite { body_base64, .. } = e {
                let Ok(body) = base64::engine::general_purpose::STANDARD.decode(body_base64) else {
                    d.warnings.push(format!(
                        "spooled remote write {} is not valid base64; left in place",
                        p.display()
                    ));
                    continue;
                };
                match remote_write::send(url, body.into()).await {
                    Ok(()) => spool::remove(p),
                    Err(Failure::Rejected(e)) => {
                        // Prometheus will never take it (its samples are now out of order, say):
                        // it must not block every later write. Say so and drop it.
                        d.warnings.push(format!(
                            "spooled remote write {} was rejected and is dropped: {e}",
                            p.display()
                        ));
                        spool::remove(p);
                    }
                    Err(Failure::Unavailable(e)) => {
                        d.warnings
                            .push(format!("spooled remote write still undeliverable: {e}"));
                        blocked = true;
                        break;
                    }
                }
            }
        }
        match remote_write::encode(&remote_write::build(&model, started, finished)) {
            Ok(body) => {
                let result = if blocked {
                    Err(Failure::Unavailable(
                        "an older spooled write is still pending; this one waits behind it"
                            .to_string(),
                    ))
                } else {
                    remote_write::send(url, body.clone()).await
                };
                match result {
                    Ok(()) => {}
                    Err(Failure::Rejected(e)) => d
                        .lost
                        .push(format!("remote write to {url} was rejected: {e}")),
                    Err(e) => {
                        let entry = Entry::RemoteWrite {
                            url: url.clone(),
                            body_base64: base64::engine::general_purpose::STANDARD.encode(&body),
                        };
                        spool_or_lose(
                            out,
                            &entry,
                            format!("remote write to {url} failed: {e}"),
                            &mut d,
                        );
                    }
                }
            }
            Err(e) => d.lost.push(e),
        }
    }

    if let Some(path) = &out.textfile {
        let mut m = model.clone();
        if let Err(e) = textfile::write(path, &mut m) {
            d.lost.push(e);
        }
    }

    if let Some(target) = &out.otlp.metrics {
        // Cumulative across runs when a state file keeps the counts.
        let path = out.otlp.state.as_deref().map(otlp::state_path);
        let mut state = match path.as_deref().map(otlp::load_state) {
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                d.warnings.push(format!(
                    "{e}; this run's OTLP metrics start from zero and the file is left as it is"
                ));
                None
            }
            None => None,
        };
        let keep = state.is_some();
        let (m, start) = otlp::cumulative(&model, &suite.name, started, state.as_mut());
        if let (Some(p), Some(s)) = (path.as_deref().filter(|_| keep), &state) {
            if let Err(e) = otlp::save_state(p, s) {
                d.warnings.push(format!(
                    "the OTLP counts could not be kept across runs: {e}"
                ));
            }
        }
        let body = bytes::Bytes::from(prost::Message::encode_to_vec(&otlp::metrics_request(
            &m, suite, &out.otlp, start, finished,
        )));
        deliver_otlp(out, target, otlp::Signal::Metrics, vec![body], &mut d).await;
    }
    if let Some(target) = &out.otlp.traces {
        let bodies = otlp::trace_bodies(observations, suite, region, &out.otlp);
        deliver_otlp(out, target, otlp::Signal::Traces, bodies, &mut d).await;
    }
    d
}

/// Delivers the spooled exports of this URL (oldest first), then `bodies`; spools what the
/// collector could not take now. A rejected export (4xx) is reported, not spooled.
async fn deliver_otlp(
    out: &Outputs,
    target: &otlp::Target,
    signal: otlp::Signal,
    bodies: Vec<bytes::Bytes>,
    d: &mut Delivery,
) {
    let url = &target.url;
    let shown = crate::secret::redact(url);
    let spooled: Vec<(PathBuf, Entry)> = out
        .spool
        .as_deref()
        .map(spool::load)
        .unwrap_or_default()
        .into_iter()
        .filter(
            |(_, e)| matches!(e, Entry::Otlp { url: u, signal: s, .. } if u == url && *s == signal),
        )
        .collect();
    let mut blocked = false;
    for (p, e) in &spooled {
        let Entry::Otlp { body_base64, .. } = e else {
            continue;
        };
        let Ok(body) = base64::engine::general_purpose::STANDARD.decode(body_base64) else {
            d.warnings.push(format!(
                "spooled OTLP export {} is not valid base64; left in place",
                p.display()
            ));
            continue;
        };
        match otlp::send(target, signal, body.into()).await {
            Ok(partial) => {
                d.warnings.extend(partial);
                spool::remove(p);
            }
            Err(Failure::Rejected(e)) => {
                d.warnings.push(format!(
                    "spooled OTLP export {} was rejected by {shown} and is dropped: {e}",
                    p.display()
                ));
                spool::remove(p);
            }
            Err(Failure::Unavailable(e)) => {
                d.warnings
                    .push(format!("spooled OTLP exports still undeliverable: {e}"));
                blocked = true;
                break;
            }
        }
    }
    for body in bodies {
        let result = if blocked {
            Err(Failure::Unavailable(
                "an older spooled export is still pending; this one waits behind it".to_string(),
            ))
        } else {
            otlp::send(target, signal, body.clone()).await
        };
        match result {
            Ok(partial) => d.warnings.extend(partial),
            Err(Failure::Rejected(e)) => d
                .lost
                .push(format!("OTLP export to {shown} was rejected: {e}")),
            Err(Failure::Unavailable(e)) => {
                blocked = true;
                let entry = Entry::Otlp {
                    signal,
                    url: url.clone(),
                    body_base64: base64::engine::general_purpose::STANDARD.encode(&body),
                };
                spool_or_lose(
                    out,
                    &entry,
                    format!("OTLP export to {shown} failed: {e}"),
                    d,
                );
            }
        }
    }
}
