//! Reading inventory sources from disk: one file (format by extension, then by content) or
//! a directory of them (as Ansible does: sorted, skipping hidden files, backups and
//! `group_vars`/`host_vars`), then the `group_vars/` and `host_vars/` beside each source.

use std::path::{Path, PathBuf};

use crate::builder::{Builder, Layer, Var};
use crate::error::{InventoryError, Source};
use crate::{Inventory, ini, yaml, yaml_inventory};

/// Extensions Ansible skips in inventory directories (`INVENTORY_IGNORE_EXTS`).
const IGNORED_EXTS: &[&str] = &[
    "pyc", "pyo", "swp", "bak", "rpm", "md", "txt", "rst", "orig", "cfg", "retry",
];
/// Extensions tried for `group_vars/<name>` and `host_vars/<name>` (Ansible's
/// `YAML_FILENAME_EXTENSIONS`, after the bare name).
const VARS_EXTS: &[&str] = &["", ".yml", ".yaml", ".json"];

pub(crate) fn load(path: &Path) -> Result<Inventory, InventoryError> {
    // Ansible's `host_list` source: `-i 'web1,web2:2222,'` names hosts directly.
    if let Some(list) = path.to_str().filter(|s| s.contains(',') && !path.exists()) {
        return load_host_list(list);
    }
    let mut files = Vec::new();
    collect(path, &mut files)?;
    let mut b = Builder::new();
    for f in &files {
        let text = read(f)?;
        parse_into(&text, f, &mut b)?;
    }
    // group_vars/host_vars sit beside each source file (for a directory: inside it).
    let mut basedirs: Vec<PathBuf> = Vec::new();
    if path.is_dir() {
        basedirs.push(path.to_path_buf());
    }
    for f in &files {
        let dir = f.parent().map(Path::to_path_buf).unwrap_or_default();
        if !basedirs.contains(&dir) {
            basedirs.push(dir);
        }
    }
    for dir in &basedirs {
        load_vars_dirs(dir, &mut b)?;
    }
    b.finish(files)
}

pub(crate) fn load_text(text: &str, path: &Path) -> Result<Inventory, InventoryError> {
    let mut b = Builder::new();
    parse_into(text, path, &mut b)?;
    b.finish(vec![path.to_path_buf()])
}

fn load_host_list(list: &str) -> Result<Inventory, InventoryError> {
    let mut b = Builder::new();
    let src = Source {
        path: Path::new("<host list>"),
        text: list,
    };
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let col = list.find(item).unwrap_or(0) + 1;
        let (hosts, port) =
            crate::hostrange::parse_host_pattern(item).map_err(|m| src.invalid(1, col, "", m))?;
        for h in hosts {
            b.add_host(&h, "ungrouped");
            if let Some(port) = port {
                let var = Var {
                    value: port.into(),
                    loc: src.location(1, col),
                };
                b.set_host_var(&h, "ansible_port", var, Layer::Inline);
            }
        }
    }
    b.finish(Vec::new())
}

fn read(path: &Path) -> Result<String, InventoryError> {
    std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), InventoryError> {
    let meta = std::fs::metadata(path).map_err(|source| InventoryError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|source| InventoryError::Read {
            path: path.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for e in entries {
        let name = e.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let ext = e.extension().and_then(|x| x.to_str()).unwrap_or_default();
        if name.starts_with('.')
            || name.ends_with('~')
            || matches!(name, "group_vars" | "host_vars" | "vars_plugins")
            || IGNORED_EXTS.contains(&ext)
        {
            continue;
        }
        collect(&e, out)?;
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Format {
    Yaml,
    Ini,
}

/// Extension first (`.yaml`/`.yml`/`.json` vs `.ini`); otherwise the content decides: a
/// `[section]` first line is INI, a YAML mapping is YAML, anything else INI (a bare list of
/// host names is a valid INI inventory).
fn detect(text: &str, path: &Path) -> Format {
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml" | "json") => return Format::Yaml,
        Some("ini") => return Format::Ini,
        _ => {}
    }
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';') && l != &"---");
    match first {
        None => Format::Yaml,
        Some(l) if l.starts_with('[') => Format::Ini,
        Some(l) if l.starts_with('{') || l.ends_with(':') || l.contains(": ") => Format::Yaml,
        Some(_) => Format::Ini,
    }
}

fn parse_into(text: &str, path: &Path, b: &mut Builder) -> Result<(), InventoryError> {
    let src = Source { path, text };
    match detect(text, path) {
        Format::Ini => ini::load(&src, b),
        Format::Yaml => {
            let root = yaml::parse(&src)?;
            yaml_inventory::load(&src, root, b)
        }
    }
}

/// The files Ansible's `host_group_vars` plugin reads for `name` in `dir`: the first of
/// `name`, `name.yml`, `name.yaml`, `name.json` that exists; a directory contributes every
/// file inside it (recursively, sorted, bare or with a YAML/JSON extension).
fn vars_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    for ext in VARS_EXTS {
        let p = dir.join(format!("{name}{ext}"));
        if p.is_dir() && ext.is_empty() {
            let mut found = Vec::new();
            walk_vars_dir(&p, &mut found);
            return found;
        }
        if p.is_file() {
            return vec![p];
        }
    }
    Vec::new()
}

fn walk_vars_dir(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for e in entries {
        let name = e.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let ext = e.extension().and_then(|x| x.to_str());
        if e.is_dir() && ext.is_none() {
            walk_vars_dir(&e, out);
        } else if e.is_file() && matches!(ext, None | Some("yml" | "yaml" | "json")) {
            out.push(e);
        }
    }
}

fn load_vars_dirs(base: &Path, b: &mut Builder) -> Result<(), InventoryError> {
    let gdir = base.join("group_vars");
    if gdir.is_dir() {
        let groups: Vec<String> = b.group_names().map(str::to_owned).collect();
        for g in &groups {
            for f in vars_files(&gdir, g) {
                for (name, var) in read_vars_file(&f, b)? {
                    b.set_group_var(g, &name, var, Layer::File);
                }
            }
        }
        warn_unmatched(&gdir, &groups, "group", b);
    }
    let hdir = base.join("host_vars");
    if hdir.is_dir() {
        let hosts: Vec<String> = b.host_names().map(str::to_owned).collect();
        for h in &hosts {
            for f in vars_files(&hdir, h) {
                for (name, var) in read_vars_file(&f, b)? {
                    b.set_host_var(h, &name, var, Layer::File);
                }
            }
        }
        warn_unmatched(&hdir, &hosts, "host", b);
    }
    Ok(())
}

/// A vars file whose name matches no group/host is silently ignored by Ansible; say so,
/// since it is usually a typo in the file name.
fn warn_unmatched(dir: &Path, names: &[String], what: &str, b: &mut Builder) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for e in entries {
        let file = e.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if file.starts_with('.') || file.ends_with('~') {
            continue;
        }
        let stem = ["", ".yml", ".yaml", ".json"]
            .iter()
            .rev()
            .find_map(|x| file.strip_suffix(x).filter(|_| !x.is_empty()))
            .unwrap_or(file);
        if !names.iter().any(|n| n == stem || n == file) {
            b.warn(
                None,
                format!(
                    "{}: no {what} named `{stem}` in the inventory; file ignored",
                    e.display()
                ),
            );
        }
    }
}

fn read_vars_file(path: &Path, b: &mut Builder) -> Result<Vec<(String, Var)>, InventoryError> {
    let text = read(path)?;
    let src = Source { path, text: &text };
    let root = yaml::parse(&src)?;
    let Some(root) = root else {
        return Ok(Vec::new());
    };
    if root.is_null() {
        return Ok(Vec::new());
    }
    let Some(pairs) = root.as_map() else {
        return Err(src.invalid(
            root.line,
            root.col,
            "",
            format!(
                "a vars file must be a mapping of variable names, found {}",
                root.describe()
            ),
        ));
    };
    let mut out = Vec::new();
    for (k, v) in pairs {
        let Some(name) = k.as_str() else {
            return Err(src.invalid(k.line, k.col, "", "expected a variable name"));
        };
        b.check_var(&src, k.line, k.col, name, name)?;
        out.push((
            name.to_owned(),
            Var {
                value: v.to_json(),
                loc: src.location(k.line, k.col),
            },
        ));
    }
    Ok(out)
}
