//! Ansible-compatible inventories: YAML and INI formats, `group_vars/` and `host_vars/`,
//! host patterns, and the connection settings (`ansible_*` variables) each host resolves to.
//!
//! CONTRACT (used by the transport, playbook and stack crates; extend, don't break):
//! - `Inventory::load(path) -> Result<Inventory, InventoryError>`
//! - `Inventory::hosts() -> &[Host]` in file order; `Inventory::host(name)`
//! - `Inventory::select(pattern) -> Result<Vec<&Host>, InventoryError>` (Ansible patterns)
//! - `Host { name, groups, vars, connection: ConnectionSpec }`
//!
//! Additions: `Inventory::select_limited(pattern, limit)`, `groups()`, `group()`,
//! `warnings()`, `sources()`, `Host::var_origins`, `redact`, `Location`, `Warning`.

mod builder;
mod connection;
mod error;
mod hostrange;
mod ini;
mod load;
mod pattern;
mod shell;
mod vars;
mod yaml;
mod yaml_inventory;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub use connection::*;
pub use error::{InventoryError, Location, Warning};
pub use vars::{HONOURED_VARS, REDACTED, is_secret_name, redact};

/// One host with everything resolved.
#[derive(Debug, Clone)]
pub struct Host {
    /// The inventory name (Ansible's `inventory_hostname`).
    pub name: String,
    /// Every group the host belongs to, directly or through child groups, sorted, without
    /// `all` (Ansible's `group_names`).
    pub groups: Vec<String>,
    /// Variables after precedence (see `vars.rs`), YAML/INI values as JSON.
    pub vars: Map<String, Value>,
    /// Where each variable's winning value was set.
    pub var_origins: BTreeMap<String, Location>,
    pub connection: ConnectionSpec,
}

/// One group as written (after the implicit `all`/`ungrouped` were added).
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    /// Direct child groups, in file order.
    pub children: Vec<String>,
    /// Direct member hosts, in inventory order.
    pub hosts: Vec<String>,
    /// The group's own variables (inventory file, then `group_vars/` files).
    pub vars: Map<String, Value>,
    /// Distance from `all` along the longest path (Ansible's group depth).
    pub depth: usize,
}

#[derive(Debug, Clone)]
pub struct Inventory {
    sources: Vec<PathBuf>,
    hosts: Vec<Host>,
    groups: Vec<Group>,
    warnings: Vec<Warning>,
    host_index: HashMap<String, usize>,
    group_index: HashMap<String, usize>,
}

impl Inventory {
    /// Load an inventory file (YAML or INI, detected by extension and content) or a
    /// directory of them, with the `group_vars/` and `host_vars/` beside it.
    pub fn load(path: impl AsRef<Path>) -> Result<Inventory, InventoryError> {
        load::load(path.as_ref())
    }

    /// Parse inventory text as if it were the file `path` (no `group_vars/` lookup).
    pub fn from_str_at(text: &str, path: impl AsRef<Path>) -> Result<Inventory, InventoryError> {
        load::load_text(text, path.as_ref())
    }

    pub(crate) fn new(
        sources: Vec<PathBuf>,
        hosts: Vec<Host>,
        groups: Vec<Group>,
        warnings: Vec<Warning>,
    ) -> Self {
        let host_index = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.clone(), i))
            .collect();
        let group_index = groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.name.clone(), i))
            .collect();
        Inventory {
            sources,
            hosts,
            groups,
            warnings,
            host_index,
            group_index,
        }
    }

    /// Hosts in inventory (file) order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    pub(crate) fn host_position(&self, name: &str) -> Option<usize> {
        self.host_index.get(name).copied()
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.host_index.get(name).map(|i| &self.hosts[*i])
    }

    /// Groups in the order first seen (`all` and `ungrouped` first).
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.group_index.get(name).map(|i| &self.groups[*i])
    }

    /// Hosts of a group and all its descendants, in inventory order.
    pub fn group_hosts(&self, name: &str) -> Vec<&Host> {
        let mut members = std::collections::HashSet::new();
        let mut todo = vec![name];
        let mut seen = std::collections::HashSet::new();
        while let Some(g) = todo.pop() {
            if !seen.insert(g) {
                continue;
            }
            if let Some(group) = self.group(g) {
                members.extend(group.hosts.iter().map(String::as_str));
                todo.extend(group.children.iter().map(String::as_str));
            }
        }
        if name == "all" {
            return self.hosts.iter().collect();
        }
        self.hosts
            .iter()
            .filter(|h| members.contains(h.name.as_str()))
            .collect()
    }

    /// Things Ansible would accept but that deserve a look (unused `ansible_*` variables,
    /// duplicate keys, vars files for unknown groups).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// The files that were read, in order.
    pub fn sources(&self) -> &[PathBuf] {
        &self.sources
    }

    /// Hosts matching an Ansible host pattern, in inventory order, without duplicates.
    /// A term naming no host or group is an error (Ansible only warns), because a typo in
    /// `--limit` would otherwise silently select the wrong hosts.
    pub fn select(&self, pattern: &str) -> Result<Vec<&Host>, InventoryError> {
        pattern::select(self, pattern)
    }

    /// `select(pattern)` narrowed by an optional `--limit` pattern (itself a pattern, which
    /// may name a `@retry-file`).
    pub fn select_limited(
        &self,
        pattern: &str,
        limit: Option<&str>,
    ) -> Result<Vec<&Host>, InventoryError> {
        let hosts = self.select(pattern)?;
        let Some(limit) = limit else {
            return Ok(hosts);
        };
        let allowed: std::collections::HashSet<&str> = self
            .select(limit)?
            .into_iter()
            .map(|h| h.name.as_str())
            .collect();
        Ok(hosts
            .into_iter()
            .filter(|h| allowed.contains(h.name.as_str()))
            .collect())
    }
}
