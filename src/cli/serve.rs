//! `canary serve`: the flags turned into a `ServeConfig` (the OTLP settings resolved from the
//! flags and the `OTEL_*` variables first); the monitor itself is `crate::serve::serve`.

use super::{ServeArgs, EXIT_OK, EXIT_USAGE};

/// Runs `canary serve` until it is stopped; returns the exit code.
pub(super) async fn exec(a: ServeArgs) -> anyhow::Result<u8> {
    let ServeArgs {
        suites,
        listen,
        db,
        region,
        splay,
        concurrency,
        grace,
        records_for,
        compact_every,
        allow_gate,
        fleet,
        otlp,
        otlp_traces,
    } = a;
    let otlp =
        match crate::sink::otlp::Config::resolve(otlp.as_deref(), otlp_traces.as_deref(), &|k| {
            std::env::var(k).ok()
        }) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {}", crate::secret::redact(&e));
                return Ok(EXIT_USAGE);
            }
        };
    crate::serve::serve(crate::serve::ServeConfig {
        otlp,
        allow_gate,
        fleet,
        paths: suites,
        listen,
        db,
        region,
        splay,
        concurrency,
        grace,
        records_for,
        compact_every,
    })
    .await?;
    Ok(EXIT_OK)
}
