//! Rendering: every Kubernetes object the stack needs, as a [`DesiredState`] in apply order
//! (shared/upstream/README.md "Apply order", k8s-facts §1).
//!
//! Upstream objects come from the hash-checked [`Bundle`]; Rookery's own objects come from the
//! handlebars templates in `playbooks/templates/` (embedded at build time, strict mode, no
//! HTML escaping; values go through the `json` helper so every scalar is valid YAML). Each
//! template's output and each bundle file is parsed exactly once into objects; a document
//! that does not parse is an error naming its template or file, never skipped.

use std::path::{Path, PathBuf};

use handlebars::Handlebars;
use serde_json::{Value, json};

use crate::bundle::{Bundle, BundleError, LockedFile};
use crate::credential::CredentialRef;
use crate::desired::{DesiredObject, DesiredState, ObjectError, SecretItem, Source, Stage};
use crate::hosts::PlannedCluster;
use crate::model::Stack;
use crate::namespaces::{self, DEFAULT_VELERO_NAMESPACE, Namespaces};
use crate::readiness::{AcceptedWarning, Readiness};
use crate::validate::chosen_key_type;
use crate::versions;

/// The templates, embedded so the binary renders without the source tree.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "prometheusrule-rookery",
        include_str!("../../../playbooks/templates/prometheusrule-rookery.yaml.hbs"),
    ),
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
        source: Box<crate::yaml::YamlError>,
    },
    #[error(
        "template `{template}` must produce exactly one object for `{object}`, it produced {count}"
    )]
    NotOneObject {
        template: String,
        object: String,
        count: usize,
    },
    #[error("bundle file `{path}` does not parse as Kubernetes objects")]
    BundleYaml {
        path: String,
        #[source]
        source: Box<crate::yaml::YamlError>,
    },
    #[error(transparent)]
    Object(#[from] ObjectError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Namespace(#[from] namespaces::RewriteError),
}

#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Base for relative `file:` credentials (recorded, resolved only when sent or written).
    pub stack_dir: PathBuf,
    /// Record bundle files that are missing or fail their hash instead of failing (for `plan`
    /// before `bundle fetch`); such a state can never be applied or written.
    pub allow_missing_bundle: bool,
}

struct Renderer<'a> {
    hb: Handlebars<'a>,
    allow_missing_bundle: bool,
    namespaces: Namespaces,
    out: DesiredState,
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
            namespaces: Namespaces::upstream(),
            out: DesiredState::default(),
        })
    }

    /// Render one template into exactly one object; a parse error names the template.
    fn template(
        &mut self,
        stage: Stage,
        template: &str,
        ctx: Value,
    ) -> Result<&mut DesiredObject, RenderError> {
        let label = ctx
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(template)
            .to_string();
        let raw = self
            .hb
            .render(template, &ctx)
            .map_err(|e| RenderError::Render {
                template: template.into(),
                object: label.clone(),
                source: Box::new(e),
            })?;
        let file = format!("playbooks/templates/{template}.yaml.hbs");
        let mut docs = crate::yaml::parse_documents(&raw, Path::new(&file)).map_err(|source| {
            RenderError::Yaml {
                template: template.into(),
                object: label.clone(),
                source: Box::new(source),
            }
        })?;
        if docs.len() != 1 {
            return Err(RenderError::NotOneObject {
                template: template.into(),
                object: label,
                count: docs.len(),
            });
        }
        let doc = docs.remove(0);
        let source = Source::Template {
            template: format!("{template}.yaml.hbs"),
        };
        let obj = DesiredObject::from_document(doc, stage, source, &file, 0)?;
        self.out.objects.push(obj);
        let last = self.out.objects.len() - 1;
        Ok(&mut self.out.objects[last])
    }

    fn bundle_file(
        &mut self,
        stage: Stage,
        bundle: &Bundle,
        file: &LockedFile,
    ) -> Result<(), RenderError> {
        let text = match bundle.read(file) {
            Ok(t) => t,
            Err(_) if self.allow_missing_bundle => {
                self.out.missing_bundle_files.push(file.path.clone());
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        // Rook's files name their namespaces; move them where the stack says, by Rook's own
        // markers, after the hash check (an identity for `rook-ceph`).
        let text = namespaces::rewrite(&file.path, &text, &self.namespaces)?;
        let docs =
            crate::yaml::parse_documents(&text, Path::new(&file.path)).map_err(|source| {
                RenderError::BundleYaml {
                    path: file.path.clone(),
                    source: Box::new(source),
                }
            })?;
        let source = Source::Bundle {
            path: file.path.clone(),
            url: file.url.clone(),
            sha256: file.sha256.clone(),
        };
        for (i, doc) in docs.into_iter().enumerate() {
            let obj = DesiredObject::from_document(doc, stage, source.clone(), &file.path, i)?;
            self.out.objects.push(obj);
        }
        Ok(())
    }
}

/// Render the desired state of a stack, in apply order.
pub fn render(
    stack: &Stack,
    cluster: &PlannedCluster,
    bundle: &Bundle,
    opts: &RenderOptions,
) -> Result<DesiredState, RenderError> {
    let mut r = Renderer::new()?;
    r.allow_missing_bundle = opts.allow_missing_bundle;
    r.namespaces = stack.namespaces();
    let namespaces = r.namespaces.clone();
    let ns = namespaces.cluster.as_str();

    // 1-2. Snapshot CRDs and controller (k8s-facts §1 steps 1-2, §6).
    for f in bundle.files_under("external-snapshotter-") {
        r.bundle_file(Stage::SnapshotController, bundle, f)?;
    }
    // 3-4. Rook: crds, common, csi-operator, operator — lock order (k8s-pitfalls §1); their
    // CRDs move to the CRD stage, so operator.yaml's csi.ceph.io objects always find them.
    // common.yaml creates only the cluster's namespace; a separate operator namespace is
    // created first (Rook's "Using alternate namespaces", rook-velero-facts-2 §1).
    if namespaces.separate_operator() {
        r.template(
            Stage::Namespaces,
            "namespace",
            json!({ "name": namespaces.operator }),
        )?;
    }
    for f in bundle
        .files_under("rook-")
        .filter(|f| !f.path.contains("/monitoring/"))
    {
        r.bundle_file(Stage::RookOperator, bundle, f)?;
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
    let obj = r.template(
        Stage::CephCluster,
        "cephcluster",
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
    )?;
    obj.readiness = Readiness::CephClusterReady {
        accepted_warnings: accepted_health_warnings(stack, cluster),
    };

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
        let obj = r.template(
            Stage::Filesystems,
            "cephfilesystem",
            json!({
                "name": sc.fs_name(),
                "namespace": ns,
                "metadataPool": pool(&fs.metadata_pool, meta_name),
                "dataPools": data,
                "preservePoolNames": fs.preserve_pool_names,
                "activeCount": fs.metadata_server.active_count,
                "activeStandby": fs.metadata_server.active_standby,
            }),
        )?;
        obj.readiness = Readiness::CephFilesystemReady {
            mds_deployments: mds_deployments(sc.fs_name(), &fs.metadata_server),
        };
    }

    // 7. StorageClasses, then the VolumeSnapshotClass.
    let provisioner = namespaces.cephfs_driver();
    for sc in &stack.storage_classes {
        r.template(
            Stage::StorageClasses,
            "storageclass",
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
        )?;
    }
    r.template(
        Stage::StorageClasses,
        "volumesnapshotclass",
        json!({ "name": SNAPSHOT_CLASS_NAME, "driver": provisioner, "clusterID": ns }),
    )?;

    // 8-9. Velero.
    if let Some(backup) = &stack.backup_strategy {
        for f in bundle.files_under("velero-") {
            r.bundle_file(Stage::Velero, bundle, f)?;
        }
        render_velero(&mut r, stack, backup)?;
    }

    // 10. Alerts: Rook's own rules for Ceph plus Rookery's for Velero, after everything they
    // watch; applied only where the Prometheus Operator's CRDs are installed.
    if stack.monitoring.enabled {
        render_alerts(&mut r, stack, bundle, ns)?;
    }

    // Stable: within a stage, objects keep the order they were rendered in.
    r.out.objects.sort_by_key(|o| o.stage);
    Ok(r.out)
}

/// The Ceph health checks that may stay in HEALTH_WARN on a healthy cluster of this stack,
/// each with the reason shown when it is accepted.
pub fn accepted_health_warnings(stack: &Stack, cluster: &PlannedCluster) -> Vec<AcceptedWarning> {
    let mut out = Vec::new();
    if chosen_key_type(stack, cluster) == "aes" {
        // k8s-facts §8: Ceph v20.2.4 raises these while any AES key exists, which the `aes`
        // CSI key type (needed below Linux 7.0) keeps on purpose.
        for code in [
            "AUTH_INSECURE_CLIENT_KEY_TYPE",
            "AUTH_INSECURE_KEYS_ALLOWED",
            "AUTH_INSECURE_KEYS_CREATABLE",
            "AUTH_INSECURE_ROTATING_SERVICE_KEY_TYPE",
        ] {
            out.push(AcceptedWarning {
                code: code.into(),
                reason: "expected on a fresh cluster: the CSI cephx keys use the `aes` key type \
                         (not every node runs Linux >= 7.0 for `aes256k`)"
                    .into(),
            });
        }
    }
    let size_one = stack.storage_classes.iter().any(|sc| {
        let fs = &sc.filesystem;
        fs.metadata_pool.replication.size == 1
            || fs.data_pools.iter().any(|p| p.replication.size == 1)
    });
    if size_one {
        out.push(AcceptedWarning {
            code: "POOL_NO_REDUNDANCY".into(),
            reason: "the stack has pools with `replication.size: 1` (no redundancy, by choice)"
                .into(),
        });
    }
    for code in &stack.ceph_cluster.accept_health_warnings {
        if !out.iter().any(|w| &w.code == code) {
            out.push(AcceptedWarning {
                code: code.clone(),
                reason: "accepted in the stack (cephCluster.acceptHealthWarnings)".into(),
            });
        }
    }
    out
}

/// The MDS Deployments Rook creates for a filesystem: `rook-ceph-mds-<fs>-a`, `-b`, ... one
/// per active daemon, doubled with active-standby (k8s-facts §3, §8).
pub fn mds_deployments(fs: &str, mds: &crate::model::MetadataServerConfig) -> Vec<String> {
    let count = mds
        .active_count
        .saturating_mul(if mds.active_standby { 2 } else { 1 });
    (0..count.min(26))
        .map(|i| format!("rook-ceph-mds-{fs}-{}", char::from(b'a' + i as u8)))
        .collect()
}

/// A Secret whose one key comes from a credential reference. The annotation says where the
/// value comes from, on the cluster too (useful to `doctor`); the value itself is only ever
/// resolved into a request or an explicitly requested file.
fn secret(
    r: &mut Renderer<'_>,
    namespace: &str,
    name: &str,
    key: &str,
    reference: &CredentialRef,
    one_line: bool,
) -> Result<(), RenderError> {
    let obj = r.template(
        Stage::Velero,
        "secret",
        json!({
            "name": name, "namespace": namespace,
            "source": format!("{key} from {reference}"),
        }),
    )?;
    obj.secret_data = vec![SecretItem {
        key: key.to_string(),
        reference: reference.clone(),
        one_line,
    }];
    Ok(())
}

/// What `apply` says when the cluster has no PrometheusRule kind.
pub const ALERTS_SKIP_HINT: &str = "install the Prometheus Operator's CRDs \
(monitoring.coreos.com) and apply again to get the Ceph and Velero alerts";

/// The name of Rookery's own PrometheusRule (Rook's is `prometheus-ceph-rules`).
pub const ROOKERY_RULES_NAME: &str = "rookery-backup-rules";

/// Rook's upstream `monitoring/localrules.yaml` (namespace rewritten like the rest of Rook's
/// files) and Rookery's rules for what nobody ships: Velero backups that failed or partially
/// failed, an unavailable backup location, and a schedule with no successful backup within
/// twice its period. Metric names are Velero's own (velero@v1.18.1 `pkg/metrics/metrics.go`,
/// rook-velero-facts-2 §2): `velero_backup_failure_total`, `velero_backup_partial_failure_total`
/// and `velero_backup_last_successful_timestamp` (label `schedule`),
/// `velero_backup_location_status_gauge` (label `backup_location_name`, 1 = available).
/// `rookery drill` exports no metrics, so there is no drill rule.
fn render_alerts(
    r: &mut Renderer,
    stack: &Stack,
    bundle: &Bundle,
    cluster_ns: &str,
) -> Result<(), RenderError> {
    let first = r.out.objects.len();
    for f in bundle
        .files_under("rook-")
        .filter(|f| f.path.ends_with("/monitoring/localrules.yaml"))
    {
        r.bundle_file(Stage::Alerts, bundle, f)?;
    }
    let schedules: Vec<Value> = stack
        .backup_strategy
        .iter()
        .flat_map(|b| b.schedules.iter())
        .filter(|s| s.paused != Some(true))
        .filter_map(|s| {
            // Validation has checked the cron already; a schedule that never fires has no
            // period to alert on.
            let twice = 2 * crate::timefmt::cron_period(&s.schedule).ok()?.as_secs();
            let (name, cron, t) = (&s.name, &s.schedule, human_duration(twice));
            // Schedule names are DNS-1123 (validated), so they need no escaping in a label
            // matcher.
            let series = format!("velero_backup_last_successful_timestamp{{schedule=\"{name}\"}}");
            Some(json!({
                "name": name,
                "twicePeriod": t,
                "recentExpr": format!("(time() - {series} > {twice}) and ({series} > 0)"),
                "recentSummary": format!("Schedule {name}: no successful backup for more than {t}"),
                "recentDescription": format!(
                    "Schedule {name} ({cron}) has had no successful backup for more than twice \
                     its period ({t}): a restore would lose more data than the schedule promises."
                ),
                "neverExpr": format!("absent({series} > 0)"),
                "neverSummary": format!("Schedule {name}: no successful backup yet"),
                "neverDescription": format!(
                    "Velero has reported no successful backup of schedule {name} ({cron}) for \
                     twice its period ({t})."
                ),
            }))
        })
        .collect();
    if stack.backup_strategy.is_some() {
        r.template(
            Stage::Alerts,
            "prometheusrule-rookery",
            json!({
                "name": ROOKERY_RULES_NAME,
                "namespace": cluster_ns,
                "schedules": schedules,
            }),
        )?;
    }
    for o in &mut r.out.objects[first..] {
        o.skip_unless_served = Some(ALERTS_SKIP_HINT.to_string());
    }
    Ok(())
}

/// `48h`, `2d`, `90m`: for alert descriptions.
fn human_duration(secs: u64) -> String {
    if secs.is_multiple_of(86400) {
        format!("{}d", secs / 86400)
    } else if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else {
        format!("{}m", secs.div_ceil(60))
    }
}

fn render_velero(
    r: &mut Renderer<'_>,
    stack: &Stack,
    backup: &crate::model::BackupStrategy,
) -> Result<(), RenderError> {
    let vns = r.namespaces.velero.clone();
    let vns = vns.as_str();
    r.template(Stage::Velero, "namespace", json!({ "name": vns }))?;
    r.template(
        Stage::Velero,
        "serviceaccount",
        json!({ "name": "velero", "namespace": vns }),
    )?;
    let crb = if vns == DEFAULT_VELERO_NAMESPACE {
        "velero".to_string()
    } else {
        format!("velero-{vns}")
    };
    r.template(
        Stage::Velero,
        "clusterrolebinding",
        json!({ "name": crb, "serviceAccount": "velero", "namespace": vns }),
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
                secret(r, vns, &name, "cloud", reference, false)?;
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
                secret(r, vns, &name, "cloud", reference, false)?;
                Some((name, "cloud".to_string()))
            }
        };
        vsl_creds.push(cred);
    }
    if let Some(reference) = &stack.security.kopia_repository_password
        && !matches!(reference, CredentialRef::Secret(_))
    {
        // A password is one line; a credentials file keeps its bytes.
        secret(
            r,
            vns,
            "velero-repo-credentials",
            "repository-password",
            reference,
            true,
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
            json!({
                "name": l.name, "namespace": vns, "provider": l.provider, "bucket": l.bucket,
                "prefix": l.prefix,
                "config": if config.is_empty() { Value::Null } else { Value::Object(config) },
                "credential": cred.as_ref().map(|(n, k)| json!({"name": n, "key": k})),
                "default": l.default,
            }),
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
            json!({
                "name": l.name, "namespace": vns, "provider": l.provider,
                "config": if config.is_empty() { Value::Null } else { Value::Object(config) },
                "credential": cred.as_ref().map(|(n, k)| json!({"name": n, "key": k})),
            }),
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
        json!({
            "namespace": vns, "serviceAccount": "velero",
            "image": versions::VELERO_IMAGE, "pluginImage": versions::VELERO_AWS_PLUGIN_IMAGE,
            "args": args, "cloudCredentials": cloud_credentials,
        }),
    )?;
    if fsb {
        let mut agent_args = vec!["node-agent".to_string(), "server".to_string()];
        if snap {
            agent_args.push("--features=EnableCSI".into());
        }
        r.template(
            Stage::Velero,
            "daemonset",
            json!({
                "namespace": vns, "serviceAccount": "velero", "image": versions::VELERO_IMAGE,
                "args": agent_args, "cloudCredentials": cloud_credentials,
                "hostPods": format!("{}/pods", versions::KUBELET_ROOT_DIR),
                "hostPlugins": format!("{}/plugins", versions::KUBELET_ROOT_DIR),
            }),
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
            Stage::BackupSchedules,
            "schedule",
            json!({
                "name": s.name, "namespace": vns, "schedule": s.schedule,
                "paused": s.paused.unwrap_or(false), "template": Value::Object(t),
            }),
        )?;
    }
    Ok(())
}
