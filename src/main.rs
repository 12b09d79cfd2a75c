//! The `canary` binary: everything lives in the library; this only hands over to the CLI.

fn main() -> std::process::ExitCode {
    canary::cli::main()
}
