//! The first ten minutes: `canary probe URL` (one-shot probing without a suite) and
//! `canary init KIND` (a commented starter suite and golden set), and the progress line of a
//! long `canary run` on a terminal, and the editor schema of the suite format (shell
//! completions and the man page are the command line's own, `cli::shell`). Both go through the normal
//! suite loader and executor, so what they measure is what `canary run` measures.

pub mod init;
pub mod probe;
pub mod progress;
pub mod schema;
