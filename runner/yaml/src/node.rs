//! The located node tree and the event loop that builds it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::schema::{self, Schema};

/// Bounds on what one text may expand to. Text size bounds the nodes written out; aliases
/// are what can multiply them, and nesting is what recursive consumers (serde, `to_json`,
/// `Drop`) pay for with stack.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Nodes that alias expansion may add over the whole stream.
    pub max_alias_nodes: usize,
    /// Deepest nesting of sequences and mappings.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // Generous for hand-written files (an inventory of a few thousand hosts that all merge
        // one `<<: *defaults` of 50 keys stays far below), tiny next to a billion laughs.
        Limits {
            max_alias_nodes: 1_000_000,
            max_depth: 128,
        }
    }
}

/// Where a tree came from: labels errors and gives them their snippet line.
#[derive(Debug)]
pub(crate) struct Source {
    pub path: std::path::PathBuf,
    pub text: String,
    pub schema: Schema,
}

/// A parsed YAML node with its 1-based position.
#[derive(Debug, Clone)]
pub struct Node {
    pub kind: NodeKind,
    pub line: usize,
    pub col: usize,
    pub(crate) src: Arc<Source>,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Scalar {
        text: String,
        /// Plain (unquoted) scalars are subject to type resolution.
        plain: bool,
        tag: Option<String>,
    },
    Seq(Vec<Node>),
    /// Pairs in file order; duplicates are kept so callers can report them.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A null node (an empty document), for deserializing defaults.
    pub fn null(path: &Path, schema: Schema) -> Node {
        Node {
            kind: NodeKind::Scalar {
                text: String::new(),
                plain: true,
                tag: None,
            },
            line: 1,
            col: 1,
            src: Arc::new(Source {
                path: path.to_path_buf(),
                text: String::new(),
                schema,
            }),
        }
    }

    /// A null scalar at this node's position (for shorthands that imply an empty value).
    pub fn null_here(&self) -> Node {
        Node {
            kind: NodeKind::Scalar {
                text: String::new(),
                plain: true,
                tag: None,
            },
            line: self.line,
            col: self.col,
            src: self.src.clone(),
        }
    }

    /// A mapping of `pairs` at this node's position (a subset of a mapping's keys, to
    /// deserialize them on their own).
    pub fn with_pairs(&self, pairs: Vec<(Node, Node)>) -> Node {
        Node {
            kind: NodeKind::Map(pairs),
            line: self.line,
            col: self.col,
            src: self.src.clone(),
        }
    }

    /// An error at `line:col` of this node's file (a position found by other means).
    pub fn error_at(
        &self,
        line: usize,
        col: usize,
        key_path: impl Into<String>,
        detail: impl Into<String>,
    ) -> Error {
        Error::at(&self.src, line, col, key_path.into(), detail.into())
    }

    /// The file this node was read from.
    pub fn file(&self) -> &Path {
        &self.src.path
    }

    pub fn schema(&self) -> Schema {
        self.src.schema
    }

    /// The scalar's text, for keys and names.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(pairs) => Some(pairs),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The value of `key` in a mapping (the last one, if duplicated).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .rev()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    pub fn is_null(&self) -> bool {
        matches!(self.scalar_value(), Some(Value::Null))
    }

    /// A scalar resolved by this tree's schema; None for collections.
    pub fn scalar_value(&self) -> Option<Value> {
        match &self.kind {
            NodeKind::Scalar { text, plain, tag } => Some(schema::resolve(
                self.src.schema,
                text,
                *plain,
                tag.as_deref(),
            )),
            _ => None,
        }
    }

    /// What kind of node this is, for messages ("found a list").
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            NodeKind::Map(_) => "a mapping",
            NodeKind::Seq(_) => "a list",
            NodeKind::Scalar { .. } => match self.scalar_value() {
                Some(Value::Null) => "nothing (null)",
                Some(Value::Bool(_)) => "a boolean",
                Some(Value::Number(_)) => "a number",
                _ => "a string",
            },
        }
    }

    /// Convert to a JSON value, resolving scalars by the schema. Mapping keys become their
    /// resolved text (`null` for a null key); the last of duplicated keys wins.
    pub fn to_json(&self) -> Value {
        match &self.kind {
            NodeKind::Scalar { .. } => self.scalar_value().unwrap_or(Value::Null),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(pairs) => {
                let mut map = Map::new();
                for (k, v) in pairs {
                    map.insert(k.key_text(), v.to_json());
                }
                Value::Object(map)
            }
        }
    }

    /// A mapping key as text.
    pub fn key_text(&self) -> String {
        match self.to_json() {
            Value::String(s) => s,
            Value::Null => "null".to_owned(),
            other => other.to_string(),
        }
    }

    /// An error about this node: its position, `key_path` and the snippet.
    pub fn error(&self, key_path: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::at(
            &self.src,
            self.line,
            self.col,
            key_path.into(),
            detail.into(),
        )
    }

    /// How many nodes this subtree holds (the cost of copying it for an alias) and how deep
    /// it is (what it adds to the nesting where the alias stands).
    fn extent(&self) -> (usize, usize) {
        let children: Vec<&Node> = match &self.kind {
            NodeKind::Scalar { .. } => return (1, 0),
            NodeKind::Seq(items) => items.iter().collect(),
            NodeKind::Map(pairs) => pairs.iter().flat_map(|(k, v)| [k, v]).collect(),
        };
        children.iter().fold((1, 1), |(size, height), c| {
            let (s, h) = c.extent();
            (size.saturating_add(s), height.max(h + 1))
        })
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        at: (usize, usize),
        anchor: usize,
    },
    Map {
        pairs: Vec<(Node, Node)>,
        key: Option<Node>,
        at: (usize, usize),
        anchor: usize,
    },
}

struct Builder {
    src: Arc<Source>,
    limits: Limits,
    stack: Vec<Frame>,
    /// Anchor id → the anchored node and its (size, height).
    anchors: HashMap<usize, (Node, (usize, usize))>,
    alias_nodes: usize,
    root: Option<Node>,
}

fn tag_name(tag: Option<std::borrow::Cow<'_, Tag>>) -> Option<String> {
    tag.map(|t| format!("{}{}", t.handle, t.suffix))
}

fn pos(span: &Span) -> (usize, usize) {
    (span.start.line(), span.start.col() + 1)
}

impl Builder {
    fn complete(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            let extent = node.extent();
            self.anchors.insert(anchor, (node.clone(), extent));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { pairs, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => pairs.push((k, node)),
            },
        }
    }

    fn node(&self, kind: NodeKind, (line, col): (usize, usize)) -> Node {
        Node {
            kind,
            line,
            col,
            src: self.src.clone(),
        }
    }

    fn push(&mut self, frame: Frame, at: (usize, usize)) -> Result<(), Error> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(self.too_deep(at));
        }
        self.stack.push(frame);
        Ok(())
    }

    fn too_deep(&self, at: (usize, usize)) -> Error {
        let detail = format!(
            "YAML nested deeper than {} levels is not accepted",
            self.limits.max_depth
        );
        Error::at(&self.src, at.0, at.1, String::new(), detail)
    }

    fn event(&mut self, ev: Event<'_>, at: (usize, usize)) -> Result<(), Error> {
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let kind = NodeKind::Scalar {
                    text: text.into_owned(),
                    plain: style == ScalarStyle::Plain,
                    tag: tag_name(tag),
                };
                let node = self.node(kind, at);
                self.complete(node, anchor);
            }
            Event::Alias(id) => {
                let Some((node, (size, height))) = self.anchors.get(&id) else {
                    return Err(Error::at(
                        &self.src,
                        at.0,
                        at.1,
                        String::new(),
                        "alias to an unknown anchor".into(),
                    ));
                };
                self.alias_nodes = self.alias_nodes.saturating_add(*size);
                if self.alias_nodes > self.limits.max_alias_nodes {
                    return Err(Error::at(
                        &self.src,
                        at.0,
                        at.1,
                        String::new(),
                        format!(
                            "YAML aliases expand to more than {} nodes (an alias of an alias of \
                             ...: a \"billion laughs\" document?)",
                            self.limits.max_alias_nodes
                        ),
                    ));
                }
                if self.stack.len() + height > self.limits.max_depth {
                    return Err(self.too_deep(at));
                }
                let mut node = node.clone();
                (node.line, node.col) = at;
                self.complete(node, 0);
            }
            Event::SequenceStart(anchor, _) => {
                let frame = Frame::Seq {
                    items: Vec::new(),
                    at,
                    anchor,
                };
                self.push(frame, at)?;
            }
            Event::MappingStart(anchor, _) => {
                let frame = Frame::Map {
                    pairs: Vec::new(),
                    key: None,
                    at,
                    anchor,
                };
                self.push(frame, at)?;
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq { items, at, anchor }) = self.stack.pop() {
                    let node = self.node(NodeKind::Seq(items), at);
                    self.complete(node, anchor);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    pairs, at, anchor, ..
                }) = self.stack.pop()
                {
                    let node = self.node(NodeKind::Map(apply_merge_keys(pairs)), at);
                    self.complete(node, anchor);
                }
            }
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => {}
        }
        Ok(())
    }
}

/// Every document of `text` (None for an empty one). With `single`, a second document is an
/// error at its start.
pub(crate) fn parse_stream(
    text: &str,
    path: &Path,
    schema: Schema,
    limits: Limits,
    single: bool,
) -> Result<Vec<Option<Node>>, Error> {
    let src = Arc::new(Source {
        path: path.to_path_buf(),
        text: text.to_owned(),
        schema,
    });
    let mut b = Builder {
        src: src.clone(),
        limits,
        stack: Vec::new(),
        anchors: HashMap::new(),
        alias_nodes: 0,
        root: None,
    };
    let mut docs = Vec::new();
    let mut parser = Parser::new_from_str(text);
    while let Some(ev) = parser.next_event() {
        let (event, span) = ev.map_err(|e| {
            Error::at(
                &src,
                e.marker().line(),
                e.marker().col() + 1,
                String::new(),
                format!("YAML syntax error: {}", e.info()),
            )
        })?;
        let at = pos(&span);
        match event {
            Event::DocumentStart(_) => {
                if single && !docs.is_empty() {
                    return Err(Error::at(
                        &src,
                        at.0,
                        at.1,
                        String::new(),
                        "a second YAML document (after `---`) is not accepted here".into(),
                    ));
                }
                b.root = None;
            }
            Event::DocumentEnd => docs.push(b.root.take()),
            other => b.event(other, at)?,
        }
    }
    Ok(docs)
}

/// YAML 1.1 merge keys (`<<: *defaults`), which PyYAML (so Ansible) and Kubernetes' YAML
/// honour: keys of the merged mapping(s) fill in where the mapping itself has none.
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
