//! Planned nodes and devices: the stack's storage section resolved against the inventory and
//! what the probe saw on each host.
//!
//! This is the "parse, then validate into stronger types" step: a device named in the stack
//! becomes a [`PlannedDevice`] with a stable id, a device class and a verdict. Validation
//! rules and rendering both work from this one resolution, so what `plan` checks is what
//! `render` writes. Facts come from `rookery probe -o json` output (`--facts`) or a live probe;
//! without them the stack's devices are taken as given and marked unverified.

use std::path::{Path, PathBuf};

use rookery_proto::device::{BlockDevice, RejectReason};
use rookery_proto::facts::HostFacts;
use serde::{Deserialize, Serialize};

use crate::model::Stack;

/// One inventory host and, when probed, its facts.
#[derive(Debug, Clone)]
pub struct HostInput {
    /// Inventory name.
    pub name: String,
    pub facts: Option<HostFacts>,
    /// Probe status when facts are missing (`unreachable`, `failed`, ...).
    pub probe_status: Option<String>,
}

/// The JSON document `rookery probe -o json` writes. Unknown keys are ignored on purpose:
/// the probe may add fields without breaking older stacks' `--facts` files.
#[derive(Debug, Clone, Deserialize)]
pub struct ProbeReport {
    pub hosts: Vec<ProbeHostEntry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProbeHostEntry {
    pub host: String,
    pub status: String,
    #[serde(default)]
    pub facts: Option<HostFacts>,
}

#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error("cannot read facts file `{}`", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: at `{key_path}`: not a `rookery probe -o json` document", .path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        key_path: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Load a `--facts` file.
pub fn load_probe_report(path: &Path) -> Result<ProbeReport, FactsError> {
    let text = std::fs::read_to_string(path).map_err(|source| FactsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut de = serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let key_path = err.path().to_string();
        let source = err.into_inner();
        FactsError::Parse {
            path: path.to_path_buf(),
            line: source.line(),
            column: source.column(),
            key_path,
            source,
        }
    })
}

impl ProbeReport {
    /// Attach facts to inventory hosts by inventory name.
    pub fn apply(&self, hosts: &mut [HostInput]) {
        for host in hosts {
            if let Some(entry) = self.hosts.iter().find(|e| e.host == host.name) {
                host.facts = entry.facts.clone();
                host.probe_status = Some(entry.status.clone());
            }
        }
    }
}

/// Where a planned node comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeOrigin {
    /// `cephCluster.storage.nodes[i]`.
    Stack,
    /// `cephCluster.storage.deviceSelection` or `useAllNodes`.
    Selection,
}

/// How a stack node name relates to the inventory and the probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum NodeMatch {
    /// The probe reports this hostname on inventory host `host`.
    Hostname { host: String },
    /// The inventory host of that name was not probed: name taken as given.
    InventoryOnly { host: String },
    /// The inventory host has this name, but K3s will register it as `hostname`.
    HostnameDiffers { host: String, hostname: String },
    /// No inventory host matches.
    Unknown,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedNode {
    /// Kubernetes node name as rendered.
    pub name: String,
    /// Key path of this node in the stack.
    pub path: String,
    pub origin: NodeOrigin,
    pub matched: NodeMatch,
    /// `uname -r` from the probe.
    pub kernel: Option<String>,
    pub devices: Vec<PlannedDevice>,
}

impl PlannedNode {
    pub fn host(&self) -> Option<&str> {
        match &self.matched {
            NodeMatch::Hostname { host }
            | NodeMatch::InventoryOnly { host }
            | NodeMatch::HostnameDiffers { host, .. } => Some(host),
            NodeMatch::Unknown => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ClassSource {
    /// `config.deviceClass` in the stack.
    Stack,
    /// What the probe derived (rotational/NVMe).
    Probe,
    /// Neither: Rook will auto-detect at OSD creation.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum DeviceState {
    /// Empty and usable as is.
    Available,
    /// Carries old data that `rookery prepare` wipes (`wipe: true`).
    Wipe { reasons: Vec<String> },
    /// Carries old data and the stack does not allow wiping it.
    NeedsWipe { reasons: Vec<String> },
    /// Ceph can never use it (mounted, root disk, read-only, too small...).
    Unusable { reasons: Vec<String> },
    /// Not found on the host.
    Missing,
    /// No probe facts: taken as given.
    Unverified,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedDevice {
    /// What the stack (or the selection) named.
    pub requested: String,
    /// Key path in the stack (`...nodes[0].devices[1]`), or the selection's path.
    pub path: String,
    /// Name rendered into the CephCluster: the most stable `/dev/disk/by-id` link when known.
    pub id: String,
    pub kernel_name: Option<String>,
    pub class: Option<String>,
    pub class_source: ClassSource,
    pub size_bytes: Option<u64>,
    #[serde(flatten)]
    pub state: DeviceState,
}

impl PlannedDevice {
    /// Counts as an OSD for placement: will exist once Rook runs (or cannot be disproven).
    pub fn will_be_osd(&self) -> bool {
        matches!(
            self.state,
            DeviceState::Available | DeviceState::Wipe { .. } | DeviceState::Unverified
        )
    }
}

/// Where the facts came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FactsSource {
    Probe,
    File,
    None,
}

/// The resolved storage layout.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedCluster {
    pub facts_source: FactsSource,
    /// Inventory hosts (Kubernetes nodes) in file order.
    pub hosts: Vec<PlannedHost>,
    /// Nodes that carry OSDs.
    pub nodes: Vec<PlannedNode>,
    /// `deviceSelection` was given but there were no facts to select from.
    #[serde(skip)]
    pub selection_without_facts: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedHost {
    pub name: String,
    pub hostname: Option<String>,
    pub kernel: Option<String>,
    pub probe_status: Option<String>,
}

impl PlannedCluster {
    /// Every OSD-to-be device with its node.
    pub fn osd_devices(&self) -> impl Iterator<Item = (&PlannedNode, &PlannedDevice)> {
        self.nodes
            .iter()
            .flat_map(|n| n.devices.iter().map(move |d| (n, d)))
            .filter(|(_, d)| d.will_be_osd())
    }

    /// Kernels of every host, `None` where unknown.
    pub fn kernels(&self) -> Vec<(&str, Option<&str>)> {
        self.hosts
            .iter()
            .map(|h| (h.name.as_str(), h.kernel.as_deref()))
            .collect()
    }
}

/// Resolve the stack's storage section against the hosts. `selection_hosts` is the
/// inventory pattern of `deviceSelection.hosts` already expanded by the caller (None: all).
pub fn plan_cluster(
    stack: &Stack,
    hosts: &[HostInput],
    selection_hosts: Option<&[String]>,
    facts_source: FactsSource,
) -> PlannedCluster {
    let storage = &stack.ceph_cluster.storage;
    let mut nodes = Vec::new();
    for (i, node) in storage.nodes.iter().enumerate() {
        let path = format!("cephCluster.storage.nodes[{i}]");
        let (matched, facts) = match_node(&node.name, hosts);
        let devices = node
            .devices
            .iter()
            .enumerate()
            .map(|(j, dev)| {
                let dpath = format!("{path}.devices[{j}]");
                plan_stack_device(
                    &dev.name,
                    dev.config.device_class.as_deref(),
                    dev.wipe,
                    dpath,
                    facts,
                )
            })
            .collect();
        nodes.push(PlannedNode {
            name: node.name.clone(),
            path,
            origin: NodeOrigin::Stack,
            matched,
            kernel: facts.map(|f| f.kernel.clone()),
            devices,
        });
    }

    let mut selection_without_facts = false;
    let selection = storage.device_selection.as_ref();
    if selection.is_some() || (storage.use_all_nodes && storage.use_all_devices) {
        let path = if selection.is_some() {
            "cephCluster.storage.deviceSelection"
        } else {
            "cephCluster.storage.useAllDevices"
        };
        for host in hosts {
            if let Some(sel) = selection_hosts
                && !sel.iter().any(|s| s == &host.name)
            {
                continue;
            }
            let Some(facts) = &host.facts else {
                selection_without_facts = true;
                continue;
            };
            let already = nodes.iter().any(|n| {
                n.name.eq_ignore_ascii_case(&facts.hostname) || n.host() == Some(host.name.as_str())
            });
            if already {
                continue;
            }
            let devices: Vec<PlannedDevice> = facts
                .block_devices
                .iter()
                .filter(|d| d.available)
                .filter(|d| {
                    selection.is_none_or(|s| {
                        (s.device_classes.is_empty()
                            || s.device_classes.iter().any(|c| c == d.class.as_str()))
                            && s.min_size_gib
                                .is_none_or(|min| d.size_bytes >= min.saturating_mul(1 << 30))
                    })
                })
                .map(|d| PlannedDevice {
                    requested: d.path.clone(),
                    path: path.to_string(),
                    id: d.stable_id().to_string(),
                    kernel_name: Some(d.name.clone()),
                    class: Some(d.class.as_str().to_string()),
                    class_source: ClassSource::Probe,
                    size_bytes: Some(d.size_bytes),
                    state: DeviceState::Available,
                })
                .collect();
            if devices.is_empty() {
                continue;
            }
            nodes.push(PlannedNode {
                name: facts.hostname.to_ascii_lowercase(),
                path: path.to_string(),
                origin: NodeOrigin::Selection,
                matched: NodeMatch::Hostname {
                    host: host.name.clone(),
                },
                kernel: Some(facts.kernel.clone()),
                devices,
            });
        }
    }

    PlannedCluster {
        facts_source,
        hosts: hosts
            .iter()
            .map(|h| PlannedHost {
                name: h.name.clone(),
                hostname: h.facts.as_ref().map(|f| f.hostname.clone()),
                kernel: h.facts.as_ref().map(|f| f.kernel.clone()),
                probe_status: h.probe_status.clone(),
            })
            .collect(),
        nodes,
        selection_without_facts,
    }
}

fn match_node<'a>(name: &str, hosts: &'a [HostInput]) -> (NodeMatch, Option<&'a HostFacts>) {
    if let Some(h) = hosts
        .iter()
        // The kubelet lowercases the hostname when it names the node.
        .find(|h| {
            h.facts
                .as_ref()
                .is_some_and(|f| f.hostname.eq_ignore_ascii_case(name))
        })
    {
        return (
            NodeMatch::Hostname {
                host: h.name.clone(),
            },
            h.facts.as_ref(),
        );
    }
    if let Some(h) = hosts.iter().find(|h| h.name == name) {
        return match &h.facts {
            Some(f) => (
                NodeMatch::HostnameDiffers {
                    host: h.name.clone(),
                    hostname: f.hostname.to_ascii_lowercase(),
                },
                Some(f),
            ),
            None => (
                NodeMatch::InventoryOnly {
                    host: h.name.clone(),
                },
                None,
            ),
        };
    }
    (NodeMatch::Unknown, None)
}

/// Find a device the stack names (`/dev/sdb`, `sdb`, a by-id or by-path link).
pub fn find_device<'a>(facts: &'a HostFacts, name: &str) -> Option<&'a BlockDevice> {
    let short = name.strip_prefix("/dev/").unwrap_or(name);
    facts.block_devices.iter().find(|d| {
        d.path == name
            || d.name == short
            || d.by_id.iter().any(|l| l == name)
            || d.by_path.iter().any(|l| l == name)
    })
}

/// Reasons a wipe clears (old data), as opposed to conditions no wipe can fix.
fn wipe_fixes(reason: &RejectReason) -> bool {
    matches!(
        reason,
        RejectReason::HasPartitions
            | RejectReason::HasPartitionTable(_)
            | RejectReason::HasFilesystem(_)
            | RejectReason::LvmMember
            | RejectReason::BluestoreLabel
            | RejectReason::UsedByCephDisk
    )
}

fn plan_stack_device(
    name: &str,
    config_class: Option<&str>,
    wipe: bool,
    path: String,
    facts: Option<&HostFacts>,
) -> PlannedDevice {
    let (class, class_source) = match config_class {
        Some(c) => (Some(c.to_string()), ClassSource::Stack),
        None => (None, ClassSource::Unknown),
    };
    let Some(facts) = facts else {
        return PlannedDevice {
            requested: name.to_string(),
            path,
            id: name.to_string(),
            kernel_name: None,
            class,
            class_source,
            size_bytes: None,
            state: DeviceState::Unverified,
        };
    };
    let Some(dev) = find_device(facts, name) else {
        return PlannedDevice {
            requested: name.to_string(),
            path,
            id: name.to_string(),
            kernel_name: None,
            class,
            class_source,
            size_bytes: None,
            state: DeviceState::Missing,
        };
    };
    let (class, class_source) = match class {
        Some(c) => (Some(c), class_source),
        None => (Some(dev.class.as_str().to_string()), ClassSource::Probe),
    };
    let state = if dev.available {
        DeviceState::Available
    } else {
        let reasons: Vec<String> = dev.reject_reasons.iter().map(|r| r.to_string()).collect();
        let all_wipeable =
            !dev.reject_reasons.is_empty() && dev.reject_reasons.iter().all(wipe_fixes);
        match (all_wipeable, wipe) {
            (true, true) => DeviceState::Wipe { reasons },
            (true, false) => DeviceState::NeedsWipe { reasons },
            (false, _) => DeviceState::Unusable {
                reasons: dev
                    .reject_reasons
                    .iter()
                    .filter(|r| !wipe_fixes(r))
                    .map(|r| r.to_string())
                    .collect(),
            },
        }
    };
    PlannedDevice {
        requested: name.to_string(),
        path,
        id: dev.stable_id().to_string(),
        kernel_name: Some(dev.name.clone()),
        class,
        class_source,
        size_bytes: Some(dev.size_bytes),
        state,
    }
}

/// `6.8.0-45-generic` -> (6, 8).
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}
