//! `canary completions SHELL` and `canary man`: shell completion scripts and the man page,
//! generated from the clap definitions of the command line, so they never drift from it.

use std::io::Write;

use clap::CommandFactory;

/// Writes the completion script of `shell` to `out`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    let mut cmd = super::Cli::command();
    clap_complete::generate(shell, &mut cmd, "canary", out);
}

/// Writes the man page (roff): `canary(1)` with a section per subcommand.
pub fn man(out: &mut dyn Write) -> std::io::Result<()> {
    let cmd = super::Cli::command();
    clap_mangen::Man::new(cmd.clone()).render(out)?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("canary-{}", sub.get_name());
        let sub = sub.clone().name(name).version(env!("CARGO_PKG_VERSION"));
        clap_mangen::Man::new(sub).render(out)?;
    }
    Ok(())
}

/// `canary completions`: the exit code.
pub fn run_completions(shell: clap_complete::Shell) -> u8 {
    let mut out = std::io::stdout().lock();
    completions(shell, &mut out);
    let _ = out.flush();
    crate::exit::EXIT_OK
}

/// `canary man`: the exit code.
pub fn run_man() -> u8 {
    let mut buf = Vec::new();
    if let Err(e) = man(&mut buf) {
        eprintln!("error: cannot render the man page: {e}");
        return crate::exit::EXIT_USAGE;
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(&buf).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("error: {e}");
            crate::exit::EXIT_USAGE
        }
        _ => crate::exit::EXIT_OK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_names_the_subcommands() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut buf = Vec::new();
            completions(shell, &mut buf);
            let text = String::from_utf8(buf).unwrap();
            for sub in [
                "run",
                "validate",
                "probe",
                "init",
                "serve",
                "gate",
                "completions",
            ] {
                assert!(text.contains(sub), "{shell:?} lacks {sub}");
            }
        }
    }

    #[test]
    fn the_man_page_has_every_subcommand() {
        let mut buf = Vec::new();
        man(&mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH canary"),
            "{}",
            &text[..200]
        );
        for sub in [
            "canary\\-probe",
            "canary\\-run",
            "canary\\-init",
            "canary\\-serve",
        ] {
            assert!(text.contains(sub), "the man page lacks {sub}");
        }
    }
}
