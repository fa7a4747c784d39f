//! `rookery up` end to end: three real QEMU guests (an emulated NVMe namespace and a SATA HDD
//! each, reached over real SSH with strict host keys) and a real control plane whose kwok nodes
//! carry the guests' hostnames. The stack is the lab's, in the seed's own `storage-system`.
//!
//! Real: the guests, their disks, sshd, the agent (uploaded and sha256-checked), the probe and
//! prepare; etcd, kube-apiserver, kcm, scheduler, kwok; the kubeconfig read from a guest's
//! root-only `/etc/rancher/k3s/k3s.yaml` over SSH. Played by the test (no container runtime,
//! no K3s here): the Rook operator and Ceph, and Velero's validation — `rookery_tests::kube::fake`
//! writes the real status fields of the real CRDs; and the k3s.yaml is the test apiserver's
//! admin kubeconfig placed where K3s writes its own.
//!
//! One `rookery up` goes green (disks probed and prepared, every stage applied in order and
//! waited for); a second changes nothing; a guest that stops answering makes the next run stop
//! with that host named and the cluster exactly as it was.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use rookery_tests::bins;
use rookery_tests::cli::{self, Run};
use rookery_tests::kube::fake::{Behaviour, Fake};
use rookery_tests::kube::{KubeCluster, missing_prerequisite, objects};
use rookery_tests::require::prerequisite;
use rookery_tests::vm::{self, Lab, LabOptions};

const NS: &str = "storage-system";

fn up(
    inventory: &Path,
    stack: &Path,
    config_home: &Path,
    api: &str,
    connect_timeout: &str,
    extra: &[&str],
) -> Run {
    cli::run(
        cli::rookery()
            .args(["up", "--connect-timeout", connect_timeout, "-i"])
            .arg(inventory)
            .arg("--stack")
            .arg(stack)
            .arg("--bundle-dir")
            .arg(bins::shared_dir().join("upstream"))
            .args(["--kubeconfig-from", "lab-1", "--api-endpoint", api])
            .args(extra)
            .env("ROOKERY_AGENT", bins::agent())
            .env("XDG_CONFIG_HOME", config_home),
    )
}

/// The `PLAY RECAP` lines: host → `changed=N` etc.
fn recap(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("PLAY RECAP"))
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(h, rest)| (h.trim().to_string(), rest.trim().to_string()))
        .collect()
}

fn changed(counts: &str) -> u64 {
    counts
        .split_whitespace()
        .find_map(|w| w.strip_prefix("changed="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Every object the stack applied, with its resourceVersion.
async fn resource_versions(client: &::kube::Client) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (api, kind) in [
        ("v1", "Namespace"),
        ("v1", "Secret"),
        ("apps/v1", "Deployment"),
        ("storage.k8s.io/v1", "StorageClass"),
        ("ceph.rook.io/v1", "CephCluster"),
        ("ceph.rook.io/v1", "CephFilesystem"),
        ("velero.io/v1", "BackupStorageLocation"),
    ] {
        for o in objects::list(
            client,
            api,
            kind,
            None,
            Some("applyset.kubernetes.io/part-of"),
        )
        .await
        .unwrap()
        {
            out.insert(
                format!(
                    "{kind}/{}/{}",
                    o["metadata"]["namespace"].as_str().unwrap_or(""),
                    o["metadata"]["name"].as_str().unwrap_or("")
                ),
                o["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rookery_up_brings_three_guests_to_a_healthy_stack_in_storage_system() {
    let missing = missing_prerequisite();
    if !prerequisite(missing.is_none(), missing.as_deref().unwrap_or("")) || !vm::prerequisites() {
        return;
    }
    let opts = LabOptions {
        guests: 3,
        prefix: "lab-".into(),
        ..LabOptions::default()
    };
    // Boot the guests while the control plane starts.
    let lab = tokio::task::spawn_blocking(move || Lab::start(&opts));
    let cluster = KubeCluster::start(&["lab-1", "lab-2", "lab-3"])
        .await
        .unwrap();
    let lab = lab.await.unwrap().unwrap();
    let names: Vec<&str> = lab.guests.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["lab-1", "lab-2", "lab-3"]);
    let client = cluster.client().await.unwrap();
    let _fake = Fake::start(client.clone(), NS, "velero", Behaviour::default());

    // The K3s server's kubeconfig, root-only, where K3s writes it; its `server` is an address
    // this machine cannot use (K3s writes 127.0.0.1:6443 — the guest's own loopback).
    let mut kc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(cluster.kubeconfig()).unwrap()).unwrap();
    {
        use base64::Engine as _;
        let ca = std::fs::read(cluster.ca_path()).unwrap();
        let c = &mut kc["clusters"][0]["cluster"];
        c["server"] = "https://127.0.0.1:6443".into();
        c["certificate-authority-data"] =
            base64::engine::general_purpose::STANDARD.encode(ca).into();
        c.as_mapping_mut().unwrap().remove("certificate-authority");
    }
    let k3s_yaml = serde_yaml::to_string(&kc).unwrap();
    lab.ssh_ok(
        &lab.guests[0],
        &format!(
            "mkdir -p /etc/rancher/k3s && umask 077 && cat > /etc/rancher/k3s/k3s.yaml <<'EOF'\n{k3s_yaml}EOF"
        ),
    );

    // The lab stack, in the seed's namespace; its nodes are the guests' hostnames.
    let dir = lab.run_dir().join("stack");
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    let src = bins::repo_root().join("stacks/lab-3node");
    for e in std::fs::read_dir(src.join("secrets")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join("secrets").join(e.file_name())).unwrap();
    }
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(src.join("stack.yaml")).unwrap()).unwrap();
    doc["namespace"] = NS.into();
    let stack = dir.join("stack.yaml");
    std::fs::write(&stack, serde_yaml::to_string(&doc).unwrap()).unwrap();
    let inventory = lab.inventory().unwrap();
    let config_home = lab.run_dir().join("config");
    let api = cluster.server();

    let first = up(
        &inventory,
        &stack,
        &config_home,
        &api,
        vm::CONNECT_TIMEOUT,
        &["-e", "prepare_wipe=true"],
    );
    assert_eq!(first.code, 0, "the first `rookery up` must go green");
    let r = recap(&first.stdout);
    for g in ["lab-1", "lab-2", "lab-3"] {
        let counts = r.get(g).unwrap_or_else(|| panic!("{g} not in the recap"));
        assert!(counts.contains("failed=0"), "{g}: {counts}");
        assert!(counts.contains("unreachable=0"), "{g}: {counts}");
    }
    let cc = objects::get(
        &client,
        "ceph.rook.io/v1",
        "CephCluster",
        Some(NS),
        "rook-ceph",
    )
    .await
    .unwrap()
    .expect("the CephCluster was applied in storage-system");
    assert_eq!(cc["status"]["phase"], "Ready");
    let sc = objects::get(
        &client,
        "storage.k8s.io/v1",
        "StorageClass",
        None,
        "shared-fs",
    )
    .await
    .unwrap()
    .expect("the StorageClass was applied");
    assert_eq!(sc["provisioner"], "storage-system.cephfs.csi.ceph.com");
    // The fetched kubeconfig was stored privately.
    let stored: Vec<_> = walk(&config_home);
    assert!(!stored.is_empty(), "no kubeconfig stored");
    for p in &stored {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
    assert!(!first.stdout.contains(cluster.token()) && !first.stderr.contains(cluster.token()));

    // Converged: nothing changes, the recap says so.
    let before = resource_versions(&client).await;
    assert!(before.len() > 10, "{}", before.len());
    let second = up(
        &inventory,
        &stack,
        &config_home,
        &api,
        vm::CONNECT_TIMEOUT,
        &[],
    );
    assert_eq!(second.code, 0);
    for (host, counts) in recap(&second.stdout) {
        assert_eq!(
            changed(&counts),
            0,
            "{host} changed on a converged re-run: {counts}"
        );
    }
    assert_eq!(resource_versions(&client).await, before);

    // A guest stops answering (its QEMU frozen): the run stops naming it, the cluster is as
    // it was.
    let frozen = &lab.guests[2];
    let pid = nix::unistd::Pid::from_raw(i32::try_from(frozen.pid).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let third = up(&inventory, &stack, &config_home, &api, "8", &[]);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert_ne!(third.code, 0, "an unreachable host must fail the run");
    let all = format!("{}{}", third.stdout, third.stderr);
    assert!(all.contains("lab-3"), "the unreachable host is named");
    assert!(
        third.stdout.contains("NO MORE HOSTS LEFT: lab-3"),
        "{}",
        third.stdout
    );
    assert!(
        !third.stdout.contains("PLAY [Install the storage stack]"),
        "the cluster play ran with a host missing"
    );
    assert!(
        recap(&third.stdout)
            .get("lab-3")
            .is_some_and(|c| c.contains("unreachable=1") || c.contains("failed=1")),
        "{}",
        third.stdout
    );
    assert_eq!(
        resource_versions(&client).await,
        before,
        "a run stopped by an unreachable host changed the cluster"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
