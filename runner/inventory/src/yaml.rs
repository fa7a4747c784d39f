//! The one module that talks to a YAML library. It turns text into a small tree of [`Node`]s
//! that remember their line and column, because every inventory error must point at the
//! offending key and serde_yaml only locates syntax errors. Swapping the YAML crate means
//! touching this file only.
//!
//! Scalars resolve as PyYAML (YAML 1.1) resolves them, since that is what Ansible uses:
//! `yes`/`no`/`on`/`off` are booleans and `0755` is octal, so an inventory means the same
//! thing here as under `ansible-inventory`.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A parsed YAML node with its 1-based position.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: NodeKind,
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    Scalar {
        text: String,
        /// Plain (unquoted, untagged-as-string) scalars are subject to type resolution.
        plain: bool,
        tag: Option<String>,
    },
    Seq(Vec<Node>),
    /// Pairs in file order; duplicates are kept so callers can report them.
    Map(Vec<(Node, Node)>),
}

/// A YAML syntax error at a 1-based position.
#[derive(Debug, Clone)]
pub(crate) struct SyntaxError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Node {
    /// The scalar's text, for keys and names.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.to_json(), Value::Null)
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(pairs) => Some(pairs),
            _ => None,
        }
    }

    /// What kind of node this is, for messages ("found a list").
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            NodeKind::Map(_) => "a mapping",
            NodeKind::Seq(_) => "a list",
            NodeKind::Scalar { .. } => match self.to_json() {
                Value::Null => "nothing (null)",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                _ => "a string",
            },
        }
    }

    /// Convert to a JSON value, resolving scalars like PyYAML.
    pub fn to_json(&self) -> Value {
        match &self.kind {
            NodeKind::Scalar { text, plain, tag } => resolve_scalar(text, *plain, tag.as_deref()),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(pairs) => {
                let mut map = Map::new();
                for (k, v) in pairs {
                    let key = match k.to_json() {
                        Value::String(s) => s,
                        Value::Null => "null".to_owned(),
                        other => other.to_string(),
                    };
                    map.insert(key, v.to_json());
                }
                Value::Object(map)
            }
        }
    }
}

/// Parse the first document of `text`; `Ok(None)` for an empty document.
pub(crate) fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut builder = TreeBuilder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|e| SyntaxError {
        line: e.marker().line(),
        col: e.marker().col() + 1,
        message: e.info().to_owned(),
    })?;
    if let Some(message) = builder.error {
        return Err(message);
    }
    Ok(builder.root)
}

enum Frame {
    Seq {
        items: Vec<Node>,
        mark: Marker,
        anchor: usize,
    },
    Map {
        pairs: Vec<(Node, Node)>,
        key: Option<Node>,
        mark: Marker,
        anchor: usize,
    },
}

#[derive(Default)]
struct TreeBuilder {
    stack: Vec<Frame>,
    anchors: std::collections::HashMap<usize, Node>,
    root: Option<Node>,
    done: bool,
    error: Option<SyntaxError>,
}

fn tag_name(tag: Option<Tag>) -> Option<String> {
    tag.map(|t| format!("{}{}", t.handle, t.suffix))
}

impl TreeBuilder {
    fn complete(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                self.done = true;
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { pairs, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => pairs.push((k, node)),
            },
        }
    }
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.done {
            return;
        }
        let pos = |m: &Marker| (m.line(), m.col() + 1);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag_name(tag);
                let plain = style == TScalarStyle::Plain;
                let (line, col) = pos(&mark);
                self.complete(
                    Node {
                        kind: NodeKind::Scalar { text, plain, tag },
                        line,
                        col,
                    },
                    anchor,
                );
            }
            Event::Alias(id) => {
                let (line, col) = pos(&mark);
                match self.anchors.get(&id) {
                    Some(node) => {
                        let mut node = node.clone();
                        node.line = line;
                        node.col = col;
                        self.complete(node, 0);
                    }
                    None => {
                        self.error.get_or_insert(SyntaxError {
                            line,
                            col,
                            message: "alias to an unknown anchor".to_owned(),
                        });
                    }
                }
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq {
                items: Vec::new(),
                mark,
                anchor,
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                pairs: Vec::new(),
                key: None,
                mark,
                anchor,
            }),
            Event::SequenceEnd => {
                if let Some(Frame::Seq {
                    items,
                    mark,
                    anchor,
                }) = self.stack.pop()
                {
                    let (line, col) = pos(&mark);
                    self.complete(
                        Node {
                            kind: NodeKind::Seq(items),
                            line,
                            col,
                        },
                        anchor,
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    pairs,
                    mark,
                    anchor,
                    ..
                }) = self.stack.pop()
                {
                    let (line, col) = pos(&mark);
                    let pairs = apply_merge_keys(pairs);
                    self.complete(
                        Node {
                            kind: NodeKind::Map(pairs),
                            line,
                            col,
                        },
                        anchor,
                    );
                }
            }
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd
            | Event::Nothing => {}
        }
    }
}

/// YAML 1.1 merge keys (`<<: *defaults`), which PyYAML and so Ansible honour: keys of the
/// merged mapping(s) fill in where the mapping itself has none.
fn apply_merge_keys(pairs: Vec<(Node, Node)>) -> Vec<(Node, Node)> {
    let is_merge =
        |k: &Node| matches!(&k.kind, NodeKind::Scalar { text, plain: true, .. } if text == "<<");
    if !pairs.iter().any(|(k, _)| is_merge(k)) {
        return pairs;
    }
    let mut own = Vec::new();
    let mut merged: Vec<(Node, Node)> = Vec::new();
    for (k, v) in pairs {
        if is_merge(&k) {
            let sources: Vec<Node> = match v.kind {
                NodeKind::Seq(items) => items,
                _ => vec![v],
            };
            for src in sources {
                if let NodeKind::Map(src_pairs) = src.kind {
                    for (sk, sv) in src_pairs {
                        // Earlier sources win among merged mappings, as in PyYAML.
                        if !merged.iter().any(|(mk, _)| mk.as_str() == sk.as_str()) {
                            merged.push((sk, sv));
                        }
                    }
                }
            }
        } else {
            own.push((k, v));
        }
    }
    for (k, v) in merged {
        if !own.iter().any(|(ok, _)| ok.as_str() == k.as_str()) {
            own.push((k, v));
        }
    }
    own
}

/// Compile a pattern written in this file (the unit tests exercise every one).
#[allow(clippy::expect_used)]
pub(crate) fn static_regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static regex")
}

// PyYAML's implicit resolvers for int and float (YAML 1.1).
static INT_DEC: LazyLock<Regex> = LazyLock::new(|| static_regex(r"^[-+]?(0|[1-9][0-9_]*)$"));
static INT_OCT: LazyLock<Regex> = LazyLock::new(|| static_regex(r"^[-+]?0[0-7_]+$"));
static INT_HEX: LazyLock<Regex> = LazyLock::new(|| static_regex(r"^[-+]?0x[0-9a-fA-F_]+$"));
static INT_BIN: LazyLock<Regex> = LazyLock::new(|| static_regex(r"^[-+]?0b[01_]+$"));
static FLOAT: LazyLock<Regex> =
    LazyLock::new(|| static_regex(r"^[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?$"));

fn resolve_scalar(text: &str, plain: bool, tag: Option<&str>) -> Value {
    let tag_suffix = tag.map(|t| t.rsplit([':', '!']).next().unwrap_or(t));
    match tag_suffix {
        // `!unsafe` and `!vault` are Ansible's tags; both carry strings.
        Some("str" | "unsafe" | "vault") => return Value::String(text.to_owned()),
        Some("int" | "float" | "bool" | "null") => {}
        Some(_) | None if !plain => return Value::String(text.to_owned()),
        _ => {}
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Value::Bool(true);
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Value::Bool(false);
        }
        _ => {}
    }
    let (neg, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let clean = digits.replace('_', "");
    let parsed = if INT_HEX.is_match(text) {
        i64::from_str_radix(&clean[2..], 16).ok()
    } else if INT_BIN.is_match(text) {
        i64::from_str_radix(&clean[2..], 2).ok()
    } else if INT_OCT.is_match(text) {
        i64::from_str_radix(&clean[1..], 8).ok()
    } else if INT_DEC.is_match(text) {
        clean.parse::<i64>().ok()
    } else {
        None
    };
    if let Some(n) = parsed {
        return Value::Number(Number::from(if neg { -n } else { n }));
    }
    if FLOAT.is_match(text)
        && text.chars().any(|c| c.is_ascii_digit())
        && let Some(n) = text
            .replace('_', "")
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(s: &str) -> Value {
        parse(s).unwrap().unwrap().to_json()
    }

    #[test]
    fn yaml_1_1_scalars() {
        assert_eq!(val("yes"), Value::Bool(true));
        assert_eq!(val("Off"), Value::Bool(false));
        assert_eq!(val("'yes'"), Value::String("yes".into()));
        assert_eq!(val("0755"), serde_json::json!(493));
        assert_eq!(val("0x1F"), serde_json::json!(31));
        assert_eq!(val("-22"), serde_json::json!(-22));
        assert_eq!(val("1.5"), serde_json::json!(1.5));
        assert_eq!(val("1e5"), Value::String("1e5".into()));
        assert_eq!(val("~"), Value::Null);
        assert_eq!(val("!!str 22"), Value::String("22".into()));
        assert_eq!(val("!unsafe '{{ x }}'"), Value::String("{{ x }}".into()));
    }

    #[test]
    fn positions_are_one_based() {
        let root = parse("a:\n  bb: 1\n").unwrap().unwrap();
        let pairs = root.as_map().unwrap();
        assert_eq!((pairs[0].0.line, pairs[0].0.col), (1, 1));
        let inner = pairs[0].1.as_map().unwrap();
        assert_eq!((inner[0].0.line, inner[0].0.col), (2, 3));
    }

    #[test]
    fn anchors_and_merge_keys() {
        let v = val("d: &d {a: 1, b: 2}\ne:\n  <<: *d\n  b: 3\n");
        assert_eq!(v["e"], serde_json::json!({"a": 1, "b": 3}));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.line >= 1 && err.col >= 1, "{err:?}");
    }
}
