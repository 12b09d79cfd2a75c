//! `canary validate`: loads the suites and their golden sets, prints one `ok:` line per suite
//! (with its warnings and the endpoints this build cannot run yet) or every diagnostic with
//! file:line:column; `--dump-config` then prints each suite as it resolves, secrets redacted.

use std::path::PathBuf;

use crate::suite::{self, ProcessEnv};

use super::shared::{plural, print_diags, print_warnings};
use super::{ValidateArgs, EXIT_OK, EXIT_USAGE};

/// Runs `canary validate`; returns the exit code.
pub(super) fn exec(a: &ValidateArgs) -> u8 {
    let code = validate(&a.suites);
    if a.dump_config && code == EXIT_OK {
        let files = suite::suite_files(&a.suites).unwrap_or_default();
        for f in &files {
            match suite::validate::resolved(f, &ProcessEnv::default()) {
                Ok(v) => {
                    println!("# {} (resolved; secrets redacted)", f.display());
                    print!("{}", crate::sink::yaml_out::to_yaml(&v));
                }
                Err(d) => {
                    for x in d {
                        eprintln!("{}", crate::secret::redact(&x.to_string()));
                    }
                    return EXIT_USAGE;
                }
            }
        }
    }
    code
}

fn validate(paths: &[PathBuf]) -> u8 {
    match suite::load_all(paths, &ProcessEnv::default()) {
        Ok(suites) => {
            for s in &suites {
                let cases: usize = s.probes.iter().map(|p| p.cases.len()).sum();
                println!(
                    "ok: {} (suite {}: {}, {}, {}, {})",
                    s.file.display(),
                    s.name,
                    plural(s.endpoints.len(), "endpoint"),
                    plural(s.probes.len(), "probe"),
                    plural(cases, "case"),
                    plural(s.slos.len(), "SLO")
                );
                print_warnings(s);
                for e in s.endpoints.values() {
                    if !e.protocol.implemented() {
                        println!(
                            "note: endpoint `{}` uses protocol `{}`, which this build cannot run yet",
                            e.name,
                            e.protocol.as_str()
                        );
                    }
                }
            }
            EXIT_OK
        }
        Err(d) => {
            print_diags(&d);
            EXIT_USAGE
        }
    }
}
