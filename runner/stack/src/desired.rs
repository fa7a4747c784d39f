//! The desired state: every Kubernetes object the stack needs, in apply order, each with the
//! stage it belongs to and the rule that says when it is ready.
//!
//! Rendering produces it once; `plan`, `render`, `diff` and `apply` all consume the same
//! objects. Secret values are never stored in it: a Secret carries *references*
//! ([`SecretItem`]) that are resolved only where a value is really needed — in the body of an
//! API request, or in a file the user explicitly asked to contain values — so a redacted
//! object can never be applied by mistake (server-side apply of a Secret without `data` would
//! erase the data the field manager owns).

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use crate::credential::{CredentialError, CredentialRef, Resolved};
use crate::readiness::{Readiness, group_of};

/// Apply stages, in order. Each stage is applied (objects concurrently) and waited for
/// before the next starts: CRDs first so no kind is ever unknown, then namespaces and cluster
/// RBAC, then the seed's deployment flow (snapshotter → Rook operator → CephCluster →
/// filesystems → storage classes → Velero), schedules last because Velero only accepts them
/// once a backup location is available (k8s-pitfalls §8), and alert rules after everything they
/// watch (applied only when the cluster serves PrometheusRule: see
/// [`DesiredObject::skip_unless_served`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    Crds,
    Namespaces,
    SnapshotController,
    RookOperator,
    CephCluster,
    Filesystems,
    StorageClasses,
    Velero,
    BackupSchedules,
    Alerts,
}

impl Stage {
    pub const ALL: [Stage; 10] = [
        Stage::Crds,
        Stage::Namespaces,
        Stage::SnapshotController,
        Stage::RookOperator,
        Stage::CephCluster,
        Stage::Filesystems,
        Stage::StorageClasses,
        Stage::Velero,
        Stage::BackupSchedules,
        Stage::Alerts,
    ];

    /// Stable name for flags, JSON and playbook parameters.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Crds => "crds",
            Stage::Namespaces => "namespaces",
            Stage::SnapshotController => "snapshot-controller",
            Stage::RookOperator => "rook-operator",
            Stage::CephCluster => "ceph-cluster",
            Stage::Filesystems => "filesystems",
            Stage::StorageClasses => "storage-classes",
            Stage::Velero => "velero",
            Stage::BackupSchedules => "backup-schedules",
            Stage::Alerts => "alerts",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Stage::Crds => "CustomResourceDefinitions",
            Stage::Namespaces => "namespaces and cluster RBAC",
            Stage::SnapshotController => "CSI snapshot controller",
            Stage::RookOperator => "Rook operator and CSI operator",
            Stage::CephCluster => "CephCluster",
            Stage::Filesystems => "CephFilesystems",
            Stage::StorageClasses => "StorageClasses and VolumeSnapshotClass",
            Stage::Velero => "Velero",
            Stage::BackupSchedules => "backup schedules",
            Stage::Alerts => "Prometheus alert rules",
        }
    }

    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Where an object came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Source {
    /// A pinned upstream file (hash-checked), possibly rewritten for the stack's namespaces.
    Bundle {
        path: String,
        url: String,
        sha256: String,
    },
    /// A template from `playbooks/templates/`.
    Template { template: String },
}

impl Source {
    fn slug(&self) -> String {
        match self {
            Source::Bundle { path, .. } => {
                let top = path.split('/').next().unwrap_or(path);
                let project = top.rsplit_once("-v").map(|(p, _)| p).unwrap_or(top);
                let base = path.rsplit('/').next().unwrap_or(path);
                let base = base.strip_suffix(".yaml").unwrap_or(base);
                format!("{project}-{base}")
            }
            Source::Template { template } => template
                .strip_suffix(".yaml.hbs")
                .unwrap_or(template)
                .to_string(),
        }
    }
}

/// apiVersion, kind, name and namespace: what identifies an object on a cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl ObjectRef {
    pub fn group(&self) -> &str {
        group_of(&self.api_version)
    }

    /// `Kind.group/name` the way `--allow-delete` and errors spell it (core kinds: `Kind/name`).
    pub fn kind_name(&self) -> String {
        match self.group() {
            "" => format!("{}/{}", self.kind, self.name),
            g => format!("{}.{g}/{}", self.kind, self.name),
        }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// One key of a Secret's `data`, by reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretItem {
    pub key: String,
    pub reference: CredentialRef,
    /// A one-line value (a password): drop one trailing line break, which `echo >file` adds.
    pub one_line: bool,
}

/// One object of the desired state.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredObject {
    pub stage: Stage,
    pub source: Source,
    pub id: ObjectRef,
    /// The object as it is sent, minus Secret values.
    #[serde(skip)]
    pub body: Value,
    /// Secret `data` to resolve when the object is sent or written with values.
    pub secret_data: Vec<SecretItem>,
    pub readiness: Readiness,
    /// Set for an object whose kind no CRD of the stack provides (a PrometheusRule needs the
    /// Prometheus Operator's CRDs): `apply` skips it with this hint when the cluster does not
    /// serve the kind, instead of failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_unless_served: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("{file}: document {index}: {reason}")]
    Invalid {
        file: String,
        index: usize,
        reason: String,
    },
    #[error("credential for {object} (key `{key}`, {reference}) does not resolve")]
    Credential {
        object: String,
        key: String,
        reference: String,
        #[source]
        source: CredentialError,
    },
}

impl DesiredObject {
    /// Build from a parsed document. `file` and `index` only label errors. The stage comes from
    /// the kind for CRDs, namespaces and cluster RBAC (they go first), else from the caller.
    pub fn from_document(
        doc: Value,
        stage: Stage,
        source: Source,
        file: &str,
        index: usize,
    ) -> Result<DesiredObject, ObjectError> {
        let invalid = |reason: String| ObjectError::Invalid {
            file: file.to_string(),
            index,
            reason,
        };
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        let api_version = text(doc.get("apiVersion"))
            .ok_or_else(|| invalid("no `apiVersion` (a Kubernetes object needs one)".into()))?;
        let kind = text(doc.get("kind"))
            .ok_or_else(|| invalid("no `kind` (a Kubernetes object needs one)".into()))?;
        let meta = doc.get("metadata");
        let name = text(meta.and_then(|m| m.get("name")))
            .ok_or_else(|| invalid(format!("{kind} without `metadata.name`")))?;
        let namespace = text(meta.and_then(|m| m.get("namespace")));
        let group = group_of(&api_version).to_string();
        let readiness = crate::readiness::rule_for(&group, &kind).ok_or_else(|| {
            invalid(format!(
                "{kind} `{name}` ({api_version}): Rookery has no readiness rule for this kind, \
                 so it could never tell whether it is healthy"
            ))
        })?;
        let stage = match (group.as_str(), kind.as_str()) {
            ("apiextensions.k8s.io", "CustomResourceDefinition") => Stage::Crds,
            ("", "Namespace")
            | ("rbac.authorization.k8s.io", "ClusterRole" | "ClusterRoleBinding") => {
                Stage::Namespaces
            }
            _ => stage,
        };
        Ok(DesiredObject {
            stage,
            source,
            id: ObjectRef {
                api_version,
                kind,
                name,
                namespace,
            },
            body: doc,
            secret_data: Vec::new(),
            readiness,
            skip_unless_served: None,
        })
    }

    pub fn is_secret(&self) -> bool {
        !self.secret_data.is_empty()
    }

    /// The body with every Secret value resolved (base64 in `data`): for an API request or a
    /// file written with `--show-secrets`, nothing else. `base` resolves relative `file:` paths.
    pub fn resolved_body(&self, base: &Path) -> Result<Value, ObjectError> {
        let mut body = self.body.clone();
        if self.secret_data.is_empty() {
            return Ok(body);
        }
        let mut data = serde_json::Map::new();
        for item in &self.secret_data {
            let value = match item.reference.resolve(base) {
                Ok(Resolved::Value(v)) if item.one_line => v.without_trailing_newline().to_vec(),
                Ok(Resolved::Value(v)) => v.bytes().to_vec(),
                // An in-cluster Secret is referenced, never copied: the renderer does not
                // create objects for it, so this is unreachable for rendered objects.
                Ok(Resolved::InCluster(_)) => continue,
                Err(source) => {
                    return Err(ObjectError::Credential {
                        object: self.id.to_string(),
                        key: item.key.clone(),
                        reference: item.reference.to_string(),
                        source,
                    });
                }
            };
            data.insert(
                item.key.clone(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(value)),
            );
        }
        if let Some(map) = body.as_object_mut() {
            map.insert("data".into(), Value::Object(data));
        }
        Ok(body)
    }
}

/// The desired state of a stack.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredState {
    /// In apply order: by stage, then as rendered.
    pub objects: Vec<DesiredObject>,
    /// Bundle files that were missing or failed their hash (only when rendering was asked to
    /// tolerate that, for `plan`): their objects are absent and nothing may be applied.
    pub missing_bundle_files: Vec<String>,
}

impl DesiredState {
    pub fn is_complete(&self) -> bool {
        self.missing_bundle_files.is_empty()
    }

    pub fn in_stage(&self, stage: Stage) -> impl Iterator<Item = &DesiredObject> {
        self.objects.iter().filter(move |o| o.stage == stage)
    }

    /// The objects grouped into files, numbered in apply order: consecutive objects of one
    /// stage from one source share a file.
    pub fn manifests(&self) -> Vec<Manifest> {
        let mut groups: Vec<(Stage, Source, String, Vec<usize>)> = Vec::new();
        for (i, o) in self.objects.iter().enumerate() {
            let slug = match &o.source {
                Source::Template { .. } => {
                    format!("{}-{}", o.source.slug(), o.id.name.to_lowercase())
                }
                Source::Bundle { .. } => o.source.slug(),
            };
            match groups.last_mut() {
                Some((stage, source, _, members))
                    if *stage == o.stage
                        && *source == o.source
                        && matches!(o.source, Source::Bundle { .. }) =>
                {
                    members.push(i)
                }
                _ => groups.push((o.stage, o.source.clone(), slug, vec![i])),
            }
        }
        let width = groups.len().saturating_sub(1).to_string().len().max(2);
        groups
            .into_iter()
            .enumerate()
            .map(|(n, (stage, source, slug, members))| Manifest {
                file_name: format!("{n:0width$}-{slug}.yaml"),
                stage,
                objects: members
                    .iter()
                    .map(|&i| self.objects[i].id.clone())
                    .collect(),
                has_secrets: members.iter().any(|&i| self.objects[i].is_secret()),
                source,
                members,
            })
            .collect()
    }

    /// A manifest's YAML. Secrets show where each value comes from instead of the value,
    /// unless `reveal` gives the directory to resolve references against.
    pub fn manifest_text(
        &self,
        m: &Manifest,
        reveal: Option<&Path>,
    ) -> Result<String, ObjectError> {
        let mut text = match &m.source {
            Source::Bundle { path, sha256, .. } => {
                format!(
                    "# From {path} (sha256 {sha256}), stage {}\n",
                    m.stage.name()
                )
            }
            Source::Template { template } => format!(
                "# Rendered by rookery from playbooks/templates/{template}, stage {}\n",
                m.stage.name()
            ),
        };
        for (k, &i) in m.members.iter().enumerate() {
            let o = &self.objects[i];
            if k > 0 {
                text.push_str("---\n");
            }
            let body = match reveal {
                Some(base) => o.resolved_body(base)?,
                None => redacted(o),
            };
            text.push_str(&crate::yaml::to_string(&body));
        }
        Ok(text)
    }
}

/// A Secret for people: each value replaced by where it comes from.
pub fn redacted(o: &DesiredObject) -> Value {
    let mut body = o.body.clone();
    if o.secret_data.is_empty() {
        return body;
    }
    let data: serde_json::Map<String, Value> = o
        .secret_data
        .iter()
        .map(|s| {
            (
                s.key.clone(),
                Value::String(format!("<redacted: from {}>", s.reference)),
            )
        })
        .collect();
    if let Some(map) = body.as_object_mut() {
        map.insert("data".into(), Value::Object(data));
    }
    body
}

/// Objects of one file of `render --out-dir`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// `NN-<slug>.yaml`, numbered in apply order.
    pub file_name: String,
    pub stage: Stage,
    pub source: Source,
    pub objects: Vec<ObjectRef>,
    /// Contains Secrets (values only when written with `--show-secrets`).
    pub has_secrets: bool,
    #[serde(skip)]
    members: Vec<usize>,
}

/// Count objects by kind, for summaries.
pub fn count_kinds<'a>(ids: impl Iterator<Item = &'a ObjectRef>) -> BTreeMap<&'a str, usize> {
    let mut counts = BTreeMap::new();
    for id in ids {
        *counts.entry(id.kind.as_str()).or_insert(0) += 1;
    }
    counts
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(
        "`{}` is not empty ({count} entries); pass --force to replace the numbered manifests in it",
        .dir.display()
    )]
    NotEmpty {
        dir: std::path::PathBuf,
        count: usize,
    },
    #[error("cannot write into `{}`", .path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Object(#[from] ObjectError),
    #[error("the bundle is incomplete ({0} files missing or wrong): nothing can be written")]
    Incomplete(usize),
}

/// `NN-<slug>.yaml`: a file this module writes (and `--force` may remove).
fn is_numbered_manifest(name: &str) -> bool {
    let Some((num, rest)) = name.split_once('-') else {
        return false;
    };
    !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) && rest.ends_with(".yaml")
}

impl DesiredState {
    /// Write every manifest into `dir`. A non-empty `dir` is refused unless `force`, which
    /// first removes the numbered manifests an earlier render left there — so a later
    /// `kubectl apply -f DIR` never picks up a stale object. With `reveal` (the base for
    /// relative credential files) Secrets carry their values and every file is 0600.
    pub fn write_manifests(
        &self,
        dir: &Path,
        reveal: Option<&Path>,
        force: bool,
    ) -> Result<Vec<std::path::PathBuf>, WriteError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        if !self.is_complete() {
            return Err(WriteError::Incomplete(self.missing_bundle_files.len()));
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| WriteError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let existing: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        if !existing.is_empty() {
            if !force {
                return Err(WriteError::NotEmpty {
                    dir: dir.to_path_buf(),
                    count: existing.len(),
                });
            }
            for p in existing {
                let numbered = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(is_numbered_manifest);
                if numbered && p.is_file() {
                    std::fs::remove_file(&p).map_err(io(&p))?;
                }
            }
        }
        let mut written = Vec::new();
        for m in self.manifests() {
            let text = self.manifest_text(&m, reveal)?;
            let path = dir.join(&m.file_name);
            let mode = if reveal.is_some() { 0o600 } else { 0o644 };
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path)
                .map_err(io(&path))?;
            f.write_all(text.as_bytes()).map_err(io(&path))?;
            written.push(path);
        }
        Ok(written)
    }
}
