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

use crate::suite::{Case, Endpoint, Protocol, Settings};
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

/// An endpoint whose settings do not fit its protocol. The loader builds the settings from the
/// protocol, so only an `Endpoint` built by hand can be one; its run is a `request` error.
fn unfit(endpoint: &Endpoint, rec: &mut Recorder) {
    rec.fail(ProbeError::new(
        ErrorClass::Request,
        format!(
            "the endpoint's settings do not fit protocol `{}`",
            endpoint.protocol.as_str()
        ),
    ));
}

async fn drive(endpoint: &Endpoint, case: &Case, vars: RunVars, rec: &mut Recorder) {
    match endpoint.protocol {
        Protocol::HttpJson => http_json::run(endpoint, case, vars, rec).await,
        Protocol::OpenaiChat | Protocol::OpenaiResponses | Protocol::AnthropicMessages => {
            match &endpoint.settings {
                Settings::Chat(chat) => chat::run(endpoint, chat, case, vars, rec).await,
                _ => unfit(endpoint, rec),
            }
        }
        Protocol::Stream
        | Protocol::Gemini
        | Protocol::Ollama
        | Protocol::Tgi
        | Protocol::BedrockConverse => match &endpoint.settings {
            Settings::Described(chat, spec) => {
                stream::driver::run(endpoint, chat, spec, case, vars, rec).await
            }
            _ => unfit(endpoint, rec),
        },
        Protocol::WsOpus | Protocol::Realtime | Protocol::HttpAudio | Protocol::WsJsonAudio => {
            let Settings::Voice(voice, events) = &endpoint.settings else {
                return unfit(endpoint, rec);
            };
            match (endpoint.protocol, events) {
                (Protocol::WsOpus, _) => ws_opus::run(endpoint, voice, case, vars, rec).await,
                (Protocol::Realtime, _) => realtime::run(endpoint, voice, case, vars, rec).await,
                (Protocol::WsJsonAudio, Some(desc)) => {
                    ws_json_audio::run(endpoint, voice, desc, case, vars, rec).await
                }
                (Protocol::HttpAudio, _) => http_audio::run(endpoint, voice, case, vars, rec).await,
                _ => unfit(endpoint, rec),
            }
        }
        Protocol::Job => match &endpoint.settings {
            Settings::Job(spec) => job::run(endpoint, spec, case, vars, rec).await,
            _ => unfit(endpoint, rec),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An endpoint of `protocol` loaded from a one-endpoint suite.
    fn loaded(protocol: &str, extra: &str) -> Endpoint {
        let suite = crate::suite::load_one(protocol, "ws://127.0.0.1:1/v", extra).unwrap();
        (*suite.endpoints["e"]).clone()
    }

    #[test]
    fn the_loader_gives_each_protocol_its_familys_settings() {
        assert!(matches!(
            loaded("ws-opus", "").settings,
            Settings::Voice(_, None)
        ));
        assert!(matches!(
            loaded(
                "ws-json-audio",
                "    stream: { events: [{ audio: $.audio }] }\n"
            )
            .settings,
            Settings::Voice(_, Some(_))
        ));
    }

    #[tokio::test]
    async fn settings_that_do_not_fit_the_protocol_are_a_request_error_not_a_panic() {
        let mut ep = loaded("ws-opus", "");
        ep.settings = Settings::Json;
        let case = crate::suite::Case {
            id: "a".into(),
            ..Default::default()
        };
        let tl = run_case(&ep, &case, RunVars::default(), Duration::from_secs(1)).await;
        let e = tl.error.expect("an error");
        assert_eq!(e.class, ErrorClass::Request);
        assert!(
            e.message.contains("do not fit protocol `ws-opus`"),
            "{}",
            e.message
        );
    }
}
