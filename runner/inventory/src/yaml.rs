//! Inventory and vars-file YAML, through the one YAML crate (`rookery-yaml`).
//!
//! Scalars resolve as PyYAML (YAML 1.1) resolves them, since that is what Ansible uses:
//! `yes`/`no`/`on`/`off` are booleans and `0755` is octal, so an inventory means the same
//! thing here as under `ansible-inventory`. Alias expansion and nesting are bounded there,
//! so a "billion laughs" inventory is a located error.

use crate::error::{InventoryError, Source};

pub(crate) use rookery_yaml::{Node, NodeKind};

/// Parse an inventory or vars file; `Ok(None)` for an empty document.
pub(crate) fn parse(src: &Source) -> Result<Option<Node>, InventoryError> {
    rookery_yaml::parse(src.text, src.path, rookery_yaml::Schema::Yaml11).map_err(|e| match e {
        rookery_yaml::Error::Parse {
            location, detail, ..
        } => src.syntax(location.line, location.col, detail),
        other => src.syntax(1, 1, other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn val(s: &str) -> serde_json::Value {
        let src = Source {
            path: Path::new("i.yaml"),
            text: s,
        };
        parse(&src).unwrap().unwrap().to_json()
    }

    #[test]
    fn yaml_1_1_scalars() {
        assert_eq!(val("yes"), serde_json::json!(true));
        assert_eq!(val("'yes'"), serde_json::json!("yes"));
        assert_eq!(val("0755"), serde_json::json!(493));
        assert_eq!(val("!unsafe '{{ x }}'"), serde_json::json!("{{ x }}"));
    }

    #[test]
    fn positions_are_one_based() {
        let src = Source {
            path: Path::new("i.yaml"),
            text: "a:\n  bb: 1\n",
        };
        let root = parse(&src).unwrap().unwrap();
        let pairs = root.as_map().unwrap();
        assert_eq!((pairs[0].0.line, pairs[0].0.col), (1, 1));
        let inner = pairs[0].1.as_map().unwrap();
        assert_eq!((inner[0].0.line, inner[0].0.col), (2, 3));
    }
}
