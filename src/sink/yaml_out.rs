//! A small YAML emitter for generated documents (rules files, Kubernetes objects). Maps and
//! lists in block style, strings double-quoted with JSON escapes (always valid YAML), keys
//! plain when they are simple. Several documents join with `---`.

use serde_json::Value;

/// One document.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    emit(v, 0, &mut out, false);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Several documents separated by `---`.
pub fn to_yaml_docs(docs: &[Value]) -> String {
    docs.iter().map(to_yaml).collect::<Vec<_>>().join("---\n")
}

fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !k.starts_with(['-', '.'])
        && !matches!(
            k,
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        k.to_string()
    } else {
        scalar(&Value::String(k.to_string()))
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()),
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(o) if o.is_empty() => "{}".into(),
        _ => String::new(),
    }
}

fn is_scalar(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => true,
    }
}

fn emit(v: &Value, indent: usize, out: &mut String, in_list: bool) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(o) if !o.is_empty() => {
            for (i, (k, val)) in o.iter().enumerate() {
                // The first key of a list item sits on the dash's line.
                if !(in_list && i == 0) {
                    out.push_str(&pad);
                }
                out.push_str(&key(k));
                out.push(':');
                if is_scalar(val) {
                    out.push(' ');
                    out.push_str(&scalar(val));
                    out.push('\n');
                } else {
                    out.push('\n');
                    let child = if matches!(val, Value::Array(_)) {
                        indent
                    } else {
                        indent + 2
                    };
                    emit(val, child, out, false);
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for item in a {
                out.push_str(&pad);
                out.push_str("- ");
                if is_scalar(item) {
                    out.push_str(&scalar(item));
                    out.push('\n');
                } else if matches!(item, Value::Array(_)) {
                    out.push('\n');
                    emit(item, indent + 2, out, false);
                } else {
                    emit(item, indent + 2, out, true);
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emits_block_yaml_that_reads_back_the_same() {
        let v = json!({
            "groups": [{"name": "g", "rules": [
                {"record": "a:b", "expr": "sum(rate(x{a=\"1\"}[5m]))", "labels": {"slo": "s"}},
                {"alert": "A", "for": "2m", "labels": {}, "annotations": {"summary": "line\nnext: \"q\""}}
            ]}],
            "list": [[1, 2], []],
            "yes": true,
            "n": null,
            "weird key": 1.5
        });
        let text = to_yaml(&v);
        let back = crate::suite::yaml::parse(&text).unwrap().to_json();
        assert_eq!(back, v, "{text}");
        assert!(text.contains("- record: \"a:b\""), "{text}");
    }

    #[test]
    fn documents_are_separated() {
        let t = to_yaml_docs(&[json!({"a": 1}), json!({"b": 2})]);
        assert_eq!(t, "a: 1\n---\nb: 2\n");
    }
}
