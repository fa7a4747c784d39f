//! Stand-ins for the controllers that cannot run here — the Rook operator with its Ceph
//! daemons, and Velero's validation of locations and schedules. No container runtime exists
//! on this machine, so a test that needs them *plays* them: a background task writes the real
//! status fields of the real CRDs (rook-velero-facts-2 §6) the way each controller does,
//! through the status subresource for Rook's CRDs and with the object for Velero's (whose CRDs
//! have none). Every test using this says so at its top.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::kube::objects;

/// How the played controllers behave; change it while a test runs through [`Fake::set`].
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Act as the Rook operator at all (CephCluster and CephFilesystem status, MDS).
    pub rook: bool,
    /// `status.ceph.health` once Ready, and its `details`.
    pub ceph_health: String,
    pub ceph_details: Value,
    /// Write CephFilesystem status (Ready) and create the MDS Deployments.
    pub filesystems: bool,
    /// Act as Velero for BackupStorageLocations / Schedules.
    pub velero: bool,
    /// `Some(message)`: every BSL is Unavailable with that message.
    pub bsl_unavailable: Option<String>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            rook: true,
            ceph_health: "HEALTH_OK".into(),
            ceph_details: json!({}),
            filesystems: true,
            velero: true,
            bsl_unavailable: None,
        }
    }
}

/// The running stand-ins; they stop when dropped.
pub struct Fake {
    behaviour: Arc<Mutex<Behaviour>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fake {
    /// Start playing the controllers for objects in `rook_ns` (CephCluster, filesystems) and
    /// `velero_ns` (locations, schedules), polling every 300 ms.
    pub fn start(
        client: ::kube::Client,
        rook_ns: &str,
        velero_ns: &str,
        behaviour: Behaviour,
    ) -> Fake {
        let behaviour = Arc::new(Mutex::new(behaviour));
        let b = behaviour.clone();
        let (rook_ns, velero_ns) = (rook_ns.to_string(), velero_ns.to_string());
        let task = tokio::spawn(async move {
            loop {
                let now = b.lock().map(|b| b.clone()).unwrap_or_default();
                // Errors are expected while the CRDs do not exist yet; keep playing.
                let _ = tick(&client, &rook_ns, &velero_ns, &now).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        Fake { behaviour, task }
    }

    pub fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        if let Ok(mut b) = self.behaviour.lock() {
            f(&mut b);
        }
    }
}

fn generation(obj: &Value) -> i64 {
    obj["metadata"]["generation"].as_i64().unwrap_or(1)
}

async fn tick(
    client: &::kube::Client,
    rook_ns: &str,
    velero_ns: &str,
    b: &Behaviour,
) -> anyhow::Result<()> {
    if b.rook {
        for cc in objects::list(
            client,
            "ceph.rook.io/v1",
            "CephCluster",
            Some(rook_ns),
            None,
        )
        .await
        .unwrap_or_default()
        {
            let name = cc["metadata"]["name"].as_str().unwrap_or_default();
            // As Rook writes it (conditions.go): phase = condition type, state Created,
            // observedGeneration with the Ready condition, then the health checker's `ceph`.
            let status = json!({
                "phase": "Ready",
                "state": "Created",
                "message": "Cluster created successfully",
                "observedGeneration": generation(&cc),
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "ClusterCreated",
                    "message": "Cluster created successfully",
                }],
                "ceph": {
                    "health": b.ceph_health,
                    "details": b.ceph_details,
                    "lastChecked": "2026-12-06T00:00:00Z",
                    "capacity": {"bytesTotal": 3_000_000_000_000u64, "bytesUsed": 1_000_000_000u64,
                                 "bytesAvailable": 2_999_000_000_000u64},
                },
            });
            if cc["status"]["ceph"]["health"] != status["ceph"]["health"]
                || cc["status"]["observedGeneration"] != status["observedGeneration"]
                || cc["status"]["ceph"]["details"] != status["ceph"]["details"]
            {
                objects::patch_status(
                    client,
                    "ceph.rook.io/v1",
                    "CephCluster",
                    Some(rook_ns),
                    name,
                    status,
                )
                .await?;
            }
        }
        if b.filesystems {
            for fs in objects::list(
                client,
                "ceph.rook.io/v1",
                "CephFilesystem",
                Some(rook_ns),
                None,
            )
            .await
            .unwrap_or_default()
            {
                let name = fs["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let standby = fs["spec"]["metadataServer"]["activeStandby"]
                    .as_bool()
                    .unwrap_or(false);
                let active = fs["spec"]["metadataServer"]["activeCount"]
                    .as_i64()
                    .unwrap_or(1);
                let count = active * if standby { 2 } else { 1 };
                for i in 0..count {
                    let letter = char::from(b'a' + i as u8);
                    let dep = mds_deployment(rook_ns, &name, letter);
                    let exists = objects::get(
                        client,
                        "apps/v1",
                        "Deployment",
                        Some(rook_ns),
                        dep["metadata"]["name"].as_str().unwrap_or_default(),
                    )
                    .await?
                    .is_some();
                    if !exists {
                        objects::apply_as(client, "rook-ceph-operator", &dep).await?;
                    }
                }
                if fs["status"]["phase"] != "Ready"
                    || fs["status"]["observedGeneration"].as_i64() != Some(generation(&fs))
                {
                    objects::patch_status(
                        client,
                        "ceph.rook.io/v1",
                        "CephFilesystem",
                        Some(rook_ns),
                        &name,
                        json!({"phase": "Ready", "observedGeneration": generation(&fs)}),
                    )
                    .await?;
                }
            }
        }
    }
    if b.velero {
        for bsl in objects::list(
            client,
            "velero.io/v1",
            "BackupStorageLocation",
            Some(velero_ns),
            None,
        )
        .await
        .unwrap_or_default()
        {
            let name = bsl["metadata"]["name"].as_str().unwrap_or_default();
            let (phase, message) = match &b.bsl_unavailable {
                Some(m) => ("Unavailable", Value::String(m.clone())),
                None => ("Available", Value::Null),
            };
            if bsl["status"]["phase"] != phase || bsl["status"]["message"] != message {
                objects::patch_status(
                    client,
                    "velero.io/v1",
                    "BackupStorageLocation",
                    Some(velero_ns),
                    name,
                    json!({"phase": phase, "message": message,
                           "lastValidationTime": "2026-12-06T00:00:00Z"}),
                )
                .await?;
            }
        }
        for s in objects::list(client, "velero.io/v1", "Schedule", Some(velero_ns), None)
            .await
            .unwrap_or_default()
        {
            if s["status"]["phase"] != "Enabled" {
                let name = s["metadata"]["name"].as_str().unwrap_or_default();
                objects::patch_status(
                    client,
                    "velero.io/v1",
                    "Schedule",
                    Some(velero_ns),
                    name,
                    json!({"phase": "Enabled"}),
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// An MDS Deployment as the Rook operator names it (`rook-ceph-mds-<fs>-<letter>`); kwok
/// runs its pod.
pub fn mds_deployment(namespace: &str, fs: &str, letter: char) -> Value {
    let name = format!("rook-ceph-mds-{fs}-{letter}");
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app": "rook-ceph-mds", "rook_file_system": fs}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "rook-ceph-mds", "mds": name}},
            "template": {
                "metadata": {"labels": {"app": "rook-ceph-mds", "mds": name}},
                "spec": {"containers": [{"name": "mds", "image": "quay.io/ceph/ceph:v20.2.4"}]},
            },
        },
    })
}
