//! `--textfile PATH`: node_exporter's textfile collector format (Prometheus text 0.0.4),
//! written atomically (a temporary file in the same folder, then a rename). Like a push, the
//! file is replaced on every run, so the previous file's counters are carried forward first.

use std::path::Path;

use super::metrics::MetricsModel;

/// Carries the previous file forward into `model` and replaces the file atomically.
pub fn write(path: &Path, model: &mut MetricsModel) -> Result<(), String> {
    if let Ok(previous) = std::fs::read_to_string(path) {
        let samples = super::expfmt::parse(&previous);
        let ours: Vec<_> = samples
            .into_iter()
            .filter(|s| {
                let has = |k: &str, v: &str| s.labels.iter().any(|(a, b)| a == k && b == v);
                has("region", &model.region) && has("suite", &model.suite)
            })
            .collect();
        model.carry_forward(&ours);
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("canary.prom");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, model.encode_text())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot move {} to {}: {e}", tmp.display(), path.display())
    })
}
