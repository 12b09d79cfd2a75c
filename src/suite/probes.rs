//! The `probes:` section: one probe's keys turned into a [`Probe`] (its endpoint, `stall`,
//! timeout, runs, cron `schedule`, `stop_after`, `expected_output_tokens`, the rotation of
//! `sample` or `budget` with its `coverage`, the judge and embeddings endpoints) and its
//! golden set compiled case by case through `golden.rs`; the quality signals (`freshness`,
//! `canary_fact`) are read by `quality.rs`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::cron::{self, CronError, CronSchedule};
use super::ctx::{k, normalize, p, Ctx};
use super::diag::{suggest, Diagnostic};
use super::golden;
use super::model::*;
use super::raw::*;
use super::yaml::Seg;

/// One probe of `probes:`; `default_schedule` is the parsed `defaults.schedule`.
pub(super) fn build_probe(
    raw: RawProbe,
    defaults: &Defaults,
    default_schedule: Option<&Result<CronSchedule, CronError>>,
    endpoints: &BTreeMap<String, Arc<Endpoint>>,
    endpoint_names: &[String],
    path: &[Seg],
    ctx: &mut Ctx,
) -> Option<Probe> {
    let before = ctx.diags.len();
    if raw.name.trim().is_empty() {
        ctx.err(&p(path, &[k("name")]), "probe name must not be empty");
    }
    let endpoint = endpoints.get(&raw.endpoint).cloned();
    if !endpoint_names.contains(&raw.endpoint) {
        let names: Vec<&str> = endpoint_names.iter().map(String::as_str).collect();
        ctx.err(
            &p(path, &[k("endpoint")]),
            format!("unknown endpoint `{}`", raw.endpoint),
        )
        .hint = Some(suggest(&raw.endpoint, &names));
    }
    let stall = raw.stall.map(|d| d.0).unwrap_or(DEFAULT_STALL);
    if stall.is_zero() {
        ctx.err(&p(path, &[k("stall")]), "stall must be more than zero")
            .hint = Some("e.g. 1s".into());
    }
    if let Some(e) = endpoint
        .as_ref()
        .filter(|e| raw.stall.is_some() && e.protocol == Protocol::HttpJson)
    {
        ctx.err(
            &p(path, &[k("stall")]),
            format!(
                "`stall` applies to streamed answers (chat, voice), not `{}`: one JSON body has no gaps between chunks",
                e.protocol.as_str()
            ),
        )
        .hint = Some("remove `stall`, or probe a streaming endpoint".into());
    }
    let timeout = raw
        .timeout
        .map(|d| d.0)
        .or(endpoint.as_ref().map(|e| e.timeout))
        .unwrap_or(defaults.timeout);
    if timeout.is_zero() {
        ctx.err(&p(path, &[k("timeout")]), "timeout must be more than zero");
    }
    let runs = raw.runs.unwrap_or(defaults.runs);
    if runs == 0 {
        ctx.err(&p(path, &[k("runs")]), "runs must be at least 1");
    }
    let own_schedule = raw.schedule.as_deref().map(cron::parse);
    if let Some(Err(e)) = &own_schedule {
        ctx.err(&p(path, &[k("schedule")]), e.to_string());
    }
    let freshness = raw
        .freshness
        .and_then(|f| super::quality::freshness(f, path, ctx));
    if freshness.is_some() && raw.canary_fact.is_some() {
        ctx.err(
            &p(path, &[k("canary_fact")]),
            "a probe checks `freshness` or runs a `canary_fact`, not both",
        )
        .hint = Some("make two probes over the same endpoint".into());
    }
    let canary_fact = raw
        .canary_fact
        .and_then(|c| super::quality::canary_fact(c, path, ctx));
    // The probe's own schedule, else the suite's default (either may have failed to parse).
    let schedule = own_schedule.as_ref().or(default_schedule);
    let stop_after_first_visible = match raw.stop_after.as_deref() {
        None => false,
        Some("first_visible") => {
            if endpoint.as_ref().is_some_and(|e| !e.protocol.is_chat()) {
                ctx.err(
                    &p(path, &[k("stop_after")]),
                    "`stop_after: first_visible` applies to chat protocols",
                );
            }
            true
        }
        Some(other) => {
            ctx.err(
                &p(path, &[k("stop_after")]),
                format!("unknown stop_after `{other}`"),
            )
            .hint = Some("valid: first_visible".into());
            false
        }
    };
    let expected_output_tokens = raw
        .expected_output_tokens
        .or(endpoint.as_ref().and_then(|e| e.max_tokens()))
        .unwrap_or(DEFAULT_EXPECTED_OUTPUT_TOKENS);
    let rotation = match (raw.sample, raw.budget) {
        (Some(_), Some(_)) => {
            ctx.err(path, "give either `sample` or `budget`, not both");
            None
        }
        (Some(s), None) => {
            if s.per_tick == 0 {
                ctx.err(
                    &p(path, &[k("sample"), k("per_tick")]),
                    "per_tick must be at least 1",
                );
            }
            Some(Rotation::PerTick(s.per_tick.max(1)))
        }
        (None, Some(b)) => match (b.tokens_per_day, b.dollars_per_day) {
            (Some(t), None) if t > 0.0 => {
                if endpoint
                    .as_ref()
                    .is_some_and(|e| !(e.protocol.info().counts_tokens() || e.price.is_some()))
                {
                    ctx.err(
                        &p(path, &[k("budget"), k("tokens_per_day")]),
                        "this endpoint's runs use no tokens canary can count (not a chat or voice protocol, no `price`)",
                    )
                    .hint = Some("use `sample: { per_tick: N }`, or declare `price` on the endpoint".into());
                }
                Some(Rotation::TokensPerDay(t))
            }
            (None, Some(d)) if d > 0.0 => {
                if endpoint.as_ref().is_some_and(|e| e.price.is_none()) {
                    ctx.err(
                        &p(path, &[k("budget"), k("dollars_per_day")]),
                        "a dollar budget needs `price` on the endpoint",
                    )
                    .hint = Some(
                        "e.g. `price: { input_per_mtok: 0.15, output_per_mtok: 0.60 }`".into(),
                    );
                }
                Some(Rotation::DollarsPerDay(d))
            }
            _ => {
                ctx.err(
                    &p(path, &[k("budget")]),
                    "give one positive `tokens_per_day` or `dollars_per_day`",
                );
                None
            }
        },
        (None, None) => None,
    };
    if rotation.is_some() && canary_fact.is_some() {
        ctx.err(
            path,
            "a canary-fact probe asks until its fact shows (up to give_up_after / read_every questions a run); it cannot be budgeted per case",
        )
        .hint = Some("bound it with `read_every` and `give_up_after`, and its schedule".into());
    }
    if raw.coverage.is_some() && rotation.is_none() {
        ctx.err(
            &p(path, &[k("coverage")]),
            "`coverage` applies to a rotation (`sample` or `budget`)",
        );
    }
    if rotation.is_some() {
        match schedule.map(|s| {
            s.as_ref()
                .map_err(ToString::to_string)
                .and_then(|s| s.ticks_per_day().map_err(|e| e.to_string()))
        }) {
            None => {
                ctx.err(path, "a rotation (`sample` / `budget`) needs a `schedule`: ticks are what it rotates over")
                    .hint = Some("e.g. `schedule: \"*/5 * * * *\"` on the probe or in `defaults`".into());
            }
            Some(Err(e)) => {
                ctx.err(&p(path, &[k("schedule")]), e);
            }
            Some(Ok(_)) => {}
        }
    }
    let sampling = rotation.map(|rotation| Sampling {
        rotation,
        coverage: raw.coverage.map(|d| d.0),
    });
    let suite_dir = ctx.dir();
    let probe_judge = raw.judge.filter(|j| {
        let Some(name) = &j.endpoint else { return true };
        let jpath = p(path, &[k("judge"), k("endpoint")]);
        match endpoints.get(name) {
            // An endpoint that did not compile has its own errors.
            None if endpoint_names.contains(name) => false,
            None => {
                let names: Vec<&str> = endpoint_names.iter().map(String::as_str).collect();
                ctx.err(&jpath, format!("unknown judge endpoint `{name}`")).hint =
                    Some(suggest(name, &names));
                false
            }
            Some(e) if !e.protocol.is_chat() => {
                ctx.err(&jpath, format!("the judge endpoint `{name}` is `{}`; a judge is asked through a chat protocol", e.protocol.as_str())).hint =
                    Some("openai-chat, openai-responses, anthropic-messages or a described stream".into());
                false
            }
            Some(_) => true,
        }
    });
    let probe_similar = raw.similar.filter(|s| {
        let Some(name) = &s.endpoint else { return true };
        let spath = p(path, &[k("similar"), k("endpoint")]);
        match endpoints.get(name) {
            // An endpoint that did not compile has its own errors.
            None if endpoint_names.contains(name) => false,
            None => {
                let names: Vec<&str> = endpoint_names.iter().map(String::as_str).collect();
                ctx.err(&spath, format!("unknown embeddings endpoint `{name}`")).hint =
                    Some(suggest(name, &names));
                false
            }
            Some(e) if e.protocol != Protocol::HttpJson => {
                ctx.err(&spath, format!("the embeddings endpoint `{name}` is `{}`; embeddings are asked with `http-json`", e.protocol.as_str())).hint =
                    Some("protocol: http-json, method: POST, url: .../v1/embeddings".into());
                false
            }
            Some(_) => true,
        }
    });
    let golden_path = normalize(&ctx.dir().join(&raw.golden));
    let cases = match golden::load(&golden_path) {
        Ok((raws, line_diags)) => {
            ctx.diags.extend(line_diags);
            let mut cases = Vec::new();
            let mut ids = HashSet::new();
            for (line, rc, line_text) in raws {
                if !ids.insert(rc.id.clone()) {
                    ctx.diags.push(
                        Diagnostic::new(
                            &golden_path,
                            Some(golden::col_of(&line_text, line, "id")),
                            "id",
                            format!("duplicate case id `{}`", rc.id),
                        )
                        .hint("case ids must be unique within a golden set"),
                    );
                }
                let needs = golden::ProbeContext {
                    endpoint: endpoint.as_deref(),
                    freshness: freshness.is_some(),
                    endpoints: Some(endpoints),
                    judge: probe_judge.as_ref(),
                    similar: probe_similar.as_ref(),
                    suite_dir: Some(&suite_dir),
                    canary_fact: canary_fact.is_some(),
                };
                if let Some(c) =
                    golden::compile_case(rc, line, &line_text, &golden_path, &needs, &mut ctx.diags)
                {
                    cases.push(c);
                }
            }
            if cases.is_empty() && ctx.diags.len() == before {
                ctx.err(&p(path, &[k("golden")]), format!("golden set `{}` has no cases", golden_path.display())).hint =
                    Some("one JSON object per line: {\"id\": ..., \"slice\": ..., \"input\": ..., \"expect\": ...}".into());
            }
            cases
        }
        Err(message) => {
            ctx.err(&p(path, &[k("golden")]), message).hint =
                Some("paths are relative to the suite file".into());
            Vec::new()
        }
    };
    if ctx.diags.len() > before {
        return None;
    }
    Some(Probe {
        name: raw.name,
        endpoint: raw.endpoint,
        golden: golden_path,
        cases,
        stall,
        timeout,
        runs,
        schedule: schedule.and_then(|s| s.as_ref().ok()).cloned(),
        freshness,
        canary_fact,
        sampling,
        expected_output_tokens,
        stop_after_first_visible,
    })
}
