//! The README's and docs' example commands agree with the binary: every `canary ...` command
//! in a code block names a real subcommand and only flags that subcommand accepts, and the
//! ones that need no network (`validate`, `plan`, `rules` on the repository's suites) run and
//! exit 0.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{canary, repo, text};

/// One documented command: where it is, and its words after `canary`.
struct Documented {
    at: String,
    words: Vec<String>,
}

/// Splits a shell line into words (single and double quotes, backslash escapes); stops at an
/// unquoted `#`, `|`, `>`, `&`, `;`.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut has = false;
    let mut chars = line.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    has = true;
                }
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                        has = true;
                    }
                }
                '#' if cur.is_empty() => break,
                '|' | '>' | '&' | ';' => break,
                c if c.is_whitespace() => {
                    if has {
                        out.push(std::mem::take(&mut cur));
                        has = false;
                    }
                }
                c => {
                    cur.push(c);
                    has = true;
                }
            },
        }
    }
    if has {
        out.push(cur);
    }
    out
}

/// Every `canary ...` (or `cargo run --release -- ...`) command in the code blocks of the
/// README and docs/*.md, with continuation lines joined and `VAR=value` prefixes dropped.
fn documented() -> Vec<Documented> {
    let root = repo();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut in_block = false;
        let mut pending = String::new();
        let mut start = 0;
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                in_block = !in_block;
                pending.clear();
                continue;
            }
            if !in_block {
                continue;
            }
            if pending.is_empty() {
                start = i + 1;
            }
            let l = line.trim();
            if let Some(cont) = l.strip_suffix('\\') {
                pending.push_str(cont);
                pending.push(' ');
                continue;
            }
            pending.push_str(l);
            let mut w = words(&std::mem::take(&mut pending));
            // `$ ` prompts and `VAR=value` prefixes.
            while w
                .first()
                .is_some_and(|x| x == "$" || (x.contains('=') && !x.starts_with('-')))
            {
                w.remove(0);
            }
            let rest = match w.first().map(String::as_str) {
                Some("canary") => w[1..].to_vec(),
                Some("cargo") if w.len() > 4 && w[1] == "run" && w.iter().any(|x| x == "--") => {
                    let i = w.iter().position(|x| x == "--").unwrap();
                    w[i + 1..].to_vec()
                }
                _ => continue,
            };
            // Prose that happens to start with "canary" inside a block is not a command.
            if rest
                .first()
                .is_none_or(|s| !s.chars().all(|c| c.is_ascii_lowercase()))
            {
                continue;
            }
            out.push(Documented {
                at: format!("{}:{start}", f.strip_prefix(&root).unwrap_or(&f).display()),
                words: rest,
            });
        }
    }
    out
}

/// The long flags `canary SUB --help` lists.
fn flags_of(sub: &str, cache: &mut HashMap<String, Option<Vec<String>>>) -> Option<Vec<String>> {
    cache
        .entry(sub.to_string())
        .or_insert_with(|| {
            let out = canary(&[sub, "--help"], &[]);
            if !out.status.success() {
                return None;
            }
            let help = text(&out).0;
            Some(
                help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
                    .filter(|w| w.starts_with("--"))
                    .map(|w| w.split('=').next().unwrap_or(w).to_string())
                    .chain(["--help".to_string()])
                    .collect(),
            )
        })
        .clone()
}

#[test]
fn every_documented_command_names_a_real_subcommand_and_real_flags() {
    let cmds = documented();
    assert!(
        cmds.len() >= 30,
        "the README and docs show dozens of commands; found {}",
        cmds.len()
    );
    eprintln!("{} documented commands", cmds.len());
    let mut cache = HashMap::new();
    let mut wrong = Vec::new();
    for c in &cmds {
        let sub = &c.words[0];
        let Some(flags) = flags_of(sub, &mut cache) else {
            wrong.push(format!("{}: `canary {sub}` is not a subcommand", c.at));
            continue;
        };
        for w in c.words.iter().skip(1).filter(|w| w.starts_with("--")) {
            let name = w.split('=').next().unwrap_or(w);
            if name != "--" && !flags.iter().any(|f| f == name) {
                wrong.push(format!("{}: `canary {sub}` has no flag {name}", c.at));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Expands `probes/*.yaml`-style words against the repository.
fn expand(word: &str, root: &Path) -> Vec<String> {
    let Some(star) = word.find('*') else {
        return vec![word.to_string()];
    };
    let (dir, pat) = word.rsplit_once('/').unwrap_or((".", word));
    let (pre, suf) = pat.split_at(pat.find('*').unwrap_or(star));
    let suf = &suf[1..];
    let mut v: Vec<String> = std::fs::read_dir(root.join(dir))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(pre) && n.ends_with(suf))
                .map(|n| format!("{dir}/{n}"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn documented_offline_commands_run_on_the_repository_suites() {
    let root = repo();
    let mut ran = 0;
    let mut failed = Vec::new();
    for c in documented() {
        if !matches!(c.words[0].as_str(), "validate" | "plan" | "rules") {
            continue;
        }
        let args: Vec<String> = c.words.iter().flat_map(|w| expand(w, &root)).collect();
        // Only the commands on suites that are in the repository (not SUITE placeholders).
        let paths: Vec<&String> = args[1..]
            .iter()
            .take_while(|a| !a.starts_with("--"))
            .collect();
        if paths.is_empty() || !paths.iter().all(|p| root.join(p).exists()) {
            continue;
        }
        // `--out FILE` would write into the repository: keep the output on stdout.
        let mut argv: Vec<&str> = Vec::new();
        let mut skip = false;
        for a in &args {
            if skip {
                skip = false;
                continue;
            }
            if a == "--out" {
                skip = true;
                continue;
            }
            argv.push(a);
        }
        let out = canary(&argv, &[]);
        ran += 1;
        if out.status.code() != Some(0) {
            let (o, e) = text(&out);
            failed.push(format!("{}: canary {}: {o}{e}", c.at, argv.join(" ")));
        }
    }
    eprintln!("ran {ran} documented offline commands");
    assert!(ran >= 4, "only {ran} documented offline commands ran");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn shell_words() {
    assert_eq!(
        words("canary run \"a b\" --x 'c' # comment"),
        vec!["canary", "run", "a b", "--x", "c"]
    );
    assert_eq!(
        words("canary rules x > out.yaml"),
        vec!["canary", "rules", "x"]
    );
}
