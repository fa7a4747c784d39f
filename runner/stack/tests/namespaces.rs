//! Rook in any namespace, offline (issue 10 items 1-2): the pinned upstream files, read and
//! hash-checked from `../shared/upstream`, rewritten by `namespaces::rewrite`, parsed back and
//! judged against rook-velero-facts-2 §1 — every object where it must be, every binding's
//! service account present, the Driver names Rook's deletion guard expects, and no `rook-ceph`
//! left where a namespace is meant.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use rookery_stack::Namespaces;
use rookery_stack::bundle::{self, Bundle};
use rookery_stack::namespaces::rewrite;
use serde_json::Value;

const EXAMPLES: &str = "rook-v1.20.6/deploy/examples";

fn examples_dir() -> PathBuf {
    common::shared_upstream().join(EXAMPLES)
}

fn ns(cluster: &str, operator: &str) -> Namespaces {
    Namespaces {
        cluster: cluster.into(),
        operator: operator.into(),
        velero: "velero".into(),
    }
}

/// The two layouts issue 10 asks for: the seed's single namespace, and a separate operator.
fn layouts() -> [Namespaces; 2] {
    [
        ns("storage-system", "storage-system"),
        ns("storage-system", "rook-operator"),
    ]
}

/// Every Rook example file under shared/upstream, relative to `deploy/examples/`.
fn example_files() -> Vec<String> {
    fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, base, out);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(&examples_dir(), &examples_dir(), &mut out);
    out.sort();
    assert!(out.len() >= 14, "{out:?}");
    out
}

fn read_example(file: &str) -> String {
    std::fs::read_to_string(examples_dir().join(file)).unwrap()
}

fn rewrite_example(file: &str, n: &Namespaces) -> String {
    rewrite(&format!("{EXAMPLES}/{file}"), &read_example(file), n).unwrap_or_else(|e| panic!("{e}"))
}

/// The Rook files of the lock, read through the bundle (sha256-checked) and rewritten.
fn rewritten_bundle(n: &Namespaces) -> Vec<(String, String, String)> {
    let lock = bundle::lock().unwrap();
    let b = Bundle::new(common::shared_upstream(), lock.clone());
    lock.files
        .iter()
        .filter(|f| f.project == "rook")
        .map(|f| {
            let text = b.read(f).unwrap();
            let out = rewrite(&f.path, &text, n).unwrap_or_else(|e| panic!("{e}"));
            (f.path.clone(), text, out)
        })
        .collect()
}

fn docs(text: &str) -> Vec<Value> {
    rookery_stack::yaml::parse_documents(text, std::path::Path::new("doc.yaml")).unwrap()
}

fn kind(d: &Value) -> &str {
    d["kind"].as_str().unwrap_or_default()
}
fn name(d: &Value) -> &str {
    d["metadata"]["name"].as_str().unwrap_or_default()
}
fn namespace(d: &Value) -> Option<&str> {
    d["metadata"]["namespace"].as_str()
}

/// Rook's own documented procedure, run with GNU sed exactly as
/// ceph-configuration.md:43-49 prints it. `rewrite` must agree with it on every line except
/// the ones the facts list as missed by the sed: the `# csi-provisioner-name` lines
/// (ceph-csi-drivers.md:30-39) and monitoring/localrules.yaml:9.
#[test]
fn agrees_with_the_documented_sed_on_every_example_file() {
    let n = ns("storage-system", "rook-operator");
    let op = &n.operator;
    let cl = &n.cluster;
    for file in example_files() {
        let out = Command::new("sed")
            .arg("-e")
            .arg(format!(
                r"s/\(.*\):.*# namespace:operator/\1: {op} # namespace:operator/g"
            ))
            .arg("-e")
            .arg(format!(
                r"s/\(.*\):.*# namespace:cluster/\1: {cl} # namespace:cluster/g"
            ))
            .arg("-e")
            .arg(format!(r"s/\(.*serviceaccount\):.*:\(.*\) # serviceaccount:namespace:operator/\1:{op}:\2 # serviceaccount:namespace:operator/g"))
            .arg("-e")
            .arg(format!(r"s/\(.*serviceaccount\):.*:\(.*\) # serviceaccount:namespace:cluster/\1:{cl}:\2 # serviceaccount:namespace:cluster/g"))
            .arg("-e")
            .arg(format!(r"s/\(.*\): [-_A-Za-z0-9]*\.\(.*\) # driver:namespace:cluster/\1: {cl}.\2 # driver:namespace:cluster/g"))
            .arg(examples_dir().join(&file))
            .env("LC_ALL", "C")
            .output()
            .expect("run sed (GNU sed is part of every base system this builds on)");
        assert!(out.status.success(), "sed on {file}: {out:?}");
        let sed = String::from_utf8(out.stdout).unwrap();
        let ours = rewrite_example(&file, &n);
        assert_eq!(sed.lines().count(), ours.lines().count(), "{file}");
        for (i, (s, o)) in sed.lines().zip(ours.lines()).enumerate() {
            if s == o {
                continue;
            }
            let by_hand = o.ends_with(" # csi-provisioner-name")
                || (file == "monitoring/localrules.yaml" && i + 1 == 9);
            assert!(by_hand, "{file}:{}: sed `{s}`, rewrite `{o}`", i + 1);
        }
    }
}

/// rook-velero-facts-2 §1 marker table. A changed upstream file fails here first.
#[test]
fn marker_counts_match_the_fact_sheet() {
    let expected: BTreeMap<&str, [usize; 3]> = [
        // (# namespace:operator, # namespace:cluster, # csi-provisioner-name)
        ("common.yaml", [11, 24, 0]),
        ("operator.yaml", [6, 0, 2]),
        ("csi-operator.yaml", [41, 0, 0]),
        ("crds.yaml", [0, 0, 0]),
        ("cluster.yaml", [0, 1, 0]),
        ("cluster-test.yaml", [0, 2, 0]),
        ("filesystem.yaml", [0, 2, 0]),
        ("filesystem-test.yaml", [0, 2, 0]),
        ("toolbox.yaml", [0, 1, 0]),
        ("csi/cephfs/storageclass.yaml", [0, 5, 1]),
        ("csi/cephfs/snapshotclass.yaml", [0, 2, 1]),
        ("monitoring/externalrules.yaml", [0, 1, 0]),
        ("monitoring/localrules.yaml", [0, 0, 0]),
    ]
    .into_iter()
    .collect();
    for file in example_files() {
        let text = read_example(&file);
        let count = |m: &str| text.lines().filter(|l| l.ends_with(m)).count();
        let got = [
            count(" # namespace:operator"),
            count(" # namespace:cluster"),
            count(" # csi-provisioner-name"),
        ];
        // The sed's other forms occur in none of these files (facts §1).
        for other in ["serviceaccount:namespace:", "driver:namespace:"] {
            assert!(!text.contains(other), "{file} now has `{other}`");
        }
        let want = expected.get(file.as_str()).copied().unwrap_or([0, 0, 0]);
        assert_eq!(got, want, "{file}: marker counts changed upstream");
    }
}

/// Exactly the marked lines (and the Driver names) change: 35 in common.yaml, 6 + 2 in
/// operator.yaml, 41 in csi-operator.yaml, none in crds.yaml, the one namespace of
/// localrules.yaml; everything else byte-identical.
#[test]
fn only_marked_lines_change_and_upstream_namespaces_change_nothing() {
    let changed = |a: &str, b: &str| a.lines().zip(b.lines()).filter(|(x, y)| x != y).count();
    for n in layouts() {
        for (path, before, after) in rewritten_bundle(&n) {
            let want = match path.rsplit('/').next().unwrap() {
                "common.yaml" => 35,
                "operator.yaml" => 8,
                "csi-operator.yaml" => 41,
                "crds.yaml" => 0,
                // Its PrometheusRule's unmarked `namespace:` (R:monitoring/localrules.yaml:9).
                "localrules.yaml" => 1,
                other => panic!("unexpected Rook file {other}"),
            };
            assert_eq!(changed(&before, &after), want, "{path}");
            assert_eq!(before.lines().count(), after.lines().count(), "{path}");
        }
    }
    for (path, before, after) in rewritten_bundle(&Namespaces::upstream()) {
        assert_eq!(before, after, "{path}");
    }
}

/// common.yaml objects that belong to the operator (marked `namespace:operator`, and what the
/// operator Deployment and its bindings need): its service account and the roles bound to it
/// in its namespace, the mgr's access to the operator namespace, and the COSI provisioner.
const COMMON_OPERATOR_OBJECTS: &[(&str, &str)] = &[
    ("ServiceAccount", "rook-ceph-system"),
    ("ServiceAccount", "objectstorage-provisioner"),
    ("Role", "rook-ceph-system"),
    ("RoleBinding", "rook-ceph-system"),
    ("RoleBinding", "rook-ceph-mgr-system"),
];

/// The service accounts Rook runs the Ceph daemons under, in the CephCluster's namespace
/// (a CephCluster elsewhere "would have no service accounts", rook-velero-facts-2 §1).
const CLUSTER_SERVICE_ACCOUNTS: &[&str] = &[
    "rook-ceph-cmd-reporter",
    "rook-ceph-default",
    "rook-ceph-mgr",
    "rook-ceph-osd",
    "rook-ceph-purge-osd",
    "rook-ceph-rgw",
    "rook-ceph-nvmeof",
];

fn objects(n: &Namespaces) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (path, _, after) in rewritten_bundle(n) {
        let file = path.rsplit('/').next().unwrap().to_string();
        for d in docs(&after) {
            out.push((file.clone(), d));
        }
    }
    out
}

#[test]
fn every_namespaced_object_is_where_it_must_be() {
    for n in layouts() {
        let objs = objects(&n);
        let mut namespaced = 0;
        for (file, d) in &objs {
            let (k, name) = (kind(d), name(d));
            if k == "CustomResourceDefinition" || k.starts_with("Cluster") || k == "Namespace" {
                assert_eq!(namespace(d), None, "{file}: {k} {name} is cluster-scoped");
                continue;
            }
            namespaced += 1;
            let want = match file.as_str() {
                "operator.yaml" | "csi-operator.yaml" => &n.operator,
                "common.yaml" if COMMON_OPERATOR_OBJECTS.contains(&(k, name)) => &n.operator,
                "common.yaml" | "localrules.yaml" => &n.cluster,
                other => panic!("{other}"),
            };
            assert_eq!(namespace(d), Some(want.as_str()), "{file}: {k} {name}");
        }
        assert!(namespaced > 50, "{namespaced}");

        // The only Namespace object is the cluster's (R:common.yaml:10-12); a separate operator
        // namespace is created by Rookery before common.yaml.
        let created: Vec<&str> = objs
            .iter()
            .filter(|(_, d)| kind(d) == "Namespace")
            .map(|(_, d)| name(d))
            .collect();
        assert_eq!(created, [n.cluster.as_str()]);
    }
}

/// (kind, namespace, name) of every object, for existence checks.
fn index(objs: &[(String, Value)]) -> BTreeSet<(String, String, String)> {
    objs.iter()
        .map(|(_, d)| {
            (
                kind(d).to_string(),
                namespace(d).unwrap_or_default().to_string(),
                name(d).to_string(),
            )
        })
        .collect()
}

fn has(idx: &BTreeSet<(String, String, String)>, k: &str, ns: &str, name: &str) -> bool {
    idx.contains(&(k.to_string(), ns.to_string(), name.to_string()))
}

#[test]
fn every_service_account_a_binding_or_pod_names_exists() {
    for n in layouts() {
        let objs = objects(&n);
        let idx = index(&objs);
        let mut subjects = 0;
        for (file, d) in &objs {
            if kind(d) == "RoleBinding" || kind(d) == "ClusterRoleBinding" {
                for s in d["subjects"].as_array().unwrap() {
                    if s["kind"] == "ServiceAccount" {
                        subjects += 1;
                        let sns = s["namespace"].as_str().unwrap();
                        let sname = s["name"].as_str().unwrap();
                        assert!(
                            has(&idx, "ServiceAccount", sns, sname),
                            "{file}: {} {} binds ServiceAccount {sns}/{sname}, which is not created",
                            kind(d),
                            name(d)
                        );
                    }
                }
            }
            if kind(d) == "Deployment" {
                let sa = d["spec"]["template"]["spec"]["serviceAccountName"]
                    .as_str()
                    .unwrap();
                let dns = namespace(d).unwrap();
                assert!(
                    has(&idx, "ServiceAccount", dns, sa),
                    "{file}: Deployment {} runs as {dns}/{sa}",
                    name(d)
                );
            }
        }
        assert!(subjects >= 30, "{subjects}");
        for sa in CLUSTER_SERVICE_ACCOUNTS {
            assert!(has(&idx, "ServiceAccount", &n.cluster, sa), "{sa}");
        }
    }
}

/// The Driver CRD's own name rule (R:csi-operator.yaml:3510-3512), as a regex.
fn driver_name_pattern() -> regex::Regex {
    let text = read_example("csi-operator.yaml");
    let rule = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("rule: self.metadata.name.matches('")?
                .strip_suffix("')")
        })
        .expect("the Driver CRD's name rule");
    // CEL single-quoted string: `\\` is one backslash.
    regex::Regex::new(&rule.replace(r"\\", r"\")).unwrap()
}

#[test]
fn drivers_follow_the_operator_namespace_and_the_csi_objects_are_there() {
    let pattern = driver_name_pattern();
    for n in layouts() {
        let objs = objects(&n);
        let idx = index(&objs);
        let drivers: BTreeSet<&str> = objs
            .iter()
            .filter(|(_, d)| kind(d) == "Driver")
            .map(|(_, d)| name(d))
            .collect();
        let want: BTreeSet<String> = [n.rbd_driver(), n.cephfs_driver()].into();
        assert_eq!(drivers, want.iter().map(String::as_str).collect(), "{n:?}");
        assert_eq!(
            n.cephfs_driver(),
            format!("{}.cephfs.csi.ceph.com", n.operator)
        );
        for d in &drivers {
            assert!(pattern.is_match(d), "{d} against {pattern}");
            // ceph-csi-operator runs each Driver's plugins under `ceph-csi-<type>-*-sa` in the
            // Driver's namespace (facts §1: defaults.go:85-87).
            let ty = d.split('.').nth(1).unwrap();
            for role in ["ctrlplugin", "nodeplugin"] {
                let sa = format!("ceph-csi-{ty}-{role}-sa");
                assert!(has(&idx, "ServiceAccount", &n.operator, &sa), "{sa}");
            }
        }
        // OperatorConfig and the image set next to ceph-csi-operator, the operator's
        // ConfigMap next to the operator (facts §1: defaults.go:74-83, configmap.go:85-88).
        let op = &n.operator;
        assert!(has(&idx, "Deployment", op, "ceph-csi-controller-manager"));
        assert!(has(&idx, "OperatorConfig", op, "ceph-csi-operator-config"));
        assert!(has(
            &idx,
            "ConfigMap",
            op,
            "rook-csi-operator-image-set-configmap"
        ));
        assert!(has(&idx, "Deployment", op, "rook-ceph-operator"));
        assert!(has(&idx, "ConfigMap", op, "rook-ceph-operator-config"));
    }
}

/// The StorageClass/VolumeSnapshotClass examples (what Rookery's templates follow): the
/// provisioner and driver equal a Driver's name, `clusterID` and every secret namespace are
/// the cluster namespace (facts §1: ceph_connection.go, secrets.go).
#[test]
fn storage_and_snapshot_class_examples_point_at_the_driver_and_the_cluster() {
    for n in layouts() {
        let sc = &docs(&rewrite_example("csi/cephfs/storageclass.yaml", &n))[0];
        let vsc = &docs(&rewrite_example("csi/cephfs/snapshotclass.yaml", &n))[0];
        assert_eq!(sc["provisioner"], n.cephfs_driver());
        assert_eq!(vsc["driver"], n.cephfs_driver());
        for params in [&sc["parameters"], &vsc["parameters"]] {
            assert_eq!(params["clusterID"], n.cluster.as_str());
            for (k, v) in params.as_object().unwrap() {
                if k.ends_with("-secret-namespace") {
                    assert_eq!(v, n.cluster.as_str(), "{k}");
                }
            }
        }
        let rules = &docs(&rewrite_example("monitoring/localrules.yaml", &n))[0];
        assert_eq!(namespace(rules), Some(n.cluster.as_str()));
        let cluster = &docs(&rewrite_example("cluster.yaml", &n))[0];
        assert_eq!(namespace(cluster), Some(n.cluster.as_str()));
        assert_eq!(name(cluster), "rook-ceph", "a name, not a namespace");
    }
}

/// Walk every value; report where `rook-ceph` is still used as a namespace.
fn namespace_uses<'a>(v: &'a Value, key: &str, parent: &'a Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                namespace_uses(x, k, v, out);
            }
        }
        Value::Array(a) => {
            for x in a {
                namespace_uses(x, key, v, out);
            }
        }
        Value::String(s) => {
            let env_namespace = key == "value"
                && parent["name"]
                    .as_str()
                    .is_some_and(|n| n.contains("NAMESPACE"));
            let meant = key == "namespace"
                || key == "clusterID"
                || key.ends_with("-secret-namespace")
                || env_namespace;
            if (meant && s == "rook-ceph") || s.starts_with("rook-ceph.") {
                out.push(format!("{key}: {s}"));
            }
        }
        _ => {}
    }
}

#[test]
fn no_rook_ceph_is_left_where_a_namespace_is_meant() {
    for n in layouts() {
        let objs = objects(&n);
        let mut left = Vec::new();
        let mut labels = 0;
        for (file, d) in &objs {
            let mut here = Vec::new();
            namespace_uses(d, "", d, &mut here);
            if kind(d) == "Namespace" && name(d) == "rook-ceph" {
                here.push("Namespace rook-ceph".into());
            }
            left.extend(
                here.into_iter()
                    .map(|h| format!("{file}: {} {}: {h}", kind(d), name(d))),
            );
            let l = &d["metadata"]["labels"];
            labels += ["app.kubernetes.io/name", "app.kubernetes.io/instance"]
                .iter()
                .filter(|k| l[**k] == "rook-ceph")
                .count();
        }
        assert!(left.is_empty(), "{left:#?}");
        // Labels and names keep `rook-ceph` (facts §1: harmless): 32 in common.yaml, 2 in
        // operator.yaml's Deployment.
        assert_eq!(labels, 34);
        // ROOK_CURRENT_NAMESPACE_ONLY stays upstream's "false" (see namespaces.rs).
        let operator = objs
            .iter()
            .find(|(_, d)| kind(d) == "Deployment" && name(d) == "rook-ceph-operator")
            .unwrap();
        let env = operator.1["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap();
        let only = env
            .iter()
            .find(|e| e["name"] == "ROOK_CURRENT_NAMESPACE_ONLY")
            .unwrap();
        assert_eq!(only["value"], "false");
    }
}

/// Resource names are not namespaces: apart from the cluster's Namespace and the Drivers,
/// the rewritten set has the same (kind, name) pairs as upstream.
#[test]
fn resource_names_do_not_change() {
    let upstream: BTreeSet<(String, String)> = objects(&Namespaces::upstream())
        .iter()
        .filter(|(_, d)| !matches!(kind(d), "Namespace" | "Driver"))
        .map(|(_, d)| (kind(d).to_string(), name(d).to_string()))
        .collect();
    for n in layouts() {
        let names: BTreeSet<(String, String)> = objects(&n)
            .iter()
            .filter(|(_, d)| !matches!(kind(d), "Namespace" | "Driver"))
            .map(|(_, d)| (kind(d).to_string(), name(d).to_string()))
            .collect();
        assert_eq!(names, upstream);
    }
}

/// Rookery's own objects follow the stack's namespaces: the CephCluster and filesystems in
/// the cluster namespace, the StorageClass/VolumeSnapshotClass at the operator-prefixed
/// Driver with `clusterID` = cluster namespace, every Velero object in Velero's namespace.
#[test]
fn rendered_templates_use_the_stack_namespaces() {
    use rookery_stack::desired::Source;
    use rookery_stack::render::{self, RenderOptions};
    let dir = common::example_dir("lab-3node");
    let mut stack = common::load_stack(&dir.join("stack.yaml"));
    stack.namespace = "storage-system".into();
    stack.operator_namespace = Some("rook-operator".into());
    stack.backup_strategy.as_mut().unwrap().namespace = "backups".into();
    let n = stack.namespaces();
    let hosts = common::hosts_from_facts(&dir.join("facts.json"));
    let (stack, cluster, findings) =
        common::plan(stack, &hosts, &dir, rookery_stack::hosts::FactsSource::File);
    assert!(
        !rookery_stack::findings::has_errors(&findings),
        "{findings:#?}"
    );
    let b = Bundle::new(common::shared_upstream(), bundle::lock().unwrap());
    let opts = RenderOptions {
        stack_dir: dir,
        allow_missing_bundle: false,
    };
    let desired = render::render(&stack, &cluster, &b, &opts).unwrap();
    let mut velero = 0;
    let mut secret_namespaces = 0;
    for o in desired
        .objects
        .iter()
        .filter(|o| matches!(o.source, Source::Template { .. }))
    {
        {
            let d = o.body.clone();
            let k = kind(&d);
            for (key, v) in d["parameters"].as_object().into_iter().flatten() {
                if key.ends_with("-secret-namespace") {
                    secret_namespaces += 1;
                    assert_eq!(v, "storage-system", "{k} {key}");
                }
            }
            match k {
                "CephCluster" | "CephFilesystem" => {
                    assert_eq!(namespace(&d), Some("storage-system"), "{k}")
                }
                "StorageClass" => {
                    assert_eq!(d["provisioner"], n.cephfs_driver());
                    assert_eq!(d["provisioner"], "rook-operator.cephfs.csi.ceph.com");
                    assert_eq!(d["parameters"]["clusterID"], "storage-system");
                }
                "VolumeSnapshotClass" => {
                    assert_eq!(d["driver"], n.cephfs_driver());
                    assert_eq!(d["parameters"]["clusterID"], "storage-system");
                }
                // Velero's, and the separate operator namespace common.yaml does not create.
                "Namespace" => assert!(["backups", "rook-operator"].contains(&name(&d))),
                "ClusterRoleBinding" => {
                    assert_eq!(name(&d), "velero-backups");
                    assert_eq!(d["subjects"][0]["namespace"], "backups");
                }
                _ => {
                    velero += 1;
                    assert_eq!(namespace(&d), Some("backups"), "{k} {}", name(&d));
                }
            }
        }
    }
    assert!(velero >= 7, "{velero}");
    assert_eq!(
        secret_namespaces, 5,
        "4 in the StorageClass, 1 in the VolumeSnapshotClass"
    );
}
