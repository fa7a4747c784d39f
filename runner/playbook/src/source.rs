//! The inventory as the executor's [`HostSource`]: Ansible patterns resolved by the inventory
//! crate, with `--limit` (including `@retry-file`) applied to every play.
//!
//! Precedence note: the inventory crate already merges group vars below host vars, so the
//! executor sees the inventory as one layer (the lowest).

use std::collections::BTreeMap;

use rookery_inventory::Inventory;

use crate::executor::{HostSource, TargetHost};

pub struct InventorySource<'a> {
    pub inventory: &'a Inventory,
    pub limit: Option<String>,
}

impl HostSource for InventorySource<'_> {
    fn select(&self, pattern: &str) -> Result<Vec<TargetHost>, String> {
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
