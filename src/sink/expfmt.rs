//! The Prometheus text exposition format, both ways. Writing: [`escape_label_value`] and
//! [`escape_help`], the one escaping path every exposition canary writes goes through (the
//! text format 0.0.4 of the textfile and the Pushgateway body, and the OpenMetrics of
//! `serve`'s `/metrics`, whose `prometheus-client` encoder writes label values verbatim).
//! Reading: a parser for sample lines (0.0.4 and OpenMetrics), enough to read back canary's
//! own series from a Pushgateway or a textfile so counters can be carried forward. Comments,
//! HELP/TYPE lines and malformed lines are skipped. The vocabulary both directions share
//! ([`Labels`], [`Sample`], [`render_labels`], [`parse_float`]) is defined here, below the
//! metrics model that uses it.

use std::borrow::Cow;

/// Label pairs in a fixed order.
pub type Labels = Vec<(String, String)>;

/// One flattened sample, as Prometheus stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

/// Parses a sample value or `le` as Prometheus writes them (`+Inf`, `NaN`, `1e-3`).
pub fn parse_float(s: &str) -> Option<f64> {
    match s.trim() {
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        t => t.parse().ok(),
    }
}

/// `{a="x",b="y"}` with label values escaped (`expfmt::escape_label_value`).
pub fn render_labels(labels: &Labels) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label_value(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// A label value as both formats write it between double quotes: `\` -> `\\`, `"` -> `\"`,
/// line feed -> `\n`; everything else (any UTF-8, `<script>`, `}`) is literal. Values are
/// Rust strings, so always valid UTF-8: bytes from a target (headers) are converted lossily
/// where they are read.
pub fn escape_label_value(v: &str) -> Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// HELP text: `\` and line feed escaped (a quote is literal there).
pub fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Parses every sample line of `text`.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Labels::new();
    if rest.starts_with('{') {
        let (l, after) = parse_labels(&rest[1..])?;
        labels = l;
        rest = after;
    }
    let value = rest.split_whitespace().next()?;
    Some(Sample {
        name: name.to_string(),
        labels,
        value: parse_float(value)?,
    })
}

/// Parses `a="x",b="y"}` and returns the labels and the rest after `}`.
fn parse_labels(mut s: &str) -> Option<(Labels, &str)> {
    let mut labels = Labels::new();
    loop {
        s = s.trim_start();
        if let Some(r) = s.strip_prefix('}') {
            return Some((labels, r));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_string();
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end;
        loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        labels.push((key, value));
        s = s[end..].trim_start();
        if let Some(r) = s.strip_prefix(',') {
            s = r;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_labels_escapes_and_special_values() {
        let text = "# HELP x y\n# TYPE x counter\nx_total{a=\"1\",b=\"q\\\"uo\\\\te\\n\"} 12 1700000000000\ny 3.5\nz{le=\"+Inf\"} +Inf\nbad line here\n{x=\"1\"} 2\n";
        let s = parse(text);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].name, "x_total");
        assert_eq!(
            s[0].labels,
            vec![("a".into(), "1".into()), ("b".into(), "q\"uo\\te\n".into())]
        );
        assert_eq!(s[0].value, 12.0);
        assert_eq!(s[1].labels, vec![]);
        assert!(s[2].value.is_infinite());
    }

    #[test]
    fn round_trips_our_own_encoding() {
        let labels = vec![("region".to_string(), "eu \"west\"".to_string())];
        let line = format!("m_total{} 7", render_labels(&labels));
        let s = parse(&line);
        assert_eq!(s[0].labels, labels);
    }
}
