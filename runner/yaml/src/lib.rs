//! rookery-yaml: the one place YAML text becomes data, for every format Rookery reads
//! (inventories, group/host vars, playbooks, stack files, Kubernetes manifests). Swapping the
//! YAML library means touching this crate only.
//!
//! - [`parse`] turns text into a tree of [`Node`]s that remember their line and column, so
//!   any later error — a bad key found by a loader, a type error found by serde — points at
//!   the offending spot, not only at the document.
//! - Aliases are expanded with a budget and nesting has a depth limit: a "billion laughs"
//!   file or a 100 000-deep `[[[[` is a located error, not an exhausted control machine.
//! - Scalars resolve per [`Schema`]: Ansible's formats use YAML 1.1 as PyYAML does (`yes`
//!   is a boolean, `0755` is octal); the stack and manifests use YAML 1.2 core as serde_yaml
//!   did (`yes` is a string). See the README of each format.
//! - [`from_node`] deserializes any serde type from a node; its errors carry the key path
//!   (`cephCluster.storage.nodes[0].devices`) and the position of the node at fault.
//! - Every error has one shape: `file:line:col: key.path: message`, then the line with a
//!   caret under the column (values of secret-looking keys masked).

mod de;
mod error;
mod node;
mod schema;

use std::path::Path;

pub use de::from_node;
pub use error::{Error, Location, mask_secrets, snippet};
pub use node::{Limits, Node, NodeKind};
pub use schema::Schema;

/// Parse the single document of `text` (`Ok(None)` when it is empty). More than one
/// document is an error: no format read this way has a use for a second one.
pub fn parse(text: &str, path: &Path, schema: Schema) -> Result<Option<Node>, Error> {
    let mut docs = node::parse_stream(text, path, schema, Limits::default(), true)?;
    Ok(docs.pop().flatten())
}

/// Every document of a multi-document text (Kubernetes manifests). Empty documents (a
/// trailing `---`) are skipped.
pub fn parse_all(text: &str, path: &Path, schema: Schema) -> Result<Vec<Node>, Error> {
    let docs = node::parse_stream(text, path, schema, Limits::default(), false)?;
    Ok(docs
        .into_iter()
        .flatten()
        .filter(|n| !n.is_null())
        .collect())
}

/// Parse and deserialize a single-document text; an empty text deserializes from null.
pub fn from_str<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
    schema: Schema,
) -> Result<T, Error> {
    let node = parse(text, path, schema)?.unwrap_or_else(|| Node::null(path, schema));
    from_node(&node, "")
}

/// Read, parse and deserialize a file.
pub fn load<T: serde::de::DeserializeOwned>(path: &Path, schema: Schema) -> Result<T, Error> {
    let text = read(path)?;
    from_str(&text, path, schema)
}

/// Read a file as text, with the one error shape for unreadable files.
pub fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// YAML text of a value (manifests written to files, diffs, `to_yaml`).
pub fn to_string<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_yaml::to_string(value).unwrap_or_else(|e| format!("# cannot be shown as YAML: {e}\n"))
}
