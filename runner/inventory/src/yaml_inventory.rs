//! Ansible's YAML inventory format (the `yaml` inventory plugin): top-level groups, each a
//! mapping of `hosts`, `children` and `vars`. Ansible only warns about other keys in a group;
//! here they are errors (`host:` for `hosts:` silently drops hosts), with a suggestion.
//! Host and group variable names are free, except misspelt `ansible_*` connection variables.

use std::collections::HashSet;

use crate::builder::{Builder, Layer, Var};
use crate::error::{InventoryError, Source, did_you_mean, near_matches};
use crate::hostrange::parse_host_pattern;
use crate::yaml::{Node, NodeKind};

const GROUP_KEYS: &[&str] = &["hosts", "children", "vars"];

pub(crate) fn load(
    src: &Source,
    root: Option<Node>,
    b: &mut Builder,
) -> Result<(), InventoryError> {
    let Some(root) = root else {
        return Ok(());
    };
    if root.is_null() {
        return Ok(());
    }
    let Some(pairs) = root.as_map() else {
        return Err(src.invalid(
            root.line,
            root.col,
            "",
            format!(
                "an inventory must be a mapping of group names (usually `all:`), found {}",
                root.describe()
            ),
        ));
    };
    if let Some((k, _)) = pairs.iter().find(|(k, _)| k.as_str() == Some("plugin")) {
        return Err(src.invalid(
            k.line,
            k.col,
            "plugin",
            "this is an inventory plugin configuration; rookery reads only static YAML and INI inventories",
        ));
    }
    check_duplicates(src, b, pairs, "");
    for (k, v) in pairs {
        let name = key_name(src, k, "")?;
        parse_group(src, b, name, v, name)?;
    }
    Ok(())
}

fn key_name<'a>(src: &Source, k: &'a Node, path: &str) -> Result<&'a str, InventoryError> {
    match &k.kind {
        NodeKind::Scalar { text, .. } if !text.is_empty() => Ok(text),
        _ => Err(src.invalid(
            k.line,
            k.col,
            path,
            format!("expected a name here, found {}", k.describe()),
        )),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn check_duplicates(src: &Source, b: &mut Builder, pairs: &[(Node, Node)], path: &str) {
    let mut seen = HashSet::new();
    for (k, _) in pairs {
        if let Some(name) = k.as_str()
            && !seen.insert(name)
        {
            b.warn(
                Some(src.location(k.line, k.col)),
                format!(
                    "{}: duplicate key `{name}`; the last one wins",
                    if path.is_empty() { "(top level)" } else { path }
                ),
            );
        }
    }
}

fn parse_group(
    src: &Source,
    b: &mut Builder,
    name: &str,
    node: &Node,
    path: &str,
) -> Result<(), InventoryError> {
    b.add_group(name);
    if node.is_null() {
        return Ok(());
    }
    let Some(pairs) = node.as_map() else {
        return Err(src.invalid(
            node.line,
            node.col,
            path,
            format!(
                "group `{name}` must be a mapping with `hosts`, `children` or `vars`, found {}",
                node.describe()
            ),
        ));
    };
    check_duplicates(src, b, pairs, path);
    for (k, v) in pairs {
        let key = key_name(src, k, path)?;
        let kpath = join(path, key);
        if !GROUP_KEYS.contains(&key) {
            let near = near_matches(key, GROUP_KEYS.iter().copied());
            return Err(src.invalid(
                k.line,
                k.col,
                kpath,
                format!(
                    "unknown key `{key}` in group `{name}` (a group has only `hosts`, `children` and `vars`){}",
                    did_you_mean(&near)
                ),
            ));
        }
        if v.is_null() {
            continue;
        }
        // Ansible accepts a bare string as a one-entry mapping (`hosts: web1`).
        let single;
        let entries: &[(Node, Node)] = match &v.kind {
            NodeKind::Map(p) => p,
            NodeKind::Scalar { .. } => {
                single = [(v.clone(), v.null_here())];
                &single
            }
            NodeKind::Seq(_) => {
                let hint = match key {
                    "hosts" => "; write each host as `name:` (a mapping), not `- name`",
                    "children" => "; write each child group as `name:` (a mapping), not `- name`",
                    _ => "",
                };
                return Err(src.invalid(
                    v.line,
                    v.col,
                    kpath,
                    format!("`{key}` must be a mapping, found a list{hint}"),
                ));
            }
        };
        check_duplicates(src, b, entries, &kpath);
        match key {
            "vars" => {
                for (vk, vv) in entries {
                    let var = key_name(src, vk, &kpath)?;
                    let vpath = join(&kpath, var);
                    b.check_var(src, vk.line, vk.col, &vpath, var)?;
                    b.set_group_var(
                        name,
                        var,
                        Var {
                            value: vv.to_json(),
                            loc: src.location(vk.line, vk.col),
                        },
                        Layer::Inline,
                    );
                }
            }
            "children" => {
                for (ck, cv) in entries {
                    let child = key_name(src, ck, &kpath)?;
                    parse_group(src, b, child, cv, &join(&kpath, child))?;
                    b.add_child(name, child);
                }
            }
            _ => {
                for (hk, hv) in entries {
                    let pattern = key_name(src, hk, &kpath)?;
                    let hpath = join(&kpath, pattern);
                    let (hosts, port) = parse_host_pattern(pattern)
                        .map_err(|m| src.invalid(hk.line, hk.col, &hpath, m))?;
                    let host_vars = match &hv.kind {
                        _ if hv.is_null() => &[][..],
                        NodeKind::Map(p) => p.as_slice(),
                        _ => {
                            return Err(src.invalid(
                                hv.line,
                                hv.col,
                                &hpath,
                                format!(
                                    "host variables must be a mapping (`key: value`), found {}",
                                    hv.describe()
                                ),
                            ));
                        }
                    };
                    check_duplicates(src, b, host_vars, &hpath);
                    for host in &hosts {
                        b.add_host(host, name);
                        if let Some(port) = port {
                            b.set_host_var(
                                host,
                                "ansible_port",
                                Var {
                                    value: port.into(),
                                    loc: src.location(hk.line, hk.col),
                                },
                                Layer::Inline,
                            );
                        }
                        for (vk, vv) in host_vars {
                            let var = key_name(src, vk, &hpath)?;
                            b.check_var(src, vk.line, vk.col, &join(&hpath, var), var)?;
                            b.set_host_var(
                                host,
                                var,
                                Var {
                                    value: vv.to_json(),
                                    loc: src.location(vk.line, vk.col),
                                },
                                Layer::Inline,
                            );
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
