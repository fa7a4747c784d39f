//! `--kubeconfig-from HOST` / the stack's `kubeconfig: {fromHost}`: the K3s server's
//! root-only kubeconfig is read over real SSH with become, only its `server` is rewritten,
//! CA verification is kept (a wrong CA is refused), and the result is stored 0600.
//!
//! Real: OpenSSH sshd on loopback, sudo, the agent, etcd + kube-apiserver (no controllers
//! needed: `diff` only reads and dry-runs). Played: nothing; there is no K3s here, so the
//! apiserver's own admin kubeconfig is written where K3s would write its `k3s.yaml`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use rookery_tests::bins;
use rookery_tests::kube::{KubeCluster, missing_prerequisite};
use rookery_tests::require::{have_program, prerequisite};
use rookery_tests::sshd::{self, SshLab, Sudo, ensure_user};

const PW: &str = "Rk-k3s-become-7q";

fn ready() -> bool {
    let missing = missing_prerequisite()
        .or_else(sshd::missing_prerequisite)
        .or_else(|| (!have_program("sudo")).then(|| "sudo (apt-get install sudo)".to_string()));
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

/// The cluster's kubeconfig as K3s would write it: root-only, pointing at an address this
/// machine cannot use (K3s says 127.0.0.1:6443; here an unroutable address keeps the port).
fn write_k3s_yaml(cluster: &KubeCluster, path: &Path, ca_pem: Option<&[u8]>) {
    let text = std::fs::read_to_string(cluster.kubeconfig()).unwrap();
    let port = cluster.server().rsplit(':').next().unwrap().to_string();
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    doc["clusters"][0]["cluster"]["server"] = format!("https://192.0.2.1:{port}").into();
    if let Some(ca) = ca_pem {
        use base64::Engine as _;
        doc["clusters"][0]["cluster"]["certificate-authority-data"] =
            base64::engine::general_purpose::STANDARD.encode(ca).into();
        if let Some(m) = doc["clusters"][0]["cluster"].as_mapping_mut() {
            m.remove("certificate-authority");
        }
    }
    std::fs::write(path, serde_yaml::to_string(&doc).unwrap()).unwrap();
    sshd::set_mode(path, 0o600).unwrap();
}

fn other_ca(dir: &Path) -> Vec<u8> {
    let key = dir.join("other.key");
    let crt = dir.join("other.crt");
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=not-the-apiserver",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    std::fs::read(crt).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_is_fetched_over_ssh_with_become_and_keeps_ca_verification() {
    if !ready() {
        return;
    }
    let user = ensure_user("rkt-k3s", PW, Sudo::Password).unwrap();
    let lab = SshLab::start(1).unwrap();
    let kh = lab.known_hosts("kh", &[0]).unwrap();
    let port = lab.hosts[0].port;
    let cluster = KubeCluster::builder().api_only().start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let k3s_yaml = tmp.path().join("k3s.yaml");
    write_k3s_yaml(&cluster, &k3s_yaml, None);

    // The lab stack, reaching its cluster through the K3s server host.
    let stack_dir = tmp.path().join("stack");
    std::fs::create_dir_all(stack_dir.join("secrets")).unwrap();
    let lab_stack = bins::repo_root().join("stacks/lab-3node");
    for f in ["stack.yaml", "facts.json"] {
        std::fs::copy(lab_stack.join(f), stack_dir.join(f)).unwrap();
    }
    for e in std::fs::read_dir(lab_stack.join("secrets")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), stack_dir.join("secrets").join(e.file_name())).unwrap();
    }
    let mut stack = std::fs::read_to_string(stack_dir.join("stack.yaml")).unwrap();
    stack.push_str(&format!(
        "kubeconfig:\n  fromHost: k3s\n  path: {}\n",
        k3s_yaml.display()
    ));
    std::fs::write(stack_dir.join("stack.yaml"), stack).unwrap();
    let inventory = |become_: bool| {
        let mut extra = vec![];
        let pw = format!("ansible_become_password: {PW}");
        if become_ {
            extra.push("ansible_become: true");
            extra.push(pw.as_str());
        }
        let mut entries = vec![lab.host_entry("k3s", port, &user.name, &extra)];
        for n in ["lab-1", "lab-2", "lab-3"] {
            entries.push(format!("    {n}:\n      ansible_host: 192.0.2.10\n"));
        }
        lab.inventory(
            if become_ {
                "inv-become.yaml"
            } else {
                "inv.yaml"
            },
            &entries,
        )
        .unwrap()
    };
    let config_home = tmp.path().join("config");
    let run = |inv: &Path| {
        let mut c = lab.rookery();
        c.arg("diff")
            .arg("-i")
            .arg(inv)
            .arg("--stack")
            .arg(stack_dir.join("stack.yaml"))
            .arg("--facts")
            .arg(stack_dir.join("facts.json"))
            .arg("--bundle-dir")
            .arg(bins::shared_dir().join("upstream"))
            .arg("--known-hosts")
            .arg(&kh)
            .env("XDG_CONFIG_HOME", &config_home)
            .env_remove("KUBECONFIG");
        let out = c.output().unwrap();
        let (so, se) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        eprintln!(
            "exit {:?}\n--- stdout\n{so}--- stderr\n{se}",
            out.status.code()
        );
        for stream in [&so, &se] {
            assert!(
                !stream.contains(cluster.token()),
                "the token appeared in the output"
            );
        }
        (out.status.code().unwrap_or(-1), so, se)
    };

    // Without become the login user cannot read the root-only file: a clear error and hint.
    let (code, _, err) = run(&inventory(false));
    assert_ne!(code, 0);
    assert!(err.contains("cannot read"), "{err}");
    assert!(err.contains("ansible_become"), "{err}");

    // With become: fetched, rewritten to the host's address, verified, stored 0600.
    let (code, out, err) = run(&inventory(true));
    assert_eq!(code, 16, "an empty cluster differs from the stack: {err}");
    assert!(out.contains("would be created"), "{out}");
    let stored = config_home.join("rookery/kubeconfig/k3s.yaml");
    let text = std::fs::read_to_string(&stored).unwrap();
    let port = cluster.server().rsplit(':').next().unwrap().to_string();
    assert!(
        text.contains(&format!("server: https://127.0.0.1:{port}")),
        "{text}"
    );
    assert!(text.contains("certificate-authority"), "CA kept: {text}");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&stored).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A kubeconfig whose CA is not the server's: refused, never trusted.
    write_k3s_yaml(&cluster, &k3s_yaml, Some(&other_ca(tmp.path())));
    let (code, _, err) = run(&inventory(true));
    assert_eq!(code, 32, "{err}");
    assert!(err.contains("cannot reach the API server"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}
