//! `--textfile PATH`: node_exporter's textfile collector format (Prometheus text 0.0.4),
//! written atomically (a temporary file in the same folder, then a rename). Like a push, the
//! file is replaced on every run, so the previous file's counters are carried forward first.
//! One file per suite: with several suites, `canary run` puts the suite's name in each file's
//! name (node_exporter reads every `*.prom` file of its folder).

use std::path::Path;

use super::metrics::MetricsModel;

/// Carries the previous file forward into `model` and replaces the file atomically.
pub fn write(path: &Path, model: &mut MetricsModel) -> Result<(), String> {
    if let Ok(previous) = std::fs::read_to_string(path) {
        // One file per suite (`canary run` names them apart when it runs several): the file's
        // own series are carried forward; anything else in it is dropped.
        let ours: Vec<_> = super::expfmt::parse(&previous)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::{load_suite, ProcessEnv};
    use std::time::SystemTime;

    fn count(text: &str, suite: &str) -> f64 {
        crate::sink::expfmt::parse(text)
            .iter()
            .filter(|s| {
                s.name == "canary_probe_runs_total"
                    && s.labels.iter().any(|(k, v)| k == "suite" && v == suite)
            })
            .map(|s| s.value)
            .sum()
    }

    #[test]
    fn each_run_adds_to_the_file_of_its_suite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("canary.prom");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("probes");
        let a = load_suite(&root.join("llama-mapper.yaml"), &ProcessEnv::default()).unwrap();
        for _ in 0..3 {
            let mut m = MetricsModel::from_run(&a, "eu", &[], SystemTime::now());
            let key = m.families["canary_probe_runs"]
                .series
                .keys()
                .next()
                .unwrap()
                .clone();
            if let Some(crate::sink::metrics::Value::Counter(v)) = m
                .families
                .get_mut("canary_probe_runs")
                .unwrap()
                .series
                .get_mut(&key)
            {
                *v += 1.0;
            }
            write(&path, &mut m).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(count(&text, "llama-mapper"), 3.0);
        assert_eq!(
            text.matches("# TYPE canary_probe_runs_total counter")
                .count(),
            1
        );
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
