//! A real Kubernetes control plane on loopback, for the tests that talk to an API server.
//!
//! [`KubeCluster`] starts, in one temp dir and on free `127.0.0.1` ports: etcd; kube-apiserver
//! (RBAC, a static admin token in group `system:masters`, its own self-signed serving cert);
//! kube-controller-manager; kube-scheduler; and kwok, which turns fake `v1/Node`s Ready and
//! their pods Running without a kubelet. Then it creates one fake Node per name given and waits
//! until they are Ready. The kubeconfig it writes verifies the apiserver's CA
//! (`certs/apiserver.crt`) — no test skips TLS verification. A lighter cluster (etcd +
//! apiserver only) is available for tests that need no Deployment to roll out.
//!
//! Binaries come from `$ROOKERY_KUBE_BIN` (default `/var/cache/rookery-kube/bin`), built by
//! `tests/kube/build.sh`; kwok's Stage objects from `kwok-stages.yaml` beside that directory.
//! Flags and their reasons: `tests/kube/README.md` and `../shared/notes/kube-testbed.md`.
//!
//! Every process is killed by PID in `Drop` (the newest first). `ROOKERY_KUBE_KEEP=1` keeps the
//! temp dir with every component's log.

pub mod fake;
pub mod objects;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;

use crate::daemon::Daemon;
use crate::sshd::{free_port, set_mode};

/// The binaries the full cluster runs.
pub const BINARIES: [&str; 5] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
];

/// How long one API call of the harness may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the control-plane binaries are: `$ROOKERY_KUBE_BIN`, else
/// `$ROOKERY_KUBE_CACHE/bin`, else `/var/cache/rookery-kube/bin` (what `tests/kube/build.sh`
/// fills).
pub fn bin_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("ROOKERY_KUBE_BIN") {
        return PathBuf::from(p);
    }
    std::env::var_os("ROOKERY_KUBE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/rookery-kube"))
        .join("bin")
}

/// One binary of the cache, by name.
pub fn binary(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// kwok's Stage objects (node initialise + heartbeat, pod fast), written by the build script.
pub fn stages_file() -> PathBuf {
    bin_dir()
        .parent()
        .map(|p| p.join("kwok-stages.yaml"))
        .unwrap_or_else(|| PathBuf::from("kwok-stages.yaml"))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The first of `names` that is not an executable in [`bin_dir`], as a prerequisite message.
pub fn missing_binaries(names: &[&str]) -> Option<String> {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !is_executable(&binary(n)))
        .collect();
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "{} in {} (run tests/kube/build.sh, or set ROOKERY_KUBE_BIN)",
        missing.join(", "),
        bin_dir().display()
    ))
}

/// Why a cluster cannot start here, or None when it can.
pub fn missing_prerequisite() -> Option<String> {
    if let Some(m) = missing_binaries(&BINARIES) {
        return Some(m);
    }
    if !stages_file().is_file() {
        return Some(format!(
            "{} (kwok's Stage objects; run tests/kube/build.sh)",
            stages_file().display()
        ));
    }
    if !crate::require::have_program("openssl") {
        return Some("openssl (service-account key pair; apt-get install openssl)".into());
    }
    None
}

/// What to start; see [`KubeCluster::builder`].
pub struct KubeClusterBuilder {
    nodes: Vec<String>,
    controllers: bool,
    timeout: Duration,
    extra_args: Vec<(String, String)>,
}

impl KubeClusterBuilder {
    /// Add fake nodes (kwok), named like the inventory's hosts.
    pub fn nodes<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.nodes.extend(names.into_iter().map(Into::into));
        self
    }

    /// Only etcd and kube-apiserver: objects are stored, validated and served, but no
    /// controller acts on them (no ReplicaSets, no pods, no namespace deletion, no nodes).
    pub fn api_only(mut self) -> Self {
        self.controllers = false;
        self
    }

    /// The bound on the whole start (default 180 s: a loaded 2-core machine is slow).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// One more flag for one component (`etcd`, `kube-apiserver`, `kube-controller-manager`,
    /// `kube-scheduler`, `kwok`), after the harness's own.
    pub fn arg(mut self, component: &str, arg: &str) -> Self {
        self.extra_args.push((component.into(), arg.into()));
        self
    }

    pub async fn start(self) -> Result<KubeCluster> {
        if !self.controllers && !self.nodes.is_empty() {
            bail!("an api-only cluster cannot have nodes: nothing would make them Ready");
        }
        KubeCluster::launch(self).await
    }
}

/// A running control plane; everything stops when it is dropped.
pub struct KubeCluster {
    /// Started first to last; stopped last to first.
    daemons: Vec<Daemon>,
    dir: Option<tempfile::TempDir>,
    api_port: u16,
    token: String,
    kubeconfig: PathBuf,
    ca: PathBuf,
    nodes: Vec<String>,
    extra_args: Vec<(String, String)>,
    started_in: Duration,
}

impl KubeCluster {
    /// A full cluster (controllers, scheduler, kwok) with no nodes yet; add them with
    /// [`KubeClusterBuilder::nodes`].
    pub fn builder() -> KubeClusterBuilder {
        KubeClusterBuilder {
            nodes: vec![],
            controllers: true,
            timeout: Duration::from_secs(180),
            extra_args: vec![],
        }
    }

    /// A full cluster with these fake nodes, Ready.
    pub async fn start<S: AsRef<str>>(nodes: &[S]) -> Result<KubeCluster> {
        Self::builder()
            .nodes(nodes.iter().map(|n| n.as_ref().to_string()))
            .start()
            .await
    }

    /// The kubeconfig (admin token, CA verified).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The admin bearer token (group `system:masters`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `https://127.0.0.1:PORT`.
    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.api_port)
    }

    /// The apiserver's self-signed certificate bundle, which the kubeconfig trusts.
    pub fn ca_path(&self) -> &Path {
        &self.ca
    }

    /// The temp dir holding data, certificates and every component's log.
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("."))
    }

    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// From the first process started to the nodes Ready (or the apiserver ready).
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// A client from [`KubeCluster::kubeconfig`].
    pub async fn client(&self) -> Result<::kube::Client> {
        client_from_kubeconfig(&self.kubeconfig).await
    }

    /// Write another kubeconfig for this cluster that trusts `ca_pem` instead of the
    /// apiserver's certificate (to prove verification is on).
    pub fn kubeconfig_with_ca(&self, file: &str, ca_pem: &[u8]) -> Result<PathBuf> {
        let p = self.dir().join(file);
        write_kubeconfig(&p, &self.server(), ca_pem, &self.token)?;
        Ok(p)
    }

    /// An error if any component has exited, with the tail of its log.
    pub fn ensure_running(&mut self) -> Result<()> {
        for d in &mut self.daemons {
            d.ensure_running()?;
        }
        Ok(())
    }

    /// The last lines of one component's log (`etcd`, `kube-apiserver`, ...).
    pub fn log_tail(&self, component: &str, lines: usize) -> String {
        self.daemons
            .iter()
            .find(|d| d.name() == component)
            .map(|d| d.log_tail(lines))
            .unwrap_or_default()
    }

    async fn launch(b: KubeClusterBuilder) -> Result<KubeCluster> {
        let t0 = Instant::now();
        let deadline = t0 + b.timeout;
        let dir = tempfile::Builder::new().prefix("rookery-kube-").tempdir()?;
        let d = dir.path().to_path_buf();
        let mut c = KubeCluster {
            daemons: vec![],
            dir: Some(dir),
            api_port: 0,
            token: random_token()?,
            kubeconfig: d.join("kubeconfig"),
            ca: d.join("certs/apiserver.crt"),
            nodes: b.nodes.clone(),
            extra_args: b.extra_args.clone(),
            started_in: Duration::ZERO,
        };

        service_account_keys(&d)?;
        let tokens = d.join("tokens.csv");
        std::fs::write(
            &tokens,
            format!("{},admin,admin-uid,system:masters\n", c.token),
        )?;
        set_mode(&tokens, 0o600)?;

        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let peer = format!("http://127.0.0.1:{peer_port}");
        c.spawn(
            "etcd",
            Command::new(binary("etcd"))
                .arg(format!("--data-dir={}", d.join("etcd").display()))
                .arg(format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"))
                .arg(format!(
                    "--advertise-client-urls=http://127.0.0.1:{etcd_port}"
                ))
                .arg(format!("--listen-peer-urls={peer}"))
                .arg(format!("--initial-advertise-peer-urls={peer}"))
                .arg(format!("--initial-cluster=default={peer}"))
                // Throw-away data on a loaded machine: fsync would only slow every write.
                .arg("--unsafe-no-fsync"),
        )?;
        c.wait_until(deadline, "etcd", "etcd /health", || etcd_healthy(etcd_port))
            .await?;

        c.api_port = free_port()?;
        c.spawn(
            "kube-apiserver",
            Command::new(binary("kube-apiserver"))
                .arg(format!("--etcd-servers=http://127.0.0.1:{etcd_port}"))
                .arg(format!("--cert-dir={}", d.join("certs").display()))
                .arg(format!("--secure-port={}", c.api_port))
                .arg("--bind-address=127.0.0.1")
                .arg("--advertise-address=127.0.0.1")
                .arg("--service-account-issuer=https://kubernetes.default.svc")
                .arg(format!(
                    "--service-account-key-file={}",
                    d.join("sa.pub").display()
                ))
                .arg(format!(
                    "--service-account-signing-key-file={}",
                    d.join("sa.key").display()
                ))
                .arg("--service-cluster-ip-range=10.96.0.0/24")
                .arg("--authorization-mode=RBAC")
                .arg(format!("--token-auth-file={}", tokens.display())),
        )?;
        // The apiserver writes its self-signed certificate before it listens.
        let ca = c.ca.clone();
        c.wait_until(deadline, "kube-apiserver", "certs/apiserver.crt", || {
            Ok(ca.is_file())
        })
        .await?;
        let ca_pem = std::fs::read(&c.ca).with_context(|| format!("read {}", c.ca.display()))?;
        write_kubeconfig(&c.kubeconfig, &c.server(), &ca_pem, &c.token)?;
        let client = c.client().await?;
        c.wait_until_async(deadline, "kube-apiserver", "/readyz", || {
            let client = client.clone();
            async move { Ok(readyz(&client).await) }
        })
        .await?;

        if b.controllers {
            c.start_controllers(&d)?;
            c.create_nodes(&client).await?;
            let names = c.nodes.clone();
            c.wait_until_async(deadline, "kwok", "every node Ready", || {
                let client = client.clone();
                let names = names.clone();
                async move { nodes_ready(&client, &names).await }
            })
            .await?;
            // The ServiceAccount admission plugin refuses pods until the controller-manager
            // has created the namespace's `default` ServiceAccount: wait for it here so the
            // first Deployment of a test does not start with failed ReplicaSet creations.
            c.wait_until_async(
                deadline,
                "kube-controller-manager",
                "ServiceAccount default/default",
                || {
                    let client = client.clone();
                    async move { default_service_account(&client).await }
                },
            )
            .await?;
        }
        c.started_in = t0.elapsed();
        Ok(c)
    }

    fn start_controllers(&mut self, d: &Path) -> Result<()> {
        let k = self.kubeconfig.display().to_string();
        let kubeconfig_args = [
            format!("--kubeconfig={k}"),
            format!("--authentication-kubeconfig={k}"),
            format!("--authorization-kubeconfig={k}"),
        ];
        self.spawn(
            "kube-controller-manager",
            Command::new(binary("kube-controller-manager"))
                .args(&kubeconfig_args)
                .arg(format!(
                    "--service-account-private-key-file={}",
                    d.join("sa.key").display()
                ))
                .arg(format!("--root-ca-file={}", self.ca.display()))
                // nodeipam would want a cluster CIDR; kwok assigns pod IPs itself.
                .arg("--controllers=*,-nodeipam")
                .arg("--secure-port=0")
                .arg("--leader-elect=false"),
        )?;
        self.spawn(
            "kube-scheduler",
            Command::new(binary("kube-scheduler"))
                .args(&kubeconfig_args)
                .arg("--secure-port=0")
                .arg("--leader-elect=false"),
        )?;
        self.spawn(
            "kwok",
            Command::new(binary("kwok"))
                .arg(format!("--kubeconfig={k}"))
                .arg(format!("--config={}", stages_file().display()))
                .arg("--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake")
                .arg("--cidr=10.0.0.1/24")
                .arg("--node-ip=10.0.0.1"),
        )?;
        Ok(())
    }

    async fn create_nodes(&self, client: &::kube::Client) -> Result<()> {
        for name in &self.nodes {
            objects::apply(client, &fake_node(name))
                .await
                .with_context(|| format!("create fake node {name}"))?;
        }
        Ok(())
    }

    fn spawn(&mut self, name: &str, cmd: &mut Command) -> Result<()> {
        cmd.args(
            self.extra_args
                .iter()
                .filter(|(c, _)| c == name)
                .map(|(_, a)| a),
        );
        let log = self.dir().join(format!("{name}.log"));
        self.daemons.push(Daemon::spawn(name, cmd, &log)?);
        Ok(())
    }

    /// Poll `check` until it says yes, failing fast when any component exits; a timeout
    /// names what was awaited and shows the tail of `component`'s log.
    async fn wait_until(
        &mut self,
        deadline: Instant,
        component: &str,
        what: &str,
        mut check: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        self.wait_until_async(deadline, component, what, || {
            let r = check();
            async move { r }
        })
        .await
    }

    async fn wait_until_async<F, Fut>(
        &mut self,
        deadline: Instant,
        component: &str,
        what: &str,
        mut check: F,
    ) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<bool>>,
    {
        let mut last_err = None;
        loop {
            self.ensure_running()?;
            match check().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => last_err = Some(e),
            }
            if Instant::now() >= deadline {
                let last = last_err
                    .map(|e| format!(" (last error: {e:#})"))
                    .unwrap_or_default();
                bail!(
                    "cluster start timed out waiting for {what}{last}; last lines of {component}.log:\n{}",
                    self.log_tail(component, 40)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for KubeCluster {
    fn drop(&mut self) {
        while let Some(d) = self.daemons.pop() {
            drop(d);
        }
        if std::env::var("ROOKERY_KUBE_KEEP").is_ok_and(|v| v == "1")
            && let Some(dir) = self.dir.take()
        {
            eprintln!("kube: kept {}", dir.keep().display());
        }
    }
}

/// A client for a kubeconfig file, with the harness's timeouts.
pub async fn client_from_kubeconfig(path: &Path) -> Result<::kube::Client> {
    use ::kube::config::{KubeConfigOptions, Kubeconfig};
    let kc = Kubeconfig::read_from(path).with_context(|| format!("read {}", path.display()))?;
    let mut config = ::kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("load {}", path.display()))?;
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(CALL_TIMEOUT);
    config.write_timeout = Some(CALL_TIMEOUT);
    ::kube::Client::try_from(config).with_context(|| format!("client from {}", path.display()))
}

/// A kubeconfig with one cluster (trusting `ca_pem`), one token user, one context. 0600: it
/// holds the admin token.
pub fn write_kubeconfig(path: &Path, server: &str, ca_pem: &[u8], token: &str) -> Result<()> {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: rookery-test\n  cluster:\n    \
         server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: admin\n  \
         user:\n    token: {token}\ncontexts:\n- name: rookery-test\n  context:\n    \
         cluster: rookery-test\n    user: admin\ncurrent-context: rookery-test\n"
    );
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
    set_mode(&tmp, 0o600)?;
    std::fs::rename(&tmp, path).with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

/// A fake node kwok manages (the annotation its `--manage-nodes-with-annotation-selector`
/// matches), sized like a small lab host.
pub fn fake_node(name: &str) -> serde_json::Value {
    let resources = serde_json::json!({"cpu": "4", "memory": "8Gi", "pods": "110"});
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "spec": {"providerID": format!("kwok://{name}")},
        "status": {"capacity": resources, "allocatable": resources},
    })
}

fn random_token() -> Result<String> {
    let mut buf = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("read /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn service_account_keys(d: &Path) -> Result<()> {
    let key = d.join("sa.key");
    for args in [
        vec![
            "genrsa".into(),
            "-out".into(),
            key.display().to_string(),
            "2048".into(),
        ],
        vec![
            "rsa".into(),
            "-in".into(),
            key.display().to_string(),
            "-pubout".into(),
            "-out".into(),
            d.join("sa.pub").display().to_string(),
        ],
    ] {
        let out = Command::new("openssl")
            .args(&args)
            .output()
            .context("cannot run openssl")?;
        if !out.status.success() {
            bail!(
                "openssl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

fn etcd_healthy(port: u16) -> Result<bool> {
    Ok(crate::daemon::http_get(port, "/health")
        .is_some_and(|(code, text)| code == 200 && text.contains("\"health\":\"true\"")))
}

async fn readyz(client: &::kube::Client) -> bool {
    let Ok(req) = http::Request::get("/readyz").body(vec![]) else {
        return false;
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), client.request_text(req)).await,
        Ok(Ok(text)) if text.trim() == "ok"
    )
}

async fn nodes_ready(client: &::kube::Client, names: &[String]) -> Result<bool> {
    for name in names {
        let node = objects::get(client, "v1", "Node", None, name).await?;
        if !node
            .as_ref()
            .is_some_and(|n| objects::condition_true(n, "Ready"))
        {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn default_service_account(client: &::kube::Client) -> Result<bool> {
    Ok(
        objects::get(client, "v1", "ServiceAccount", Some("default"), "default")
            .await?
            .is_some(),
    )
}
