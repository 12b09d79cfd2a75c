//! The Kubernetes material renders and validates: every overlay through `kubectl kustomize`,
//! every object against the Kubernetes schemas (`kubernetes-validate --strict`), and the
//! properties the fleet relies on (one run at a time, non-root, read-only root, a region
//! per overlay, schedules offset between regions).

mod common;
use common::*;
use std::process::Command;
use yaml_rust2::{Yaml, YamlLoader};

const REGIONS: &[&str] = &["eu-west-1", "us-east-1", "ap-southeast-1"];

fn render(overlay: &str) -> String {
    let out = Command::new("kubectl")
        .args(["kustomize", "--load-restrictor", "LoadRestrictionsNone"])
        .arg(repo().join("deploy/k8s/overlays").join(overlay))
        .output()
        .expect("kubectl (with kustomize) is needed for this test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Validates rendered objects against the Kubernetes 1.30 schemas (`kubernetes-validate --strict`).
fn validate_k8s(yaml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "objects.yaml", yaml);
    // `python3 -m` works whether or not pip's script directory is on PATH.
    let v = Command::new("python3")
        .args([
            "-m",
            "kubernetes_validate",
            "-k",
            "1.30.0",
            "--strict",
            "--quiet",
        ])
        .arg(&f)
        .output()
        .expect(
            "kubernetes-validate is needed (pip install kubernetes-validate); .ci/run installs it",
        );
    assert!(
        v.status.success(),
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
}

fn find<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn overlays_render_validate_and_keep_the_fleet_properties() {
    let mut schedules = Vec::new();
    for region in REGIONS {
        let yaml = render(region);
        validate_k8s(&yaml);

        let docs = YamlLoader::load_from_str(&yaml).unwrap();
        let cj = find(&docs, "CronJob");
        assert_eq!(
            cj["metadata"]["namespace"].as_str(),
            Some(format!("canary-{region}").as_str())
        );
        assert_eq!(cj["spec"]["concurrencyPolicy"].as_str(), Some("Forbid"));
        schedules.push(cj["spec"]["schedule"].as_str().unwrap().to_string());
        let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
        let c = &pod["containers"][0];
        assert_eq!(
            c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
            Some(true)
        );
        assert_eq!(
            c["securityContext"]["allowPrivilegeEscalation"].as_bool(),
            Some(false)
        );
        assert!(c["resources"]["requests"]["memory"].as_str().is_some());
        // API keys come from a Secret, never from the ConfigMap.
        let env = c["env"].as_vec().unwrap();
        assert!(env
            .iter()
            .all(|e| !e["valueFrom"]["secretKeyRef"].is_badvalue()));
        let cm = docs
            .iter()
            .find(|d| {
                d["kind"].as_str() == Some("ConfigMap")
                    && d["metadata"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("canary-config")
            })
            .unwrap();
        assert_eq!(cm["data"]["CANARY_REGION"].as_str(), Some(*region));
        let data = format!("{:?}", cm["data"]);
        assert!(!data.to_lowercase().contains("api_key"), "{data}");
        // The suites the CronJob runs are in the probes ConfigMap and validate.
        let probes = docs
            .iter()
            .find(|d| {
                d["kind"].as_str() == Some("ConfigMap")
                    && d["metadata"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("canary-probes")
            })
            .unwrap();
        assert!(probes["data"]["llama-mapper.yaml"].as_str().is_some());
    }
    schedules.sort();
    schedules.dedup();
    assert_eq!(
        schedules.len(),
        REGIONS.len(),
        "regions must not probe in lockstep"
    );
}

#[test]
fn the_serve_variant_renders_and_validates() {
    let out = Command::new("kubectl")
        .args(["kustomize", "--load-restrictor", "LoadRestrictionsNone"])
        .arg(repo().join("deploy/k8s/serve"))
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let docs = YamlLoader::load_from_str(&text).unwrap();
    // Core objects against the Kubernetes schemas; the ServiceMonitor (a CRD) by its shape.
    let core: Vec<&str> = text
        .split("\n---\n")
        .filter(|d| !d.contains("kind: ServiceMonitor"))
        .collect();
    validate_k8s(&core.join("\n---\n"));
    let sm = find(&docs, "ServiceMonitor");
    assert_eq!(sm["apiVersion"].as_str(), Some("monitoring.coreos.com/v1"));
    assert_eq!(sm["spec"]["endpoints"][0]["port"].as_str(), Some("http"));
    assert_eq!(
        sm["spec"]["endpoints"][0]["path"].as_str(),
        Some("/metrics")
    );
    let svc = find(&docs, "Service");
    assert_eq!(svc["spec"]["ports"][0]["name"].as_str(), Some("http"));
    let dep = find(&docs, "Deployment");
    let pod = &dep["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["args"][0].as_str(), Some("serve"));
    assert_gate_has_a_token(pod);
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        dep["spec"]["replicas"].as_i64(),
        Some(1),
        "one writer per history database"
    );
    // Kubernetes waits longer than canary's own grace before killing it.
    let args: Vec<&str> = c["args"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    let grace = args
        .iter()
        .position(|a| *a == "--grace")
        .map(|i| args[i + 1])
        .unwrap();
    let grace = canary::suite::units::parse_duration(grace)
        .unwrap()
        .as_secs() as i64;
    assert!(pod["terminationGracePeriodSeconds"].as_i64().unwrap() > grace);
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
}

/// The serve container's arguments.
fn args_of(c: &Yaml) -> Vec<String> {
    c["args"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

/// serve refuses `--allow-gate` on 0.0.0.0 without a token: a manifest that opens the gate
/// must give one, from a mounted Secret.
fn assert_gate_has_a_token(pod: &Yaml) {
    let c = &pod["containers"][0];
    let args = args_of(c);
    if !args.iter().any(|a| a == "--allow-gate") {
        return;
    }
    let file = args
        .iter()
        .position(|a| a == "--token-file")
        .map(|i| args[i + 1].clone())
        .expect("--allow-gate on 0.0.0.0 needs --token-file (serve refuses to start otherwise)");
    let mount = c["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|m| file.starts_with(m["mountPath"].as_str().unwrap()))
        .expect("the token file is on a mounted volume");
    let volume = pod["volumes"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert!(
        volume["secret"]["secretName"].as_str().is_some(),
        "the token comes from a Secret"
    );
}

#[test]
fn the_sharded_serve_variant_is_a_statefulset_whose_replicas_match_its_shards() {
    let out = Command::new("kubectl")
        .args(["kustomize", "--load-restrictor", "LoadRestrictionsNone"])
        .arg(repo().join("deploy/k8s/serve-sharded"))
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let docs = YamlLoader::load_from_str(&text).unwrap();
    let core: Vec<&str> = text
        .split("\n---\n")
        .filter(|d| !d.contains("kind: ServiceMonitor"))
        .collect();
    validate_k8s(&core.join("\n---\n"));
    assert!(
        !docs.iter().any(|d| matches!(
            d["kind"].as_str(),
            Some("Deployment" | "PersistentVolumeClaim")
        )),
        "the single-replica Deployment and its volume are gone"
    );
    let sts = find(&docs, "StatefulSet");
    let replicas = sts["spec"]["replicas"].as_i64().unwrap();
    assert_eq!(replicas, 3);
    let pod = &sts["spec"]["template"]["spec"];
    let args = args_of(&pod["containers"][0]);
    let shard = args
        .iter()
        .position(|a| a == "--shard")
        .map(|i| args[i + 1].clone())
        .unwrap();
    assert_eq!(
        shard,
        format!("auto/{replicas}"),
        "each pod's ordinal is its shard: replicas and N agree"
    );
    // Every ordinal the StatefulSet creates is a valid shard, and the pods split the probes.
    for i in 0..replicas {
        let s =
            canary::serve::shard::Shard::parse(&shard, || format!("canary-monitor-{i}")).unwrap();
        assert_eq!(s.index as i64, i);
    }
    // One history per shard, and a governing headless Service that exists.
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"].as_str(),
        Some("history")
    );
    let governing = sts["spec"]["serviceName"].as_str().unwrap();
    let headless = docs
        .iter()
        .find(|d| {
            d["kind"].as_str() == Some("Service")
                && d["metadata"]["name"].as_str() == Some(governing)
        })
        .expect("the governing Service");
    assert_eq!(headless["spec"]["clusterIP"].as_str(), Some("None"));
    // The Service and the ServiceMonitor of the base select the shards' pods: each is scraped.
    let labels = &sts["spec"]["template"]["metadata"]["labels"];
    for d in docs
        .iter()
        .filter(|d| d["kind"].as_str() == Some("Service"))
    {
        for (k, v) in d["spec"]["selector"].as_hash().unwrap() {
            assert_eq!(&labels[k.as_str().unwrap()], v, "{k:?}");
        }
    }
    assert_gate_has_a_token(pod);
    assert!(pod["terminationGracePeriodSeconds"].as_i64().unwrap() > 30);
}

#[test]
fn the_pushgateway_manifest_validates() {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(repo().join("deploy/k8s/pushgateway"))
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    validate_k8s(&String::from_utf8_lossy(&out.stdout));
    let docs = YamlLoader::load_from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let dep = find(&docs, "Deployment");
    let args = format!(
        "{:?}",
        dep["spec"]["template"]["spec"]["containers"][0]["args"]
    );
    assert!(
        args.contains("--persistence.file"),
        "counters must survive a restart: {args}"
    );
}

#[test]
fn the_grafana_dashboard_is_valid_json_and_queries_canary_metrics() {
    let text = std::fs::read_to_string(repo().join("deploy/grafana/canary.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = v["panels"].as_array().unwrap();
    assert!(panels.len() >= 6);
    let exprs: Vec<String> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    for needle in [
        "canary_time_to_first_byte_seconds_bucket",
        "canary_time_to_first_visible_token_seconds_bucket",
        "canary_slo_events_total",
        "canary_tier_total",
        "canary_last_success_timestamp_seconds",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(needle)),
            "no panel queries {needle}"
        );
    }
    // Every query parses: promtool would reject a broken expression inside a rule.
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e
            .replace("$__rate_interval", "5m")
            .replace("$region", ".*")
            .replace("$suite", ".*")
            .replace("$probe", ".*");
        rules += &format!(
            "      - record: dashboard:q{i}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        );
    }
    let f = write(dir.path(), "rules.yaml", &rules);
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&f)
        .output()
        .expect("promtool (Debian's prometheus) is needed");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_gate_integrations_have_the_shapes_their_tools_read() {
    let load = |f: &str| {
        YamlLoader::load_from_str(
            &std::fs::read_to_string(repo().join("deploy/gate").join(f)).unwrap(),
        )
        .unwrap()
    };
    let gha = &load("github-actions.yml")[0];
    let steps = gha["jobs"]["gate"]["steps"].as_vec().unwrap();
    let run: String = steps.iter().filter_map(|s| s["run"].as_str()).collect();
    assert!(
        run.contains("canary gate")
            && run.contains("$GITHUB_STEP_SUMMARY")
            && run.contains("--junit"),
        "{run}"
    );
    let argo = &load("argo-analysistemplate.yaml")[0];
    assert_eq!(argo["kind"].as_str(), Some("AnalysisTemplate"));
    let c =
        &argo["spec"]["metrics"][0]["provider"]["job"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["args"][0].as_str(), Some("gate"));
    let args: Vec<&str> = c["args"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(
        args.contains(&"chat={{args.candidate-url}}"),
        "only the gateway endpoints move: {args:?}"
    );
    let flagger = &load("flagger-canary.yaml")[0];
    let hook = &flagger["spec"]["analysis"]["webhooks"][0];
    assert_eq!(hook["type"].as_str(), Some("pre-rollout"));
    assert!(hook["url"].as_str().unwrap().ends_with("/api/v1/gate"));
    assert!(hook["metadata"]["candidate"].as_str().is_some());
    // The suite the integrations gate on exists and validates.
    let out = canary(&["validate", "probes/chat.yaml"], &[]);
    assert_eq!(out.status.code(), Some(0));
}
