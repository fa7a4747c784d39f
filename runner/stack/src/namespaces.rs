//! The namespaces a stack installs into, and the rewrite that moves Rook's upstream files there.
//!
//! [`Namespaces`] is derived once from the stack ([`crate::Stack::namespaces`]) and is the only
//! place later steps read a namespace from. [`rewrite`] is Rook's documented "Using alternate
//! namespaces" procedure (rook@v1.20.6 `Documentation/Storage-Configuration/Advanced/
//! ceph-configuration.md:17-58`, rook-velero-facts-2 §1) as a pure, line-based function: the
//! same `sed` expressions, keyed on the same `# namespace:*` markers, plus the lines the sed
//! misses (the `# csi-provisioner-name` Driver names, `ceph-csi-drivers.md:30-39`, and the
//! unmarked `namespace:` of `monitoring/localrules.yaml`). It runs on a bundle file's text after
//! its sha256 check. Every line keeps its bytes except the rewritten value, so for the upstream
//! namespaces (`rook-ceph`/`rook-ceph`) the output is the input, byte for byte.
//!
//! It is strict where the sed is lenient: a marker on a line of unexpected shape, an unknown
//! marker, or a line that names a namespace without a marker is an error naming the file and
//! line, so a changed upstream file is never half-rewritten.

use crate::validate::is_dns1123_label;

/// Namespace Rook's upstream files use for both the operator and the cluster (R:common.yaml:12).
pub const DEFAULT_ROOK_NAMESPACE: &str = "rook-ceph";
/// Namespace `velero install` uses (k8s-facts §7).
pub const DEFAULT_VELERO_NAMESPACE: &str = "velero";

/// Suffixes of the CSI Driver names Rook v1.20 derives from its operator namespace
/// (`pkg/operator/ceph/csi/config.go:51-53`, rook-velero-facts-2 §1).
const CEPHFS_DRIVER_SUFFIX: &str = ".cephfs.csi.ceph.com";
const RBD_DRIVER_SUFFIX: &str = ".rbd.csi.ceph.com";

/// Where each part of the stack lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaces {
    /// The CephCluster's namespace (the stack's `namespace`): the cluster's service accounts and
    /// RBAC, CephFilesystems, the CSI secrets (`*-secret-namespace`) and `clusterID`.
    pub cluster: String,
    /// The Rook operator's namespace (`operatorNamespace`, default: `cluster`): the operator and
    /// its ConfigMap, ceph-csi-operator, its `OperatorConfig`, the CSI `Driver`s and their
    /// service accounts.
    pub operator: String,
    /// Velero's namespace (`backupStrategy.namespace`, default `velero`).
    pub velero: String,
}

impl Namespaces {
    /// The namespaces upstream's files are written for; [`rewrite`] leaves files untouched.
    pub fn upstream() -> Self {
        Namespaces {
            cluster: DEFAULT_ROOK_NAMESPACE.to_string(),
            operator: DEFAULT_ROOK_NAMESPACE.to_string(),
            velero: DEFAULT_VELERO_NAMESPACE.to_string(),
        }
    }

    /// The operator runs outside the cluster namespace. Its namespace must then exist before
    /// `common.yaml` is applied: only the cluster namespace is created by `common.yaml`
    /// (ceph-configuration.md:26-32, R:common.yaml:10-12).
    pub fn separate_operator(&self) -> bool {
        self.operator != self.cluster
    }

    /// The CephFS `Driver` name, which the StorageClass `provisioner` and the
    /// VolumeSnapshotClass `driver` must equal: `<operator>.cephfs.csi.ceph.com`, the prefix
    /// Rook's deletion guard expects (rook-velero-facts-2 §1, k8s-facts §4).
    pub fn cephfs_driver(&self) -> String {
        format!("{}{CEPHFS_DRIVER_SUFFIX}", self.operator)
    }

    /// The RBD `Driver` name (R:operator.yaml:148), `<operator>.rbd.csi.ceph.com`.
    pub fn rbd_driver(&self) -> String {
        format!("{}{RBD_DRIVER_SUFFIX}", self.operator)
    }
}

impl Default for Namespaces {
    fn default() -> Self {
        Self::upstream()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    #[error("cannot rewrite into {role} namespace `{value}`: not a DNS-1123 label")]
    InvalidNamespace { role: &'static str, value: String },
    #[error("{path}:{line}: `{marker}` on a line not shaped `{expected}`: {text}")]
    MarkerShape {
        path: String,
        line: usize,
        marker: &'static str,
        expected: &'static str,
        text: String,
    },
    #[error("{path}:{line}: unknown or misplaced namespace marker: {text}")]
    UnknownMarker {
        path: String,
        line: usize,
        text: String,
    },
    #[error(
        "{path}:{line}: `{key}` names a namespace or CSI driver but carries no marker, so the \
         rewrite would miss it: {text}"
    )]
    Unmarked {
        path: String,
        line: usize,
        key: String,
        text: String,
    },
    #[error("{path}: expected {expected}, found {found}")]
    Expected {
        path: String,
        expected: &'static str,
        found: String,
    },
}

/// Rewrite one bundle file's text (after its sha256 check) for `ns`.
///
/// `path` is the bundle path (`rook-v1.20.6/deploy/examples/common.yaml`). Rook example files
/// (`rook-*/deploy/examples/**`) are rewritten by their markers; every other file (the Velero
/// CRDs, which are cluster-scoped and name no namespace, and the snapshotter files, which live
/// in `kube-system`) is returned unchanged.
pub fn rewrite(path: &str, text: &str, ns: &Namespaces) -> Result<String, RewriteError> {
    for (role, value) in [("cluster", &ns.cluster), ("operator", &ns.operator)] {
        if !is_dns1123_label(value) {
            return Err(RewriteError::InvalidNamespace {
                role,
                value: value.clone(),
            });
        }
    }
    let Some(example) = rook_example(path) else {
        return Ok(text.to_string());
    };
    let mut file = FileRewrite {
        path,
        ns,
        unmarked_namespace: example == "monitoring/localrules.yaml",
        unmarked_seen: 0,
        operator_yaml: example == "operator.yaml",
        current_ns_only: CurrentNsOnly::NotSeen,
    };
    let mut out = String::with_capacity(text.len() + 256);
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let (body, ending) = split_ending(raw);
        file.line(i + 1, body, &mut out)?;
        out.push_str(ending);
    }
    file.finish()?;
    Ok(out)
}

/// The path below `deploy/examples/` of a Rook bundle file.
fn rook_example(path: &str) -> Option<&str> {
    let (project, rest) = path.split_once('/')?;
    if !project.starts_with("rook-") {
        return None;
    }
    rest.strip_prefix("deploy/examples/")
}

fn split_ending(raw: &str) -> (&str, &str) {
    let body = raw.strip_suffix('\n').unwrap_or(raw);
    let body = body.strip_suffix('\r').unwrap_or(body);
    (body, &raw[body.len()..])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Operator,
    Cluster,
    ServiceAccountOperator,
    ServiceAccountCluster,
    DriverCluster,
    CsiProvisionerName,
}

/// Every marker, as the suffix of its line. The sed (ceph-configuration.md:43-49) matches the
/// first five; `# csi-provisioner-name` is the one ceph-csi-drivers.md:30-39 says to find the
/// Driver names by. None is a suffix of another.
const MARKERS: &[(&str, Marker)] = &[
    (" # namespace:operator", Marker::Operator),
    (" # namespace:cluster", Marker::Cluster),
    (
        " # serviceaccount:namespace:operator",
        Marker::ServiceAccountOperator,
    ),
    (
        " # serviceaccount:namespace:cluster",
        Marker::ServiceAccountCluster,
    ),
    (" # driver:namespace:cluster", Marker::DriverCluster),
    (" # csi-provisioner-name", Marker::CsiProvisionerName),
];

/// Text that only a marker contains; a line with one of these must end in exactly one marker.
const MARKER_WORDS: &[&str] = &[
    "namespace:operator",
    "namespace:cluster",
    "driver:namespace",
    "csi-provisioner-name",
];

/// CSI driver types the Driver CRD accepts (R:csi-operator.yaml:3510-3512).
const CSI_TYPES: &[&str] = &["rbd", "cephfs", "nfs", "nvmeof"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum CurrentNsOnly {
    NotSeen,
    /// Just after the `- name: ROOK_CURRENT_NAMESPACE_ONLY` line; its `value:` comes next.
    Named,
    Value(usize, String),
}

struct FileRewrite<'a> {
    path: &'a str,
    ns: &'a Namespaces,
    /// monitoring/localrules.yaml: its PrometheusRule's `namespace:` has no marker
    /// (R:monitoring/localrules.yaml:9, unlike externalrules.yaml:9) and belongs in the cluster
    /// namespace, next to the Ceph daemons it alerts on.
    unmarked_namespace: bool,
    unmarked_seen: usize,
    operator_yaml: bool,
    current_ns_only: CurrentNsOnly,
}

impl FileRewrite<'_> {
    fn line(&mut self, no: usize, body: &str, out: &mut String) -> Result<(), RewriteError> {
        if self.operator_yaml {
            self.track_current_ns_only(no, body);
        }
        if MARKER_WORDS.iter().any(|w| body.contains(w)) {
            return self.marked(no, body, out);
        }
        if let Some((prefix, key, value)) = key_value(body)
            && names_a_namespace(key, value)
        {
            if self.unmarked_namespace && key == "namespace" && prefix == "  " {
                self.unmarked_seen += 1;
                if is_dns1123_label(value) && body == format!("  namespace: {value}") {
                    out.push_str(prefix);
                    out.push_str("namespace: ");
                    out.push_str(&self.ns.cluster);
                    return Ok(());
                }
            }
            return Err(RewriteError::Unmarked {
                path: self.path.to_string(),
                line: no,
                key: key.to_string(),
                text: excerpt(body),
            });
        }
        out.push_str(body);
        Ok(())
    }

    fn marked(&self, no: usize, body: &str, out: &mut String) -> Result<(), RewriteError> {
        let unknown = || RewriteError::UnknownMarker {
            path: self.path.to_string(),
            line: no,
            text: excerpt(body),
        };
        let (suffix, marker) = MARKERS
            .iter()
            .find(|(s, _)| body.ends_with(s))
            .ok_or_else(unknown)?;
        let head = &body[..body.len() - suffix.len()];
        if MARKER_WORDS.iter().any(|w| head.contains(w)) {
            return Err(unknown());
        }
        let shape = |expected: &'static str| RewriteError::MarkerShape {
            path: self.path.to_string(),
            line: no,
            marker: suffix.trim_start(),
            expected,
            text: excerpt(body),
        };
        let rewritten = match marker {
            // sed: s/\(.*\):.*# namespace:X/\1: $NS # namespace:X/
            Marker::Operator | Marker::Cluster => {
                let (prefix, _) = head
                    .rsplit_once(": ")
                    .filter(|(p, v)| yaml_key(p).is_some() && is_dns1123_label(v))
                    .ok_or_else(|| shape("<key>: <namespace>"))?;
                let target = if *marker == Marker::Operator {
                    &self.ns.operator
                } else {
                    &self.ns.cluster
                };
                format!("{prefix}: {target}")
            }
            // sed: s/\(.*serviceaccount\):.*:\(.*\) # serviceaccount:namespace:X/\1:$NS:\2 .../
            Marker::ServiceAccountOperator | Marker::ServiceAccountCluster => {
                const SA: &str = "serviceaccount:";
                let at = head
                    .rfind(SA)
                    .ok_or_else(|| shape("<prefix>serviceaccount:<namespace>:<serviceaccount>"))?;
                let (prefix, rest) = head.split_at(at + SA.len());
                let (_, name) = rest
                    .split_once(':')
                    .filter(|(n, s)| {
                        is_dns1123_label(n) && !s.is_empty() && !s.contains([':', ' ', '"', '\''])
                    })
                    .ok_or_else(|| shape("<prefix>serviceaccount:<namespace>:<serviceaccount>"))?;
                let target = if *marker == Marker::ServiceAccountOperator {
                    &self.ns.operator
                } else {
                    &self.ns.cluster
                };
                format!("{prefix}{target}:{name}")
            }
            // sed: s/\(.*\): [-_A-Za-z0-9]*\.\(.*\) # driver:namespace:cluster/\1: $NS.\2 .../
            Marker::DriverCluster => {
                let (prefix, value) = head
                    .rsplit_once(": ")
                    .filter(|(p, _)| yaml_key(p).is_some())
                    .ok_or_else(|| shape("<key>: <namespace>.<name>"))?;
                let (_, rest) = value
                    .split_once('.')
                    .filter(|(n, r)| is_dns1123_label(n) && !r.is_empty() && !r.contains(' '))
                    .ok_or_else(|| shape("<key>: <namespace>.<name>"))?;
                format!("{prefix}: {}.{rest}", self.ns.cluster)
            }
            // ceph-csi-drivers.md:30-39: the Driver name prefix is the operator namespace.
            Marker::CsiProvisionerName => {
                const EXPECTED: &str = "<key>: <namespace>.<rbd|cephfs|nfs|nvmeof>.csi.ceph.com";
                let (prefix, value) = head
                    .rsplit_once(": ")
                    .filter(|(p, _)| yaml_key(p).is_some())
                    .ok_or_else(|| shape(EXPECTED))?;
                let (_, kind) = value
                    .strip_suffix(".csi.ceph.com")
                    .and_then(|v| v.split_once('.'))
                    .filter(|(n, t)| is_dns1123_label(n) && CSI_TYPES.contains(t))
                    .ok_or_else(|| shape(EXPECTED))?;
                format!("{prefix}: {}.{kind}.csi.ceph.com", self.ns.operator)
            }
        };
        out.push_str(&rewritten);
        out.push_str(suffix);
        Ok(())
    }

    /// R:operator.yaml:220-221 sets `ROOK_CURRENT_NAMESPACE_ONLY: "false"` (watch CephClusters in
    /// all namespaces). Rookery keeps upstream's value for every combination and never edits
    /// this line:
    /// - with a separate operator namespace it must stay "false": "true" (also the code default
    ///   when the variable is absent, `pkg/operator/ceph/operator.go:160-169`) would make the
    ///   operator watch only its own namespace and never see the CephCluster. So it is checked.
    /// - with one namespace, "false" works as well (the operator's own namespace is one of
    ///   "all"). ceph-configuration.md:22-24 asks for `ROOK_CURRENT_NAMESPACE_ONLY` only "to
    ///   create a new Rook Operator for each Ceph cluster", i.e. several operators in one
    ///   Kubernetes cluster; Rookery installs one, and `rook-ceph`/`rook-ceph` must stay
    ///   byte-identical to upstream. The common.yaml RBAC is cluster-scoped for exactly this
    ///   (R:common.yaml:68-70). Detecting a second Rook operator is the apply engine's job.
    fn track_current_ns_only(&mut self, no: usize, body: &str) {
        let t = body.trim();
        if t == "- name: ROOK_CURRENT_NAMESPACE_ONLY" {
            self.current_ns_only = CurrentNsOnly::Named;
        } else if self.current_ns_only == CurrentNsOnly::Named
            && !t.is_empty()
            && !t.starts_with('#')
        {
            let value = t
                .strip_prefix("value: ")
                .map(|v| v.trim_matches('"').to_string())
                .unwrap_or_else(|| t.to_string());
            self.current_ns_only = CurrentNsOnly::Value(no, value);
        }
    }

    fn finish(&self) -> Result<(), RewriteError> {
        if self.unmarked_namespace && self.unmarked_seen != 1 {
            return Err(RewriteError::Expected {
                path: self.path.to_string(),
                expected: "exactly one unmarked `  namespace:` (the PrometheusRule's)",
                found: self.unmarked_seen.to_string(),
            });
        }
        if self.operator_yaml && self.ns.separate_operator() {
            match &self.current_ns_only {
                CurrentNsOnly::Value(_, v) if v == "false" => {}
                CurrentNsOnly::Value(line, v) => {
                    return Err(RewriteError::Expected {
                        path: self.path.to_string(),
                        expected: "ROOK_CURRENT_NAMESPACE_ONLY \"false\" (a separate operator \
                                   namespace needs the operator to watch all namespaces)",
                        found: format!("`{}` at line {line}", excerpt(v)),
                    });
                }
                _ => {
                    return Err(RewriteError::Expected {
                        path: self.path.to_string(),
                        expected: "an env `ROOK_CURRENT_NAMESPACE_ONLY` with value \"false\" \
                                   (its code default \"true\" hides a CephCluster outside the \
                                   operator namespace)",
                        found: "none".to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// `prefix` is `<indent>[- ]<key>` with a plain YAML key; returns the key.
fn yaml_key(prefix: &str) -> Option<&str> {
    let key = prefix.trim_start_matches(' ');
    let key = key.strip_prefix("- ").unwrap_or(key);
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b));
    plain.then_some(key)
}

/// An unmarked `<indent>[- ]<key>: <value>` line: (indent-and-dash prefix, key, value without a
/// trailing comment or quotes). Comments and lines without a scalar value give `None`.
fn key_value(body: &str) -> Option<(&str, &str, &str)> {
    if body.trim_start().starts_with('#') {
        return None;
    }
    let (prefix, value) = body.split_once(": ")?;
    let key = yaml_key(prefix)?;
    let value = value.split(" #").next().unwrap_or(value).trim();
    let value = value.trim_matches(|c| c == '"' || c == '\'');
    let indent = &prefix[..prefix.len() - key.len()];
    (!value.is_empty()).then_some((indent, key, value))
}

/// Keys whose value is a namespace (metadata, subjects, StorageClass/VolumeSnapshotClass
/// parameters), and values that are CSI driver names: exactly what the markers are for.
fn names_a_namespace(key: &str, value: &str) -> bool {
    key == "namespace"
        || key == "clusterID"
        || key.ends_with("-secret-namespace")
        || (value.ends_with(".csi.ceph.com") && !value.contains(char::is_whitespace))
}

/// A line for an error message: upstream text, never secret, but bounded.
fn excerpt(s: &str) -> String {
    const MAX: usize = 160;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(cluster: &str, operator: &str) -> Namespaces {
        Namespaces {
            cluster: cluster.into(),
            operator: operator.into(),
            velero: DEFAULT_VELERO_NAMESPACE.into(),
        }
    }

    const COMMON: &str = "rook-v1.20.6/deploy/examples/common.yaml";

    #[test]
    fn markers_rewrite_only_their_value() {
        let text = "metadata:\n  name: rook-ceph # namespace:cluster\n  namespace: rook-ceph # namespace:operator\r\n  - kind: ServiceAccount\n    namespace: rook-ceph # namespace:cluster\n";
        let out = rewrite(COMMON, text, &ns("storage-system", "rook-op")).unwrap();
        assert_eq!(
            out,
            "metadata:\n  name: storage-system # namespace:cluster\n  namespace: rook-op # namespace:operator\r\n  - kind: ServiceAccount\n    namespace: storage-system # namespace:cluster\n"
        );
    }

    #[test]
    fn sed_forms_for_service_accounts_and_bucket_drivers() {
        let text = "users:\n  - system:serviceaccount:rook-ceph:rook-ceph-system # serviceaccount:namespace:operator\n  - system:serviceaccount:rook-ceph:rook-ceph-mgr # serviceaccount:namespace:cluster\nprovisioner: rook-ceph.ceph.rook.io/bucket # driver:namespace:cluster\n";
        let out = rewrite("rook-v1.20.6/deploy/examples/x.yaml", text, &ns("st", "op")).unwrap();
        assert_eq!(
            out,
            "users:\n  - system:serviceaccount:op:rook-ceph-system # serviceaccount:namespace:operator\n  - system:serviceaccount:st:rook-ceph-mgr # serviceaccount:namespace:cluster\nprovisioner: st.ceph.rook.io/bucket # driver:namespace:cluster\n"
        );
    }

    #[test]
    fn driver_names_take_the_operator_namespace() {
        let text = "metadata:\n  name: rook-ceph.cephfs.csi.ceph.com # csi-provisioner-name\nprovisioner: rook-ceph.rbd.csi.ceph.com # csi-provisioner-name\n";
        let out = rewrite(COMMON, text, &ns("st", "op")).unwrap();
        assert_eq!(
            out,
            "metadata:\n  name: op.cephfs.csi.ceph.com # csi-provisioner-name\nprovisioner: op.rbd.csi.ceph.com # csi-provisioner-name\n"
        );
        let n = ns("st", "op");
        assert_eq!(n.cephfs_driver(), "op.cephfs.csi.ceph.com");
        assert_eq!(n.rbd_driver(), "op.rbd.csi.ceph.com");
    }

    #[test]
    fn bad_shapes_fail_with_file_and_line() {
        let cases = [
            // marker not at the end
            "a: b\n  namespace: rook-ceph # namespace:cluster trailing\n",
            // two spaces: not the shape the sed output keeps identical
            "a: b\n  namespace:  rook-ceph # namespace:cluster\n",
            // quoted value
            "a: b\n  namespace: \"rook-ceph\" # namespace:operator\n",
            // unknown marker kind
            "a: b\n  namespace: rook-ceph # namespace:clusters\n",
            // two markers
            "a: b\n  x: rook-ceph # namespace:cluster # namespace:operator\n",
            // a Driver name of an unknown type
            "a: b\n  name: rook-ceph.block.csi.ceph.com # csi-provisioner-name\n",
            // an unmarked namespace, clusterID, secret namespace or driver name
            "a: b\n  namespace: rook-ceph\n",
            "a: b\n  clusterID: rook-ceph\n",
            "a: b\n  csi.storage.k8s.io/node-stage-secret-namespace: rook-ceph\n",
            "a: b\nprovisioner: rook-ceph.cephfs.csi.ceph.com\n",
        ];
        for text in cases {
            let err = rewrite(COMMON, text, &ns("storage-system", "storage-system")).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with(&format!("{COMMON}:2:")), "{text:?}: {msg}");
        }
    }

    #[test]
    fn other_files_pass_through() {
        let text = "  namespace: rook-ceph\n  name: x # namespace:cluster trailing\n";
        for path in [
            "velero-v1.18.1/config/crd/v1/bases/velero.io_backups.yaml",
            "external-snapshotter-v8.6.0/deploy/kubernetes/snapshot-controller/setup-snapshot-controller.yaml",
            "rook-v1.20.6/Documentation/x.md",
        ] {
            assert_eq!(rewrite(path, text, &ns("a", "b")).unwrap(), text);
        }
    }

    #[test]
    fn localrules_namespace_moves_to_the_cluster() {
        let path = "rook-v1.20.6/deploy/examples/monitoring/localrules.yaml";
        let text = "metadata:\n  name: prometheus-ceph-rules\n  namespace: rook-ceph\nspec:\n";
        let out = rewrite(path, text, &ns("st", "op")).unwrap();
        assert_eq!(
            out,
            "metadata:\n  name: prometheus-ceph-rules\n  namespace: st\nspec:\n"
        );
        let err = rewrite(path, "metadata:\n  name: x\n", &ns("st", "op")).unwrap_err();
        assert!(err.to_string().contains("found 0"), "{err}");
        // Anything but the bare line would lose bytes: refused.
        let err = rewrite(
            path,
            "metadata:\n  namespace: rook-ceph # x\n",
            &ns("st", "op"),
        );
        assert!(err.unwrap_err().to_string().contains(":2:"));
    }

    #[test]
    fn current_namespace_only_must_stay_false_for_a_separate_operator() {
        let path = "rook-v1.20.6/deploy/examples/operator.yaml";
        let with = |v: &str| {
            format!(
                "env:\n  # comment\n  - name: ROOK_CURRENT_NAMESPACE_ONLY\n    value: \"{v}\"\n"
            )
        };
        let same = ns("st", "st");
        let separate = ns("st", "op");
        assert_eq!(
            rewrite(path, &with("false"), &separate).unwrap(),
            with("false")
        );
        assert_eq!(rewrite(path, &with("true"), &same).unwrap(), with("true"));
        let err = rewrite(path, &with("true"), &separate).unwrap_err();
        assert!(err.to_string().contains("at line 4"), "{err}");
        assert!(rewrite(path, "env: []\n", &separate).is_err());
        assert!(rewrite(path, "env: []\n", &same).is_ok());
    }

    #[test]
    fn invalid_namespaces_are_refused() {
        for bad in ["", "Storage", "a b", "x\n  evil: 1", "-x"] {
            assert!(rewrite(COMMON, "", &ns(bad, "ok")).is_err(), "{bad:?}");
            assert!(rewrite(COMMON, "", &ns("ok", bad)).is_err(), "{bad:?}");
        }
    }

    /// The shared upstream directory (`$ROOKERY_SHARED/upstream` or `../shared/upstream`).
    fn shared_upstream() -> std::path::PathBuf {
        match std::env::var_os("ROOKERY_SHARED") {
            Some(s) => std::path::PathBuf::from(s).join("upstream"),
            None => {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/upstream")
            }
        }
    }

    /// Every file of the lock: unchanged for the upstream namespaces, rewritten without error
    /// for others, and only Rook's files change.
    #[test]
    fn every_locked_file() {
        let lock = crate::bundle::lock().unwrap();
        let dir = shared_upstream();
        let mut rook = 0;
        for f in &lock.files {
            let text = std::fs::read_to_string(dir.join(&f.path))
                .unwrap_or_else(|e| panic!("{}: {e}", f.path));
            assert_eq!(
                rewrite(&f.path, &text, &Namespaces::upstream()).unwrap(),
                text,
                "{} changed for rook-ceph/rook-ceph",
                f.path
            );
            for n in [
                ns("storage-system", "storage-system"),
                ns("storage-system", "rook-operator"),
            ] {
                let out = rewrite(&f.path, &text, &n).unwrap_or_else(|e| panic!("{e}"));
                if f.project == "rook" {
                    if f.path.ends_with("/crds.yaml") {
                        assert_eq!(out, text, "{}", f.path);
                    } else {
                        assert_ne!(out, text, "{}", f.path);
                    }
                } else {
                    assert_eq!(out, text, "{}", f.path);
                }
                assert_eq!(out.lines().count(), text.lines().count(), "{}", f.path);
            }
            if f.project == "rook" {
                rook += 1;
            }
        }
        assert_eq!(
            rook, 5,
            "crds, common, csi-operator, operator, monitoring/localrules"
        );
    }
}
