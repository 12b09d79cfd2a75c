//! The code's structure, read from the source (docs/ARCHITECTURE.md, "Dependency
//! directions"):
//!
//! - **No import cycles between modules.** Every `crate::…`, `super::…` and `self::…` path
//!   of a module file (in `use` trees, groups expanded, and inline) is resolved to the module
//!   file it names; a module and its own submodules are one unit (a parent re-exporting its
//!   children is not a cycle); then no two modules may reach each other. Unit tests (the
//!   `#[cfg(test)] mod tests` at the end of a file) may use anything.
//! - **No process-wide mutable state** outside the few places listed in `GLOBALS`, each with
//!   its reason: a run's region, fact history, judgment cache and backoff table travel in
//!   its `RunContext`.

mod common;
use common::repo;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every module file under `src/` by module path (`sink::metrics`), without the binary's
/// `main.rs`.
fn modules() -> BTreeMap<String, String> {
    let src = repo().join("src");
    let mut out = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") || p == src.join("main.rs") {
                continue;
            }
            out.insert(module_path(&src, &p), std::fs::read_to_string(&p).unwrap());
        }
    }
    out
}

fn module_path(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without its unit-test module and without comments (a path in a
/// comment is not a dependency; a `//` right after `:` is a URL in a string).
fn code_of(src: &str) -> String {
    let mut kept = Vec::new();
    let lines: Vec<&str> = src.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() == "#[cfg(test)]"
            && lines
                .get(i + 1)
                .is_some_and(|n| n.trim_start().starts_with("mod tests"))
        {
            break;
        }
        let b = line.as_bytes();
        let cut = (0..b.len().saturating_sub(1))
            .find(|&i| b[i] == b'/' && b[i + 1] == b'/' && (i == 0 || b[i - 1] != b':'));
        kept.push(match cut {
            Some(i) => &line[..i],
            None => line,
        });
    }
    kept.join("\n")
}

/// The full paths of a `use` tree (`crate::{a, b::{c, d}}` -> `crate::a`, `crate::b::c`,
/// `crate::b::d`), whitespace removed, `as` renames dropped.
fn expand(tree: &str) -> Vec<String> {
    fn walk(prefix: &str, tree: &str, out: &mut Vec<String>) {
        let tree = tree.trim();
        let Some(open) = tree.find('{') else {
            let path = tree.split(" as ").next().unwrap_or(tree).replace(' ', "");
            let path = path.strip_suffix("::self").unwrap_or(&path);
            if !path.is_empty() {
                out.push(format!("{prefix}{path}"));
            }
            return;
        };
        let head = tree[..open].replace(' ', "");
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let mut depth = 0;
        let mut start = 0;
        let mut items = Vec::new();
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&inner[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        items.push(&inner[start..]);
        for item in items {
            let item = item.trim();
            if item == "self" {
                out.push(format!("{prefix}{}", head.trim_end_matches("::")));
            } else if !item.is_empty() {
                walk(&format!("{prefix}{head}"), item, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(
        "",
        &tree.split_whitespace().collect::<Vec<_>>().join(" "),
        &mut out,
    );
    out
}

/// The paths a module's code names: its `use` trees expanded, and inline paths.
fn paths(code: &str) -> Vec<String> {
    let uses = regex::Regex::new(r"\buse\s+((?:crate|super|self)\b[^;]*);").unwrap();
    let inline = regex::Regex::new(r"\b(?:crate|super|self)(?:\s*::\s*[A-Za-z_]\w*)+").unwrap();
    let mut out = Vec::new();
    for c in uses.captures_iter(code) {
        out.extend(expand(&c[1]));
    }
    for m in inline.find_iter(code) {
        out.push(m.as_str().split_whitespace().collect::<String>());
    }
    out
}

/// The module a path names from `current`: the longest known module prefix.
fn resolve(current: &str, path: &str, known: &BTreeMap<String, String>) -> Option<String> {
    let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<&str> = if current.is_empty() {
        Vec::new()
    } else {
        current.split("::").collect()
    };
    match segs.first().copied() {
        Some("crate") => {
            base.clear();
            segs.remove(0);
        }
        Some("self") => {
            segs.remove(0);
        }
        Some("super") => {
            while segs.first() == Some(&"super") {
                segs.remove(0);
                base.pop()?;
            }
        }
        _ => return None,
    }
    (0..=segs.len()).rev().find_map(|n| {
        let m: Vec<&str> = base.iter().chain(&segs[..n]).copied().collect();
        let m = m.join("::");
        known.contains_key(&m).then_some(m)
    })
}

fn related(a: &str, b: &str) -> bool {
    let under = |x: &str, y: &str| x.is_empty() || y.starts_with(&format!("{x}::"));
    under(a, b) || under(b, a)
}

/// Module -> the modules it imports (neither its ancestors nor its descendants).
fn graph(known: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    known
        .iter()
        .map(|(m, src)| {
            let deps = paths(&code_of(src))
                .iter()
                .filter_map(|p| resolve(m, p, known))
                .filter(|d| d != m && !related(m, d))
                .collect();
            (m.clone(), deps)
        })
        .collect()
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn use_trees_expand_and_paths_resolve() {
    assert_eq!(
        expand("crate::{a, b::{c, d as e}, f::self}"),
        ["crate::a", "crate::b::c", "crate::b::d", "crate::f"]
    );
    let known: BTreeMap<String, String> = ["", "a", "a::b", "a::b::c", "d"]
        .iter()
        .map(|m| (m.to_string(), String::new()))
        .collect();
    assert_eq!(
        resolve("a::b", "super::b::c::Item", &known).as_deref(),
        Some("a::b::c")
    );
    assert_eq!(
        resolve("a::b", "crate::d::x::y", &known).as_deref(),
        Some("d")
    );
    assert_eq!(resolve("a", "self::b::f", &known).as_deref(), Some("a::b"));
    assert_eq!(resolve("a", "std::fs", &known), None);
    let code = code_of(
        "use crate::a::b; // crate::d in a comment\nfn f() { super :: d :: g() }\n#[cfg(test)]\nmod tests { use crate::x; }\n",
    );
    assert_eq!(paths(&code), ["crate::a::b", "crate::a::b", "super::d::g"]);
}

#[test]
fn a_cycle_is_found_and_a_parent_with_its_children_is_not_one() {
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(cycles(&g), [vec!["a", "b", "c"]]);
    assert!(related("sink", "sink::metrics") && !related("sink::a", "sink::b"));
}

#[test]
fn no_two_modules_import_each_other() {
    let known = modules();
    let g = graph(&known);
    // The scan sees the code: a module graph this small would mean the parser broke.
    assert!(g.len() > 100, "{} modules", g.len());
    assert!(
        g["schedule::executor"].contains("drivers"),
        "{:?}",
        g["schedule::executor"]
    );
    let found = cycles(&g);
    let shown: Vec<String> = found
        .iter()
        .map(|c| {
            let edges: Vec<String> = c
                .iter()
                .flat_map(|a| {
                    g[a].iter()
                        .filter(|b| c.contains(b))
                        .map(move |b| format!("    {a} -> {b}"))
                })
                .collect();
            format!("{}:\n{}", c.join(", "), edges.join("\n"))
        })
        .collect();
    assert!(
        found.is_empty(),
        "import cycles between modules (move the shared piece into a module both can use, \
         see docs/ARCHITECTURE.md):\n{}",
        shown.join("\n")
    );
}

/// Process-wide mutable state that remains, by file, with its reason.
const GLOBALS: &[(&str, &str)] = &[
    (
        "src/secret.rs",
        "the redaction registry: every path that prints must redact, so it cannot be a handle a caller could forget",
    ),
    (
        "src/sink/spool.rs",
        "a sequence number that makes spool file names unique within the process",
    ),
    (
        "src/timeline/trace.rs",
        "a counter mixed into random span ids, so two ids of one instant differ",
    ),
    (
        "src/net/http.rs",
        "TLS client configurations built once (read-only after)",
    ),
    (
        "src/net/rxstamp.rs",
        "a probe socket kept open for the kernel's timestamping (read-only after)",
    ),
    (
        "src/fuzzing.rs",
        "the built-in stream descriptions compiled once for the fuzz targets (read-only)",
    ),
];

#[test]
fn process_wide_state_is_only_where_listed() {
    let statics = regex::Regex::new(
        r"\bstatic\s+(?:mut\s+)?[A-Z_][A-Z0-9_]*\s*:\s*[^=;]*(?:Mutex|RwLock|OnceLock|OnceCell|Atomic|Cell|RefCell)",
    )
    .unwrap();
    let src = repo().join("src");
    let mut found = BTreeSet::new();
    let mut bad = Vec::new();
    for (m, text) in modules() {
        let code = code_of(&text);
        if !statics.is_match(&code) || m.starts_with("sim") {
            // The simulator is a separate server with its own process-wide truth.
            continue;
        }
        let file = if src.join(m.replace("::", "/")).join("mod.rs").exists() {
            format!("src/{}/mod.rs", m.replace("::", "/"))
        } else if m.is_empty() {
            "src/lib.rs".into()
        } else {
            format!("src/{}.rs", m.replace("::", "/"))
        };
        if GLOBALS.iter().any(|(f, _)| *f == file) {
            found.insert(file);
        } else {
            bad.push(file);
        }
    }
    assert!(
        bad.is_empty(),
        "process-wide mutable state in {bad:?}: carry it in the run's context \
         (schedule::RunContext) or the serve state instead"
    );
    let stale: Vec<&str> = GLOBALS
        .iter()
        .map(|(f, _)| *f)
        .filter(|f| !found.contains(*f))
        .collect();
    assert!(
        stale.is_empty(),
        "no longer global, remove from GLOBALS: {stale:?}"
    );
}
