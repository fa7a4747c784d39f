//! The one place YAML is parsed, so the YAML crate can be swapped by touching one file.
//!
//! Errors carry `file:line:col` and the key path (`cephCluster.storage.nodes[0].devices`),
//! which serde_yaml alone does not give for nested structs.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("cannot read `{}`", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{}:{}: at `{key_path}`: {detail}", .path.display(), .line, .column)]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        /// Dotted key path; `.` for the document root.
        key_path: String,
        detail: String,
    },
}

/// Read and deserialize a YAML file.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, YamlError> {
    let text = std::fs::read_to_string(path).map_err(|source| YamlError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Deserialize YAML text; `path` only labels errors.
pub fn parse<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, YamlError> {
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let key_path = err.path().to_string();
        let inner = err.into_inner();
        let (line, column) = inner
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        YamlError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            key_path,
            detail: strip_location(&inner.to_string()),
        }
    })
}

/// serde_yaml appends " at line L column C" (and sometimes a key path of its own); the
/// location is reported separately, so drop it from the message.
fn strip_location(msg: &str) -> String {
    let msg = match msg.find(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    // serde_yaml prefixes nested errors with its own "a.b: " path; ours is more precise.
    match msg.split_once(": ") {
        Some((head, rest)) if !head.contains(' ') && head.contains(['.', '[']) => rest.to_string(),
        _ => msg.to_string(),
    }
}

/// Every document of a multi-document YAML text, as JSON values (the shape the API server
/// takes). Empty documents (a trailing `---`) are skipped; a document that does not parse is an
/// error naming the file, line and column — never silently dropped.
pub fn parse_documents(text: &str, path: &Path) -> Result<Vec<serde_json::Value>, YamlError> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value: serde_json::Value =
            serde::Deserialize::deserialize(doc).map_err(|inner: serde_yaml::Error| {
                let (line, column) = inner
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((1, 1));
                YamlError::Parse {
                    path: path.to_path_buf(),
                    line,
                    column,
                    key_path: ".".into(),
                    detail: strip_location(&inner.to_string()),
                }
            })?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// YAML text of a value (for manifests written to files and diffs).
pub fn to_string<T: serde::Serialize>(value: &T) -> String {
    serde_yaml::to_string(value).unwrap_or_else(|e| format!("# cannot be shown as YAML: {e}\n"))
}
