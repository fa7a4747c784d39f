//! The stack's YAML, through the one YAML crate (`rookery-yaml`) with the YAML 1.2 core
//! schema (`yes` is a string, `0755` is a string, `true`/`false` are booleans), the schema
//! Kubernetes users write for. Errors carry `file:line:col`, the key path
//! (`cephCluster.storage.nodes[0].devices`) and the offending line.

use std::path::Path;

use rookery_yaml::Schema;
use serde::de::DeserializeOwned;

/// Every YAML error of this crate: `rookery_yaml::Error`.
pub type YamlError = rookery_yaml::Error;

/// Read and deserialize a YAML file.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, YamlError> {
    rookery_yaml::load(path, Schema::Core)
}

/// Deserialize YAML text; `path` only labels errors.
pub fn parse<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, YamlError> {
    rookery_yaml::from_str(text, path, Schema::Core)
}

/// Every document of a multi-document YAML text, as JSON values (the shape the API server
/// takes). Empty documents (a trailing `---`) are skipped; a document that does not parse is an
/// error naming the file, line and column — never silently dropped.
pub fn parse_documents(text: &str, path: &Path) -> Result<Vec<serde_json::Value>, YamlError> {
    let docs = rookery_yaml::parse_all(text, path, Schema::Core)?;
    Ok(docs.iter().map(rookery_yaml::Node::to_json).collect())
}

/// YAML text of a value (for manifests written to files and diffs).
pub fn to_string<T: serde::Serialize>(value: &T) -> String {
    rookery_yaml::to_string(value)
}
