//! Ansible-compatible inventories: YAML and INI formats, `group_vars/` and `host_vars/`,
//! host patterns, and the connection settings (`ansible_*` variables) each host resolves to.
//!
//! CONTRACT (used by the transport, playbook and stack crates; extend, don't break):
//! - `Inventory::load(path) -> Result<Inventory, InventoryError>`
//! - `Inventory::hosts() -> &[Host]` in file order; `Inventory::host(name)`
//! - `Inventory::select(pattern) -> Result<Vec<&Host>, InventoryError>` (Ansible patterns)
//! - `Host { name, groups, vars, connection: ConnectionSpec }`

mod connection;

pub use connection::*;
