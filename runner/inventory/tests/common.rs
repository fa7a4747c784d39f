//! Helpers for the inventory tests: write a tree of files into a temp dir and load it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic
#![allow(dead_code)] // each test binary uses a subset

use std::path::{Path, PathBuf};

use rookery_inventory::{Host, Inventory};

pub struct Tree {
    pub dir: tempfile::TempDir,
}

impl Tree {
    pub fn new(files: &[(&str, &str)]) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        Tree { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn load(&self, rel: &str) -> Inventory {
        Inventory::load(self.path(rel)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The error text with the temp dir replaced by `T`, for exact assertions.
    pub fn load_err(&self, rel: &str) -> String {
        let err = Inventory::load(self.path(rel)).expect_err("inventory should be rejected");
        err.to_string()
            .replace(&format!("{}/", self.dir.path().display()), "T/")
    }
}

pub fn names(hosts: &[&Host]) -> Vec<String> {
    hosts.iter().map(|h| h.name.clone()).collect()
}

pub fn one(text: &str, name: &str) -> (Tree, Inventory) {
    let t = Tree::new(&[(name, text)]);
    let inv = t.load(name);
    (t, inv)
}

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
}
