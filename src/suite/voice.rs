//! The voice keys of an endpoint (`ws-opus`, `realtime`, `http-audio`, `ws-json-audio`)
//! turned into a [`VoiceSpec`], with every problem named by key so that the validator can
//! point at the file line.

use std::time::Duration;

use serde_json::{json, Value};

use super::model::{AudioFormat, Container, RealtimeApi, VoiceSpec};
use super::protocol::PROTOCOLS;
use super::raw::RawEndpoint;
use super::Protocol;
use crate::audio::opus::RATES;
use crate::audio::DEFAULT_THRESHOLD_DBFS;

/// The default playout buffer.
pub const DEFAULT_PREBUFFER: Duration = Duration::from_millis(80);

/// A problem with one key of the endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub key: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

fn problem(key: &'static str, message: impl Into<String>, hint: Option<&str>) -> Problem {
    Problem {
        key,
        message: message.into(),
        hint: hint.map(str::to_string),
    }
}

/// Keys only voice protocols read. Which protocols each belongs to is the protocol table's
/// (`ProtocolInfo::keys`).
const VOICE_KEYS: &[&str] = &[
    "start",
    "transcript",
    "container",
    "sample_rate",
    "audio_format",
    "api",
    "session",
    "audible_threshold",
    "prebuffer",
];

/// Protocols that take any audio format (`audio::stream::Format`).
fn any_format(p: Protocol) -> bool {
    matches!(p, Protocol::HttpAudio | Protocol::WsJsonAudio)
}

fn present(raw: &RawEndpoint, key: &str) -> bool {
    match key {
        "start" => raw.start.is_some(),
        "transcript" => raw.transcript.is_some(),
        "container" => raw.container.is_some(),
        "sample_rate" => raw.sample_rate.is_some(),
        "audio_format" => raw.audio_format.is_some(),
        "api" => raw.api.is_some(),
        "session" => raw.session.is_some(),
        "audible_threshold" => raw.audible_threshold.is_some(),
        "prebuffer" => raw.prebuffer.is_some(),
        _ => false,
    }
}

/// Builds the spec of a voice endpoint; for other protocols, reports voice keys as misplaced.
pub fn build(raw: &RawEndpoint) -> (Option<VoiceSpec>, Vec<Problem>) {
    let proto = raw.protocol;
    let mut problems = Vec::new();
    for key in VOICE_KEYS {
        if !present(raw, key) || proto.info().keys.contains(key) {
            continue;
        }
        let owners: Vec<Protocol> = PROTOCOLS
            .iter()
            .filter(|e| e.keys.contains(key))
            .map(|e| e.protocol)
            .collect();
        let every_voice = Protocol::ALL
            .iter()
            .filter(|p| p.is_voice())
            .all(|p| owners.contains(p));
        let names: Vec<&str> = owners.iter().map(|p| p.as_str()).collect();
        let owner = if every_voice {
            format!("voice protocols ({})", names.join(", "))
        } else {
            names.join(", ")
        };
        problems.push(problem(
            key,
            format!("`{key}` applies to {owner}, not `{}`", proto.as_str()),
            None,
        ));
    }
    if !proto.is_voice() {
        return (None, problems);
    }

    let start = raw
        .start
        .clone()
        .unwrap_or_else(|| json!({"type": "start", "text": "{{input.text}}"}));
    // `ws-json-audio` may send several messages (open, text, flush), in order.
    let list_ok = proto == Protocol::WsJsonAudio
        && start
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_object));
    if !start.is_object() && !list_ok {
        problems.push(problem(
            "start",
            "`start` must be a JSON object (the message sent after connecting)",
            Some("e.g. `start: { type: response.create, text: \"{{input.text}}\" }`"),
        ));
    }
    let (transcript_event, transcript_field) = match &raw.transcript {
        None => ("transcript".to_string(), "text".to_string()),
        Some(v) => match event_field(v, true) {
            Some((e, f)) => (e, f.unwrap_or_else(|| "text".into())),
            None => {
                problems.push(problem(
                    "transcript",
                    "`transcript` must be `{ event: NAME, field: FIELD }`",
                    Some("e.g. `transcript: { event: transcript, field: text }`"),
                ));
                (String::new(), String::new())
            }
        },
    };
    let done_event = match &raw.done {
        None => "done".to_string(),
        Some(v) => match event_field(v, false) {
            Some((e, _)) => e,
            None => {
                problems.push(problem(
                    "done",
                    "for a voice endpoint `done` must be `{ event: NAME }`",
                    Some("e.g. `done: { event: done }`"),
                ));
                String::new()
            }
        },
    };
    if proto == Protocol::Realtime && raw.done.is_some() {
        problems.push(problem(
            "done",
            "`done` applies to ws-opus; a realtime response ends with `response.done`",
            None,
        ));
    }
    if any_format(proto) && raw.done.is_some() {
        problems.push(problem(
            "done",
            format!(
                "`done` applies to ws-opus; `{}` ends with its stream description's `terminator`",
                proto.as_str()
            ),
            Some("e.g. `stream: { events: [{ audio: $.audio }], terminator: { json: $.isFinal, equals: true } }`"),
        ));
    }
    let container = match raw.container.as_deref() {
        None | Some("raw") => Container::Raw,
        Some("ogg") => Container::Ogg,
        Some(other) => {
            problems.push(problem(
                "container",
                format!("unknown container `{other}`"),
                Some("valid: `raw` (one Opus packet per message), `ogg`"),
            ));
            Container::Raw
        }
    };
    let sample_rate = if any_format(proto) {
        48_000
    } else {
        raw.sample_rate.unwrap_or(48_000)
    };
    let media_rate = raw.sample_rate.filter(|_| any_format(proto));
    if let Some(r) = media_rate {
        if !(1_000..=192_000).contains(&r) {
            problems.push(problem(
                "sample_rate",
                format!("a PCM rate of {r} Hz"),
                Some("e.g. `sample_rate: 24000` (1000 to 192000 Hz; WAV, MP3 and Ogg carry their own)"),
            ));
        }
    }
    if !RATES.contains(&sample_rate) {
        problems.push(problem(
            "sample_rate",
            format!("Opus cannot be decoded at {sample_rate} Hz"),
            Some("valid: 8000, 12000, 16000, 24000, 48000"),
        ));
    }
    let media = match raw.audio_format.as_deref().filter(|_| any_format(proto)) {
        None => None,
        Some(f) => match crate::audio::stream::Format::parse(f) {
            Some(fmt) => Some(fmt),
            None => {
                problems.push(problem(
                    "audio_format",
                    format!("unknown audio format `{f}`"),
                    Some(
                        format!(
                            "valid: {} (or leave it out to read the response's Content-Type)",
                            crate::audio::stream::NAMES.join(", ")
                        )
                        .as_str(),
                    ),
                ));
                None
            }
        },
    };
    let audio_format = match raw.audio_format.as_deref().filter(|_| !any_format(proto)) {
        None | Some("pcm16") | Some("pcm") | Some("audio/pcm") => AudioFormat::Pcm16,
        Some("pcmu") | Some("g711_ulaw") | Some("audio/pcmu") => AudioFormat::Pcmu,
        Some("pcma") | Some("g711_alaw") | Some("audio/pcma") => AudioFormat::Pcma,
        Some(other) => {
            problems.push(problem(
                "audio_format",
                format!("unknown audio format `{other}`"),
                Some("valid: pcm16 (24 kHz), pcmu / g711_ulaw, pcma / g711_alaw (8 kHz)"),
            ));
            AudioFormat::Pcm16
        }
    };
    let api = match raw.api.as_deref() {
        None | Some("ga") => RealtimeApi::Ga,
        Some("beta") => RealtimeApi::Beta,
        Some(other) => {
            problems.push(problem(
                "api",
                format!("unknown Realtime API generation `{other}`"),
                Some("valid: `ga` (response.output_audio.delta), `beta` (response.audio.delta)"),
            ));
            RealtimeApi::Ga
        }
    };
    let session = match &raw.session {
        None => Some(default_session(api, audio_format)),
        Some(Value::Bool(false)) | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(_) => {
            problems.push(problem(
                "session",
                "`session` must be an object (sent as `session.update`) or `false` (send none)",
                None,
            ));
            None
        }
    };
    let threshold_dbfs = raw
        .audible_threshold
        .unwrap_or(f64::from(DEFAULT_THRESHOLD_DBFS));
    if !(-120.0..=0.0).contains(&threshold_dbfs) {
        problems.push(problem(
            "audible_threshold",
            format!("audible_threshold {threshold_dbfs} is outside -120..0 dBFS"),
            Some("e.g. `audible_threshold: -40` (dBFS, the usual onset level)"),
        ));
    }
    let prebuffer = raw.prebuffer.map(|d| d.0).unwrap_or(DEFAULT_PREBUFFER);
    if prebuffer > Duration::from_secs(10) {
        problems.push(problem(
            "prebuffer",
            "prebuffer over 10s is not a playout buffer a listener would wait for",
            Some("e.g. `prebuffer: 80ms`"),
        ));
    }
    let spec = VoiceSpec {
        start,
        transcript_event,
        transcript_field,
        done_event,
        container,
        sample_rate,
        audio_format,
        api,
        session,
        media,
        media_rate,
        threshold_dbfs: threshold_dbfs as f32,
        prebuffer,
    };
    (problems.is_empty().then_some(spec), problems)
}

/// `{event: NAME}` or `{event: NAME, field: F}` (field only when allowed).
fn event_field(v: &Value, with_field: bool) -> Option<(String, Option<String>)> {
    let o = v.as_object()?;
    let event = o.get("event")?.as_str()?.to_string();
    let field = match o.get("field") {
        None => None,
        Some(f) if with_field => Some(f.as_str()?.to_string()),
        Some(_) => return None,
    };
    if o.keys().any(|k| k != "event" && k != "field") || event.is_empty() {
        return None;
    }
    Some((event, field))
}

/// The `session` of `session.update` unless the suite gives one: audio out in the chosen
/// format, no server-side turn detection (the probe asks for each response itself).
pub fn default_session(api: RealtimeApi, format: AudioFormat) -> Value {
    match api {
        RealtimeApi::Ga => {
            let fmt = match format {
                AudioFormat::Pcm16 => json!({"type": "audio/pcm", "rate": 24000}),
                AudioFormat::Pcmu => json!({"type": "audio/pcmu"}),
                AudioFormat::Pcma => json!({"type": "audio/pcma"}),
            };
            json!({
                "type": "realtime",
                "output_modalities": ["audio"],
                "audio": {
                    "input": {"format": fmt.clone(), "turn_detection": null},
                    "output": {"format": fmt}
                }
            })
        }
        RealtimeApi::Beta => {
            let fmt = match format {
                AudioFormat::Pcm16 => "pcm16",
                AudioFormat::Pcmu => "g711_ulaw",
                AudioFormat::Pcma => "g711_alaw",
            };
            json!({
                "modalities": ["audio", "text"],
                "input_audio_format": fmt,
                "output_audio_format": fmt,
                "turn_detection": null
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(v: Value) -> RawEndpoint {
        serde_json::from_value(v).unwrap()
    }

    fn keys(p: &[Problem]) -> Vec<&'static str> {
        p.iter().map(|x| x.key).collect()
    }

    #[test]
    fn defaults_of_a_ws_opus_endpoint() {
        let (spec, problems) = build(&raw(json!({"protocol": "ws-opus", "url": "ws://h/v"})));
        assert!(problems.is_empty());
        let spec = spec.unwrap();
        assert_eq!(spec.container, Container::Raw);
        assert_eq!(spec.sample_rate, 48_000);
        assert_eq!(spec.transcript_event, "transcript");
        assert_eq!(spec.done_event, "done");
        assert_eq!(spec.prebuffer, DEFAULT_PREBUFFER);
        assert_eq!(spec.threshold_dbfs, -40.0);
    }

    #[test]
    fn every_bad_voice_key_is_named_with_a_hint() {
        let (spec, problems) = build(&raw(json!({
            "protocol": "ws-opus", "url": "ws://h/v",
            "container": "mp3", "sample_rate": 44100, "transcript": {"evnt": "t"},
            "audible_threshold": 3.0, "start": "hello", "api": "beta"
        })));
        assert!(spec.is_none());
        assert_eq!(
            keys(&problems),
            vec![
                "api",
                "start",
                "transcript",
                "container",
                "sample_rate",
                "audible_threshold"
            ]
        );
        assert!(problems.iter().all(|p| p.hint.is_some() || p.key == "api"));
    }

    #[test]
    fn realtime_formats_apis_and_sessions() {
        let (spec, p) = build(&raw(json!({
            "protocol": "realtime", "url": "ws://h/r", "audio_format": "g711_ulaw", "api": "beta"
        })));
        assert!(p.is_empty());
        let spec = spec.unwrap();
        assert_eq!(spec.audio_format, AudioFormat::Pcmu);
        assert_eq!(
            spec.session.unwrap()["output_audio_format"],
            json!("g711_ulaw")
        );
        let (spec, _) = build(&raw(
            json!({"protocol": "realtime", "url": "ws://h/r", "session": false}),
        ));
        assert_eq!(spec.unwrap().session, None);
        let ga = default_session(RealtimeApi::Ga, AudioFormat::Pcm16);
        assert_eq!(ga["audio"]["output"]["format"]["rate"], json!(24000));
        let (_, p) = build(&raw(
            json!({"protocol": "realtime", "url": "ws://h/r", "audio_format": "opus", "done": {"event": "x"}}),
        ));
        assert_eq!(keys(&p), vec!["done", "audio_format"]);
    }

    #[test]
    fn voice_keys_on_other_protocols_are_misplaced() {
        let (spec, p) = build(&raw(json!({
            "protocol": "http-json", "url": "http://h", "prebuffer": "80ms", "start": {}
        })));
        assert!(spec.is_none());
        assert_eq!(keys(&p), vec!["start", "prebuffer"]);
        assert!(p[1].message.contains("voice protocols"));
    }

    #[test]
    fn audio_protocols_take_any_format_and_a_pcm_rate() {
        let (spec, p) = build(&raw(json!({
            "protocol": "http-audio", "url": "http://h/v1/audio/speech",
            "audio_format": "mp3", "sample_rate": 22050
        })));
        assert!(p.is_empty(), "{p:?}");
        let spec = spec.unwrap();
        assert_eq!(spec.media, Some(crate::audio::stream::Format::Mp3));
        assert_eq!(spec.media_rate, Some(22_050));
        let (_, p) = build(&raw(json!({
            "protocol": "ws-json-audio", "url": "ws://h/tts", "audio_format": "flac",
            "done": {"event": "x"}, "api": "beta"
        })));
        assert_eq!(keys(&p), vec!["api", "done", "audio_format"]);
        assert!(p[2].hint.as_deref().unwrap().contains("mp3"));
        let (_, p) = build(&raw(json!({
            "protocol": "http-audio", "url": "http://h", "start": {"a": 1}
        })));
        assert_eq!(keys(&p), vec!["start"]);
        assert!(p[0].message.contains("ws-opus, ws-json-audio"));
        // Several start messages (open, text, flush): ws-json-audio only.
        let list = json!([{"type": "Speak", "text": "{{input.text}}"}, {"type": "Flush"}]);
        let (spec, p) = build(&raw(json!({
            "protocol": "ws-json-audio", "url": "ws://h/tts", "start": list.clone()
        })));
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(spec.unwrap().start, list);
        let (_, p) = build(&raw(json!({
            "protocol": "ws-opus", "url": "ws://h/v", "start": list
        })));
        assert_eq!(keys(&p), vec!["start"]);
    }
}
