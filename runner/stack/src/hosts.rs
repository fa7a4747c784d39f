//! Planned nodes and devices: the stack's storage section resolved against the inventory and
//! what the probe saw on each host.
//!
//! This is the "parse, then validate into stronger types" step: a device named in the stack
//! becomes a [`PlannedDevice`] with a stable id, a device class and a verdict. Validation
//! rules and rendering both work from this one resolution, so what `plan` checks is what
//! `render` writes. Facts come from `rookery probe -o json` output (`--facts`) or a live probe;
//! without them the stack's devices are taken as given and marked unverified.
//!
//! Which probed device a name, serial, WWN or rule means is decided by rookery-devices
//! (`rookery_devices::select`), the same code `rookery prepare` uses, so the plan and the
//! preparation can never pick different disks. This module only adds the stack's view: the
//! precedence between the stack and the inventory, and whether Rook could use each device.
//!
//! Precedence, per inventory host: the stack's explicit `nodes` entry for it wins; else the
//! stack's `deviceSelection` (or `useAllNodes` + `useAllDevices`) when it covers the host;
//! else the host's `rookery_devices` inventory variable.

use std::path::{Path, PathBuf};

use rookery_devices::select::{self as devsel, Resolution};
use rookery_devices::spec::{Rules, Selection, Selector};
use rookery_proto::DeviceClass;
use rookery_proto::device::BlockDevice;
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
    /// The host's `rookery_devices` inventory variable, already parsed
    /// (`rookery_devices::parse_host_specs`). Used only when the stack names no devices for
    /// this host (see the module docs for the precedence).
    pub devices: Vec<Selection>,
}

impl HostInput {
    /// A host without facts or inventory device entries.
    pub fn new(name: impl Into<String>) -> Self {
        HostInput {
            name: name.into(),
            facts: None,
            probe_status: None,
            devices: Vec::new(),
        }
    }
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
    #[error("{}:{line}:{column}: {key_path}: not a `rookery probe -o json` document", .path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        key_path: String,
        #[source]
        source: serde_json::Error,
    },
}

impl rookery_diagnostic::Diagnostic for FactsError {
    fn exit_code(&self) -> u8 {
        rookery_diagnostic::exit::INPUT
    }
}

/// Load a `--facts` file.
pub fn load_probe_report(path: &Path) -> Result<ProbeReport, FactsError> {
    let text = std::fs::read_to_string(path).map_err(|source| FactsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_probe_report(&text, path)
}

/// Parse the text of a `--facts` file (`path` only labels errors). Pure, so it is fuzzed.
pub fn parse_probe_report(text: &str, path: &Path) -> Result<ProbeReport, FactsError> {
    let mut de = serde_json::Deserializer::from_str(text);
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
    /// The host's `rookery_devices` inventory variable.
    Inventory,
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
    /// The name matches several devices (e.g. a serial two disks share): never guessed.
    Ambiguous { candidates: Vec<String> },
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
    /// The stack (or `rookery_devices`) entry allows wiping it (`wipe: true`); what
    /// `rookery prepare --stack` passes on as consent-to-ask.
    #[serde(skip)]
    pub wipe: bool,
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
    /// Inventory hosts whose `rookery_devices` need facts (serial, WWN, rules) and have none.
    #[serde(skip)]
    pub inventory_without_facts: Vec<String>,
    /// `deviceSelection.deviceClasses` entries no probe can report (not nvme/ssd/hdd).
    #[serde(skip)]
    pub unknown_selection_classes: Vec<String>,
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
    let named_by_stack = |nodes: &[PlannedNode], host: &HostInput| {
        nodes.iter().any(|n| {
            n.host() == Some(host.name.as_str())
                || host
                    .facts
                    .as_ref()
                    .is_some_and(|f| n.name.eq_ignore_ascii_case(&f.hostname))
        })
    };

    let mut selection_without_facts = false;
    let mut unknown_selection_classes = Vec::new();
    let selection = storage.device_selection.as_ref();
    let use_all = storage.use_all_nodes && storage.use_all_devices;
    let mut covered_by_selection: Vec<&str> = Vec::new();
    if selection.is_some() || use_all {
        let path = if selection.is_some() {
            "cephCluster.storage.deviceSelection"
        } else {
            "cephCluster.storage.useAllDevices"
        };
        let (rules, unknown) = selection_rules(selection, path);
        unknown_selection_classes = unknown;
        for host in hosts {
            if let Some(sel) = selection_hosts
                && !sel.iter().any(|s| s == &host.name)
            {
                continue;
            }
            if named_by_stack(&nodes, host) {
                continue;
            }
            covered_by_selection.push(&host.name);
            let Some(facts) = &host.facts else {
                selection_without_facts = true;
                continue;
            };
            let picked = devsel::select(&host.name, facts, &rules, false);
            let devices: Vec<PlannedDevice> = picked
                .picks
                .iter()
                .filter_map(|p| facts.block_devices.get(p.index))
                .map(|d| planned_from_probe(d.path.clone(), path.to_string(), None, false, d))
                // Rules take only devices Rook would use as they are.
                .filter(|d| d.state == DeviceState::Available)
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

    let mut inventory_without_facts = Vec::new();
    for host in hosts {
        if host.devices.is_empty()
            || covered_by_selection.contains(&host.name.as_str())
            || named_by_stack(&nodes, host)
        {
            continue;
        }
        let path = format!("inventory.{}.{}", host.name, rookery_devices::spec::VAR);
        let Some(facts) = &host.facts else {
            // Without facts only `/dev` names can be carried through, as given.
            let mut devices = Vec::new();
            for sel in &host.devices {
                match &sel.selector {
                    Selector::Name(n) => devices.push(PlannedDevice {
                        requested: n.clone(),
                        path: format!("inventory.{}.{}", host.name, sel.origin),
                        id: n.clone(),
                        kernel_name: None,
                        class: None,
                        class_source: ClassSource::Unknown,
                        size_bytes: None,
                        state: DeviceState::Unverified,
                        wipe: sel.wipe,
                    }),
                    _ => {
                        if !inventory_without_facts.contains(&host.name) {
                            inventory_without_facts.push(host.name.clone());
                        }
                    }
                }
            }
            if !devices.is_empty() {
                nodes.push(PlannedNode {
                    name: host.name.clone(),
                    path,
                    origin: NodeOrigin::Inventory,
                    matched: NodeMatch::InventoryOnly {
                        host: host.name.clone(),
                    },
                    kernel: None,
                    devices,
                });
            }
            continue;
        };
        let devices = plan_inventory_devices(host, facts);
        if !devices.is_empty() {
            nodes.push(PlannedNode {
                name: facts.hostname.to_ascii_lowercase(),
                path,
                origin: NodeOrigin::Inventory,
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
        inventory_without_facts,
        unknown_selection_classes,
    }
}

/// The stack's `deviceSelection` as rookery-devices rules: one rule per class (a device
/// matches if any rule does), never allowing a wipe. Also returns class names no probe can
/// report, which would otherwise silently select nothing.
fn selection_rules(
    selection: Option<&crate::model::DeviceSelection>,
    origin: &str,
) -> (Vec<Selection>, Vec<String>) {
    let min_size = selection
        .and_then(|s| s.min_size_gib)
        .map(|g| g.saturating_mul(1 << 30));
    let rule = |class: Option<DeviceClass>| Selection {
        selector: Selector::Rules(Rules {
            class,
            min_size,
            all: class.is_none() && min_size.is_none(),
            ..Rules::default()
        }),
        wipe: false,
        origin: origin.to_string(),
    };
    let classes = selection
        .map(|s| s.device_classes.as_slice())
        .unwrap_or(&[]);
    if classes.is_empty() {
        return (vec![rule(None)], Vec::new());
    }
    let mut rules = Vec::new();
    let mut unknown = Vec::new();
    for c in classes {
        match [DeviceClass::Nvme, DeviceClass::Ssd, DeviceClass::Hdd]
            .into_iter()
            .find(|k| k.as_str() == c)
        {
            Some(k) => rules.push(rule(Some(k))),
            None => unknown.push(c.clone()),
        }
    }
    (rules, unknown)
}

/// A host's `rookery_devices` entries resolved against its facts by rookery-devices. A
/// named entry that matches nothing (or several devices) becomes a Missing (Ambiguous)
/// device so validation reports it like a stack device.
fn plan_inventory_devices(host: &HostInput, facts: &HostFacts) -> Vec<PlannedDevice> {
    let key = |origin: &str| format!("inventory.{}.{origin}", host.name);
    let picked = devsel::select(&host.name, facts, &host.devices, false);
    let mut devices: Vec<PlannedDevice> = picked
        .picks
        .iter()
        .filter_map(|p| {
            let d = facts.block_devices.get(p.index)?;
            // `selected_by` is "origin (description)": the first picking entry names it.
            let origin = host
                .devices
                .iter()
                .find(|s| {
                    p.selected_by
                        .iter()
                        .any(|b| b.starts_with(&format!("{} (", s.origin)))
                })
                .map(|s| s.origin.as_str())
                .unwrap_or(rookery_devices::spec::VAR);
            Some(planned_from_probe(
                d.path.clone(),
                key(origin),
                None,
                p.wipe_allowed,
                d,
            ))
        })
        .collect();
    for problem in picked.problems {
        let requested = host
            .devices
            .iter()
            .find(|s| s.origin == problem.origin)
            .map(|s| s.describe())
            .unwrap_or_else(|| problem.origin.clone());
        devices.push(PlannedDevice {
            requested: requested.clone(),
            path: key(&problem.origin),
            id: requested,
            kernel_name: None,
            class: None,
            class_source: ClassSource::Unknown,
            size_bytes: None,
            state: if problem.candidates.is_empty() {
                DeviceState::Missing
            } else {
                DeviceState::Ambiguous {
                    candidates: problem.candidates,
                }
            },
            wipe: host
                .devices
                .iter()
                .find(|s| s.origin == problem.origin)
                .is_some_and(|s| s.wipe),
        });
    }
    devices
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

/// Find the one device the stack names (`/dev/sdb`, `sdb`, a by-id or by-path link).
/// `None` also when the name is ambiguous; [`plan_cluster`] reports that case.
pub fn find_device<'a>(facts: &'a HostFacts, name: &str) -> Option<&'a BlockDevice> {
    match devsel::resolve_named(facts, &Selector::Name(name.to_string())) {
        Resolution::One(_, d) => Some(d),
        Resolution::None | Resolution::Many => None,
    }
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
            wipe,
        };
    };
    let selector = Selector::Name(name.to_string());
    let unresolved = |state: DeviceState| PlannedDevice {
        requested: name.to_string(),
        path: path.clone(),
        id: name.to_string(),
        kernel_name: None,
        class: class.clone(),
        class_source,
        size_bytes: None,
        state,
        wipe,
    };
    match devsel::resolve_named(facts, &selector) {
        Resolution::One(_, dev) => {
            planned_from_probe(name.to_string(), path.clone(), config_class, wipe, dev)
        }
        Resolution::None => unresolved(DeviceState::Missing),
        Resolution::Many => unresolved(DeviceState::Ambiguous {
            candidates: devsel::named_candidates(facts, &selector),
        }),
    }
}

/// A probed device as the stack sees it: stable id, class (the stack's `deviceClass` wins
/// over the probe's), and whether Rook could use it as is, after a wipe, or never.
fn planned_from_probe(
    requested: String,
    path: String,
    config_class: Option<&str>,
    wipe: bool,
    dev: &BlockDevice,
) -> PlannedDevice {
    let (class, class_source) = match config_class {
        Some(c) => (Some(c.to_string()), ClassSource::Stack),
        None => (Some(dev.class.as_str().to_string()), ClassSource::Probe),
    };
    let state = if dev.available {
        DeviceState::Available
    } else {
        let reasons: Vec<String> = dev.reject_reasons.iter().map(|r| r.to_string()).collect();
        let all_wipeable =
            !dev.reject_reasons.is_empty() && dev.reject_reasons.iter().all(devsel::wipe_fixes);
        match (all_wipeable, wipe) {
            (true, true) => DeviceState::Wipe { reasons },
            (true, false) => DeviceState::NeedsWipe { reasons },
            (false, _) => DeviceState::Unusable {
                reasons: dev
                    .reject_reasons
                    .iter()
                    .filter(|r| !devsel::wipe_fixes(r))
                    .map(|r| r.to_string())
                    .collect(),
            },
        }
    };
    PlannedDevice {
        requested,
        path,
        id: dev.stable_id().to_string(),
        kernel_name: Some(dev.name.clone()),
        class,
        class_source,
        size_bytes: Some(dev.size_bytes),
        state,
        wipe,
    }
}

/// The devices `rookery prepare --stack` (and the `prepare_devices` module's `stack:`) prepare
/// on inventory host `host`: every device the plan put on that host's node, named by the
/// stable id the plan resolved (or, when it could not resolve one, by what the stack asked
/// for, so the prepare plan reports the same missing or ambiguous device), with the entry's
/// `wipe`. The origin is the stack key path, so errors point into the stack.
pub fn prepare_selections(cluster: &PlannedCluster, host: &str) -> Vec<Selection> {
    cluster
        .nodes
        .iter()
        .filter(|n| n.host() == Some(host))
        .flat_map(|n| n.devices.iter())
        .map(|d| {
            let name = match (&d.state, &d.kernel_name) {
                (
                    DeviceState::Missing | DeviceState::Ambiguous { .. } | DeviceState::Unverified,
                    _,
                )
                | (_, None) => d.requested.clone(),
                _ => d.id.clone(),
            };
            Selection {
                selector: Selector::Name(name),
                wipe: d.wipe,
                origin: d.path.clone(),
            }
        })
        .collect()
}

/// `6.8.0-45-generic` -> (6, 8).
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}
