//! Variable precedence, as Ansible's VariableManager applies it to inventory sources:
//! all < parent group < child group (by depth, then ansible_group_priority, then name),
//! inventory-file group vars < group_vars/all < group_vars/<group> < inventory host vars
//! < host_vars/<host>.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use common::Tree;
use serde_json::json;

const INV: &str = r#"
all:
  vars: {v_all: inv-all, v_grp: inv-all, v_file: inv-all, v_host: inv-all, v_hv: inv-all}
  children:
    parent:
      vars: {v_grp: inv-parent, v_file: inv-parent}
      children:
        child:
          vars: {v_grp: inv-child, v_file: inv-child}
          hosts:
            h1:
              v_host: inv-host
              v_hv: inv-host
    zeta:
      vars: {order: zeta}
      hosts: {h1: }
    alpha:
      vars: {order: alpha, prio: alpha, ansible_group_priority: 10}
      hosts: {h1: }
    beta:
      vars: {prio: beta, order: beta}
      hosts: {h1: }
"#;

#[test]
fn ansible_precedence_order() {
    let t = Tree::new(&[
        ("inv.yaml", INV),
        ("group_vars/all.yml", "v_file: gv-all\nv_all2: gv-all\n"),
        ("group_vars/parent", "v_file: gv-parent\n"),
        (
            "group_vars/child/10-a.yaml",
            "v_file: gv-child-a\nv_dir: a\n",
        ),
        ("group_vars/child/20-b.yml", "v_dir: b\n"),
        ("group_vars/child/notes.txt", "v_dir: txt-is-skipped\n"),
        ("host_vars/h1.yaml", "v_hv: hv-host\n"),
    ]);
    let inv = t.load("inv.yaml");
    let v = &inv.host("h1").unwrap().vars;
    assert_eq!(v["v_all"], json!("inv-all"));
    // Child group beats parent beats all.
    assert_eq!(v["v_grp"], json!("inv-child"));
    // Any group_vars file beats any inventory-file group var; deeper files win.
    assert_eq!(v["v_file"], json!("gv-child-a"));
    assert_eq!(v["v_all2"], json!("gv-all"));
    // Directory files in sorted order, later wins; non-YAML extensions skipped.
    assert_eq!(v["v_dir"], json!("b"));
    // Inventory host vars beat group vars; host_vars files beat those.
    assert_eq!(v["v_host"], json!("inv-host"));
    assert_eq!(v["v_hv"], json!("hv-host"));
    // Same depth: by ansible_group_priority (higher wins), then by name (later wins).
    assert_eq!(v["prio"], json!("alpha"));
    assert_eq!(v["order"], json!("alpha"));
    let origin = &inv.host("h1").unwrap().var_origins["v_dir"];
    assert!(
        origin.file.ends_with("group_vars/child/20-b.yml"),
        "{origin}"
    );
}

#[test]
fn same_depth_without_priority_sorts_by_name() {
    let t = Tree::new(&[(
        "inv.yaml",
        "all:\n  children:\n    b: {vars: {x: b}, hosts: {h: }}\n    a: {vars: {x: a}, hosts: {h: }}\n",
    )]);
    assert_eq!(t.load("inv.yaml").host("h").unwrap().vars["x"], json!("b"));
}

#[test]
fn vars_file_for_an_unknown_group_is_a_warning() {
    let t = Tree::new(&[
        ("inv.yaml", "all:\n  hosts:\n    h:\n"),
        ("group_vars/nodse.yaml", "x: 1\n"),
    ]);
    let inv = t.load("inv.yaml");
    assert_eq!(inv.warnings().len(), 1);
    assert!(
        inv.warnings()[0].message.ends_with(
            "group_vars/nodse.yaml: no group named `nodse` in the inventory; file ignored"
        ),
        "{}",
        inv.warnings()[0]
    );
}
