//! Variables: the layers a task sees and their precedence, `-e` extra vars, and `vars_files`.
//!
//! Precedence, lowest first (a higher layer replaces a top-level key — Ansible's default
//! `hash_behaviour=replace`, no deep merge):
//!
//! 1. inventory variables (group vars < host vars, already merged by the inventory crate)
//! 2. play `vars`
//! 3. play `vars_files` (in list order)
//! 4. task `vars`
//! 5. facts (`rookery_facts`, `ansible_facts` from `gather_facts`/`probe`), `set_fact` and
//!    `register` results — they persist on the host for the rest of the run
//! 6. extra vars (`-e k=v`, `-e @file.yaml`, `-e '{"json": 1}'`), which always win
//!
//! Magic variables `inventory_hostname`, `group_names`, `groups`, `playbook_dir` and
//! `ansible_check_mode` are set last; the loop variable (`item` or `loop_control.loop_var`)
//! sits above everything for its iteration.
//!
//! Variable values may themselves be templates (`b: "{{ a }}-x"`); they are rendered against
//! the merged view (a few passes, so chains resolve). A value that cannot be rendered is kept
//! aside and reported, with its own cause, when a task uses it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::template::{Templar, TemplateError};

#[derive(Debug, thiserror::Error)]
pub enum VarsError {
    #[error("cannot read vars file `{}`", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("vars file `{}` is not a YAML mapping of variables", .path.display())]
    NotMapping { path: PathBuf },
    #[error(transparent)]
    Yaml(#[from] crate::yaml::YamlError),
    #[error("extra vars `{arg}`: {detail}")]
    Extra { arg: String, detail: String },
}

impl rookery_diagnostic::Diagnostic for VarsError {
    fn exit_code(&self) -> u8 {
        rookery_diagnostic::exit::INPUT
    }
}

/// Parse one `-e` argument: `@file` (YAML/JSON), a JSON/YAML mapping `{...}`, or `k=v ...`
/// pairs (values are strings, as in Ansible).
pub fn parse_extra_vars(arg: &str) -> Result<Map<String, Value>, VarsError> {
    let t = arg.trim();
    if let Some(file) = t.strip_prefix('@') {
        return load_vars_file(Path::new(file));
    }
    if t.starts_with('{') {
        let label = Path::new("<extra vars>");
        let v = rookery_yaml::parse(t, label, rookery_yaml::Schema::Core).map_err(|e| {
            VarsError::Extra {
                arg: arg.into(),
                detail: e.detail(),
            }
        })?;
        return match v.map(|n| n.to_json()) {
            Some(Value::Object(m)) => Ok(m),
            _ => Err(VarsError::Extra {
                arg: arg.into(),
                detail: "expected a mapping".into(),
            }),
        };
    }
    let mut out = Map::new();
    for pair in split_words(t) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(VarsError::Extra {
                arg: arg.into(),
                detail: format!("`{pair}` is not key=value (or use @file.yaml or JSON)"),
            });
        };
        if k.is_empty() {
            return Err(VarsError::Extra {
                arg: arg.into(),
                detail: format!("`{pair}` has an empty name"),
            });
        }
        out.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(out)
}

/// Split on whitespace, honouring single and double quotes (`msg='a b' x=1`).
pub fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some('"') if c == '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                any = true;
            }
            None if c == '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    any = true;
                }
            }
            None if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            None => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Load a YAML (or JSON) file holding a mapping of variables.
pub fn load_vars_file(path: &Path) -> Result<Map<String, Value>, VarsError> {
    let doc = crate::yaml::Document::load(path)?;
    match doc.root.to_json() {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        _ => Err(VarsError::NotMapping {
            path: path.to_path_buf(),
        }),
    }
}

/// The layers of one host's variables in precedence order (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct VarLayers<'a> {
    pub inventory: Option<&'a Map<String, Value>>,
    pub play: Option<&'a Map<String, Value>>,
    pub vars_files: &'a [Map<String, Value>],
    pub task: Option<&'a Map<String, Value>>,
    pub facts: Option<&'a Map<String, Value>>,
    pub extra: Option<&'a Map<String, Value>>,
    pub magic: Option<&'a Map<String, Value>>,
}

/// The merged, rendered variables a task sees, plus the variables that failed to render.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub vars: Value,
    pub broken: BTreeMap<String, TemplateError>,
}

impl VarLayers<'_> {
    pub fn merge(&self) -> Map<String, Value> {
        let mut out = Map::new();
        let mut put = |m: &Map<String, Value>| {
            for (k, v) in m {
                out.insert(k.clone(), v.clone());
            }
        };
        for m in [self.inventory, self.play].into_iter().flatten() {
            put(m);
        }
        for m in self.vars_files {
            put(m);
        }
        for m in [self.task, self.facts, self.extra, self.magic]
            .into_iter()
            .flatten()
        {
            put(m);
        }
        out
    }

    /// Merge and render templated values.
    pub fn resolve(&self, templar: &Templar) -> Resolved {
        resolve_map(self.merge(), templar)
    }
}

fn contains_template(v: &Value) -> bool {
    match v {
        Value::String(s) => Templar::is_template(s),
        Value::Array(a) => a.iter().any(contains_template),
        Value::Object(m) => m.values().any(contains_template),
        _ => false,
    }
}

/// Render templated values against the map itself until nothing changes (bounded).
pub fn resolve_map(mut map: Map<String, Value>, templar: &Templar) -> Resolved {
    let mut broken = BTreeMap::new();
    for _ in 0..8 {
        let pending: Vec<String> = map
            .iter()
            .filter(|(_, v)| contains_template(v))
            .map(|(k, _)| k.clone())
            .collect();
        if pending.is_empty() {
            break;
        }
        let snapshot = Value::Object(map.clone());
        let mut progressed = false;
        broken.clear();
        for k in pending {
            let Some(v) = map.get(&k) else { continue };
            match templar.render_value(v, &snapshot) {
                Ok(r) => {
                    if &r != v {
                        progressed = true;
                    }
                    map.insert(k, r);
                }
                Err(e) => {
                    broken.insert(k, e);
                }
            }
        }
        if !progressed {
            break;
        }
    }
    // Values still holding template markup after the passes (a cycle) count as broken.
    for (k, v) in &map {
        if contains_template(v) && !broken.contains_key(k) {
            broken.insert(
                k.clone(),
                TemplateError::Render {
                    detail: "its template refers back to itself (cycle)".into(),
                },
            );
        }
    }
    for k in broken.keys() {
        map.remove(k);
    }
    Resolved {
        vars: Value::Object(map),
        broken,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn precedence_and_rendering() {
        let inv = m(json!({"a": "inv", "b": "inv", "c": "inv", "d": "inv", "e": "inv"}));
        let play = m(
            json!({"b": "play", "c": "play", "d": "play", "e": "play", "ref": "{{ b }}+{{ e }}"}),
        );
        let files = vec![m(json!({"c": "file", "d": "file", "e": "file"}))];
        let facts = m(json!({"d": "fact", "e": "fact"}));
        let extra = m(json!({"e": "extra"}));
        let l = VarLayers {
            inventory: Some(&inv),
            play: Some(&play),
            vars_files: &files,
            facts: Some(&facts),
            extra: Some(&extra),
            ..Default::default()
        };
        let r = l.resolve(&Templar::new());
        assert_eq!(
            r.vars,
            json!({"a": "inv", "b": "play", "c": "file", "d": "fact", "e": "extra", "ref": "play+extra"})
        );
    }

    #[test]
    fn broken_vars_are_reported() {
        let r = resolve_map(m(json!({"x": "{{ nope }}", "y": 1})), &Templar::new());
        assert_eq!(r.vars, json!({"y": 1}));
        assert!(matches!(
            r.broken.get("x"),
            Some(TemplateError::Undefined { .. })
        ));
    }

    #[test]
    fn extra_vars_forms() {
        assert_eq!(
            parse_extra_vars("a=1 b='x y'").unwrap(),
            m(json!({"a": "1", "b": "x y"}))
        );
        assert_eq!(
            parse_extra_vars(r#"{"n": 3, "l": [1]}"#).unwrap(),
            m(json!({"n": 3, "l": [1]}))
        );
        assert!(parse_extra_vars("novalue").is_err());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("e.yaml");
        std::fs::write(&f, "k: [1, 2]\n").unwrap();
        assert_eq!(
            parse_extra_vars(&format!("@{}", f.display())).unwrap(),
            m(json!({"k": [1, 2]}))
        );
    }
}
