//! The one shape of a YAML error: `file:line:col: key.path: message`, then the offending line
//! with a caret under the column.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use crate::node::Source;

/// A position in a file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Malformed YAML, or YAML whose content does not fit what was asked for.
    #[error("{location}: {}{detail}{snippet}", key_prefix(key_path))]
    Parse {
        location: Location,
        /// Dotted key path (`cephCluster.storage.nodes[0].devices`); empty for the root.
        key_path: String,
        detail: String,
        /// The line with a caret, prefixed by a newline; empty when the line is unknown.
        snippet: String,
    },
}

impl Error {
    pub(crate) fn at(
        src: &Source,
        line: usize,
        col: usize,
        key_path: String,
        detail: String,
    ) -> Error {
        Error::Parse {
            location: Location {
                file: src.path.clone(),
                line,
                col,
            },
            key_path,
            snippet: snippet(&src.text, line, col),
            detail,
        }
    }

    /// Where the error is, for a parse error.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Error::Parse { location, .. } => Some(location),
            Error::Read { .. } => None,
        }
    }

    /// The key path, for a parse error.
    pub fn key_path(&self) -> Option<&str> {
        match self {
            Error::Parse { key_path, .. } => Some(key_path),
            Error::Read { .. } => None,
        }
    }

    /// The message without location, path or snippet.
    pub fn detail(&self) -> String {
        match self {
            Error::Parse { detail, .. } => detail.clone(),
            Error::Read { .. } => self.to_string(),
        }
    }

    /// The file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            Error::Parse { location, .. } => &location.file,
            Error::Read { path, .. } => path,
        }
    }
}

impl rookery_diagnostic::Diagnostic for Error {
    /// Every YAML file Rookery reads is an input the user wrote.
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

/// The line `line` of `text` with a caret under `col`, prefixed by a newline; empty if the
/// line does not exist. Values of secret-looking keys on that line are masked, since errors
/// end up in CI logs.
pub fn snippet(text: &str, line: usize, col: usize) -> String {
    let Some(text) = text.lines().nth(line.saturating_sub(1)) else {
        return String::new();
    };
    let text = mask_secrets(text);
    let gutter = line.to_string().len();
    let pad = " ".repeat(gutter);
    let caret_at: String = text
        .chars()
        .take(col.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!("\n{pad} |\n{line} | {text}\n{pad} | {caret_at}^")
}

/// What a masked value is shown as.
pub const REDACTED: &str = "<redacted>";

static SECRET_ASSIGNMENT: LazyLock<regex::Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)]
    regex::Regex::new(
        r#"(?i)([\w.-]*(?:pass|secret|token)[\w.-]*)(\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s#]+)"#,
    )
    .expect("static regex")
});

/// `ansible_become_pass: x` → `ansible_become_pass: <redacted>` (YAML or INI spelling).
pub fn mask_secrets(line: &str) -> String {
    SECRET_ASSIGNMENT
        .replace_all(line, |c: &regex::Captures| {
            format!("{}{}{REDACTED}", &c[1], &c[2])
        })
        .into_owned()
}
