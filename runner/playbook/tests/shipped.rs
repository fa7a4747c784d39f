//! Every playbook shipped under `playbooks/` (not the stack's `templates/`) parses and its
//! module arguments check out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use rookery_playbook::{Registry, load_playbook};

#[test]
fn shipped_playbooks_parse() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../playbooks");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        // site.yaml uses the cluster modules the runner registers; the runner checks it
        // (`commands::up` tests).
        if !path.is_file() || !is_yaml || path.ends_with("site.yaml") {
            continue;
        }
        let pb = load_playbook(&path, &Registry::builtin())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!pb.plays.is_empty(), "{} has no plays", path.display());
        seen += 1;
    }
    assert!(
        seen >= 2,
        "expected probe.yaml and example.yaml under {}",
        dir.display()
    );
}
