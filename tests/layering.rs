//! The dependency directions of docs/ARCHITECTURE.md ("Dependency directions"), kept true by
//! reading the source: the suite loader (`src/suite/`) must not reach into the drivers, the
//! scheduler or any later stage, and the observation (`src/observation.rs`) must stay plain
//! data. Every `crate::drivers::…` / `crate::schedule::…` path (and `sink`, `slo`, `gate`,
//! `serve`, `cli`) is found, in `use` lines, `use crate::{…}` groups and inline (unit tests
//! after `#[cfg(test)]` may use anything); only the crossings listed in `KNOWN` (each with its
//! reason, and in the architecture page) pass, and a listed crossing that no longer exists
//! fails too, so the list only shrinks.
//!
//! Three more guards on the edge: no caller picks an exit code or a status by matching an
//! error's message (`Err(e) if e.starts_with(..)`), `anyhow` stays in `src/cli/`, and
//! `src/cli/mod.rs` keeps only the arguments and the dispatch (each command in its module).

mod common;
use common::repo;

use std::collections::{BTreeMap, BTreeSet};

/// The stages above the loader and the observation: neither may depend on them.
const UPPER: &[&str] = &["drivers", "schedule", "sink", "slo", "gate", "serve", "cli"];

/// Crossings that remain, by (file, module): data types the loader builds for the drivers
/// and the scheduler's pure parsers. Listed in docs/ARCHITECTURE.md; moving them is planned.
const KNOWN: &[(&str, &str, &str)] = &[
    (
        "src/suite/model.rs",
        "crate::drivers::stream",
        "the compiled stream description an endpoint carries",
    ),
    (
        "src/suite/stream.rs",
        "crate::drivers::stream",
        "stream descriptions compile into the stream driver's spec types",
    ),
    (
        "src/suite/settings.rs",
        "crate::schedule::plan",
        "`max_series` checked against the rotation plan",
    ),
    (
        "src/suite/settings.rs",
        "crate::sink::metrics",
        "`max_series` against the series the metrics model would write",
    ),
    (
        "src/suite/slos.rs",
        "crate::sink::table",
        "a value shortened for a diagnostic as the table shortens it",
    ),
    (
        "src/suite/slos.rs",
        "crate::slo::burn",
        "the warning for an SLO whose alert windows cannot be met",
    ),
    (
        "src/observation.rs",
        "crate::drivers::chat_events",
        "the token estimate of an answer without usage",
    ),
];

/// The source without line and doc comments: a path in a comment is not a dependency. A
/// `//` right after `:` is a URL in a string, not a comment. (Block comments are not
/// stripped: a path in one counts, which errs on the side of failing.)
fn strip_comments(src: &str) -> String {
    src.lines()
        .map(|line| {
            let b = line.as_bytes();
            let cut = (0..b.len().saturating_sub(1))
                .find(|&i| b[i] == b'/' && b[i + 1] == b'/' && (i == 0 || b[i - 1] != b':'));
            match cut {
                Some(i) => &line[..i],
                None => line,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules of `crate::drivers` and `crate::schedule` a source file names, as
/// `crate::drivers::http` (or `crate::drivers` for the bare module), with the line.
fn crossings(src: &str) -> Vec<(usize, String)> {
    // Unit tests (the `#[cfg(test)]` module at the end of a file) may use any module.
    let code = match src.find("#[cfg(test)]") {
        Some(at) => &src[..at],
        None => src,
    };
    let text = strip_comments(code);
    let squeeze = regex::Regex::new(r"\s*(::|\{|\}|,)\s*").unwrap();
    let group = regex::Regex::new(r"\buse crate::\{([^}]*)").unwrap();
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        // `crate :: drivers :: { a , b }` read as `crate::drivers::{a,b}`.
        let compact = squeeze.replace_all(line, "$1").into_owned();
        for top in UPPER {
            // `crate::drivers::x`, `crate::drivers;`, `crate::drivers::{..}`
            let needle = format!("crate::{top}");
            let mut rest = compact.as_str();
            while let Some(at) = rest.find(&needle) {
                let after = &rest[at + needle.len()..];
                let module = after
                    .strip_prefix("::")
                    .map(|m| {
                        m.chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect::<String>()
                    })
                    .filter(|m| !m.is_empty() && m.chars().next().is_some_and(char::is_lowercase));
                let boundary = after
                    .chars()
                    .next()
                    .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
                if boundary {
                    found.push((
                        n + 1,
                        match module {
                            Some(m) => format!("{needle}::{m}"),
                            None => needle.clone(),
                        },
                    ));
                }
                rest = &rest[at + needle.len()..];
            }
        }
        // `use crate::{drivers, ...}` and `use crate::{schedule::cron, ...}`
        if let Some(g) = group.captures(&compact) {
            for item in g[1].split(',') {
                for top in UPPER {
                    if item == *top || item.starts_with(&format!("{top}::")) {
                        let module = item
                            .split("::")
                            .nth(1)
                            .filter(|m| !m.starts_with('{') && !m.is_empty())
                            .map(|m| format!("crate::{top}::{m}"))
                            .unwrap_or_else(|| format!("crate::{top}"));
                        found.push((n + 1, module));
                    }
                }
            }
        }
    }
    found
}

fn sources() -> Vec<std::path::PathBuf> {
    let mut files = vec![repo().join("src/observation.rs")];
    let mut stack = vec![repo().join("src/suite")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn the_scanner_finds_every_form_of_the_path() {
    let src = r#"
//! crate::drivers::http in a doc comment is not a dependency
use crate::drivers::http::system_roots;
use crate::{check, schedule::quality, drivers};
fn f() { let _ = crate :: schedule :: cron :: parse("http://x"); } // crate::drivers::ws
let s = "crate::schedule::plan in a string still counts: it is rare and suspicious";
use crate::driversx::y;
#[cfg(test)]
mod tests { use crate::drivers::stream::Unit; }
"#;
    let got: Vec<String> = crossings(src).into_iter().map(|(_, m)| m).collect();
    assert_eq!(
        got,
        [
            "crate::drivers::http",
            "crate::schedule::quality",
            "crate::drivers",
            "crate::schedule::cron",
            "crate::schedule::plan",
        ]
    );
}

#[test]
fn the_suite_loader_and_the_observation_keep_their_dependency_directions() {
    let mut seen = BTreeSet::new();
    let mut bad = Vec::new();
    for file in sources() {
        let rel = file
            .strip_prefix(repo())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let src = std::fs::read_to_string(&file).unwrap();
        for (line, module) in crossings(&src) {
            if KNOWN.iter().any(|(f, m, _)| *f == rel && *m == module) {
                seen.insert((rel.clone(), module));
            } else {
                bad.push(format!("{rel}:{line}: {module}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "the suite loader and the observation must not depend on the drivers or the scheduler \
         (docs/ARCHITECTURE.md, \"Dependency directions\"); move the shared piece to a neutral \
         module (crate::net::tls, crate::audio::input, crate::check::signals are examples):\n{}",
        bad.join("\n")
    );
    let stale: Vec<String> = KNOWN
        .iter()
        .filter(|(f, m, _)| !seen.contains(&(f.to_string(), m.to_string())))
        .map(|(f, m, why)| format!("{f}: {m} ({why})"))
        .collect();
    assert!(
        stale.is_empty(),
        "these crossings are gone: remove them from KNOWN and from docs/ARCHITECTURE.md:\n{}",
        stale.join("\n")
    );
}

#[test]
fn the_moved_pieces_stay_moved() {
    // The crossings this guard was written for, named so that their return is explicit: the
    // loader's entry and its endpoint section build TLS and network settings from `crate::net`
    // and name no driver at all.
    let read = |p: &str| strip_comments(&std::fs::read_to_string(repo().join(p)).unwrap());
    assert!(!read("src/suite/validate.rs").contains("crate::drivers"));
    assert!(!read("src/suite/endpoints.rs").contains("crate::drivers"));
    assert!(!read("src/suite/net.rs").contains("crate::drivers"));
    assert!(!read("src/suite/golden.rs").contains("crate::drivers::realtime"));
    assert!(!read("src/observation.rs").contains("crate::schedule::quality"));
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// The code of a file before its unit tests, without comments.
fn code_of(path: &std::path::Path) -> String {
    let src = std::fs::read_to_string(path).unwrap();
    let code = match src.find("#[cfg(test)]") {
        Some(at) => &src[..at],
        None => &src,
    };
    strip_comments(code)
}

#[test]
fn exit_codes_and_statuses_come_from_error_variants_not_messages() {
    // `Err(e) if e.starts_with("nothing could be measured")` picked exit 3 once; a typed
    // error's variant decides now (issue 29). The shape of that match must not come back.
    let text_match = regex::Regex::new(
        r"Err\(\s*\w+\s*\)\s*if\s+[\w.()]*\.\s*(starts_with|contains|ends_with)\s*\(",
    )
    .unwrap();
    assert!(text_match.is_match(r#"Err(e) if e.starts_with("nothing") => {"#));
    assert!(text_match.is_match(r#"Err(err) if err.to_string().contains("x") =>"#));
    let mut bad = Vec::new();
    for file in rust_files(&repo().join("src")) {
        for (n, line) in code_of(&file).lines().enumerate() {
            if text_match.is_match(line) {
                bad.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "a caller branches on an error's message; give the error a variant (thiserror) and \
         match on it:\n{}",
        bad.join("\n")
    );
}

#[test]
fn anyhow_stays_in_the_cli() {
    // The library returns typed errors; `anyhow` is for the edge that prints them.
    const STILL: &[&str] = &[];
    let mut bad = Vec::new();
    for file in rust_files(&repo().join("src")) {
        let rel = file
            .strip_prefix(repo())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel.starts_with("src/cli/") || STILL.contains(&rel.as_str()) {
            continue;
        }
        if code_of(&file).contains("anyhow") {
            bad.push(rel);
        }
    }
    assert!(
        bad.is_empty(),
        "`anyhow` outside the CLI (src/cli/): return a thiserror enum instead:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_cli_module_only_parses_and_dispatches() {
    // Each command's body lives in a module of its own under src/cli/ (issue 22): the
    // command line's root keeps the arguments, the exit codes, `main` and `dispatch`.
    assert!(
        !repo().join("src/cli.rs").exists(),
        "src/cli.rs is back; the CLI is src/cli/mod.rs and one module per command"
    );
    let code = code_of(&repo().join("src/cli/mod.rs"));
    let fns = regex::Regex::new(r"\bfn\s+(\w+)").unwrap();
    let found: BTreeSet<String> = fns.captures_iter(&code).map(|c| c[1].to_string()).collect();
    let allowed: BTreeSet<String> = ["main", "init_tracing", "dispatch", "parse_dur"]
        .into_iter()
        .map(String::from)
        .collect();
    let extra: Vec<&String> = found.difference(&allowed).collect();
    assert!(
        extra.is_empty(),
        "src/cli/mod.rs defines {extra:?}: put a command's code in its module under src/cli/ \
         (shared helpers in src/cli/shared.rs)"
    );
    assert!(found.contains("dispatch"), "{found:?}");
}

/// The modules of `src/suite/` a file of it names, outside its unit tests: `super::x`,
/// `crate::suite::x` and the items of `use super::{x, y::z}` groups.
fn suite_deps(src: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let code = match src.find("#[cfg(test)]") {
        Some(at) => &src[..at],
        None => src,
    };
    let text = strip_comments(code);
    let path =
        regex::Regex::new(r"\b(?:super|crate\s*::\s*suite)\s*::\s*([a-z_][a-z0-9_]*)").unwrap();
    let group = regex::Regex::new(r"\b(?:super|crate\s*::\s*suite)\s*::\s*\{").unwrap();
    let mut out: BTreeSet<String> = path
        .captures_iter(&text)
        .map(|c| c[1].to_string())
        .collect();
    for m in group.find_iter(&text) {
        // The top-level items of the group, nested groups skipped.
        let mut depth = 0;
        let mut item = String::new();
        for c in text[m.end()..].chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => item.clear(),
                c if depth == 0
                    && (c.is_ascii_alphanumeric() || c == '_')
                    && !item.contains(':') =>
                {
                    item.push(c);
                    out.insert(item.clone());
                }
                ':' if depth == 0 => item.push(':'),
                _ => {}
            }
        }
    }
    out.retain(|m| modules.contains(m));
    out
}

#[test]
fn the_suite_loader_has_no_import_cycle_and_only_its_parent_names_the_entry() {
    let dir = repo().join("src/suite");
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rs") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            files.insert(name, std::fs::read_to_string(&p).unwrap());
        }
    }
    let modules: BTreeSet<String> = files.keys().filter(|m| *m != "mod").cloned().collect();
    let graph: BTreeMap<String, BTreeSet<String>> = files
        .iter()
        .filter(|(m, _)| *m != "mod")
        .map(|(m, src)| {
            let mut deps = suite_deps(src, &modules);
            deps.remove(m);
            (m.clone(), deps)
        })
        .collect();
    assert!(
        graph["job"].contains("ctx") && graph["validate"].contains("probes"),
        "the scan broke: {graph:?}"
    );
    // The sections and helpers import `ctx`, never the entry (`validate`).
    let naming_entry: Vec<&String> = graph
        .iter()
        .filter(|(_, deps)| deps.contains("validate"))
        .map(|(m, _)| m)
        .collect();
    assert!(
        naming_entry.is_empty(),
        "only src/suite/mod.rs may import `validate` (the loader's shared helpers are in `ctx`): {naming_entry:?}"
    );
    // No module reaches itself through the others.
    for start in graph.keys() {
        let mut stack: Vec<(String, Vec<String>)> = graph[start]
            .iter()
            .map(|d| (d.clone(), vec![start.clone(), d.clone()]))
            .collect();
        let mut seen = BTreeSet::new();
        while let Some((m, trail)) = stack.pop() {
            assert!(
                m != *start,
                "an import cycle in src/suite/: {}",
                trail.join(" -> ")
            );
            if seen.insert(m.clone()) {
                for d in &graph[&m] {
                    let mut t = trail.clone();
                    t.push(d.clone());
                    stack.push((d.clone(), t));
                }
            }
        }
    }
}

#[test]
fn the_network_module_sits_below_every_stage() {
    // `crate::net` is shared by the drivers, the sinks and the loader: it may use the plain
    // pieces under it (`timeline` for its stamps, `secret` for redaction) and nothing above.
    let allowed = ["net", "timeline", "secret"];
    let path = regex::Regex::new(r"\bcrate::([a-z_]+)").unwrap();
    let mut bad = Vec::new();
    for f in rust_files(&repo().join("src/net")) {
        let text = std::fs::read_to_string(&f).unwrap();
        let code = strip_comments(match text.find("#[cfg(test)]") {
            Some(at) => &text[..at],
            None => &text,
        });
        for (i, line) in code.lines().enumerate() {
            for c in path.captures_iter(line) {
                if !allowed.contains(&&c[1]) {
                    bad.push(format!("{}:{}: crate::{}", f.display(), i + 1, &c[1]));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "src/net/ must not depend on the stages that use it:\n{}",
        bad.join("\n")
    );
}
