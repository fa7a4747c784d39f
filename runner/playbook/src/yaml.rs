//! The one place playbook YAML is parsed. Data comes from `serde_yaml`; positions come from a
//! second, event-level pass with `saphyr-parser` that records where every key and sequence
//! item starts, keyed by the same dotted path `serde_path_to_error` prints
//! (`[0].tasks[2].copy.dest`). That lets any later error — a bad argument found at load time or
//! a template error at run time — point at `file:line:col` instead of only at a key path.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use saphyr_parser::{Event, Parser};
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

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("cannot read `{}`", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{location}: at `{key_path}`: {detail}")]
    Invalid {
        location: Location,
        /// Dotted key path; `.` for the document root.
        key_path: String,
        detail: String,
    },
}

/// A parsed YAML document with the positions of its keys and items.
#[derive(Debug, Clone)]
pub struct Document {
    pub file: Arc<PathBuf>,
    pub value: serde_yaml::Value,
    spans: Arc<HashMap<String, (usize, usize)>>,
}

impl Document {
    /// Read and parse a YAML file.
    pub fn load(path: &Path) -> Result<Document, YamlError> {
        let text = std::fs::read_to_string(path).map_err(|source| YamlError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Document::parse(&text, path)
    }

    /// Parse YAML text; `path` labels positions.
    pub fn parse(text: &str, path: &Path) -> Result<Document, YamlError> {
        let file = Arc::new(path.to_path_buf());
        let spans = build_spans(text).map_err(|(line, column, detail)| YamlError::Invalid {
            location: Location {
                file: file.clone(),
                line,
                column,
            },
            key_path: ".".into(),
            detail,
        })?;
        let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            YamlError::Invalid {
                location: Location {
                    file: file.clone(),
                    line,
                    column,
                },
                key_path: ".".into(),
                detail: strip_location(&e.to_string()),
            }
        })?;
        Ok(Document {
            file,
            value,
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
        YamlError::Invalid {
            location: self.location(path),
            key_path: if path.is_empty() {
                ".".into()
            } else {
                path.to_string()
            },
            detail: detail.into(),
        }
    }

    /// Deserialize the value at `path` (already extracted as `value`) into a typed model;
    /// errors carry the full key path and its position.
    pub fn typed<T: DeserializeOwned>(
        &self,
        path: &str,
        value: &serde_yaml::Value,
    ) -> Result<T, YamlError> {
        serde_path_to_error::deserialize(value).map_err(|err| {
            let inner_path = err.path().to_string();
            let full = join_path(path, &inner_path);
            let detail = strip_location(&err.into_inner().to_string());
            self.error(&full, detail)
        })
    }
}

/// Join a base path and a `serde_path_to_error` relative path (`.` = none).
pub fn join_path(base: &str, rel: &str) -> String {
    if rel == "." || rel.is_empty() {
        return base.to_string();
    }
    if base.is_empty() {
        return rel.to_string();
    }
    if rel.starts_with('[') {
        format!("{base}{rel}")
    } else {
        format!("{base}.{rel}")
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

/// serde_yaml appends " at line L column C"; the location is reported separately.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

enum Frame {
    Seq {
        path: String,
        next: usize,
    },
    Map {
        path: String,
        /// The next scalar is a key.
        want_key: bool,
        key: String,
        /// A complex (non-scalar) key is being read.
        in_complex_key: bool,
    },
}

/// Walk the event stream and record the start of every key and sequence item by path.
/// Start positions (line, column) by key path.
type Spans = HashMap<String, (usize, usize)>;

fn build_spans(text: &str) -> Result<Spans, (usize, usize, String)> {
    let mut spans = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut parser = Parser::new_from_str(text);
    let mut docs = 0;
    while let Some(ev) = parser.next_event() {
        let (event, span) = ev.map_err(|e| {
            (
                e.marker().line(),
                e.marker().col() + 1,
                format!("YAML syntax error: {}", e.info()),
            )
        })?;
        let pos = (span.start.line(), span.start.col() + 1);
        match event {
            Event::DocumentStart(_) => {
                docs += 1;
            }
            Event::Scalar(value, ..) if docs <= 1 => {
                if let Some(Frame::Map {
                    path,
                    want_key: want_key @ true,
                    key,
                    in_complex_key: false,
                }) = stack.last_mut()
                {
                    *key = value.to_string();
                    *want_key = false;
                    spans.entry(key_path(path, key)).or_insert(pos);
                    continue;
                }
                node_path(&mut stack, &mut spans, pos);
                node_done(&mut stack);
            }
            Event::Alias(_) if docs <= 1 => {
                node_path(&mut stack, &mut spans, pos);
                node_done(&mut stack);
            }
            Event::SequenceStart(..) if docs <= 1 => {
                let path = node_path(&mut stack, &mut spans, pos);
                stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingStart(..) if docs <= 1 => {
                let path = node_path(&mut stack, &mut spans, pos);
                stack.push(Frame::Map {
                    path,
                    want_key: true,
                    key: String::new(),
                    in_complex_key: false,
                });
            }
            Event::SequenceEnd | Event::MappingEnd if docs <= 1 => {
                stack.pop();
                node_done(&mut stack);
            }
            _ => {}
        }
    }
    Ok(spans)
}

/// The path of a node that starts now, recorded if new.
fn node_path(
    stack: &mut [Frame],
    spans: &mut HashMap<String, (usize, usize)>,
    pos: (usize, usize),
) -> String {
    let path = match stack.last_mut() {
        None => String::new(),
        Some(Frame::Seq { path, next }) => {
            let p = format!("{path}[{next}]");
            *next += 1;
            p
        }
        Some(Frame::Map {
            path,
            want_key,
            key,
            in_complex_key,
        }) => {
            if *want_key {
                // A mapping or sequence used as a key: not addressable by a path.
                *in_complex_key = true;
                format!("{path}.?")
            } else {
                key_path(path, key)
            }
        }
    };
    spans.entry(path.clone()).or_insert(pos);
    path
}

/// A node (scalar, or a collection just closed) finished: the enclosing map flips key/value.
fn node_done(stack: &mut [Frame]) {
    if let Some(Frame::Map {
        want_key,
        in_complex_key,
        ..
    }) = stack.last_mut()
    {
        if *in_complex_key {
            *in_complex_key = false;
            *want_key = false;
        } else {
            *want_key = true;
        }
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
