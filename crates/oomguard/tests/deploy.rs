//! The fleet files under `deploy/`: alert rules and dashboard over metrics
//! oomguard really writes, the rules' own unit tests run by `promtool`, the
//! dashboard a well-formed Grafana model.

use oomguard_core::gpu::metrics::METRIC_NAMES;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn deploy(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(deploy(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every `oomguard_*` or `DCGM_*` name in `text`.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("oomguard_") || rest.starts_with("DCGM_FI_") {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            names.push(rest[..end].to_string());
            i += end;
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    names
}

#[test]
fn rules_and_dashboard_use_only_metrics_oomguard_writes() {
    for rel in [
        "prometheus/oomguard-alerts.yml",
        "prometheus/oomguard-alerts.test.yml",
        "grafana/oomguard-dashboard.json",
    ] {
        let names = metric_names(&read(rel));
        assert!(!names.is_empty(), "{rel}: no metric used");
        for n in names {
            // Recording-rule-free files: every name is a metric we export.
            assert!(
                METRIC_NAMES.contains(&n.as_str()),
                "{rel}: unknown metric {n}"
            );
        }
    }
}

#[test]
fn the_dashboard_is_a_grafana_model_with_queries_on_every_panel() {
    let dash: Value = serde_json::from_str(&read("grafana/oomguard-dashboard.json")).unwrap();
    assert!(dash["title"].is_string() && dash["uid"].is_string());
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 6);
    let mut ids = std::collections::HashSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate panel id");
        let grid = &p["gridPos"];
        let right = grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap();
        assert!(right <= 24, "{}: wider than the grid", p["title"]);
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            assert_eq!(
                expr.matches('(').count(),
                expr.matches(')').count(),
                "{expr}"
            );
        }
    }
    // The instance variable is defined for the queries that use it.
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(vars.contains(&"instance") && vars.contains(&"datasource"));
}

#[test]
fn the_alert_rules_pass_their_promtool_tests() {
    let has_promtool = Command::new("promtool").arg("--version").output().is_ok();
    if !has_promtool {
        // CI installs promtool (Debian's prometheus package); a developer
        // machine without it is told, never silently passed in CI.
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is not installed: CI must install it (apt-get install prometheus)"
        );
        eprintln!("skipped: promtool not installed (apt-get install prometheus)");
        return;
    }
    let dir = deploy("prometheus");
    for args in [
        vec!["check", "rules", "oomguard-alerts.yml"],
        vec!["test", "rules", "oomguard-alerts.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_daemonset_runs_the_exporter_with_host_pids() {
    let text = read("kubernetes/daemonset.yaml");
    for needed in [
        "kind: DaemonSet",
        "hostPID: true",
        "watch --serve 0.0.0.0:9464",
        "containerPort: 9464",
        "path: /metrics",
    ] {
        assert!(text.contains(needed), "daemonset lacks {needed}");
    }
}
