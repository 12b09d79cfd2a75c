//! `canary completions SHELL` and `canary man` print scripts and a page that name every
//! subcommand (generated from the command-line definitions).

mod common;
use common::*;

const SUBCOMMANDS: &[&str] = &[
    "validate",
    "run",
    "plan",
    "gate",
    "rules",
    "serve",
    "sim",
    "bench",
    "demo",
    "probe",
    "init",
    "completions",
    "man",
];

#[test]
fn completions_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let out = canary(&["completions", shell], &[]);
        let (so, se) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{shell}: {se}");
        for sub in SUBCOMMANDS {
            assert!(so.contains(sub), "{shell}: no `{sub}` in the script");
        }
        // Options of a subcommand complete too.
        assert!(so.contains("concurrency"), "{shell}");
    }
    let bad = canary(&["completions", "cmd.exe"], &[]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn the_man_page_covers_every_subcommand() {
    let out = canary(&["man"], &[]);
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{se}");
    assert!(so.contains(".TH canary 1"), "{}", &so[..so.len().min(300)]);
    for sub in SUBCOMMANDS {
        assert!(
            so.contains(&format!(".TH canary-{sub} 1")),
            "no section for {sub}"
        );
    }
}
