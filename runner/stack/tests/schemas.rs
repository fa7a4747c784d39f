//! Every object Rookery renders itself is checked against the real upstream schema:
//! custom resources against their CRD's `openAPIV3Schema` from ../shared/upstream, built-in
//! kinds by a lossless round-trip through k8s-openapi types (an unknown or misspelt field
//! would be dropped and the comparison fails).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use rookery_stack::bundle::{self, Bundle};
use rookery_stack::desired::{DesiredState, Source};
use rookery_stack::render::{self, RenderOptions};
use serde_json::Value;

fn render_example(name: &str) -> DesiredState {
    let (stack, cluster, findings) = common::plan_example(name);
    assert!(
        !rookery_stack::findings::has_errors(&findings),
        "{name} has errors: {findings:#?}"
    );
    let b = Bundle::new(common::shared_upstream(), bundle::lock().unwrap());
    let opts = RenderOptions {
        stack_dir: common::example_dir(name),
        allow_missing_bundle: false,
    };
    render::render(&stack, &cluster, &b, &opts).unwrap()
}

/// Make a CRD structural schema strict the way the API server is: object schemas with
/// `properties` accept nothing else unless `x-kubernetes-preserve-unknown-fields` (the
/// server prunes unknown fields, which for a renderer means a silently lost setting);
/// `nullable` allows null; int-or-string accepts both.
fn strict(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    let preserve = map
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if map.contains_key("properties") && !map.contains_key("additionalProperties") && !preserve {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    if map.get("nullable").and_then(Value::as_bool) == Some(true)
        && let Some(Value::String(t)) = map.get("type").cloned()
    {
        map.insert("type".into(), serde_json::json!([t, "null"]));
    }
    if map
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        map.remove("type");
    }
    for v in map.values_mut() {
        match v {
            Value::Object(_) => strict(v),
            Value::Array(items) => items.iter_mut().for_each(strict),
            _ => {}
        }
    }
}

/// The `openAPIV3Schema` for `apiVersion`/`kind` from the CRDs in `file`.
fn crd_schema(file: &Path, api_version: &str, kind: &str) -> Value {
    let text = std::fs::read_to_string(file).unwrap();
    let (group, version) = api_version.split_once('/').unwrap();
    for v in rookery_stack::yaml::parse_documents(&text, file).unwrap() {
        if v["kind"] != "CustomResourceDefinition"
            || v["spec"]["group"] != group
            || v["spec"]["names"]["kind"] != kind
        {
            continue;
        }
        for ver in v["spec"]["versions"].as_array().unwrap() {
            if ver["name"] == version {
                assert_eq!(ver["served"], true, "{kind} {version} not served");
                let mut s = ver["schema"]["openAPIV3Schema"].clone();
                strict(&mut s);
                return s;
            }
        }
    }
    panic!("no CRD for {api_version} {kind} in {}", file.display());
}

fn crd_file_for(kind: &str) -> &'static str {
    match kind {
        "CephCluster" | "CephFilesystem" => "rook-v1.20.6/deploy/examples/crds.yaml",
        "VolumeSnapshotClass" => {
            "external-snapshotter-v8.6.0/client/config/crd/snapshot.storage.k8s.io_volumesnapshotclasses.yaml"
        }
        "BackupStorageLocation" => {
            "velero-v1.18.1/config/crd/v1/bases/velero.io_backupstoragelocations.yaml"
        }
        "VolumeSnapshotLocation" => {
            "velero-v1.18.1/config/crd/v1/bases/velero.io_volumesnapshotlocations.yaml"
        }
        "Schedule" => "velero-v1.18.1/config/crd/v1/bases/velero.io_schedules.yaml",
        other => panic!("no CRD known for {other}"),
    }
}

fn validate_cr(doc: &Value) {
    let kind = doc["kind"].as_str().unwrap();
    let api = doc["apiVersion"].as_str().unwrap();
    let file = common::shared_upstream().join(crd_file_for(kind));
    let schema = crd_schema(&file, api, kind);
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(false)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{kind} {} fails its CRD schema:\n{}",
        doc["metadata"]["name"],
        errors.join("\n")
    );
}

/// Deserialize into the k8s-openapi type, serialize back, compare.
fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) {
    let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| {
        panic!("{} does not deserialize: {e}", doc["kind"]);
    });
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back, doc,
        "{} {} does not round-trip through k8s-openapi: unknown or misplaced fields",
        doc["kind"], doc["metadata"]["name"]
    );
}

fn validate_builtin(doc: &Value) {
    use k8s_openapi::api::{
        apps::v1 as apps, core::v1 as core, rbac::v1 as rbac, storage::v1 as storage,
    };
    match doc["kind"].as_str().unwrap() {
        "StorageClass" => roundtrip::<storage::StorageClass>(doc),
        "Deployment" => roundtrip::<apps::Deployment>(doc),
        "DaemonSet" => roundtrip::<apps::DaemonSet>(doc),
        "Secret" => roundtrip::<core::Secret>(doc),
        "ServiceAccount" => roundtrip::<core::ServiceAccount>(doc),
        "Namespace" => roundtrip::<core::Namespace>(doc),
        "ClusterRoleBinding" => roundtrip::<rbac::ClusterRoleBinding>(doc),
        other => panic!("built-in kind {other} has no round-trip check"),
    }
}

/// With `reveal`, Secrets are checked with their resolved values (as sent to the server),
/// else without `data`.
fn check_all(name: &str, reveal: bool) -> BTreeSet<String> {
    let mut kinds = BTreeSet::new();
    let dir = common::example_dir(name);
    for o in render_example(name).objects {
        if !matches!(o.source, Source::Template { .. }) {
            continue;
        }
        let doc: Value = if reveal {
            o.resolved_body(&dir).unwrap()
        } else {
            o.body.clone()
        };
        let kind = doc["kind"].as_str().unwrap().to_string();
        if doc["apiVersion"].as_str().unwrap().contains('.')
            && kind != "StorageClass"
            && kind != "Deployment"
            && kind != "DaemonSet"
            && kind != "ClusterRoleBinding"
        {
            validate_cr(&doc);
        } else {
            validate_builtin(&doc);
        }
        kinds.insert(kind);
    }
    kinds
}

#[test]
fn lab_objects_match_upstream_schemas() {
    let kinds = check_all("lab-3node", false);
    for k in [
        "CephCluster",
        "CephFilesystem",
        "StorageClass",
        "VolumeSnapshotClass",
        "Namespace",
        "ServiceAccount",
        "ClusterRoleBinding",
        "Secret",
        "BackupStorageLocation",
        "Deployment",
        "DaemonSet",
        "Schedule",
    ] {
        assert!(kinds.contains(k), "lab rendered no {k}");
    }
}

#[test]
fn production_objects_match_upstream_schemas() {
    let kinds = check_all("production", true);
    assert!(kinds.contains("Schedule"));
}

#[test]
fn volume_snapshot_location_matches_schema() {
    let dir = common::example_dir("lab-3node");
    let mut stack = common::load_stack(&dir.join("stack.yaml"));
    let b = stack.backup_strategy.as_mut().unwrap();
    b.volume_snapshot_locations = vec![rookery_stack::model::VolumeSnapshotLocationConfig {
        name: "ebs".into(),
        provider: "aws".into(),
        region: Some("eu-west-1".into()),
        credential: None,
        config: Default::default(),
    }];
    let hosts = common::hosts_from_facts(&dir.join("facts.json"));
    let (stack, cluster, _) =
        common::plan(stack, &hosts, &dir, rookery_stack::hosts::FactsSource::File);
    let bundle = Bundle::new(common::shared_upstream(), bundle::lock().unwrap());
    let opts = RenderOptions {
        stack_dir: dir,
        allow_missing_bundle: false,
    };
    let desired = render::render(&stack, &cluster, &bundle, &opts).unwrap();
    let vsl = desired
        .objects
        .iter()
        .find(|o| o.id.kind == "VolumeSnapshotLocation")
        .expect("a VSL object");
    validate_cr(&vsl.body);
}

#[test]
fn schema_check_catches_a_misspelt_field() {
    let mut doc: Value = serde_json::json!({
        "apiVersion": "ceph.rook.io/v1",
        "kind": "CephFilesystem",
        "metadata": {"name": "x", "namespace": "rook-ceph"},
        "spec": {
            "metadataPool": {"replicated": {"size": 3}},
            "dataPools": [{"name": "data", "replicated": {"size": 3}}],
            "metadataServer": {"activeCount": 1},
        }
    });
    validate_cr(&doc);
    doc["spec"]["metadataServer"]["activStandby"] = Value::Bool(true);
    let r = std::panic::catch_unwind(|| validate_cr(&doc));
    assert!(r.is_err(), "a misspelt field must fail the strict schema");
}
