//! A kubeconfig fetched from a K3s server (`/etc/rancher/k3s/k3s.yaml`, which points at
//! `https://127.0.0.1:6443`): parse it and rewrite **only** `clusters[].cluster.server` to an
//! address this machine can reach — unlike the string replacement k3sup and k3s-ansible do
//! over the whole file (apply-anchors §7). CA verification is kept: a kubeconfig without a CA,
//! or one that turns verification off, is refused. The result is stored 0600.

use std::path::{Path, PathBuf};

use crate::error::KubeError;

/// The server URL with its host replaced. `address` may be a full URL (`https://api:6443`,
/// used as is), `host:port`, or a bare host/IP (the original scheme and port are kept).
pub fn new_server_url(original: &str, address: &str) -> String {
    if address.contains("://") {
        return address.to_string();
    }
    let (scheme, rest) = original.split_once("://").unwrap_or(("https", original));
    let authority = rest.split('/').next().unwrap_or(rest);
    // The port of the original authority (IPv6 literals are bracketed).
    let port = match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !port.contains(']') => Some(port),
        _ => None,
    };
    let has_port = match address.rsplit_once(':') {
        Some((h, p)) => !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':'),
        None => false,
    };
    let host = if address.contains(':') && !address.starts_with('[') && !has_port {
        format!("[{address}]") // a bare IPv6 address
    } else {
        address.to_string()
    };
    match (has_port, port) {
        (false, Some(p)) => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    }
}

/// Rewrite every cluster's `server` to `address`; everything else stays as it was.
/// `origin` (e.g. `node1:/etc/rancher/k3s/k3s.yaml`) only labels errors.
pub fn rewrite_server(text: &str, address: &str, origin: &str) -> Result<String, KubeError> {
    let invalid = |reason: String| KubeError::FetchedKubeconfig {
        origin: origin.to_string(),
        reason,
    };
    let label = std::path::Path::new(origin);
    let mut doc = rookery_yaml::parse(text, label, rookery_yaml::Schema::Core)
        .map_err(|e| invalid(format!("not YAML: {}", e.detail())))?
        .map(|n| n.to_json())
        .unwrap_or_default();
    let clusters = doc
        .get_mut("clusters")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or_else(|| invalid("no `clusters` list".into()))?;
    if clusters.is_empty() {
        return Err(invalid("the `clusters` list is empty".into()));
    }
    for (i, c) in clusters.iter_mut().enumerate() {
        let cluster = c
            .get_mut("cluster")
            .and_then(serde_json::Value::as_object_mut)
            .ok_or_else(|| invalid(format!("clusters[{i}] has no `cluster`")))?;
        let verify_off = cluster
            .get("insecure-skip-tls-verify")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let has_ca = cluster.contains_key("certificate-authority-data")
            || cluster.contains_key("certificate-authority");
        if verify_off || !has_ca {
            return Err(invalid(format!(
                "clusters[{i}] has no certificate authority (or turns verification off); \
                 Rookery only talks to an API server it can verify"
            )));
        }
        let old = cluster
            .get("server")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| invalid(format!("clusters[{i}].cluster has no `server`")))?
            .to_string();
        cluster.insert(
            "server".into(),
            serde_json::Value::String(new_server_url(&old, address)),
        );
    }
    Ok(rookery_yaml::to_string(&doc))
}

/// Where a fetched kubeconfig for `host` is kept: `$XDG_CONFIG_HOME/rookery/kubeconfig/` or
/// `~/.config/rookery/kubeconfig/`.
pub fn store_path(host: &str) -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".config")
        });
    base.join("rookery")
        .join("kubeconfig")
        .join(format!("{host}.yaml"))
}

/// Write `text` at `path` with mode 0600 (directories 0700), replacing it atomically.
pub fn store(path: &Path, text: &str) -> Result<(), KubeError> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let err = |source| KubeError::Store {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)?;
    }
    let tmp = path.with_extension("yaml.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K3S: &str = r#"apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTi1kZWZhdWx0LQ==
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: ZGVmYXVsdA==
    client-key-data: c2VjcmV0LWRlZmF1bHQ=
"#;

    #[test]
    fn only_the_server_changes() {
        let out = rewrite_server(K3S, "10.0.0.5", "n1:k3s.yaml").unwrap();
        let parse = |t: &str| {
            rookery_yaml::from_str::<serde_json::Value>(
                t,
                "k3s.yaml".as_ref(),
                rookery_yaml::Schema::Core,
            )
            .unwrap()
        };
        let a = parse(K3S);
        let mut b = parse(&out);
        assert_eq!(
            b["clusters"][0]["cluster"]["server"].as_str(),
            Some("https://10.0.0.5:6443")
        );
        // Everything else — including every `default` name and the key material — is as it was.
        b["clusters"][0]["cluster"]["server"] = a["clusters"][0]["cluster"]["server"].clone();
        assert_eq!(a, b);
    }

    #[test]
    fn address_forms() {
        let o = "https://127.0.0.1:6443";
        assert_eq!(new_server_url(o, "node1"), "https://node1:6443");
        assert_eq!(new_server_url(o, "node1:16443"), "https://node1:16443");
        assert_eq!(new_server_url(o, "https://vip:443"), "https://vip:443");
        assert_eq!(new_server_url(o, "fd00::5"), "https://[fd00::5]:6443");
        assert_eq!(
            new_server_url(o, "[fd00::5]:7443"),
            "https://[fd00::5]:7443"
        );
        assert_eq!(new_server_url("https://localhost", "h"), "https://h");
    }

    #[test]
    fn no_ca_or_verification_off_is_refused() {
        let no_ca = K3S.replace(
            "    certificate-authority-data: LS0tLS1CRUdJTi1kZWZhdWx0LQ==\n",
            "",
        );
        assert!(rewrite_server(&no_ca, "h", "x").is_err());
        let off = K3S.replace(
            "    server:",
            "    insecure-skip-tls-verify: true\n    server:",
        );
        let e = rewrite_server(&off, "h", "x").unwrap_err().to_string();
        assert!(e.contains("certificate authority"), "{e}");
    }

    #[test]
    fn stored_file_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a/b/n1.yaml");
        store(&p, "x").unwrap();
        store(&p, "y").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "y");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
