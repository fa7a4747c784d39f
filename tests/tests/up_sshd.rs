//! `rookery up`: `playbooks/site.yaml` end to end — facts gathered from three real sshd hosts,
//! their OSD devices checked from the stack (check mode), the lab stack applied stage by stage
//! and waited for on a real control plane, a final verification; a second `up` on the
//! converged cluster reports changed=0 on every host. `up --check` before that creates
//! nothing.
//!
//! Real: OpenSSH sshd on loopback (the three "lab" hosts are this machine), the agent, etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler, kwok (fake nodes lab-1..3), the
//! `rookery` binary. Played by the test (no container runtime here): the Rook operator and
//! Ceph, and Velero's validation, which write the real status fields of the real CRDs
//! (`rookery_tests::kube::fake`). The stack selects devices by rule (`deviceSelection`), so
//! rendering uses the lab's recorded facts while the live probe of this machine finds no
//! device to prepare: nothing on this machine is ever a candidate for wiping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use rookery_tests::bins;
use rookery_tests::cli;
use rookery_tests::kube::fake::{Behaviour, Fake};
use rookery_tests::kube::{KubeCluster, missing_prerequisite};
use rookery_tests::require::prerequisite;
use rookery_tests::sshd::{self, SshLab};

fn ready() -> bool {
    let missing = missing_prerequisite().or_else(sshd::missing_prerequisite);
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

/// The lab stack, choosing its OSD devices by rule instead of by name.
fn stack_copy(dir: &Path) -> PathBuf {
    let lab = bins::repo_root().join("stacks/lab-3node");
    let to = dir.join("stack");
    std::fs::create_dir_all(to.join("secrets")).unwrap();
    std::fs::copy(lab.join("facts.json"), to.join("facts.json")).unwrap();
    for e in std::fs::read_dir(lab.join("secrets")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join("secrets").join(e.file_name())).unwrap();
    }
    let text = std::fs::read_to_string(lab.join("stack.yaml")).unwrap();
    let start = text.find("    nodes:\n").unwrap();
    let end = text.find("storageClasses:").unwrap();
    let text = format!(
        "{}    deviceSelection:\n      deviceClasses: [nvme, hdd]\n{}",
        &text[..start],
        &text[end..]
    );
    std::fs::write(to.join("stack.yaml"), text).unwrap();
    to
}

fn recap(out: &str, host: &str) -> String {
    out.lines()
        .find(|l| l.starts_with(host) && l.contains(" : ok="))
        .unwrap_or_else(|| panic!("no recap line for {host} in {out}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_converges_and_a_second_up_changes_nothing() {
    if !ready() {
        return;
    }
    let hosts = ["lab-1", "lab-2", "lab-3"];
    let lab = SshLab::start(3).unwrap();
    let kh = lab.known_hosts("kh", &[0, 1, 2]).unwrap();
    let entries: Vec<String> = hosts
        .iter()
        .zip(&lab.hosts)
        .map(|(n, h)| lab.host_entry(n, h.port, "root", &[]))
        .collect();
    let inv = lab.inventory("inventory.yaml", &entries).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let stack = stack_copy(tmp.path());
    let cluster = KubeCluster::start(&hosts).await.unwrap();
    let client = cluster.client().await.unwrap();
    let _fake = Fake::start(
        client.clone(),
        "rook-ceph",
        "velero",
        Behaviour {
            ceph_health: "HEALTH_WARN".into(),
            ceph_details: serde_json::json!({"AUTH_INSECURE_KEYS_ALLOWED": {
                "severity": "HEALTH_WARN", "message": "insecure keys are allowed"}}),
            ..Behaviour::default()
        },
    );
    let up = |extra: &[&str]| {
        cli::run(
            lab.rookery()
                .arg("up")
                .arg("-i")
                .arg(&inv)
                .arg("--stack")
                .arg(stack.join("stack.yaml"))
                .arg("--facts")
                .arg(stack.join("facts.json"))
                .arg("--bundle-dir")
                .arg(bins::shared_dir().join("upstream"))
                .arg("--kubeconfig")
                .arg(cluster.kubeconfig())
                .arg("--known-hosts")
                .arg(&kh)
                .arg("--timeout")
                .arg("5m")
                .args(extra)
                .env_remove("KUBECONFIG"),
        )
    };

    // Check mode first: every stage is a server-side dry run (`rookery diff` of the stage);
    // nothing is created.
    let check = up(&["--check", "--diff"]);
    assert_eq!(check.code, 0);
    assert!(
        check.stdout.contains("would be created"),
        "{}",
        check.stdout
    );
    let crds = rookery_tests::kube::objects::list(
        &client,
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
        None,
    )
    .await
    .unwrap();
    assert!(crds.is_empty(), "check mode created {} CRDs", crds.len());

    let first = up(&[]);
    assert_eq!(first.code, 0);
    for task in [
        "TASK [Gathering Facts]",
        "TASK [OSD devices, as the stack names them",
        "TASK [Reach the cluster",
        "TASK [CustomResourceDefinitions",
        "TASK [Ceph cluster (Ready, HEALTH_OK)]",
        "TASK [Backup schedules (Enabled)]",
        "TASK [Every CephCluster is Ready]",
        "PLAY RECAP",
    ] {
        assert!(
            first.stdout.contains(task),
            "missing {task}: {}",
            first.stdout
        );
    }
    // Stage progress, numbered in the stack's order, as `rookery apply` prints it.
    assert!(
        first.stderr.contains("ok: [1/9] CustomResourceDefinitions"),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("ok: [5/9] CephCluster"),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("ok: [9/9] backup schedules"),
        "{}",
        first.stderr
    );
    assert!(
        !recap(&first.stdout, "localhost").contains("changed=0 "),
        "{}",
        first.stdout
    );
    for h in hosts {
        assert!(
            recap(&first.stdout, h).contains("failed=0"),
            "{}",
            first.stdout
        );
    }

    let second = up(&[]);
    assert_eq!(second.code, 0);
    for h in hosts.iter().chain(&["localhost"]) {
        let line = recap(&second.stdout, h);
        assert!(line.contains("changed=0 "), "{line}\n{}", second.stdout);
        assert!(line.contains("failed=0 "), "{line}");
    }
}
