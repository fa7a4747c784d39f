//! Which API resource serves a kind. Discovery is asked per group-version (one small request
//! each, cached), and a kind the server does not know is *not* cached: after the CRD stage the
//! next lookup asks again, so discovery can never be stale for kinds this run installed
//! (kube's own `kubectl` example runs discovery once and skips such objects).

use std::collections::HashMap;
use std::sync::Mutex;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::discovery::{ApiCapabilities, Scope};
use rookery_stack::desired::ObjectRef;

use crate::connect::Cluster;
use crate::error::KubeError;

pub fn gvk_of(id: &ObjectRef) -> GroupVersionKind {
    let (group, version) = match id.api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", id.api_version.as_str()),
    };
    GroupVersionKind::gvk(group, version, &id.kind)
}

type Resolved = (ApiResource, ApiCapabilities);

pub struct Resolver {
    cluster: Cluster,
    cache: Mutex<HashMap<(String, String, String), Resolved>>,
}

fn key(g: &GroupVersionKind) -> (String, String, String) {
    (g.group.clone(), g.version.clone(), g.kind.clone())
}

impl Resolver {
    pub fn new(cluster: Cluster) -> Self {
        Resolver {
            cluster,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The resource for a kind, or `None` when the server does not serve it (yet).
    pub async fn resolve(
        &self,
        gvk: &GroupVersionKind,
    ) -> Result<Option<(ApiResource, ApiCapabilities)>, KubeError> {
        if let Some(hit) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(&key(gvk)).cloned())
        {
            return Ok(Some(hit));
        }
        let label = format!("{}/{} {}", gvk.group, gvk.version, gvk.kind);
        let found = match tokio::time::timeout(
            self.cluster.request_timeout,
            kube::discovery::pinned_kind(&self.cluster.client, gvk),
        )
        .await
        {
            Ok(Ok(found)) => found,
            // A group/version the server does not serve answers a plain-text 404.
            Ok(Err(kube::Error::Api(s))) if s.code == 404 => return Ok(None),
            Ok(Err(kube::Error::Discovery(_))) => return Ok(None),
            Ok(Err(source)) => return Err(KubeError::from_kube("discovery of", label, source)),
            Err(_) => {
                return Err(KubeError::RequestTimeout {
                    what: "discovery of",
                    object: label,
                    after: self.cluster.request_timeout,
                });
            }
        };
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key(gvk), found.clone());
        }
        Ok(Some(found))
    }

    /// An `Api` for the object's kind and namespace, or `None` when the kind is unknown.
    pub async fn api_for(&self, id: &ObjectRef) -> Result<Option<Api<DynamicObject>>, KubeError> {
        let Some((ar, caps)) = self.resolve(&gvk_of(id)).await? else {
            return Ok(None);
        };
        Ok(Some(self.api(&ar, &caps, id.namespace.as_deref())))
    }

    pub fn api(
        &self,
        ar: &ApiResource,
        caps: &ApiCapabilities,
        namespace: Option<&str>,
    ) -> Api<DynamicObject> {
        let client = self.cluster.client.clone();
        match (&caps.scope, namespace) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client, ns, ar),
            (Scope::Namespaced, None) => Api::default_namespaced_with(client, ar),
            (Scope::Cluster, _) => Api::all_with(client, ar),
        }
    }
}
