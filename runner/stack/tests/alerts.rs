//! Alerts (`monitoring.enabled`): Rook's upstream PrometheusRule (hash-checked, namespace
//! rewritten like the rest of Rook's files) plus Rookery's rules for Velero, in a stage after
//! Velero, flagged so `apply` skips them on a cluster without the Prometheus Operator's CRDs.
//! Every `expr`, upstream's and ours, is parsed by a real PromQL parser (`promql-parser`, a
//! port of Prometheus' own grammar), and ours use only metric names Velero exports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use rookery_stack::bundle::{self, Bundle};
use rookery_stack::desired::{DesiredState, Stage};
use rookery_stack::render::{self, ALERTS_SKIP_HINT, ROOKERY_RULES_NAME, RenderOptions};
use serde_json::Value;

/// Velero's metric names (velero@v1.18.1 `pkg/metrics/metrics.go`; rook-velero-facts-2 §2).
const VELERO_METRICS: &[&str] = &[
    "velero_backup_failure_total",
    "velero_backup_partial_failure_total",
    "velero_backup_last_successful_timestamp",
    "velero_backup_location_status_gauge",
];

/// An example stack with monitoring switched on (and optionally moved to another namespace).
fn render_with_monitoring(example: &str, namespace: Option<&str>) -> DesiredState {
    let dir = common::example_dir(example);
    let mut text = std::fs::read_to_string(dir.join("stack.yaml")).unwrap();
    text = text.replace("monitoring:\n  enabled: false", "");
    text.push_str("\nmonitoring:\n  enabled: true\n");
    if let Some(ns) = namespace {
        text = text.replace("namespace: rook-ceph\n", &format!("namespace: {ns}\n"));
    }
    let stack = common::stack(&text);
    let hosts = common::hosts_from_facts(&dir.join("facts.json"));
    let (stack, cluster, _) =
        common::plan(stack, &hosts, &dir, rookery_stack::hosts::FactsSource::File);
    let b = Bundle::new(common::shared_upstream(), bundle::lock().unwrap());
    let opts = RenderOptions {
        stack_dir: dir,
        allow_missing_bundle: false,
    };
    render::render(&stack, &cluster, &b, &opts).unwrap()
}

/// Every (rule name, expr) of a PrometheusRule body.
fn exprs(rule: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for g in rule["spec"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            let name = r["alert"].as_str().or(r["record"].as_str()).unwrap();
            out.push((name.to_string(), r["expr"].as_str().unwrap().to_string()));
        }
    }
    out
}

fn assert_parses(what: &str, exprs: &[(String, String)]) {
    assert!(!exprs.is_empty(), "{what}: no rules");
    for (name, expr) in exprs {
        if let Err(e) = promql_parser::parser::parse(expr) {
            panic!("{what}: rule {name}: `{expr}` is not valid PromQL: {e}");
        }
    }
}

#[test]
fn upstream_rook_rules_parse() {
    let path =
        common::shared_upstream().join("rook-v1.20.6/deploy/examples/monitoring/localrules.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let doc: Value = rookery_stack::yaml::parse(&text, &path).unwrap();
    let all = exprs(&doc);
    assert_eq!(all.len(), 89, "rules in Rook's localrules.yaml");
    assert_parses("localrules.yaml", &all);
}

#[test]
fn monitoring_renders_rook_and_rookery_rules_after_velero() {
    let desired = render_with_monitoring("production", None);
    let rules: Vec<_> = desired
        .objects
        .iter()
        .filter(|o| o.id.kind == "PrometheusRule")
        .collect();
    let names: Vec<&str> = rules.iter().map(|o| o.id.name.as_str()).collect();
    assert_eq!(names, ["prometheus-ceph-rules", ROOKERY_RULES_NAME]);
    for o in &rules {
        assert_eq!(o.stage, Stage::Alerts, "{}", o.id);
        assert_eq!(o.id.namespace.as_deref(), Some("rook-ceph"));
        assert_eq!(o.skip_unless_served.as_deref(), Some(ALERTS_SKIP_HINT));
        assert_parses(&o.id.to_string(), &exprs(&o.body));
    }
    // Last stage, after Velero and its schedules.
    let last = desired.objects.iter().map(|o| o.stage).max().unwrap();
    assert_eq!(last, Stage::Alerts);
    assert!(desired.in_stage(Stage::BackupSchedules).count() > 0);
    // Rook's file went through the bundle's hash check.
    match &rules[0].source {
        rookery_stack::desired::Source::Bundle { sha256, .. } => assert_eq!(
            sha256,
            "0637e1f3249158baf0e841c9f5432252ee03e52cde3dfc88caddd1ee9354ae5b"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(exprs(&rules[0].body).len(), 89);

    // Ours: failures, partial failures, BSL unavailable, and per schedule "no successful
    // backup within twice its period" (production: nightly `0 2 * * *`, weekly-offsite
    // `@weekly`), using only Velero's own metric names.
    let ours = exprs(&rules[1].body);
    let alerts: Vec<&str> = ours.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        alerts,
        [
            "VeleroBackupFailed",
            "VeleroBackupPartiallyFailed",
            "VeleroBackupStorageLocationUnavailable",
            "VeleroScheduleNoRecentBackup",
            "VeleroScheduleNeverSucceeded",
            "VeleroScheduleNoRecentBackup",
            "VeleroScheduleNeverSucceeded",
        ]
    );
    let word = regex::Regex::new(r"[a-z_]+_[a-z_]+").unwrap();
    for (name, expr) in &ours {
        for m in word.find_iter(expr) {
            let m = m.as_str();
            if m.starts_with("velero_") {
                assert!(
                    VELERO_METRICS.contains(&m),
                    "{name}: `{m}` is not a Velero metric"
                );
            }
        }
    }
    assert_eq!(
        ours[3].1,
        "(time() - velero_backup_last_successful_timestamp{schedule=\"nightly\"} > 172800) and \
         (velero_backup_last_successful_timestamp{schedule=\"nightly\"} > 0)"
    );
    assert_eq!(
        ours[5].1,
        "(time() - velero_backup_last_successful_timestamp{schedule=\"weekly-offsite\"} > 1209600) \
         and (velero_backup_last_successful_timestamp{schedule=\"weekly-offsite\"} > 0)"
    );
    // Prometheus' own templating reaches the object untouched by Rookery's templates.
    let failed = &rules[1].body["spec"]["groups"][0]["rules"][0];
    assert_eq!(
        failed["annotations"]["summary"],
        "A Velero backup failed (schedule \"{{ $labels.schedule }}\")"
    );
    let never = &rules[1].body["spec"]["groups"][0]["rules"][4];
    assert_eq!(never["for"], "2d");
    assert_eq!(never["labels"]["schedule"], "nightly");
}

#[test]
fn rules_follow_the_cluster_namespace() {
    let desired = render_with_monitoring("production", Some("storage-system"));
    let ns: Vec<_> = desired
        .objects
        .iter()
        .filter(|o| o.id.kind == "PrometheusRule")
        .map(|o| o.id.namespace.clone().unwrap())
        .collect();
    assert_eq!(ns, ["storage-system", "storage-system"]);
}

#[test]
fn no_rules_without_monitoring() {
    let (stack, cluster, _) = common::plan_example("production");
    assert!(!stack.monitoring.enabled);
    let b = Bundle::new(common::shared_upstream(), bundle::lock().unwrap());
    let opts = RenderOptions {
        stack_dir: common::example_dir("production"),
        allow_missing_bundle: false,
    };
    let desired = render::render(&stack, &cluster, &b, &opts).unwrap();
    assert_eq!(desired.in_stage(Stage::Alerts).count(), 0);
    assert!(
        desired
            .objects
            .iter()
            .all(|o| o.id.kind != "PrometheusRule")
    );
}
