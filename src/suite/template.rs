//! `{{...}}` templates in the JSON a driver sends: `{{input.PATH}}` (a field of the case's
//! input, dotted), `{{case.id}}`, `{{case.slice}}`, `{{run}}`, `{{seed}}` and `{{region}}`.
//!
//! A string that is exactly one placeholder takes the value's JSON type (a number stays a
//! number); placeholders inside longer strings are replaced by the value's text.

use serde_json::Value;

use super::Case;

/// What placeholders can name.
pub struct Vars<'a> {
    pub case: &'a Case,
    /// The run number of this case (1-based), when the caller knows it.
    pub run: Option<u32>,
    /// The invocation's seed, when one was given.
    pub seed: Option<u64>,
    /// The vantage point's region (`--region`): keeps the facts of regional fleets apart.
    pub region: &'a str,
}

/// Renders every string in `template`; an unknown placeholder is an error.
pub fn render(template: &Value, vars: &Vars) -> Result<Value, String> {
    walk_render(template, vars, false)
}

/// Renders a request body written by hand (a golden case's input): placeholders canary
/// does not know (`{{name}}` in a prompt about templates) stay as they are.
pub fn render_lenient(template: &Value, vars: &Vars) -> Result<Value, String> {
    walk_render(template, vars, true)
}

fn walk_render(template: &Value, vars: &Vars, lenient: bool) -> Result<Value, String> {
    Ok(match template {
        Value::String(s) => render_str(s, vars, lenient)?,
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|v| walk_render(v, vars, lenient))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| Ok((k.clone(), walk_render(v, vars, lenient)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn known(name: &str) -> bool {
    matches!(
        name,
        "case.id" | "case.slice" | "run" | "seed" | "region" | "input"
    ) || name.starts_with("input.")
}

fn render_str(s: &str, vars: &Vars, lenient: bool) -> Result<Value, String> {
    if !s.contains("{{") {
        return Ok(Value::String(s.to_string()));
    }
    let parts = split(s);
    if let [Part::Name(n)] = parts.as_slice() {
        if !lenient || known(n) {
            return lookup(n, vars);
        }
    }
    let mut out = String::with_capacity(s.len());
    for p in parts {
        match p {
            Part::Text(t) => out.push_str(t),
            Part::Name(n) if lenient && !known(n) => {
                out.push_str("{{");
                out.push_str(n);
                out.push_str("}}");
            }
            Part::Name(n) => match lookup(n, vars)? {
                Value::String(v) => out.push_str(&v),
                other => out.push_str(&other.to_string()),
            },
        }
    }
    Ok(Value::String(out))
}

enum Part<'a> {
    Text(&'a str),
    Name(&'a str),
}

fn split(s: &str) -> Vec<Part<'_>> {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("{{") {
        let Some(j) = rest[i + 2..].find("}}") else {
            break;
        };
        if i > 0 {
            parts.push(Part::Text(&rest[..i]));
        }
        parts.push(Part::Name(rest[i + 2..i + 2 + j].trim()));
        rest = &rest[i + 4 + j..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest));
    }
    parts
}

fn lookup(name: &str, vars: &Vars) -> Result<Value, String> {
    let missing = || format!("`{{{{{name}}}}}`: the case has no `{name}`");
    match name {
        "case.id" => Ok(Value::String(vars.case.id.clone())),
        "case.slice" => Ok(Value::String(vars.case.slice.clone())),
        "run" => vars
            .run
            .map(Value::from)
            .ok_or_else(|| "`{{run}}` is not known here".to_string()),
        "seed" => vars
            .seed
            .map(Value::from)
            .ok_or_else(|| "`{{seed}}` needs `--seed`".to_string()),
        "input" => Ok(vars.case.input.clone()),
        "region" => Ok(Value::String(vars.region.to_string())),
        _ => {
            let Some(path) = name.strip_prefix("input.") else {
                return Err(format!(
                    "`{{{{{name}}}}}` is not a known placeholder (use input.FIELD, case.id, case.slice, run, seed or region)"
                ));
            };
            let mut v = &vars.case.input;
            for seg in path.split('.') {
                v = match v {
                    Value::Object(o) => o.get(seg).ok_or_else(missing)?,
                    Value::Array(a) => seg
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| a.get(i))
                        .ok_or_else(missing)?,
                    _ => return Err(missing()),
                };
            }
            Ok(v.clone())
        }
    }
}

/// The `input.…` fields a template needs (for checking cases when the suite loads).
pub fn input_fields(template: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(template, &mut out);
    out
}

fn walk(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            for p in split(s) {
                if let Part::Name(n) = p {
                    if n.starts_with("input.") && !out.iter().any(|o| o == n) {
                        out.push(n.to_string());
                    }
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
        Value::Object(o) => o.values().for_each(|x| walk(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn case(input: Value) -> Case {
        Case {
            id: "c1".into(),
            slice: "greeting".into(),
            input,
            expect: Default::default(),
            line: 1,
            turns: Vec::new(),
        }
    }

    #[test]
    fn renders_fields_types_and_text() {
        let c = case(json!({"text": "hi there", "n": 3, "v": {"name": "alloy"}}));
        let vars = Vars {
            case: &c,
            run: Some(2),
            seed: None,
            region: "eu-west-1",
        };
        let t = json!({"type": "start", "text": "{{input.text}}", "n": "{{ input.n }}",
                       "voice": "{{input.v.name}}", "tag": "{{case.id}}/{{case.slice}}#{{run}}"});
        assert_eq!(
            render(&t, &vars).unwrap(),
            json!({"type": "start", "text": "hi there", "n": 3, "voice": "alloy", "tag": "c1/greeting#2"})
        );
        assert!(render(&json!("{{input.nope}}"), &vars)
            .unwrap_err()
            .contains("input.nope"));
        assert!(render(&json!("{{seed}}"), &vars).is_err());
        assert_eq!(
            render(&json!("{{region}}"), &vars).unwrap(),
            json!("eu-west-1")
        );
        assert!(render(&json!("{{wat}}"), &vars).is_err());
        // An unclosed brace is text.
        assert_eq!(render(&json!("a {{b"), &vars).unwrap(), json!("a {{b"));
    }

    #[test]
    fn lenient_rendering_keeps_unknown_placeholders() {
        let c = case(json!({"text": "x"}));
        let vars = Vars {
            case: &c,
            run: Some(3),
            seed: Some(9),
            region: "local",
        };
        let body =
            json!({"prompt": "Fill {{name}} in", "nonce": "{{seed}}-{{run}}", "n": "{{run}}"});
        assert_eq!(
            render_lenient(&body, &vars).unwrap(),
            json!({"prompt": "Fill {{name}} in", "nonce": "9-3", "n": 3})
        );
        assert!(render(&body, &vars).is_err());
    }

    #[test]
    fn lists_the_input_fields_used() {
        let t =
            json!({"a": "{{input.text}} and {{input.lang}}", "b": ["{{input.text}}", "{{run}}"]});
        assert_eq!(input_fields(&t), vec!["input.text", "input.lang"]);
    }
}
