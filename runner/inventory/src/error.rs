//! Errors and warnings from loading an inventory, and the file positions they point at.
//! Every error about a file's content carries `file:line:col`, the key path (for YAML) and a
//! one-line snippet with a caret, because an error without a location was Ansible's most
//! common complaint.

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in an inventory or vars file (1-based line and column): the YAML crate's, so
/// every input file is located the same way.
pub use rookery_yaml::Location;

/// Something suspicious that Ansible would accept too, so it does not stop the load.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub location: Option<Location>,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(loc) => write!(f, "{loc}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read inventory `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Malformed YAML or INI at a position.
    #[error("{location}: {message}{snippet}")]
    Syntax {
        location: Location,
        message: String,
        snippet: String,
    },
    /// Well-formed file whose content is not a valid inventory.
    #[error("{location}: {}{message}{snippet}", key_prefix(key_path))]
    Invalid {
        location: Location,
        /// Dotted path of the offending key, e.g. `all.children.nodes.hosts.n1`.
        key_path: String,
        message: String,
        snippet: String,
    },
    /// A host's connection variables cannot be turned into a connection.
    #[error("{}host `{host}`: {message}", location.as_ref().map(|l| format!("{l}: ")).unwrap_or_default())]
    Connection {
        host: String,
        location: Option<Location>,
        message: String,
    },
    /// Group children form a cycle.
    #[error("group `{group}` is its own ancestor: {}", cycle.join(" -> "))]
    Cycle { group: String, cycle: Vec<String> },
    /// A host pattern (`--limit`, a play's `hosts:`) is invalid or matches nothing.
    #[error("host pattern `{pattern}`: {message}")]
    Pattern { pattern: String, message: String },
    /// A `@file` limit could not be read.
    #[error("cannot read limit file `{}`", path.display())]
    LimitFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl rookery_diagnostic::Diagnostic for InventoryError {
    fn exit_code(&self) -> u8 {
        rookery_diagnostic::exit::INPUT
    }
}

fn key_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// The text of one file being parsed, for building located errors with snippets.
pub(crate) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    pub fn location(&self, line: usize, col: usize) -> Location {
        Location {
            file: self.path.to_path_buf(),
            line,
            col,
        }
    }

    /// The offending line with a caret under `col` (secret values masked), prefixed by a
    /// newline; the same snippet every YAML error carries.
    pub fn snippet(&self, line: usize, col: usize) -> String {
        rookery_yaml::snippet(self.text, line, col)
    }

    pub fn invalid(
        &self,
        line: usize,
        col: usize,
        key_path: impl Into<String>,
        message: impl Into<String>,
    ) -> InventoryError {
        InventoryError::Invalid {
            location: self.location(line, col),
            key_path: key_path.into(),
            message: message.into(),
            snippet: self.snippet(line, col),
        }
    }

    pub fn syntax(&self, line: usize, col: usize, message: impl Into<String>) -> InventoryError {
        InventoryError::Syntax {
            location: self.location(line, col),
            message: message.into(),
            snippet: self.snippet(line, col),
        }
    }
}

/// Up to three names close to `wanted`, best first, for "did you mean" hints.
pub(crate) fn near_matches<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Vec<&'a str> {
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .filter_map(|c| {
            let d = strsim::damerau_levenshtein(wanted, c);
            let limit = (wanted.chars().count().max(c.chars().count()) / 3).clamp(1, 3);
            let prefix = wanted.len() >= 3 && c.starts_with(wanted);
            (d <= limit || prefix).then_some((d, c))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    let best = scored.first().map(|(d, _)| *d).unwrap_or(0);
    scored
        .into_iter()
        .filter(|(d, _)| *d <= best + 1)
        .take(3)
        .map(|(_, c)| c)
        .collect()
}

/// `; did you mean `x`?` or empty.
pub(crate) fn did_you_mean(near: &[&str]) -> String {
    match near {
        [] => String::new(),
        [one] => format!("; did you mean `{one}`?"),
        many => format!(
            "; did you mean one of {}?",
            many.iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
