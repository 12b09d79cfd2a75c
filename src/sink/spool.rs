//! The spool: what a run could not deliver (a push, a remote write) is kept as a file in
//! `--spool DIR` and delivered by the next run before its own results, so nothing measured
//! is lost when the Pushgateway or Prometheus is down. Files are written atomically and
//! removed only after delivery.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// One undelivered payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// A run's own counts (text format, before carrying forward) for a Pushgateway group.
    Push {
        url: String,
        region: String,
        suite: String,
        text: String,
    },
    /// An encoded remote-write request (snappy protobuf, base64), sent as it is.
    RemoteWrite { url: String, body_base64: String },
    /// A JSON notification of `serve` (an SLO state change) for a webhook receiver.
    Notify { url: String, body: String },
    /// An encoded OTLP/HTTP export (protobuf, base64), sent as it is. Its headers are not
    /// kept (they may be credentials): the delivering run sends its own.
    Otlp {
        signal: super::otlp::Signal,
        url: String,
        body_base64: String,
    },
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Saves an entry; returns its file.
pub fn save(dir: &Path, entry: &Entry) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create spool {}: {e}", dir.display()))?;
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let name = format!(
        "{ms:015}-{}-{:010}.json",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let text =
        serde_json::to_string(entry).map_err(|e| format!("cannot encode spool entry: {e}"))?;
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path)
        .map_err(|e| format!("cannot move {} into the spool: {e}", tmp.display()))?;
    Ok(path)
}

/// Every entry, oldest first. Unreadable files are reported and left in place.
pub fn load(dir: &Path) -> Vec<(PathBuf, Entry)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or(".")
                    .starts_with('.')
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        match std::fs::read_to_string(&f)
            .ok()
            .and_then(|t| serde_json::from_str::<Entry>(&t).ok())
        {
            Some(e) => out.push((f, e)),
            None => tracing::warn!(file = %f.display(), "unreadable spool entry left in place"),
        }
    }
    out
}

/// Removes a delivered entry.
pub fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(file = %path.display(), "cannot remove a delivered spool entry: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let a = Entry::Push {
            url: "u".into(),
            region: "r".into(),
            suite: "s".into(),
            text: "x 1\n".into(),
        };
        let b = Entry::RemoteWrite {
            url: "u".into(),
            body_base64: "AAA=".into(),
        };
        let pa = save(dir.path(), &a).unwrap();
        save(dir.path(), &b).unwrap();
        std::fs::write(dir.path().join("junk.json"), "{").unwrap();
        let got = load(dir.path());
        assert_eq!(
            got.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(),
            vec![a, b]
        );
        remove(&pa);
        assert_eq!(load(dir.path()).len(), 1);
        assert!(load(&dir.path().join("absent")).is_empty());
    }
}
