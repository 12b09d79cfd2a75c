//! The files a run keeps across runs (the fact history, the judgment cache): read when
//! present, written atomically, and the errors of both.

use std::path::{Path, PathBuf};

/// Why a state file (the fact history, the judgment cache) cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file exists but is not what it should be.
    #[error("{}: not a canary {what}: {source}", .path.display())]
    Malformed {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode the {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl StateError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> StateError {
        StateError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Reads a state file: `None` when it does not exist yet.
pub(crate) fn read_state(path: &Path) -> Result<Option<String>, StateError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StateError::io(path, e)),
    }
}

/// Writes a state file atomically: a temporary file beside it, then a rename.
pub(crate) fn write_state(path: &Path, text: &str) -> Result<(), StateError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StateError::io(dir, e))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| StateError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_files_are_written_atomically_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/state.json");
        assert!(read_state(&p).unwrap().is_none());
        write_state(&p, "{\"a\":1}").unwrap();
        assert_eq!(read_state(&p).unwrap().as_deref(), Some("{\"a\":1}"));
        assert!(!p.with_extension("tmp").exists());
        // A directory where the file should be is an I/O error naming the path.
        let e = read_state(dir.path()).unwrap_err();
        assert!(
            e.to_string().starts_with(&dir.path().display().to_string()),
            "{e}"
        );
    }
}
