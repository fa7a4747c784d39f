//! What Ceph's health checks mean and what to do about them, and the facts about Rook's
//! daemons that only Kubernetes objects carry (Rook's CRD status has no per-daemon detail).
//!
//! Check codes and their wording: Ceph's `doc/rados/operations/health-checks.rst`; the Rook
//! alerts in `rook-v1.20.6/deploy/examples/monitoring/localrules.yaml` key on the same codes.

use serde_json::Value;

use crate::snapshot::str_at;

/// (meaning, what to do) for the health checks people meet on a Rook cluster.
pub fn explain(code: &str) -> Option<(&'static str, &'static str)> {
    let e = match code {
        "OSD_DOWN" => (
            "one or more OSDs are marked down: their data is served by the other replicas \
             until Ceph marks them out and re-replicates",
            "look at the OSD's pod (`kubectl -n NS get pods -l app=rook-ceph-osd`), its node, \
             the disk (dmesg, SMART) and the network between the hosts",
        ),
        "OSD_HOST_DOWN" => (
            "every OSD of a host is down: the host, its network or its disks are gone",
            "check that the node is up and Ready, and its network to the other hosts",
        ),
        "OSD_NEARFULL" => (
            "an OSD is above the nearfull ratio (default 85 %)",
            "add OSDs or delete data before it reaches backfillfull (90 %) and full (95 %), \
             when writes stop",
        ),
        "OSD_BACKFILLFULL" => (
            "an OSD is above the backfillfull ratio (default 90 %): Ceph will not move data \
             onto it",
            "add capacity or delete data now",
        ),
        "OSD_FULL" => (
            "an OSD is full (default 95 %): the cluster refuses writes",
            "add OSDs, or delete data (deleting needs some free space: raise \
             `mon_osd_full_ratio` slightly only to delete)",
        ),
        "POOL_NEARFULL" => (
            "a pool is near its quota or the OSDs behind it are near full",
            "add capacity or raise the pool's quota",
        ),
        "POOL_FULL" => (
            "a pool is full: writes to it are refused",
            "add capacity, raise the quota or delete data",
        ),
        "MON_DOWN" => (
            "one or more monitors are down; the rest still form a quorum, but one more \
             failure may lose it",
            "look at the mon pods (`-l app=rook-ceph-mon`) and their nodes; Rook fails a mon \
             over to another node after `healthCheck.daemonHealth.mon.timeout`",
        ),
        "MON_CLOCK_SKEW" => (
            "the monitors' clocks differ more than allowed (0.05 s): quorum becomes unstable",
            "run time sync (chrony or systemd-timesyncd) on every node",
        ),
        "MON_DISK_LOW" | "MON_DISK_CRIT" => (
            "a monitor's store is running out of disk space (dataDirHostPath)",
            "free space on the node's filesystem holding dataDirHostPath",
        ),
        "MDS_ALL_DOWN" => (
            "a filesystem has no active MDS: it is offline",
            "look at the MDS pods (`-l app=rook-ceph-mds`)",
        ),
        "FS_DEGRADED" => (
            "a filesystem has a rank that is not active",
            "look at the MDS pods and their logs",
        ),
        "MDS_INSUFFICIENT_STANDBY" => (
            "fewer standby MDS daemons than the filesystem wants",
            "check that every MDS pod can be scheduled (`metadataServer.activeStandby`)",
        ),
        "PG_AVAILABILITY" => (
            "some placement groups are inactive: I/O to them blocks",
            "usually OSDs down or too few hosts for the pool's replica count; see OSD checks",
        ),
        "PG_DEGRADED" => (
            "some data has fewer copies than the pool's size (recovery is running or blocked)",
            "let recovery finish; if it does not progress, bring the down OSDs back",
        ),
        "TOO_FEW_OSDS" => (
            "fewer OSDs than a pool's replica count",
            "add OSDs on more hosts, or lower the pool's replica count",
        ),
        "POOL_NO_REDUNDANCY" => (
            "a pool keeps a single copy: one failed disk loses data",
            "raise the pool's replication.size",
        ),
        "SLOW_OPS" => (
            "requests are taking longer than 30 s",
            "look for a slow disk or network, or recovery load",
        ),
        "RECENT_CRASH" => (
            "a Ceph daemon crashed recently",
            "`ceph crash ls` in the toolbox shows which; archive with `ceph crash archive-all`",
        ),
        "OSDMAP_FLAGS" => (
            "cluster flags such as noout or norebalance are set",
            "unset them once maintenance is over (`ceph osd unset noout`)",
        ),
        "AUTH_INSECURE_KEYS_ALLOWED"
        | "AUTH_INSECURE_KEYS_CREATABLE"
        | "AUTH_INSECURE_CLIENT_KEY_TYPE"
        | "AUTH_INSECURE_ROTATING_SERVICE_KEY_TYPE" => (
            "cephx keys of the older `aes` type exist or may be created",
            "expected while the CSI keys use `aes` (nodes below Linux 7.0); Rookery accepts it \
             in that case",
        ),
        "error" => (
            "Rook could not run `ceph status` at all: this HEALTH_ERR is Rook's, not Ceph's",
            "the mons may be down or unreachable from the operator; check the mon pods and the \
             operator's log",
        ),
        _ => return None,
    };
    Some(e)
}

/// `quorum a,b` from a MON_DOWN message (`1/3 mons down, quorum a,b`).
pub fn quorum_from_message(msg: &str) -> Option<Vec<String>> {
    let rest = msg.split("quorum ").nth(1)?;
    let list = rest.split_whitespace().next()?;
    Some(list.split(',').map(str::to_string).collect())
}

/// A Rook daemon Deployment: which daemon, on which node, whether its pod runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    pub name: String,
    /// `app` label: `rook-ceph-mon`, `rook-ceph-osd`, `rook-ceph-mds`, `rook-ceph-mgr`.
    pub app: String,
    /// `mon` label / `ceph-osd-id` label / `rook_file_system` label.
    pub id: Option<String>,
    pub node: Option<String>,
    pub ready: bool,
    pub device_class: Option<String>,
    /// ROOK_BLOCK_PATH of the OSD's containers (rook `osd/envs.go`), when set.
    pub block_path: Option<String>,
}

/// Rook's daemons from its Deployments (labels from rook `osd/labels.go`, `mon/spec.go`).
pub fn daemons(deployments: &[Value]) -> Vec<Daemon> {
    deployments
        .iter()
        .filter_map(|d| {
            let app = str_at(d, "/metadata/labels/app")?;
            if !app.starts_with("rook-ceph-") {
                return None;
            }
            let id = match app {
                "rook-ceph-mon" => str_at(d, "/metadata/labels/mon"),
                "rook-ceph-osd" => str_at(d, "/metadata/labels/ceph-osd-id"),
                "rook-ceph-mds" => str_at(d, "/metadata/labels/rook_file_system"),
                "rook-ceph-mgr" => str_at(d, "/metadata/labels/mgr"),
                _ => None,
            }
            .map(str::to_string);
            let node = str_at(d, "/metadata/labels/topology-location-host")
                .or_else(|| {
                    str_at(
                        d,
                        "/spec/template/spec/nodeSelector/kubernetes.io~1hostname",
                    )
                })
                .map(str::to_string);
            let want = d
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let ready_n = d
                .pointer("/status/readyReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let block_path = ["containers", "initContainers"].iter().find_map(|c| {
                d.pointer(&format!("/spec/template/spec/{c}"))?
                    .as_array()?
                    .iter()
                    .flat_map(|c| c.get("env").and_then(Value::as_array).into_iter().flatten())
                    .find(|e| e.get("name").and_then(Value::as_str) == Some("ROOK_BLOCK_PATH"))
                    .and_then(|e| e.get("value").and_then(Value::as_str))
                    .map(str::to_string)
            });
            Some(Daemon {
                name: str_at(d, "/metadata/name").unwrap_or("?").to_string(),
                app: app.to_string(),
                id,
                node,
                ready: want > 0 && ready_n >= want,
                device_class: str_at(d, "/metadata/labels/device-class").map(str::to_string),
                block_path,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_is_read_from_mon_down() {
        assert_eq!(
            quorum_from_message("1/3 mons down, quorum a,c"),
            Some(vec!["a".to_string(), "c".to_string()])
        );
        assert_eq!(
            quorum_from_message("mons are allowing insecure global_id"),
            None
        );
    }
}
