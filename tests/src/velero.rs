//! A real Velero server, out of cluster, against a [`KubeCluster`], with its real AWS
//! object-store plugin and a fake S3 (gofakes3, in memory) on loopback. Backups, restores,
//! schedules and BSL validation in the tests are done by this Velero, not by the test;
//! volume data (Kopia node-agent, CSI snapshot data) is not available.
//!
//! What a test sets up before [`VeleroServer::start`] (each a separate helper, because the
//! rookery apply engine will install some of it itself): Velero's CRDs ([`install_crds`]),
//! the namespace with the `velero` Deployment a restore reads ([`prepare_namespace`]), and a
//! BackupStorageLocation pointing at the fake S3 ([`bsl`]). Recipe and its reasons:
//! `../shared/notes/kube-testbed.md` ("Real Velero") and `rook-velero-facts-2.md` §5.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::daemon::{Daemon, http_get};
use crate::kube::objects::{self, short};
use crate::kube::{KubeCluster, binary};
use crate::sshd::{free_port, set_mode};

/// The binaries this module runs (from the same cache as the control plane).
pub const BINARIES: [&str; 3] = ["velero", "velero-plugin-for-aws", "gofakes3"];

/// The Velero CRDs' API version.
pub const API: &str = "velero.io/v1";

/// Why Velero cannot run here (control plane included), or None when it can.
pub fn missing_prerequisite() -> Option<String> {
    crate::kube::missing_prerequisite().or_else(|| crate::kube::missing_binaries(&BINARIES))
}

/// gofakes3 with an in-memory backend and one bucket, on a free loopback port.
pub struct FakeS3 {
    daemon: Daemon,
    port: u16,
    bucket: String,
    _dir: tempfile::TempDir,
}

impl FakeS3 {
    pub async fn start(bucket: &str) -> Result<FakeS3> {
        let dir = tempfile::Builder::new().prefix("rookery-s3-").tempdir()?;
        let port = free_port()?;
        let mut daemon = Daemon::spawn(
            "gofakes3",
            Command::new(binary("gofakes3"))
                .args(["-backend", "memory", "-initialbucket", bucket, "-host"])
                .arg(format!("127.0.0.1:{port}")),
            &dir.path().join("gofakes3.log"),
        )?;
        daemon
            .wait_until("answer HTTP", Duration::from_secs(30), || {
                http_get(port, "/").is_some()
            })
            .await?;
        Ok(FakeS3 {
            daemon,
            port,
            bucket: bucket.to_string(),
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:PORT` (the BSL's `s3Url`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.daemon.log_tail(lines)
    }
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct VeleroOptions {
    /// Velero's namespace (`--namespace`); it must exist.
    pub namespace: String,
    /// The AWS shared credentials file's content (`AWS_SHARED_CREDENTIALS_FILE`). gofakes3
    /// checks no signature: any well-formed pair works.
    pub credentials: String,
    /// More `velero server` flags.
    pub extra_args: Vec<String>,
    /// Bound on the start (up to the metrics endpoint answering).
    pub timeout: Duration,
}

impl Default for VeleroOptions {
    fn default() -> Self {
        VeleroOptions {
            namespace: "velero".into(),
            credentials: "[default]\naws_access_key_id = rookery-test\n\
                          aws_secret_access_key = rookery-test-secret\n"
                .into(),
            extra_args: vec![],
            timeout: Duration::from_secs(120),
        }
    }
}

/// Velero's controller manager always serves its own metrics on `:8080` (no flag moves it),
/// so two Velero servers on one machine cannot run at once: every start holds this lock
/// (across processes: parallel tests, other checkouts) until the server is dropped.
const PORT_8080_LOCK: &str = "/tmp/rookery-velero-8080.lock";

fn lock_port_8080(timeout: Duration) -> Result<nix::fcntl::Flock<std::fs::File>> {
    use nix::fcntl::{Flock, FlockArg};
    let t0 = Instant::now();
    loop {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(PORT_8080_LOCK)
            .with_context(|| PORT_8080_LOCK.to_string())?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((_, e)) if t0.elapsed() < timeout => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err((_, e)) => bail!(
                "another Velero server held {PORT_8080_LOCK} (port 8080) for {timeout:?}: {e}"
            ),
        }
    }
}

/// `velero server` running out of cluster; killed (with its plugin processes) on drop.
pub struct VeleroServer {
    daemon: Daemon,
    // Dropped after the daemon (fields drop in order): the port is free by then.
    _port_lock: nix::fcntl::Flock<std::fs::File>,
    namespace: String,
    metrics_port: u16,
    started_in: Duration,
    _dir: tempfile::TempDir,
}

impl VeleroServer {
    /// Start the server against `cluster`. Velero's CRDs and the namespace must exist first
    /// (it exits "Velero custom resources not found" otherwise).
    pub async fn start(cluster: &KubeCluster, opts: &VeleroOptions) -> Result<VeleroServer> {
        let t0 = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("rookery-velero-")
            .tempdir()?;
        let d = dir.path();
        // Velero reads its namespace from $HOME/.config/velero/config.json too; an empty
        // HOME keeps the real user's out of the test.
        let home = d.join("home");
        std::fs::create_dir_all(&home)?;
        // Not `credentials`: Velero makes `$TMPDIR/credentials` a directory of its own.
        let creds = d.join("aws-credentials");
        std::fs::write(&creds, &opts.credentials)?;
        set_mode(&creds, 0o600)?;
        // Velero runs every executable under --plugin-dir as a plugin: give it exactly one.
        let plugins = d.join("plugins");
        std::fs::create_dir_all(&plugins)?;
        std::os::unix::fs::symlink(
            binary("velero-plugin-for-aws"),
            plugins.join("velero-plugin-for-aws"),
        )
        .context("link the AWS plugin into the plugin dir")?;
        let metrics_port = free_port()?;
        let port_lock = lock_port_8080(Duration::from_secs(300))?;
        // Built-in plugins are found by re-running os.Args[0]: start velero by absolute path.
        let velero = std::fs::canonicalize(binary("velero"))
            .with_context(|| format!("{}", binary("velero").display()))?;
        let mut daemon = Daemon::spawn(
            "velero",
            Command::new(velero)
                .env("HOME", &home)
                .env("TMPDIR", d)
                .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
                // gofakes3 does not take the AWS SDK's default CRC32 request checksums.
                .env("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
                .env_remove("KUBECONFIG")
                .env_remove("VELERO_NAMESPACE")
                .env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY")
                .env_remove("AWS_PROFILE")
                .arg("server")
                .arg("--kubeconfig")
                .arg(cluster.kubeconfig())
                .args(["--namespace", &opts.namespace])
                .arg("--plugin-dir")
                .arg(&plugins)
                .arg("--metrics-address")
                .arg(format!("127.0.0.1:{metrics_port}"))
                .args(["--profiler-address", ""])
                .args(["--uploader-type", "kopia"])
                .args(&opts.extra_args),
            &d.join("velero.log"),
        )?;
        // The metrics server starts after the startup checks (namespace, CRDs discoverable).
        daemon
            .wait_until("serve /metrics", opts.timeout, || {
                http_get(metrics_port, "/metrics").is_some_and(|(code, _)| code == 200)
            })
            .await?;
        Ok(VeleroServer {
            daemon,
            _port_lock: port_lock,
            namespace: opts.namespace.clone(),
            metrics_port,
            started_in: t0.elapsed(),
            _dir: dir,
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn metrics_port(&self) -> u16 {
        self.metrics_port
    }

    /// From spawn to the metrics endpoint answering.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// An error with the log's tail if the server has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        self.daemon.ensure_running()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.daemon.log_tail(lines)
    }

    pub fn log_path(&self) -> &Path {
        self.daemon.log_path()
    }
}

/// Velero's CRD files (v1 and v2alpha1) from `../shared/upstream` (read there, never copied).
pub fn crd_files() -> Result<Vec<PathBuf>> {
    let base = crate::bins::shared_dir().join("upstream/velero-v1.18.1/config/crd");
    let mut files = Vec::new();
    for sub in ["v1/bases", "v2alpha1/bases"] {
        let dir = base.join(sub);
        for e in std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "yaml") {
                files.push(p);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        bail!("no Velero CRDs under {}", base.display());
    }
    Ok(files)
}

/// The one CRD file of `plural` (e.g. `backupstoragelocations`).
pub fn crd_file(plural: &str) -> Result<PathBuf> {
    crd_files()?
        .into_iter()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n == format!("velero.io_{plural}.yaml").as_str())
        })
        .with_context(|| format!("no Velero CRD file for {plural}"))
}

/// Install Velero's CRDs and wait until each is Established and served.
pub async fn install_crds(client: &::kube::Client) -> Result<()> {
    objects::install_crds(client, &crd_files()?, Duration::from_secs(60)).await
}

/// The namespace, and the `velero` Deployment (replicas 0) that Velero's restore reads for
/// its restore-helper image (velero issue 9023) — the server itself runs out of cluster.
pub async fn prepare_namespace(client: &::kube::Client, namespace: &str) -> Result<()> {
    objects::apply(
        client,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
    )
    .await?;
    objects::apply(client, &placeholder_deployment(namespace)).await?;
    Ok(())
}

fn placeholder_deployment(namespace: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "velero",
            "namespace": namespace,
            "labels": {"component": "velero"},
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"deploy": "velero"}},
            "template": {
                "metadata": {"labels": {"component": "velero", "deploy": "velero"}},
                "spec": {
                    "containers": [{
                        "name": "velero",
                        "image": rookery_stack::versions::VELERO_IMAGE,
                        "command": ["/velero"],
                        "args": ["server"],
                    }],
                },
            },
        },
    })
}

/// A BackupStorageLocation on the fake S3 (path-style, no request checksums: what gofakes3
/// accepts).
pub fn bsl(namespace: &str, name: &str, s3: &FakeS3) -> Value {
    json!({
        "apiVersion": API,
        "kind": "BackupStorageLocation",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "provider": "aws",
            "objectStorage": {"bucket": s3.bucket()},
            "config": {
                "region": "us-east-1",
                "s3ForcePathStyle": "true",
                "s3Url": s3.url(),
                "checksumAlgorithm": "",
            },
        },
    })
}

/// Wait until Velero has validated the BSL `Available`. `Unavailable` is waited through (the
/// first validation may race the plugin start); a timeout shows Velero's last message.
pub async fn wait_bsl_available(
    client: &::kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<Value> {
    objects::wait_for(
        client,
        API,
        "BackupStorageLocation",
        Some(namespace),
        name,
        "Available",
        timeout,
        |b| b["status"]["phase"] == "Available",
    )
    .await
}

/// A resource-only Backup of `namespaces` (no volume snapshots: no CSI or node-agent here).
pub fn backup(namespace: &str, name: &str, location: &str, namespaces: &[&str]) -> Value {
    json!({
        "apiVersion": API,
        "kind": "Backup",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "includedNamespaces": namespaces,
            "storageLocation": location,
            "snapshotVolumes": false,
            "ttl": "1h0m0s",
        },
    })
}

/// A Restore of `backup`, each namespace of `mapping` restored into its pair.
pub fn restore(namespace: &str, name: &str, backup: &str, mapping: &[(&str, &str)]) -> Value {
    let map: serde_json::Map<String, Value> = mapping
        .iter()
        .map(|(from, to)| (from.to_string(), Value::from(*to)))
        .collect();
    json!({
        "apiVersion": API,
        "kind": "Restore",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"backupName": backup, "namespaceMapping": map},
    })
}

/// Phases after which a Backup or Restore never changes again (rook-velero-facts-2.md §6).
pub const TERMINAL_PHASES: [&str; 4] =
    ["Completed", "PartiallyFailed", "Failed", "FailedValidation"];

/// Wait until a Backup or Restore reaches a terminal phase; Ok only for `Completed`, else an
/// error with its status (Velero's failure reason, errors, validation errors).
pub async fn wait_completed(
    client: &::kube::Client,
    kind: &str,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<Value> {
    let obj = objects::wait_for(
        client,
        API,
        kind,
        Some(namespace),
        name,
        "in a terminal phase",
        timeout,
        |o| {
            o["status"]["phase"]
                .as_str()
                .is_some_and(|p| TERMINAL_PHASES.contains(&p))
        },
    )
    .await?;
    if obj["status"]["phase"] != "Completed" {
        bail!(
            "{kind} {namespace}/{name} ended {}: status {}",
            obj["status"]["phase"],
            short(&obj["status"])
        );
    }
    Ok(obj)
}
