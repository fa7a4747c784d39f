//! Reaching the API server: a kubeconfig from `--kubeconfig`, `KUBECONFIG` (a list, merged the
//! way kubectl does) or `~/.kube/config`, an optional context, CA verification as the
//! kubeconfig says, and a deadline on every request.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};

use crate::error::KubeError;

/// Where to find the cluster.
#[derive(Debug, Clone)]
pub struct Target {
    /// An explicit kubeconfig file (else `KUBECONFIG`, else `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// A context of that kubeconfig (else its current context).
    pub context: Option<String>,
    /// Deadline for each API request.
    pub request_timeout: Duration,
}

impl Default for Target {
    fn default() -> Self {
        Target {
            kubeconfig: None,
            context: None,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A connected cluster: the client plus what error messages need to name it.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    pub server: String,
    pub context: Option<String>,
    pub request_timeout: Duration,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("server", &self.server)
            .field("context", &self.context)
            .finish()
    }
}

fn default_path() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".kube").join("config")
}

/// Load the kubeconfig and check the server answers (`/version`), so a wrong address, a
/// refused certificate or a bad token is reported once, up front, naming the server.
pub async fn connect(target: &Target) -> Result<Cluster, KubeError> {
    let (kubeconfig, origin) = match &target.kubeconfig {
        Some(path) => (
            Kubeconfig::read_from(path).map_err(|source| KubeError::Kubeconfig {
                path: path.display().to_string(),
                source,
            })?,
            path.display().to_string(),
        ),
        None => match Kubeconfig::from_env() {
            Ok(Some(k)) => (k, "KUBECONFIG".to_string()),
            Ok(None) => {
                let path = default_path();
                if !path.exists() {
                    return Err(KubeError::NoKubeconfig(path));
                }
                (
                    Kubeconfig::read_from(&path).map_err(|source| KubeError::Kubeconfig {
                        path: path.display().to_string(),
                        source,
                    })?,
                    path.display().to_string(),
                )
            }
            Err(source) => {
                return Err(KubeError::Kubeconfig {
                    path: "KUBECONFIG".into(),
                    source,
                });
            }
        },
    };
    let options = KubeConfigOptions {
        context: target.context.clone(),
        ..Default::default()
    };
    let context = target
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone());
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|source| KubeError::Kubeconfig {
            path: origin,
            source,
        })?;
    config.connect_timeout = Some(target.request_timeout.min(Duration::from_secs(10)));
    config.read_timeout = Some(target.request_timeout);
    config.reset_reader_on_write = true;
    config.write_timeout = Some(target.request_timeout);
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|source| KubeError::Client {
        server: server.clone(),
        source,
    })?;
    let cluster = Cluster {
        client,
        server: server.clone(),
        context,
        request_timeout: target.request_timeout,
    };
    match tokio::time::timeout(target.request_timeout, cluster.client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(cluster),
        Ok(Err(source)) => Err(KubeError::Unreachable { server, source }),
        Err(_) => Err(KubeError::ServerTimeout {
            server,
            after: target.request_timeout,
        }),
    }
}

impl Cluster {
    /// Run one API call under the request deadline; errors name what was being done to which
    /// object.
    pub async fn call<T>(
        &self,
        what: &'static str,
        object: impl std::fmt::Display,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, KubeError> {
        match tokio::time::timeout(self.request_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(KubeError::from_kube(what, object.to_string(), source)),
            Err(_) => Err(KubeError::RequestTimeout {
                what,
                object: object.to_string(),
                after: self.request_timeout,
            }),
        }
    }
}
