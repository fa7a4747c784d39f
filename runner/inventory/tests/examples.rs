//! Every inventory shipped under `inventories/` parses, resolves every host's connection,
//! and loads without warnings.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::path::Path;

use rookery_inventory::{ConnectionKind, Inventory};

fn inventories_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../inventories")
}

#[test]
fn every_shipped_inventory_parses() {
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(inventories_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"))
        .collect();
    entries.sort();
    for path in entries {
        let inv = Inventory::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!inv.hosts().is_empty(), "{} has no hosts", path.display());
        assert!(
            inv.warnings().is_empty(),
            "{}: {:?}",
            path.display(),
            inv.warnings()
        );
        checked += 1;
    }
    assert!(
        checked >= 3,
        "expected local.yaml, lab.yaml and lab.ini at least"
    );
}

#[test]
fn local_inventory_is_the_control_machine() {
    let inv = Inventory::load(inventories_dir().join("local.yaml")).unwrap();
    let hosts = inv.select("nodes").unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].connection.kind, ConnectionKind::Local);
}

#[test]
fn lab_yaml_and_ini_agree() {
    let yaml = Inventory::load(inventories_dir().join("lab.yaml")).unwrap();
    let ini = Inventory::load(inventories_dir().join("lab.ini")).unwrap();
    let names = |i: &Inventory| i.hosts().iter().map(|h| h.name.clone()).collect::<Vec<_>>();
    let mut a = names(&yaml);
    let mut b = names(&ini);
    a.sort();
    b.sort();
    assert_eq!(a, b);
    for h in yaml.hosts() {
        let other = ini.host(&h.name).unwrap();
        assert_eq!(h.groups, other.groups, "{}", h.name);
        // Equal apart from where the host-key options were written (file:line).
        let (mut x, mut y) = (h.connection.clone(), other.connection.clone());
        assert!(x.host_key_options_origin.is_some() && y.host_key_options_origin.is_some());
        x.host_key_options_origin = None;
        y.host_key_options_origin = None;
        assert_eq!(x, y, "{}", h.name);
        assert_eq!(
            h.vars["ceph_device_classes"],
            other.vars["ceph_device_classes"]
        );
    }
}
