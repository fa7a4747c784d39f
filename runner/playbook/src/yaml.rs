//! Playbook and vars-file YAML, through the one YAML crate (`rookery-yaml`) with the YAML 1.2
//! core schema, as before: `yes` is a string, so boolean keywords accept `yes`/`no` themselves
//! (`language::flex_bool_opt`) and `mode: 0644` stays the text `0644`. Every key and sequence
//! item is indexed by the dotted path serde errors use (`[0].tasks[2].copy.dest`), so any
//! later error — a bad argument found at load time or a template error at run time — points at
//! `file:line:col` instead of only at a key path.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rookery_yaml::{Node, Schema};
use serde::de::DeserializeOwned;

/// A position in a playbook file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<PathBuf>,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Every YAML error of this crate: `rookery_yaml::Error` (`file:line:col: key.path: ...`).
pub type YamlError = rookery_yaml::Error;

/// A parsed YAML document with the positions of its keys and items.
#[derive(Debug, Clone)]
pub struct Document {
    pub file: Arc<PathBuf>,
    /// The document (a null node when the file is empty).
    pub root: Node,
    spans: Arc<HashMap<String, (usize, usize)>>,
}

impl Document {
    /// Read and parse a YAML file.
    pub fn load(path: &Path) -> Result<Document, YamlError> {
        let text = rookery_yaml::read(path)?;
        Document::parse(&text, path)
    }

    /// Parse YAML text; `path` labels positions.
    pub fn parse(text: &str, path: &Path) -> Result<Document, YamlError> {
        let root = rookery_yaml::parse(text, path, Schema::Core)?
            .unwrap_or_else(|| Node::null(path, Schema::Core));
        let mut spans = HashMap::new();
        index(&root, String::new(), &mut spans);
        Ok(Document {
            file: Arc::new(path.to_path_buf()),
            root,
            spans: Arc::new(spans),
        })
    }

    /// Where `path` (or its closest recorded ancestor) starts.
    pub fn location(&self, path: &str) -> Location {
        let mut p = path;
        loop {
            if let Some(&(line, column)) = self.spans.get(p) {
                return Location {
                    file: self.file.clone(),
                    line,
                    column,
                };
            }
            // Drop the last `.key` or `[i]` segment.
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None if !p.is_empty() => p = "",
                None => {
                    return Location {
                        file: self.file.clone(),
                        line: 1,
                        column: 1,
                    };
                }
            }
        }
    }

    /// An error at `path` (its position looked up).
    pub fn error(&self, path: &str, detail: impl Into<String>) -> YamlError {
        let at = self.location(path);
        self.root.error_at(at.line, at.column, path, detail)
    }

    /// Deserialize `node` (found at `path`) into a typed model; errors carry the full key path
    /// and the position of the node at fault.
    pub fn typed<T: DeserializeOwned>(&self, path: &str, node: &Node) -> Result<T, YamlError> {
        rookery_yaml::from_node(node, path)
    }
}

/// Record the start of every key and sequence item by path (a key's own position for
/// `a.key`, so errors about a value point at its key, as in an editor's outline).
fn index(node: &Node, path: String, spans: &mut HashMap<String, (usize, usize)>) {
    spans.entry(path.clone()).or_insert((node.line, node.col));
    if let Some(pairs) = node.as_map() {
        for (k, v) in pairs {
            let p = key_path(&path, &k.key_text());
            spans.entry(p.clone()).or_insert((k.line, k.col));
            index(v, p, spans);
        }
    } else if let Some(items) = node.as_seq() {
        for (i, item) in items.iter().enumerate() {
            index(item, format!("{path}[{i}]"), spans);
        }
    }
}

/// `base.key`, or `key` at the root.
pub fn key_path(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_follow_serde_paths() {
        let text = "- name: a\n  hosts: all\n  tasks:\n    - name: t\n      debug:\n        msg: hi\n    - command: ls\n";
        let d = Document::parse(text, Path::new("p.yaml")).unwrap();
        let l = d.location("[0].tasks[1].command");
        assert_eq!((l.line, l.column), (7, 7));
        let l = d.location("[0].tasks[0].debug.msg");
        assert_eq!((l.line, l.column), (6, 9));
        // Unknown deeper paths fall back to the closest ancestor.
        let l = d.location("[0].tasks[0].debug.nope[3]");
        assert_eq!((l.line, l.column), (5, 7));
        assert_eq!(d.location("[0].hosts").to_string(), "p.yaml:2:3");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = Document::parse("a: [1, 2\nb: 3\n", Path::new("x.yaml")).unwrap_err();
        assert!(e.to_string().starts_with("x.yaml:"), "{e}");
    }
}
