//! Rendering: every Kubernetes object the stack needs, in apply order
//! (shared/upstream/README.md "Apply order", k8s-facts §1).
//!
//! Upstream files come verbatim from the hash-checked [`Bundle`]; Rookery's own objects come
//! from the handlebars templates in `playbooks/templates/` (embedded at build time, strict
//! mode, no HTML escaping; values go through the `json` helper so every scalar is valid YAML).
//! Each rendered document is parsed back and re-emitted, which both proves it is YAML and
//! gives stable formatting for golden tests and GitOps diffs.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use handlebars::Handlebars;
use serde::Serialize;
use serde_json::{Value, json};

use crate::bundle::{Bundle, BundleError, LockedFile};
use crate::credential::{CredentialRef, Resolved};
use crate::hosts::PlannedCluster;
use crate::model::Stack;
use crate::namespaces::DEFAULT_VELERO_NAMESPACE;
use crate::validate::chosen_key_type;
use crate::versions;

/// The templates, embedded so the binary renders without the source tree.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "cephcluster",
        include_str!("../../../playbooks/templates/cephcluster.yaml.hbs"),
    ),
    (
        "cephfilesystem",
        include_str!("../../../playbooks/templates/cephfilesystem.yaml.hbs"),
    ),
    (
        "storageclass",
        include_str!("../../../playbooks/templates/storageclass.yaml.hbs"),
    ),
    (
        "volumesnapshotclass",
        include_str!("../../../playbooks/templates/volumesnapshotclass.yaml.hbs"),
    ),
    (
        "namespace",
        include_str!("../../../playbooks/templates/namespace.yaml.hbs"),
    ),
    (
        "serviceaccount",
        include_str!("../../../playbooks/templates/serviceaccount.yaml.hbs"),
    ),
    (
        "clusterrolebinding",
        include_str!("../../../playbooks/templates/clusterrolebinding.yaml.hbs"),
    ),
    (
        "secret",
        include_str!("../../../playbooks/templates/secret.yaml.hbs"),
    ),
    (
        "backupstoragelocation",
        include_str!("../../../playbooks/templates/backupstoragelocation.yaml.hbs"),
    ),
    (
        "volumesnapshotlocation",
        include_str!("../../../playbooks/templates/volumesnapshotlocation.yaml.hbs"),
    ),
    (
        "deployment",
        include_str!("../../../playbooks/templates/deployment.yaml.hbs"),
    ),
    (
        "daemonset",
        include_str!("../../../playbooks/templates/daemonset.yaml.hbs"),
    ),
    (
        "schedule",
        include_str!("../../../playbooks/templates/schedule.yaml.hbs"),
    ),
];

/// Name of Rook's CephFS VolumeSnapshotClass (R:csi/cephfs/snapshotclass.yaml:5).
pub const SNAPSHOT_CLASS_NAME: &str = "csi-cephfsplugin-snapclass";

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template `{0}` is invalid")]
    Template(String, #[source] Box<handlebars::TemplateError>),
    #[error("rendering template `{template}` for `{object}` failed")]
    Render {
        template: String,
        object: String,
        #[source]
        source: Box<handlebars::RenderError>,
    },
    #[error("template `{template}` produced invalid YAML for `{object}`")]
    Yaml {
        template: String,
        object: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("credential for `{object}` ({reference}) does not resolve")]
    Credential {
        object: String,
        reference: String,
        #[source]
        source: crate::credential::CredentialError,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    SnapshotCrds,
    SnapshotController,
    RookOperator,
    CephCluster,
    Filesystems,
    StorageClasses,
    SnapshotClass,
    VeleroCrds,
    Velero,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Source {
    /// A bundle file, verbatim. `verified` is false only in a plan made without the bundle.
    Bundle {
        path: String,
        url: String,
        verified: bool,
    },
    /// A template from `playbooks/templates/`.
    Template { template: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// `NN-<slug>.yaml`, numbered in apply order.
    pub file_name: String,
    pub stage: Stage,
    pub source: Source,
    pub objects: Vec<ObjectRef>,
    /// Carries secret values (only with `show_secrets`).
    pub has_secret_values: bool,
    #[serde(skip)]
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Put resolved secret values into Secrets (base64 `data`).
    pub show_secrets: bool,
    /// Base for relative `file:` credentials.
    pub stack_dir: PathBuf,
    /// List bundle files that are missing or fail their hash as empty, unverified manifests
    /// instead of failing (for `plan` before `bundle fetch`; never for writing manifests).
    pub allow_missing_bundle: bool,
}

struct Renderer<'a> {
    hb: Handlebars<'a>,
    allow_missing_bundle: bool,
    out: Vec<(Stage, Source, String, String, bool)>,
}

handlebars::handlebars_helper!(json_helper: |v: Json| v.to_string());

impl<'a> Renderer<'a> {
    fn new() -> Result<Self, RenderError> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        hb.register_helper("json", Box::new(json_helper));
        for (name, text) in TEMPLATES {
            hb.register_template_string(name, *text)
                .map_err(|e| RenderError::Template(name.to_string(), Box::new(e)))?;
        }
        Ok(Renderer {
            hb,
            allow_missing_bundle: false,
            out: Vec::new(),
        })
    }

    fn template(
        &mut self,
        stage: Stage,
        template: &str,
        slug: String,
        ctx: Value,
        secret: bool,
    ) -> Result<(), RenderError> {
        let raw = self
            .hb
            .render(template, &ctx)
            .map_err(|e| RenderError::Render {
                template: template.into(),
                object: slug.clone(),
                source: Box::new(e),
            })?;
        let value: serde_yaml::Value =
            serde_yaml::from_str(&raw).map_err(|source| RenderError::Yaml {
                template: template.into(),
                object: slug.clone(),
                source,
            })?;
        let text = serde_yaml::to_string(&value).map_err(|source| RenderError::Yaml {
            template: template.into(),
            object: slug.clone(),
            source,
        })?;
        let text =
            format!("# Rendered by rookery from playbooks/templates/{template}.yaml.hbs\n{text}");
        self.out.push((
            stage,
            Source::Template {
                template: format!("{template}.yaml.hbs"),
            },
            slug,
            text,
            secret,
        ));
        Ok(())
    }

    fn bundle_file(
        &mut self,
        stage: Stage,
        bundle: &Bundle,
        file: &LockedFile,
        slug: String,
    ) -> Result<(), RenderError> {
        let (text, verified) = match bundle.read(file) {
            Ok(t) => (t, true),
            Err(_) if self.allow_missing_bundle => (String::new(), false),
            Err(e) => return Err(e.into()),
        };
        self.out.push((
            stage,
            Source::Bundle {
                path: file.path.clone(),
                url: file.url.clone(),
                verified,
            },
            slug,
            text,
            false,
        ));
        Ok(())
    }
}

/// The objects in a multi-document YAML text (apiVersion/kind/name/namespace only).
pub fn objects_in(text: &str) -> Vec<ObjectRef> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        #[serde(default)]
        api_version: String,
        #[serde(default)]
        kind: String,
        #[serde(default)]
        metadata: Meta,
    }
    #[derive(serde::Deserialize, Default)]
    struct Meta {
        #[serde(default)]
        name: String,
        #[serde(default)]
        namespace: Option<String>,
    }
    serde_yaml::Deserializer::from_str(text)
        .filter_map(|doc| {
            <Option<Head> as serde::Deserialize>::deserialize(doc)
                .ok()
                .flatten()
        })
        .filter(|h| !h.kind.is_empty())
        .map(|h| ObjectRef {
            api_version: h.api_version,
            kind: h.kind,
            name: h.metadata.name,
            namespace: h.metadata.namespace,
        })
        .collect()
}

fn slug_of(path: &str, project: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let base = base.strip_suffix(".yaml").unwrap_or(base);
    format!("{project}-{base}")
}

/// Render every manifest in apply order.
pub fn render(
    stack: &Stack,
    cluster: &PlannedCluster,
    bundle: &Bundle,
    opts: &RenderOptions,
) -> Result<Vec<Manifest>, RenderError> {
    let mut r = Renderer::new()?;
    r.allow_missing_bundle = opts.allow_missing_bundle;
    let namespaces = stack.namespaces();
    let ns = namespaces.cluster.as_str();

    // 1-2. Snapshot CRDs and controller (k8s-facts §1 steps 1-2, §6).
    for f in bundle.files_under("external-snapshotter-") {
        let stage = if f.path.contains("/client/config/crd/") {
            Stage::SnapshotCrds
        } else {
            Stage::SnapshotController
        };
        r.bundle_file(stage, bundle, f, slug_of(&f.path, "snapshot"))?;
    }
    // 3-4. Rook: crds, common, csi-operator, operator — lock order (k8s-pitfalls §1).
    for f in bundle.files_under("rook-") {
        r.bundle_file(Stage::RookOperator, bundle, f, slug_of(&f.path, "rook"))?;
    }

    // 5. CephCluster.
    let nodes: Vec<Value> = cluster
        .nodes
        .iter()
        .map(|n| {
            json!({
                "name": n.name,
                "devices": n.devices.iter().filter(|d| d.will_be_osd()).map(|d| json!({
                    "id": d.id,
                    "class": d.class,
                })).collect::<Vec<_>>(),
            })
        })
        .filter(|n| n["devices"].as_array().is_some_and(|d| !d.is_empty()))
        .collect();
    let cc = &stack.ceph_cluster;
    let storage = &cc.storage;
    let use_all =
        storage.use_all_nodes && storage.use_all_devices && storage.device_selection.is_none();
    r.template(
        Stage::CephCluster,
        "cephcluster",
        format!("cephcluster-{}", cc.cluster_name),
        json!({
            "name": cc.cluster_name,
            "namespace": ns,
            "cephImage": cc.ceph_image,
            "dataDirHostPath": cc.data_dir_host_path,
            "monCount": cc.monitor_count,
            "allowMultiplePerNode": cc.allow_multiple_per_node,
            "keyType": chosen_key_type(stack, cluster),
            "encryptionInTransit": stack.security.encryption_in_transit,
            "requireMsgr2": stack.security.require_msgr2,
            "monitoring": stack.monitoring.enabled,
            "useAllNodes": use_all,
            "useAllDevices": use_all,
            "encryptionAtRest": stack.security.encryption_at_rest,
            "nodes": if use_all { Vec::new() } else { nodes },
        }),
        false,
    )?;

    // 6. One CephFilesystem per storage class.
    for sc in &stack.storage_classes {
        let fs = &sc.filesystem;
        let pool = |p: &crate::model::PoolConfig, name: Option<String>| {
            json!({
                "name": name,
                "failureDomain": p.failure_domain(),
                "deviceClass": p.device_class,
                "size": p.replication.size,
                "requireSafeReplicaSize": p.replication.require_safe_replica_size.unwrap_or(p.replication.size != 1),
            })
        };
        let meta_name = if fs.preserve_pool_names {
            fs.metadata_pool.name.clone()
        } else {
            None
        };
        let data: Vec<Value> = fs
            .data_pools
            .iter()
            .enumerate()
            .map(|(i, p)| {
                pool(
                    p,
                    Some(p.name.clone().unwrap_or_else(|| format!("data{i}"))),
                )
            })
            .collect();
        r.template(
            Stage::Filesystems,
            "cephfilesystem",
            format!("cephfilesystem-{}", sc.name),
            json!({
                "name": sc.fs_name(),
                "namespace": ns,
                "metadataPool": pool(&fs.metadata_pool, meta_name),
                "dataPools": data,
                "preservePoolNames": fs.preserve_pool_names,
                "activeCount": fs.metadata_server.active_count,
                "activeStandby": fs.metadata_server.active_standby,
            }),
            false,
        )?;
    }

    // 7. StorageClasses, then the VolumeSnapshotClass.
    let provisioner = namespaces.cephfs_driver();
    for sc in &stack.storage_classes {
        r.template(
            Stage::StorageClasses,
            "storageclass",
            format!("storageclass-{}", sc.name),
            json!({
                "name": sc.name,
                "isDefault": sc.is_default,
                "provisioner": provisioner,
                "clusterID": ns,
                "fsName": sc.fs_name(),
                "pool": if sc.filesystem.data_pools.is_empty() { String::new() } else { sc.data_pool_ceph_name(0) },
                "reclaimPolicy": sc.reclaim_policy,
                "volumeBindingMode": sc.volume_binding_mode,
                "allowVolumeExpansion": sc.allow_volume_expansion,
            }),
            false,
        )?;
    }
    r.template(
        Stage::SnapshotClass,
        "volumesnapshotclass",
        format!("volumesnapshotclass-{SNAPSHOT_CLASS_NAME}"),
        json!({ "name": SNAPSHOT_CLASS_NAME, "driver": provisioner, "clusterID": ns }),
        false,
    )?;

    // 8-9. Velero.
    if let Some(backup) = &stack.backup_strategy {
        for f in bundle.files_under("velero-") {
            r.bundle_file(Stage::VeleroCrds, bundle, f, slug_of(&f.path, "velero"))?;
        }
        render_velero(&mut r, stack, backup, opts)?;
    }

    let width = r.out.len().saturating_sub(1).to_string().len().max(2);
    Ok(r.out
        .into_iter()
        .enumerate()
        .map(|(i, (stage, source, slug, text, secret))| Manifest {
            file_name: format!("{i:0width$}-{slug}.yaml"),
            stage,
            objects: objects_in(&text),
            source,
            has_secret_values: secret,
            text,
        })
        .collect())
}

fn secret_ctx(
    name: &str,
    namespace: &str,
    key: &str,
    reference: &CredentialRef,
    object: &str,
    opts: &RenderOptions,
) -> Result<(Value, bool), RenderError> {
    if !opts.show_secrets {
        return Ok((
            json!({
                "name": name, "namespace": namespace, "key": key,
                "redacted": true, "source": format!("{key} from {reference}"), "value": null,
            }),
            false,
        ));
    }
    let value = match reference.resolve(&opts.stack_dir) {
        // A password is one line; a credentials file keeps its bytes.
        Ok(Resolved::Value(v)) if key == "repository-password" => {
            base64::engine::general_purpose::STANDARD.encode(v.without_trailing_newline())
        }
        Ok(Resolved::Value(v)) => base64::engine::general_purpose::STANDARD.encode(v.bytes()),
        Ok(Resolved::InCluster(_)) => String::new(),
        Err(source) => {
            return Err(RenderError::Credential {
                object: object.into(),
                reference: reference.to_string(),
                source,
            });
        }
    };
    Ok((
        json!({
            "name": name, "namespace": namespace, "key": key,
            "redacted": false, "source": reference.to_string(), "value": value,
        }),
        true,
    ))
}

fn render_velero(
    r: &mut Renderer<'_>,
    stack: &Stack,
    backup: &crate::model::BackupStrategy,
    opts: &RenderOptions,
) -> Result<(), RenderError> {
    let namespaces = stack.namespaces();
    let vns = namespaces.velero.as_str();
    r.template(
        Stage::Velero,
        "namespace",
        format!("namespace-{vns}"),
        json!({ "name": vns }),
        false,
    )?;
    r.template(
        Stage::Velero,
        "serviceaccount",
        "serviceaccount-velero".into(),
        json!({ "name": "velero", "namespace": vns }),
        false,
    )?;
    let crb = if vns == DEFAULT_VELERO_NAMESPACE {
        "velero".to_string()
    } else {
        format!("velero-{vns}")
    };
    r.template(
        Stage::Velero,
        "clusterrolebinding",
        format!("clusterrolebinding-{crb}"),
        json!({ "name": crb, "serviceAccount": "velero", "namespace": vns }),
        false,
    )?;

    // Credentials: the default location's env/file credential becomes `cloud-credentials`
    // (mounted like `velero install` does); other env/file ones get their own Secret; Secret
    // references are used as they are.
    let default_idx = backup
        .backup_storage_locations
        .iter()
        .position(|l| l.default)
        .unwrap_or(0);
    let mut cloud_credentials = false;
    let mut bsl_creds: Vec<Option<(String, String)>> = Vec::new();
    for (i, l) in backup.backup_storage_locations.iter().enumerate() {
        let cred = match &l.credential {
            None => None,
            Some(CredentialRef::Secret(s)) => Some((s.name.clone(), s.key.clone())),
            Some(reference) => {
                let name = if i == default_idx {
                    cloud_credentials = true;
                    "cloud-credentials".to_string()
                } else {
                    format!("velero-{}-credentials", l.name)
                };
                let (ctx, secret) = secret_ctx(&name, vns, "cloud", reference, &name, opts)?;
                r.template(
                    Stage::Velero,
                    "secret",
                    format!("secret-{name}"),
                    ctx,
                    secret,
                )?;
                Some((name, "cloud".to_string()))
            }
        };
        bsl_creds.push(cred);
    }
    let mut vsl_creds: Vec<Option<(String, String)>> = Vec::new();
    for l in &backup.volume_snapshot_locations {
        let cred = match &l.credential {
            None => None,
            Some(CredentialRef::Secret(s)) => Some((s.name.clone(), s.key.clone())),
            Some(reference) => {
                let name = format!("velero-vsl-{}-credentials", l.name);
                let (ctx, secret) = secret_ctx(&name, vns, "cloud", reference, &name, opts)?;
                r.template(
                    Stage::Velero,
                    "secret",
                    format!("secret-{name}"),
                    ctx,
                    secret,
                )?;
                Some((name, "cloud".to_string()))
            }
        };
        vsl_creds.push(cred);
    }
    if let Some(reference) = &stack.security.kopia_repository_password
        && !matches!(reference, CredentialRef::Secret(_))
    {
        let name = "velero-repo-credentials";
        let (ctx, secret) = secret_ctx(name, vns, "repository-password", reference, name, opts)?;
        r.template(
            Stage::Velero,
            "secret",
            format!("secret-{name}"),
            ctx,
            secret,
        )?;
    }

    for (l, cred) in backup.backup_storage_locations.iter().zip(&bsl_creds) {
        let mut config = serde_json::Map::new();
        if let Some(region) = &l.region {
            config.insert("region".into(), json!(region));
        }
        if let Some(url) = &l.s3_url {
            config.insert("s3Url".into(), json!(url));
            config.insert("s3ForcePathStyle".into(), json!("true"));
            config.insert("checksumAlgorithm".into(), json!(""));
        }
        for (k, v) in &l.config {
            config.insert(k.clone(), json!(v));
        }
        r.template(
            Stage::Velero,
            "backupstoragelocation",
            format!("backupstoragelocation-{}", l.name),
            json!({
                "name": l.name, "namespace": vns, "provider": l.provider, "bucket": l.bucket,
                "prefix": l.prefix,
                "config": if config.is_empty() { Value::Null } else { Value::Object(config) },
                "credential": cred.as_ref().map(|(n, k)| json!({"name": n, "key": k})),
                "default": l.default,
            }),
            false,
        )?;
    }
    for (l, cred) in backup.volume_snapshot_locations.iter().zip(&vsl_creds) {
        let mut config = serde_json::Map::new();
        if let Some(region) = &l.region {
            config.insert("region".into(), json!(region));
        }
        for (k, v) in &l.config {
            config.insert(k.clone(), json!(v));
        }
        r.template(
            Stage::Velero,
            "volumesnapshotlocation",
            format!("volumesnapshotlocation-{}", l.name),
            json!({
                "name": l.name, "namespace": vns, "provider": l.provider,
                "config": if config.is_empty() { Value::Null } else { Value::Object(config) },
                "credential": cred.as_ref().map(|(n, k)| json!({"name": n, "key": k})),
            }),
            false,
        )?;
    }

    let snap = backup.enable_snapshot_backups;
    let fsb = backup.enable_filesystem_backups;
    let mut args = vec!["server".to_string()];
    if snap {
        args.push("--features=EnableCSI".into());
    }
    if fsb {
        args.push("--uploader-type=kopia".into());
        if !snap {
            args.push("--default-volumes-to-fs-backup=true".into());
        }
    }
    r.template(
        Stage::Velero,
        "deployment",
        "deployment-velero".into(),
        json!({
            "namespace": vns, "serviceAccount": "velero",
            "image": versions::VELERO_IMAGE, "pluginImage": versions::VELERO_AWS_PLUGIN_IMAGE,
            "args": args, "cloudCredentials": cloud_credentials,
        }),
        false,
    )?;
    if fsb {
        let mut agent_args = vec!["node-agent".to_string(), "server".to_string()];
        if snap {
            agent_args.push("--features=EnableCSI".into());
        }
        r.template(
            Stage::Velero,
            "daemonset",
            "daemonset-node-agent".into(),
            json!({
                "namespace": vns, "serviceAccount": "velero", "image": versions::VELERO_IMAGE,
                "args": agent_args, "cloudCredentials": cloud_credentials,
                "hostPods": format!("{}/pods", versions::KUBELET_ROOT_DIR),
                "hostPlugins": format!("{}/plugins", versions::KUBELET_ROOT_DIR),
            }),
            false,
        )?;
    }

    for s in &backup.schedules {
        let mut t = serde_json::Map::new();
        if let Some(ttl) = s.ttl.as_ref().or(backup.default_backup_ttl.as_ref()) {
            t.insert("ttl".into(), json!(ttl));
        }
        if !s.included_namespaces.is_empty() {
            t.insert("includedNamespaces".into(), json!(s.included_namespaces));
        }
        if !s.excluded_namespaces.is_empty() {
            t.insert("excludedNamespaces".into(), json!(s.excluded_namespaces));
        }
        if let Some(loc) = &s.storage_location {
            t.insert("storageLocation".into(), json!(loc));
        }
        match s.snapshot_volumes {
            Some(v) => {
                t.insert("snapshotVolumes".into(), json!(v));
            }
            None if !snap => {
                t.insert("snapshotVolumes".into(), json!(false));
            }
            None => {}
        }
        match s.default_volumes_to_fs_backup {
            Some(v) => {
                t.insert("defaultVolumesToFsBackup".into(), json!(v));
            }
            None if fsb && !snap => {
                t.insert("defaultVolumesToFsBackup".into(), json!(true));
            }
            None => {}
        }
        if let Some(v) = s.snapshot_move_data {
            t.insert("snapshotMoveData".into(), json!(v));
        }
        if let Some(v) = &s.csi_snapshot_timeout {
            t.insert("csiSnapshotTimeout".into(), json!(v));
        }
        r.template(
            Stage::Velero,
            "schedule",
            format!("schedule-{}", s.name),
            json!({
                "name": s.name, "namespace": vns, "schedule": s.schedule,
                "paused": s.paused.unwrap_or(false), "template": Value::Object(t),
            }),
            false,
        )?;
    }
    Ok(())
}

/// Write manifests into `dir` (created if needed). Returns the written paths.
pub fn write_manifests(manifests: &[Manifest], dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for m in manifests {
        let path = dir.join(&m.file_name);
        std::fs::write(&path, &m.text)?;
        written.push(path);
    }
    Ok(written)
}
