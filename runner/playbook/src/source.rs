//! The inventory as the executor's [`HostSource`]: Ansible patterns resolved by the inventory
//! crate, with `--limit` (including `@retry-file`) applied to every play.
//!
//! `hosts: localhost` works without a localhost entry (Ansible's implicit localhost).
//!
//! Precedence note: the inventory crate already merges group vars below host vars, so the
//! executor sees the inventory as one layer (the lowest).

use std::collections::BTreeMap;

use rookery_inventory::Inventory;
use serde_json::Map;

use crate::executor::{HostSource, TargetHost};

pub struct InventorySource<'a> {
    pub inventory: &'a Inventory,
    pub limit: Option<String>,
}

/// Ansible's implicit `localhost`: a play for `hosts: localhost` runs on the control
/// machine even when the inventory does not list it.
fn implicit_localhost() -> Result<TargetHost, String> {
    let inv = Inventory::from_str_at(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n",
        "(implicit localhost)",
    )
    .map_err(|e| e.to_string())?;
    let h = inv
        .host("localhost")
        .ok_or_else(|| "implicit localhost missing".to_string())?;
    Ok(TargetHost {
        name: h.name.clone(),
        groups: vec![],
        vars: Map::new(),
        connection: h.connection.clone(),
    })
}

impl HostSource for InventorySource<'_> {
    fn select(&self, pattern: &str) -> Result<Vec<TargetHost>, String> {
        let p = pattern.trim();
        if crate::language::is_localhost(p)
            && self.inventory.host(p).is_none()
            && self
                .limit
                .as_deref()
                .is_none_or(crate::language::is_localhost)
        {
            return Ok(vec![implicit_localhost()?]);
        }
        let hosts = self
            .inventory
            .select_limited(pattern, self.limit.as_deref())
            .map_err(|e| e.to_string())?;
        Ok(hosts
            .into_iter()
            .map(|h| TargetHost {
                name: h.name.clone(),
                groups: h.groups.clone(),
                vars: h.vars.clone(),
                connection: h.connection.clone(),
            })
            .collect())
    }

    fn groups(&self) -> BTreeMap<String, Vec<String>> {
        self.inventory
            .groups()
            .iter()
            .map(|g| {
                (
                    g.name.clone(),
                    self.inventory
                        .group_hosts(&g.name)
                        .into_iter()
                        .map(|h| h.name.clone())
                        .collect(),
                )
            })
            .collect()
    }
}
