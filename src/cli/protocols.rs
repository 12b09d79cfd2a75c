//! `canary protocols`: the protocols this build speaks, the built-in stream descriptions
//! (name, framing, terminator, file), one description printed (`--show NAME`), and
//! description files checked as the suite loader would check them.

use crate::suite::stream::{builtin, builtin_spec, compile_text, BUILTINS};
use crate::suite::Protocol;

use super::{ProtocolsArgs, EXIT_OK, EXIT_USAGE};

/// Runs `canary protocols`; returns the exit code.
pub(super) fn exec(a: &ProtocolsArgs) -> anyhow::Result<u8> {
    let files = &a.files;
    if let Some(name) = a.show.as_deref() {
        return Ok(match builtin(name) {
            Some((_, text)) => {
                print!("{text}");
                EXIT_OK
            }
            None => {
                let names: Vec<&str> = BUILTINS.iter().map(|b| b.0).collect();
                eprintln!(
                    "error: `{name}` is not a built-in stream description ({})",
                    crate::suite::diag::suggest(name, &names)
                );
                EXIT_USAGE
            }
        });
    }
    if !files.is_empty() {
        let mut failed = false;
        for f in files {
            let text = match std::fs::read_to_string(f) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{}: cannot read: {e}", f.display());
                    failed = true;
                    continue;
                }
            };
            match compile_text(f, &text) {
                Ok(s) => println!(
                    "{}: ok ({}, framing {}, {} event rules, ends at {})",
                    f.display(),
                    s.name,
                    s.framing.as_str(),
                    s.rules.len(),
                    s.terminator_text
                ),
                Err(diags) => {
                    failed = true;
                    for d in diags {
                        eprintln!("{d}");
                    }
                }
            }
        }
        return Ok(if failed { EXIT_USAGE } else { EXIT_OK });
    }
    print!("{}", table());
    Ok(EXIT_OK)
}

/// The table `canary protocols` prints.
pub fn table() -> String {
    let mut rows: Vec<[String; 4]> = vec![[
        "PROTOCOL".into(),
        "FRAMING".into(),
        "ENDS AT".into(),
        "DEFINED BY".into(),
    ]];
    for p in Protocol::ALL {
        if p.is_described() && *p != Protocol::Stream {
            continue;
        }
        let (framing, ends, by) = match p {
            Protocol::Stream => (
                "any".to_string(),
                "as described".to_string(),
                "the suite's `stream:` (or `stream: { file: ... }`)".to_string(),
            ),
            Protocol::OpenaiChat => (
                "sse".into(),
                "data: [DONE]".into(),
                "built-in driver (Rust)".into(),
            ),
            Protocol::OpenaiResponses => (
                "sse".into(),
                "response.completed".into(),
                "built-in driver (Rust)".into(),
            ),
            Protocol::AnthropicMessages => (
                "sse".into(),
                "message_stop".into(),
                "built-in driver (Rust)".into(),
            ),
            Protocol::WsOpus | Protocol::Realtime => (
                "websocket".into(),
                "done event".into(),
                "built-in driver (Rust)".into(),
            ),
            Protocol::HttpAudio => (
                "audio body | sse | ndjson".into(),
                "end of body | stream terminator".into(),
                "built-in driver (Rust) + `stream:`".into(),
            ),
            Protocol::WsJsonAudio => (
                "websocket".into(),
                "stream terminator".into(),
                "built-in driver (Rust) + `stream:`".into(),
            ),
            _ => (
                "-".into(),
                "end of body".into(),
                "built-in driver (Rust)".into(),
            ),
        };
        rows.push([p.as_str().to_string(), framing, ends, by]);
    }
    for (name, file, _) in BUILTINS {
        let (framing, ends) = match builtin_spec(name) {
            Some(Ok(s)) => (s.framing.as_str().to_string(), s.terminator_text),
            _ => ("?".into(), "(does not compile)".into()),
        };
        rows.push([
            name.to_string(),
            framing,
            ends,
            format!("built-in description {file}"),
        ]);
    }
    let w: Vec<usize> = (0..3)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        out += &format!(
            "{:w0$}  {:w1$}  {:w2$}  {}\n",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2]
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_table_lists_every_builtin_with_its_framing() {
        let t = super::table();
        for (name, framing) in [
            ("gemini", "sse"),
            ("bedrock-converse", "aws-eventstream"),
            ("ollama", "ndjson"),
            ("tgi", "sse"),
            ("openai-chat", "sse"),
        ] {
            let line = t
                .lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap_or_else(|| panic!("{name} not in\n{t}"));
            assert_eq!(line.split_whitespace().nth(1), Some(framing), "{line}");
        }
        assert!(!t.contains("does not compile"), "{t}");
    }
}
