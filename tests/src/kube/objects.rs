//! Object helpers for tests that play a controller which cannot run here (the Rook operator,
//! Ceph, Velero's data path): server-side apply of a JSON object, get, patch the `status`
//! subresource of any object, wait for a condition. Objects are `serde_json::Value`s resolved
//! through discovery (kube's dynamic API), so CRD-backed kinds work as soon as their CRD is
//! Established. Every call is bounded by [`super::CALL_TIMEOUT`].

use std::path::Path;
use std::time::{Duration, Instant};

use ::kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use ::kube::core::GroupVersionKind;
use ::kube::discovery::{self, ApiCapabilities, ApiResource, Scope};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use super::CALL_TIMEOUT;

/// The field manager of everything the tests apply or patch.
pub const FIELD_MANAGER: &str = "rookery-tests";

/// `kind ns/name` or `kind name`, for messages.
pub fn describe(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Await `fut` for at most [`CALL_TIMEOUT`]; errors say what was being done.
pub async fn call<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, ::kube::Error>>,
) -> Result<T> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(anyhow!(e).context(what.to_string())),
        Err(_) => bail!("{what}: no answer within {CALL_TIMEOUT:?}"),
    }
}

fn gvk(api_version: &str, kind: &str) -> GroupVersionKind {
    match api_version.split_once('/') {
        Some((group, version)) => GroupVersionKind::gvk(group, version, kind),
        None => GroupVersionKind::gvk("", api_version, kind),
    }
}

/// A dynamic API for `apiVersion`/`kind`, found through discovery (so it sees CRDs installed a
/// moment ago). A namespaced kind needs `namespace`; a cluster-scoped one ignores it.
pub async fn api(
    client: &::kube::Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
) -> Result<Api<DynamicObject>> {
    Ok(resolve(client, api_version, kind, namespace).await?.0)
}

/// [`api`], and whether the kind has a `status` subresource.
async fn resolve(
    client: &::kube::Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
) -> Result<(Api<DynamicObject>, bool)> {
    let (ar, caps) = discover(client, api_version, kind).await?;
    let api = match (&caps.scope, namespace) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        (Scope::Namespaced, None) => bail!("{api_version} {kind} is namespaced: give a namespace"),
        (Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
    };
    Ok((api, has_status(&caps)))
}

async fn discover(
    client: &::kube::Client,
    api_version: &str,
    kind: &str,
) -> Result<(ApiResource, ApiCapabilities)> {
    call(
        &format!("discover {api_version} {kind}"),
        discovery::pinned_kind(client, &gvk(api_version, kind)),
    )
    .await
}

fn has_status(caps: &ApiCapabilities) -> bool {
    caps.subresources
        .iter()
        .any(|(sub, _)| sub.plural == "status")
}

fn identity(obj: &Value) -> Result<(&str, &str, Option<&str>, &str)> {
    let field = |v: &Value, what: &str| -> Result<()> {
        if v.as_str().is_none_or(str::is_empty) {
            bail!("object has no {what}: {}", short(obj));
        }
        Ok(())
    };
    field(&obj["apiVersion"], "apiVersion")?;
    field(&obj["kind"], "kind")?;
    field(&obj["metadata"]["name"], "metadata.name")?;
    Ok((
        obj["apiVersion"].as_str().unwrap_or_default(),
        obj["kind"].as_str().unwrap_or_default(),
        obj["metadata"]["namespace"].as_str(),
        obj["metadata"]["name"].as_str().unwrap_or_default(),
    ))
}

/// Server-side apply `obj` as [`FIELD_MANAGER`] (forcing conflicts: the tests own what they
/// write) and return the object as stored.
pub async fn apply(client: &::kube::Client, obj: &Value) -> Result<Value> {
    apply_as(client, FIELD_MANAGER, obj).await
}

/// Server-side apply `obj` as `manager` (to play another controller or user).
pub async fn apply_as(client: &::kube::Client, manager: &str, obj: &Value) -> Result<Value> {
    let (api_version, kind, ns, name) = identity(obj)?;
    let what = format!("apply {}", describe(kind, ns, name));
    let api = api(client, api_version, kind, ns)
        .await
        .context(what.clone())?;
    let pp = PatchParams::apply(manager).force();
    let out = call(&what, api.patch(name, &pp, &Patch::Apply(obj))).await?;
    Ok(serde_json::to_value(out)?)
}

/// The object, or None when it does not exist.
pub async fn get(
    client: &::kube::Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>> {
    let api = api(client, api_version, kind, namespace).await?;
    let what = format!("get {}", describe(kind, namespace, name));
    let out = call(&what, api.get_opt(name)).await?;
    out.map(serde_json::to_value)
        .transpose()
        .map_err(Into::into)
}

/// Every object of a kind (in `namespace`, or cluster-wide), optionally by label selector.
pub async fn list(
    client: &::kube::Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    label_selector: Option<&str>,
) -> Result<Vec<Value>> {
    let api = match namespace {
        Some(_) => api(client, api_version, kind, namespace).await?,
        None => Api::all_with(
            client.clone(),
            &discover(client, api_version, kind).await?.0,
        ),
    };
    let mut lp = ListParams::default();
    if let Some(sel) = label_selector {
        lp = lp.labels(sel);
    }
    let what = format!("list {kind} in {}", namespace.unwrap_or("all namespaces"));
    let out = call(&what, api.list(&lp)).await?;
    out.items
        .into_iter()
        .map(|o| serde_json::to_value(o).map_err(Into::into))
        .collect()
}

/// Write `status` (a JSON merge patch) the way the controller that owns the object does:
/// through the `status` subresource when the kind has one (built-in kinds, Rook's CRDs), else
/// through the object itself (Velero's CRDs declare `subresources: {}`, so Velero writes
/// status with the rest of the object). Returns the object as stored.
pub async fn patch_status(
    client: &::kube::Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    status: Value,
) -> Result<Value> {
    let (api, has_status) = resolve(client, api_version, kind, namespace).await?;
    let what = format!("patch status of {}", describe(kind, namespace, name));
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let patch = Patch::Merge(json!({ "status": status }));
    let out = if has_status {
        call(&what, api.patch_status(name, &pp, &patch)).await?
    } else {
        call(&what, api.patch(name, &pp, &patch)).await?
    };
    Ok(serde_json::to_value(out)?)
}

/// Whether `apiVersion`/`kind` has a `status` subresource (then status written with the
/// object itself is ignored by the API server).
pub async fn has_status_subresource(
    client: &::kube::Client,
    api_version: &str,
    kind: &str,
) -> Result<bool> {
    Ok(has_status(&discover(client, api_version, kind).await?.1))
}

/// Delete the object (foreground is not needed by the tests); absent is fine.
pub async fn delete(
    client: &::kube::Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<()> {
    let api = api(client, api_version, kind, namespace).await?;
    let what = format!("delete {}", describe(kind, namespace, name));
    match call(&what, api.delete(name, &DeleteParams::default())).await {
        Ok(_) => Ok(()),
        Err(e)
            if e.downcast_ref::<::kube::Error>()
                .is_some_and(|k| matches!(k, ::kube::Error::Api(s) if s.code == 404)) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Whether `status.conditions[]` has `type` with status `"True"`.
pub fn condition_true(obj: &Value, type_: &str) -> bool {
    obj["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == type_ && c["status"] == "True")
    })
}

/// A Deployment whose controller has seen its current generation and whose replicas are all
/// updated and available.
pub fn deployment_rolled_out(d: &Value) -> bool {
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let gen_seen =
        d["status"]["observedGeneration"].as_i64() >= d["metadata"]["generation"].as_i64();
    gen_seen
        && d["status"]["updatedReplicas"].as_i64().unwrap_or(0) == want
        && d["status"]["availableReplicas"].as_i64().unwrap_or(0) == want
        && d["status"]["replicas"].as_i64().unwrap_or(0) == want
        && condition_true(d, "Available")
}

/// Compact JSON, cut to a length fit for an error message.
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 1500 {
        let cut = (0..=1500)
            .rev()
            .find(|i| s.is_char_boundary(*i))
            .unwrap_or(0);
        format!("{}…", &s[..cut])
    } else {
        s
    }
}

/// Poll the object until `done` says yes or `timeout` passes; the error names the object,
/// what was awaited and the last `status` seen (never the whole object: it may be a Secret).
#[allow(clippy::too_many_arguments)]
pub async fn wait_for(
    client: &::kube::Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match get(client, api_version, kind, namespace, name).await {
            Ok(Some(obj)) if done(&obj) => return Ok(obj),
            Ok(Some(obj)) => format!("status {}", short(&obj["status"])),
            Ok(None) => "not found".into(),
            // Discovery may lag a moment behind a CRD that just became Established.
            Err(e) => format!("error {e:#}"),
        };
        if Instant::now() >= deadline {
            bail!(
                "timed out after {timeout:?} waiting for {} to be {what}; last seen: {last}",
                describe(kind, namespace, name)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every non-empty document of a (multi-document) YAML file, as JSON values.
pub fn read_yaml_documents(path: &Path) -> Result<Vec<Value>> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let mut docs = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let v = Value::deserialize(doc)
            .with_context(|| format!("{}: document {} is not valid YAML", path.display(), i + 1))?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

/// Apply every CRD in `files`, then wait until each is Established with its names accepted
/// and its kind is served by discovery.
pub async fn install_crds(
    client: &::kube::Client,
    files: &[impl AsRef<Path>],
    timeout: Duration,
) -> Result<()> {
    let mut crds = Vec::new();
    for f in files {
        crds.extend(read_yaml_documents(f.as_ref())?);
    }
    install_crd_objects(client, &crds, timeout).await
}

/// The CRD named `name` (e.g. `cephclusters.ceph.rook.io`) from a multi-document file.
pub fn crd_from_file(path: &Path, name: &str) -> Result<Value> {
    read_yaml_documents(path)?
        .into_iter()
        .find(|d| d["kind"] == "CustomResourceDefinition" && d["metadata"]["name"] == name)
        .with_context(|| format!("{}: no CustomResourceDefinition {name}", path.display()))
}

/// [`install_crds`] for CRD objects already read.
pub async fn install_crd_objects(
    client: &::kube::Client,
    crds: &[Value],
    timeout: Duration,
) -> Result<()> {
    for crd in crds {
        if crd["kind"] != "CustomResourceDefinition" {
            bail!(
                "not a CustomResourceDefinition: {}",
                short(&crd["metadata"])
            );
        }
        apply(client, crd).await?;
    }
    for crd in crds {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        wait_for(
            client,
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            name,
            "Established and NamesAccepted",
            timeout,
            |c| condition_true(c, "Established") && condition_true(c, "NamesAccepted"),
        )
        .await?;
        wait_discoverable(client, crd, timeout).await?;
    }
    Ok(())
}

/// Wait until discovery serves every served version of `crd`'s kind.
async fn wait_discoverable(client: &::kube::Client, crd: &Value, timeout: Duration) -> Result<()> {
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let kind = crd["spec"]["names"]["kind"].as_str().unwrap_or_default();
    let versions = crd["spec"]["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let deadline = Instant::now() + timeout;
    for v in versions.iter().filter(|v| v["served"] == true) {
        let version = v["name"].as_str().unwrap_or_default();
        let gvk = GroupVersionKind::gvk(group, version, kind);
        loop {
            match tokio::time::timeout(CALL_TIMEOUT, discovery::pinned_kind(client, &gvk)).await {
                Ok(Ok(_)) => break,
                other => {
                    if Instant::now() >= deadline {
                        bail!(
                            "{group}/{version} {kind} is not served by discovery after {timeout:?}: {}",
                            match other {
                                Ok(Err(e)) => e.to_string(),
                                _ => "no answer".into(),
                            }
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    Ok(())
}
