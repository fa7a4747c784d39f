//! The inventory while it is being read: groups, hosts and their variables from every source
//! file, kept with the position each came from. `finish` reconciles it the way Ansible's
//! `InventoryData.reconcile_inventory` does (implicit `all`/`ungrouped`, ancestors, depth) and
//! resolves each host's variables and connection.

use std::collections::{BTreeSet, HashMap};

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::error::{InventoryError, Location, Source, Warning};
use crate::vars::{VarCheck, check_var_name};
use crate::{ConnectionSpec, Group, Host, Inventory};

#[derive(Debug, Clone)]
pub(crate) struct Var {
    pub value: Value,
    pub loc: Location,
}

pub(crate) type VarMap = IndexMap<String, Var>;

/// Where a variable was set; see the precedence list in `vars.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layer {
    /// In the inventory file itself.
    Inline,
    /// In a `group_vars/` or `host_vars/` file.
    File,
}

#[derive(Debug, Default)]
struct GroupB {
    /// `ansible_group_priority` from the inventory file: consumed, not a variable (Ansible's
    /// `Group.set_variable`); in `group_vars/` files it is an ordinary variable.
    priority: Option<i64>,
    children: Vec<String>,
    hosts: Vec<String>,
    vars: VarMap,
    file_vars: VarMap,
}

#[derive(Debug)]
struct HostB {
    vars: VarMap,
    file_vars: VarMap,
}

#[derive(Debug, Default)]
pub(crate) struct Builder {
    groups: IndexMap<String, GroupB>,
    hosts: IndexMap<String, HostB>,
    warnings: Vec<Warning>,
    warned_vars: BTreeSet<String>,
}

impl Builder {
    pub fn new() -> Self {
        let mut b = Builder::default();
        b.add_group("all");
        b.add_child("all", "ungrouped");
        b
    }

    pub fn add_group(&mut self, name: &str) {
        self.groups.entry(name.to_owned()).or_default();
    }

    pub fn has_group(&self, name: &str) -> bool {
        self.groups.contains_key(name)
    }

    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    pub fn host_names(&self) -> impl Iterator<Item = &str> {
        self.hosts.keys().map(String::as_str)
    }

    pub fn add_child(&mut self, parent: &str, child: &str) {
        self.add_group(child);
        let g = self.groups.entry(parent.to_owned()).or_default();
        if !g.children.iter().any(|c| c == child) {
            g.children.push(child.to_owned());
        }
    }

    /// Add a host (if new) and make it a direct member of `group`.
    pub fn add_host(&mut self, name: &str, group: &str) {
        self.hosts.entry(name.to_owned()).or_insert_with(|| HostB {
            vars: VarMap::new(),
            file_vars: VarMap::new(),
        });
        let g = self.groups.entry(group.to_owned()).or_default();
        if !g.hosts.iter().any(|h| h == name) {
            g.hosts.push(name.to_owned());
        }
    }

    pub fn warn(&mut self, location: Option<Location>, message: impl Into<String>) {
        self.warnings.push(Warning {
            location,
            message: message.into(),
        });
    }

    /// Reject misspelt `ansible_*` names; note ones rookery ignores (once per name).
    pub fn check_var(
        &mut self,
        src: &Source,
        line: usize,
        col: usize,
        key_path: &str,
        name: &str,
    ) -> Result<(), InventoryError> {
        match check_var_name(name) {
            VarCheck::Fine => Ok(()),
            VarCheck::Ignored => {
                if self.warned_vars.insert(name.to_owned()) {
                    self.warn(
                        Some(src.location(line, col)),
                        format!("variable `{name}` is not used by rookery"),
                    );
                }
                Ok(())
            }
            VarCheck::Typo(near) => Err(src.invalid(
                line,
                col,
                key_path,
                format!(
                    "unknown Ansible variable `{name}`{}",
                    crate::error::did_you_mean(&near)
                ),
            )),
        }
    }

    pub fn set_group_var(&mut self, group: &str, name: &str, var: Var, layer: Layer) {
        let g = self.groups.entry(group.to_owned()).or_default();
        if layer == Layer::Inline && name == "ansible_group_priority" {
            g.priority = match &var.value {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            return;
        }
        let map = match layer {
            Layer::Inline => &mut g.vars,
            Layer::File => &mut g.file_vars,
        };
        map.insert(name.to_owned(), var);
    }

    pub fn set_host_var(&mut self, host: &str, name: &str, var: Var, layer: Layer) {
        if let Some(h) = self.hosts.get_mut(host) {
            let map = match layer {
                Layer::Inline => &mut h.vars,
                Layer::File => &mut h.file_vars,
            };
            map.insert(name.to_owned(), var);
        }
    }

    /// Reconcile groups and resolve every host.
    pub fn finish(mut self, sources: Vec<std::path::PathBuf>) -> Result<Inventory, InventoryError> {
        // Every group without a parent hangs under `all` (Ansible: reconcile_inventory).
        let mut has_parent: BTreeSet<String> = BTreeSet::new();
        for g in self.groups.values() {
            has_parent.extend(g.children.iter().cloned());
        }
        let orphans: Vec<String> = self
            .groups
            .keys()
            .filter(|n| n.as_str() != "all" && !has_parent.contains(n.as_str()))
            .cloned()
            .collect();
        for o in orphans {
            self.add_child("all", &o);
        }
        self.check_cycles()?;

        let parents = self.parents();
        let depth = self.depths(&parents);

        // Direct memberships, then ungrouped fix-up.
        let mut direct: HashMap<String, Vec<String>> = HashMap::new();
        for (gname, g) in &self.groups {
            for h in &g.hosts {
                direct.entry(h.clone()).or_default().push(gname.clone());
            }
        }
        for hname in self.hosts.keys() {
            let groups = direct.entry(hname.clone()).or_default();
            let real = groups.iter().any(|g| g != "all" && g != "ungrouped");
            if real {
                groups.retain(|g| g != "ungrouped");
            } else if !groups.iter().any(|g| g == "ungrouped") {
                groups.push("ungrouped".to_owned());
            }
        }
        // Keep each group's own insertion order (ansible-inventory prints hosts that way);
        // only `ungrouped` changes.
        let in_ungrouped: Vec<String> = self
            .hosts
            .keys()
            .filter(|h| direct[h.as_str()].iter().any(|g| g == "ungrouped"))
            .cloned()
            .collect();
        if let Some(ug) = self.groups.get_mut("ungrouped") {
            ug.hosts.retain(|h| in_ungrouped.contains(h));
            for h in in_ungrouped {
                if !ug.hosts.contains(&h) {
                    ug.hosts.push(h);
                }
            }
        }

        let priority = |g: &GroupB| g.priority.unwrap_or(1);

        let mut hosts = Vec::with_capacity(self.hosts.len());
        for (hname, hb) in &self.hosts {
            let mut ancestors: BTreeSet<String> = BTreeSet::new();
            let mut todo: Vec<String> = direct[hname].clone();
            while let Some(g) = todo.pop() {
                if ancestors.insert(g.clone()) {
                    todo.extend(parents.get(&g).cloned().unwrap_or_default());
                }
            }
            ancestors.insert("all".to_owned());
            let mut sorted: Vec<&String> = ancestors.iter().filter(|g| *g != "all").collect();
            sorted.sort_by_key(|g| {
                let gb = &self.groups[g.as_str()];
                (
                    depth.get(g.as_str()).copied().unwrap_or(0),
                    priority(gb),
                    (*g).clone(),
                )
            });
            let all = &self.groups["all"];
            let mut layers: Vec<&VarMap> = vec![&all.vars];
            layers.extend(sorted.iter().map(|g| &self.groups[g.as_str()].vars));
            layers.push(&all.file_vars);
            layers.extend(sorted.iter().map(|g| &self.groups[g.as_str()].file_vars));
            layers.push(&hb.vars);
            layers.push(&hb.file_vars);
            let mut resolved: IndexMap<String, Var> = IndexMap::new();
            for layer in layers {
                for (k, v) in layer {
                    resolved.insert(k.clone(), v.clone());
                }
            }
            resolved.sort_keys();
            let vars: Map<String, Value> = resolved
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect();
            let origins = resolved
                .iter()
                .map(|(k, v)| (k.clone(), v.loc.clone()))
                .collect();
            let connection = ConnectionSpec::from_vars(hname, &vars, &origins)?;
            hosts.push(Host {
                name: hname.clone(),
                groups: sorted
                    .into_iter()
                    .cloned()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                vars,
                var_origins: origins,
                connection,
            });
        }

        let groups = self
            .groups
            .iter()
            .map(|(name, g)| {
                let mut vars = Map::new();
                for (k, v) in g.vars.iter().chain(g.file_vars.iter()) {
                    vars.insert(k.clone(), v.value.clone());
                }
                Group {
                    name: name.clone(),
                    children: g.children.clone(),
                    hosts: g.hosts.clone(),
                    vars,
                    depth: depth.get(name.as_str()).copied().unwrap_or(0),
                }
            })
            .collect();

        Ok(Inventory::new(sources, hosts, groups, self.warnings))
    }

    fn parents(&self) -> HashMap<String, Vec<String>> {
        let mut parents: HashMap<String, Vec<String>> = HashMap::new();
        for (name, g) in &self.groups {
            for c in &g.children {
                parents.entry(c.clone()).or_default().push(name.clone());
            }
        }
        parents
    }

    /// Longest distance from `all` (Ansible's group depth), used to order group vars.
    fn depths(&self, parents: &HashMap<String, Vec<String>>) -> HashMap<String, usize> {
        fn depth_of(
            g: &str,
            parents: &HashMap<String, Vec<String>>,
            memo: &mut HashMap<String, usize>,
        ) -> usize {
            if let Some(d) = memo.get(g) {
                return *d;
            }
            let d = parents
                .get(g)
                .map(|ps| {
                    ps.iter()
                        .map(|p| depth_of(p, parents, memo) + 1)
                        .max()
                        .unwrap_or(0)
                })
                .unwrap_or(0);
            memo.insert(g.to_owned(), d);
            d
        }
        let mut memo = HashMap::new();
        for g in self.groups.keys() {
            depth_of(g, parents, &mut memo);
        }
        memo
    }

    fn check_cycles(&self) -> Result<(), InventoryError> {
        // Iterative DFS with colours; the path gives the cycle for the message.
        fn visit<'a>(
            b: &'a Builder,
            g: &'a str,
            path: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
        ) -> Result<(), InventoryError> {
            if let Some(pos) = path.iter().position(|p| *p == g) {
                let mut cycle: Vec<String> = path[pos..].iter().map(|s| s.to_string()).collect();
                cycle.push(g.to_owned());
                return Err(InventoryError::Cycle {
                    group: g.to_owned(),
                    cycle,
                });
            }
            if done.contains(g) {
                return Ok(());
            }
            path.push(g);
            if let Some(gb) = b.groups.get(g) {
                for c in &gb.children {
                    visit(b, c, path, done)?;
                }
            }
            path.pop();
            done.insert(g);
            Ok(())
        }
        let mut done = BTreeSet::new();
        for g in self.groups.keys() {
            visit(self, g, &mut Vec::new(), &mut done)?;
        }
        Ok(())
    }
}
