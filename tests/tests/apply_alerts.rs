//! Alerts against a real control plane (etcd + kube-apiserver): with `monitoring.enabled`,
//! `rookery plan` says the alert rules need the Prometheus Operator's CRDs; `rookery apply`
//! skips them with a clear warning on a cluster that does not serve PrometheusRule (and still
//! succeeds), and applies Rook's and Rookery's PrometheusRules once it does.
//!
//! Played by the test: the PrometheusRule CRD. The Prometheus Operator's own CRD is not among
//! the pinned upstream files (Rook does not ship it, rook-velero-facts-2 §2), so the test
//! installs a minimal CRD of the same group, version, kind and scope that accepts any spec;
//! the rules' syntax is checked separately with a real PromQL parser
//! (`runner/stack/tests/alerts.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rookery_tests::bins;
use rookery_tests::kube::objects;
use rookery_tests::kube::{KubeCluster, missing_prerequisite};
use rookery_tests::require::prerequisite;
use serde_json::{Value, json};

fn lab_with_monitoring(dir: &Path) -> std::path::PathBuf {
    let lab = bins::repo_root().join("stacks/lab-3node");
    let to = dir.join("lab");
    std::fs::create_dir_all(to.join("secrets")).unwrap();
    for f in ["inventory.yaml", "facts.json"] {
        std::fs::copy(lab.join(f), to.join(f)).unwrap();
    }
    for e in std::fs::read_dir(lab.join("secrets")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join("secrets").join(e.file_name())).unwrap();
    }
    let mut stack = std::fs::read_to_string(lab.join("stack.yaml")).unwrap();
    assert!(
        !stack.contains("\nmonitoring:"),
        "the lab stack now sets monitoring"
    );
    stack.push_str("\nmonitoring:\n  enabled: true\n");
    std::fs::write(to.join("stack.yaml"), stack).unwrap();
    to
}

fn rookery(cmd: &str, stack_dir: &Path, kubeconfig: Option<&Path>, args: &[&str]) -> (i32, String) {
    let mut c = Command::new(bins::rookery());
    c.arg(cmd)
        .arg("-i")
        .arg(stack_dir.join("inventory.yaml"))
        .arg("--stack")
        .arg(stack_dir.join("stack.yaml"))
        .arg("--facts")
        .arg(stack_dir.join("facts.json"))
        .arg("--bundle-dir")
        .arg(bins::shared_dir().join("upstream"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1");
    if let Some(kc) = kubeconfig {
        c.arg("--kubeconfig").arg(kc);
    }
    let out = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("rookery {cmd} {args:?}: {}\n{text}", out.status);
    (out.status.code().unwrap_or(-1), text)
}

/// A PrometheusRule CRD as the Prometheus Operator defines its identity (group
/// monitoring.coreos.com, v1, namespaced, plural prometheusrules), with an open schema.
fn prometheusrule_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "prometheusrules.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {
                "kind": "PrometheusRule",
                "listKind": "PrometheusRuleList",
                "plural": "prometheusrules",
                "singular": "prometheusrule"
            },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true
                }}
            }]
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_rules_skipped_without_the_crd_and_applied_with_it() {
    if !prerequisite(
        missing_prerequisite().is_none(),
        missing_prerequisite().as_deref().unwrap_or(""),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let stack = lab_with_monitoring(dir.path());

    let (code, plan) = rookery("plan", &stack, None, &[]);
    assert_eq!(code, 0, "{plan}");
    assert!(
        plan.contains("Prometheus alert rules (2 PrometheusRule"),
        "{plan}"
    );
    assert!(
        plan.contains(
            "note: applied only if the cluster serves PrometheusRule (monitoring.coreos.com/v1); \
             without it `apply` skips them with a warning"
        ),
        "{plan}"
    );

    let cluster = KubeCluster::builder().api_only().start().await.unwrap();
    let client = cluster.client().await.unwrap();
    objects::apply(
        &client,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rook-ceph"}}),
    )
    .await
    .unwrap();

    let kc = cluster.kubeconfig();
    let (code, out) = rookery("apply", &stack, Some(kc), &["--stage", "alerts"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "warning: not applied: the cluster does not serve PrometheusRule \
             (monitoring.coreos.com/v1), so 2 object(s) were skipped: PrometheusRule \
             rook-ceph/prometheus-ceph-rules, PrometheusRule rook-ceph/rookery-backup-rules; \
             install the Prometheus Operator's CRDs"
        ),
        "{out}"
    );

    // diff tells the same story instead of promising a create.
    let (code, out) = rookery("diff", &stack, Some(kc), &[]);
    assert_eq!(code, 16, "{out}");
    assert!(
        out.contains(
            "the cluster does not serve PrometheusRule, so apply skips it: install the \
             Prometheus Operator's CRDs"
        ),
        "{out}"
    );

    objects::install_crd_objects(&client, &[prometheusrule_crd()], Duration::from_secs(30))
        .await
        .unwrap();
    let (code, out) = rookery("apply", &stack, Some(kc), &["--stage", "alerts"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("not applied"), "{out}");
    let rules = objects::list(
        &client,
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        Some("rook-ceph"),
        None,
    )
    .await
    .unwrap();
    let mut names: Vec<&str> = rules
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["prometheus-ceph-rules", "rookery-backup-rules"]);
    let ours = rules
        .iter()
        .find(|r| r["metadata"]["name"] == "rookery-backup-rules")
        .unwrap();
    let alerts: Vec<&str> = ours["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    assert!(
        alerts.contains(&"VeleroBackupStorageLocationUnavailable"),
        "{alerts:?}"
    );
    assert!(
        alerts.contains(&"VeleroScheduleNoRecentBackup"),
        "{alerts:?}"
    );
}
