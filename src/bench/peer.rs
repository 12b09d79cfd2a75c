//! The peer: NVIDIA's `aiperf`, run against the same simulator scenarios.

use std::path::Path;

use serde::Serialize;

use super::scenario::Scenarios;

/// The peer's part of the report.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PeerSection {
    Skipped { reason: String },
}

impl PeerSection {
    pub fn skipped(reason: &str) -> PeerSection {
        PeerSection::Skipped {
            reason: reason.into(),
        }
    }
}

/// Runs the peer (installing it when absent).
pub async fn run(
    _out: &Path,
    _base: &str,
    _sc: &Scenarios,
    _exe: &Path,
    _quick: bool,
) -> PeerSection {
    PeerSection::skipped("not yet")
}

/// The peer's section of the Markdown report.
pub fn markdown(p: &PeerSection) -> String {
    match p {
        PeerSection::Skipped { reason } => format!("## Peer\n\nNot run: {reason}.\n"),
    }
}
