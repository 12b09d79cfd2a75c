//! `canary sim`: the reference simulator in the foreground, with its configuration file
//! (YAML or JSON, errors with file:line:column or the key's path), seed and `--profile`.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::suite;

use super::{SimArgs, EXIT_OK};

/// Runs `canary sim` until Ctrl-C; returns the exit code.
pub(super) async fn exec(a: SimArgs) -> anyhow::Result<u8> {
    let SimArgs {
        listen,
        seed,
        config,
        profile,
    } = a;
    let mut cfg = load_sim_config(config.as_deref(), seed)?;
    if let Some(p) = profile {
        cfg.profile = p;
    }
    let (listener, addr) = crate::sim::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("canary sim listening on http://{addr}");
    let _ = std::io::stdout().flush();
    let state = crate::sim::SimState::new(cfg);
    tokio::select! {
        r = crate::sim::serve(listener, state) => r.context("simulator failed")?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(EXIT_OK)
}

fn load_sim_config(path: Option<&Path>, seed: u64) -> anyhow::Result<crate::sim::SimConfig> {
    let mut cfg = match path {
        None => crate::sim::SimConfig::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            let tree = suite::yaml::parse(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{}:{}:{}: invalid YAML: {}",
                    p.display(),
                    e.pos.line,
                    e.pos.col,
                    e.message
                )
            })?;
            serde_path_to_error::deserialize(tree.to_json())
                .map_err(|e| anyhow::anyhow!("{}: {}: {}", p.display(), e.path(), e.inner()))?
        }
    };
    cfg.seed = seed;
    Ok(cfg)
}
