//! Drivers: one per protocol. A driver performs one request for one case and records a
//! timeline; it knows nothing of SLIs, checks or SLOs. The hard deadline wraps every driver
//! the same way here, so a target that never answers costs at most the case's timeout.

pub mod chat;
pub mod chat_events;
pub mod http_audio;
pub mod http_json;
pub mod job;
pub mod realtime;
pub mod sse;
pub mod stream;
pub mod voice;
pub mod ws;
pub mod ws_json_audio;
pub mod ws_opus;

use std::time::Duration;

use crate::suite::{Case, Endpoint, Protocol};
use crate::timeline::{ErrorClass, ProbeError, Recorder, Timeline};

/// Which run of a case this is, for `{{run}}`, `{{seed}}` and `{{region}}` in request
/// templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunVars {
    /// 1-based run number of the case within the invocation.
    pub run: u32,
    pub seed: Option<u64>,
    /// Stop reading a stream at its first visible token (`stop_after: first_visible`).
    pub stop_early: bool,
    /// The vantage point's region (`--region`).
    pub region: std::sync::Arc<str>,
}

impl Default for RunVars {
    fn default() -> Self {
        RunVars {
            run: 0,
            seed: None,
            stop_early: false,
            region: std::sync::Arc::from("local"),
        }
    }
}

impl RunVars {
    /// What `{{...}}` placeholders can name for this run of `case`.
    pub fn template<'a>(&'a self, case: &'a Case) -> crate::suite::template::Vars<'a> {
        crate::suite::template::Vars {
            case,
            run: Some(self.run),
            seed: self.seed,
            region: &self.region,
        }
    }

    /// Renders `{{run}}`, `{{seed}}`, `{{case.*}}` and `{{input.*}}` in a request body a
    /// golden case holds (other `{{...}}` text is left as written).
    pub fn render(
        &self,
        body: &serde_json::Value,
        case: &Case,
    ) -> Result<serde_json::Value, ProbeError> {
        crate::suite::template::render_lenient(body, &self.template(case))
            .map_err(|m| ProbeError::new(ErrorClass::Request, m))
    }
}

/// Runs one case against an endpoint within `deadline`, always returning a timeline.
pub async fn run_case(
    endpoint: &Endpoint,
    case: &Case,
    vars: RunVars,
    deadline: Duration,
) -> Timeline {
    let mut rec = Recorder::start();
    let run = tokio::time::timeout(deadline, drive(endpoint, case, vars, &mut rec));
    // The case run's trace context rides on the probe request as `traceparent`, unless the
    // endpoint says `traceparent: false` (or no case run is being traced).
    let outcome = match crate::timeline::trace::current().filter(|_| endpoint.traceparent) {
        Some(ctx) => {
            crate::timeline::trace::REQUEST
                .scope(ctx.traceparent(), run)
                .await
        }
        None => run.await,
    };
    if outcome.is_err() {
        let at = rec.now();
        rec.fail(ProbeError::new(
            ErrorClass::Timeout,
            format!(
                "no complete answer within the {:.3}s deadline (gave up at {:.3}s)",
                deadline.as_secs_f64(),
                at.as_secs_f64()
            ),
        ));
    }
    rec.finish()
}

async fn drive(endpoint: &Endpoint, case: &Case, vars: RunVars, rec: &mut Recorder) {
    match endpoint.protocol {
        Protocol::HttpJson => http_json::run(endpoint, case, vars, rec).await,
        Protocol::OpenaiChat | Protocol::OpenaiResponses | Protocol::AnthropicMessages => {
            chat::run(endpoint, case, vars, rec).await
        }
        Protocol::WsOpus => ws_opus::run(endpoint, case, vars, rec).await,
        Protocol::Realtime => realtime::run(endpoint, case, vars, rec).await,
        Protocol::HttpAudio => http_audio::run(endpoint, case, vars, rec).await,
        Protocol::WsJsonAudio => ws_json_audio::run(endpoint, case, vars, rec).await,
        Protocol::Job => job::run(endpoint, case, vars, rec).await,
        Protocol::Stream
        | Protocol::Gemini
        | Protocol::Ollama
        | Protocol::Tgi
        | Protocol::BedrockConverse => stream::driver::run(endpoint, case, vars, rec).await,
    }
}
