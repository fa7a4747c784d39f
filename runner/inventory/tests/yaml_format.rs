//! Ansible's YAML inventory format: structure, host ranges and ports, implicit groups.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use common::{Tree, names, one};
use serde_json::json;

const LAB: &str = r#"
all:
  hosts:
    lonely:
  vars:
    site: lab
  children:
    nodes:
      children:
        servers:
          hosts:
            s1:
              ansible_host: 10.0.0.1
        agents:
          hosts:
            a[1:3]:
            web[01:02].lan:2222:
    monitored:
      hosts:
        s1:
        a2:
    empty:
    single: {hosts: solo}
"#;

#[test]
fn groups_children_and_membership() {
    let (_t, inv) = one(LAB, "inv.yaml");
    assert_eq!(
        names(&inv.hosts().iter().collect::<Vec<_>>()),
        [
            "lonely",
            "s1",
            "a1",
            "a2",
            "a3",
            "web01.lan",
            "web02.lan",
            "solo"
        ]
    );
    let s1 = inv.host("s1").unwrap();
    assert_eq!(s1.groups, ["monitored", "nodes", "servers"]);
    assert_eq!(inv.host("lonely").unwrap().groups, ["ungrouped"]);
    assert_eq!(
        inv.host("web02.lan").unwrap().vars["ansible_port"],
        json!(2222)
    );
    assert_eq!(inv.host("web02.lan").unwrap().connection.port, Some(2222));
    assert_eq!(inv.host("a2").unwrap().vars["site"], json!("lab"));
    assert!(inv.group("empty").is_some());
    assert_eq!(
        names(&inv.group_hosts("nodes")),
        ["s1", "a1", "a2", "a3", "web01.lan", "web02.lan"]
    );
    assert_eq!(
        inv.group("all").unwrap().children,
        ["ungrouped", "nodes", "monitored", "empty", "single"]
    );
    assert_eq!(inv.group("nodes").unwrap().depth, 1);
    assert_eq!(inv.group("servers").unwrap().depth, 2);
    assert!(inv.warnings().is_empty(), "{:?}", inv.warnings());
}

#[test]
fn yaml_1_1_values_and_anchors() {
    let (_t, inv) = one(
        "all:\n  vars: &v\n    flag: yes\n    mode: 0644\n    quoted: 'no'\n  hosts:\n    h:\n      <<: *v\n      flag: off\n",
        "inv.yml",
    );
    let h = inv.host("h").unwrap();
    assert_eq!(h.vars["flag"], json!(false));
    assert_eq!(h.vars["mode"], json!(420));
    assert_eq!(h.vars["quoted"], json!("no"));
}

#[test]
fn empty_and_comment_only_files_are_empty_inventories() {
    let (_t, inv) = one("# nothing yet\n", "inv.yaml");
    assert!(inv.hosts().is_empty());
    assert!(inv.group("ungrouped").is_some());
}

#[test]
fn format_is_detected_from_content_without_extension() {
    let t = Tree::new(&[
        ("yaml_inv", "all:\n  hosts:\n    y1:\n"),
        ("ini_inv", "i1\n[g]\ni2\n"),
        ("plain_list", "h1\nh2\n"),
    ]);
    assert_eq!(t.load("yaml_inv").hosts()[0].name, "y1");
    assert_eq!(t.load("ini_inv").host("i2").unwrap().groups, ["g"]);
    assert_eq!(t.load("plain_list").hosts().len(), 2);
}

#[test]
fn a_directory_loads_every_inventory_in_it() {
    let t = Tree::new(&[
        (
            "inv/01-hosts.yaml",
            "all:\n  children:\n    web:\n      hosts:\n        w1:\n",
        ),
        ("inv/02-more.ini", "[db]\nd1\n[web]\nw2\n"),
        ("inv/README.md", "# not an inventory: [ignored\n"),
        ("inv/.hidden.yaml", "not: [valid\n"),
        ("inv/old.yaml~", "not: [valid\n"),
        ("inv/group_vars/web.yaml", "tier: front\n"),
    ]);
    let inv = t.load("inv");
    assert_eq!(
        names(&inv.hosts().iter().collect::<Vec<_>>()),
        ["w1", "d1", "w2"]
    );
    assert_eq!(inv.host("w2").unwrap().vars["tier"], json!("front"));
    assert_eq!(inv.sources().len(), 2);
}

#[test]
fn hosts_may_repeat_across_groups_and_merge_vars() {
    let (_t, inv) = one(
        "all:\n  children:\n    a:\n      hosts:\n        h: {x: 1, y: 1}\n    b:\n      hosts:\n        h: {y: 2}\n",
        "inv.yaml",
    );
    let h = inv.host("h").unwrap();
    assert_eq!(h.groups, ["a", "b"]);
    assert_eq!(h.vars["x"], json!(1));
    assert_eq!(h.vars["y"], json!(2));
    assert_eq!(inv.hosts().len(), 1);
}

#[test]
fn unused_ansible_vars_and_duplicate_keys_are_warnings() {
    let (_t, inv) = one(
        "all:\n  hosts:\n    h:\n      ansible_python_interpreter: /usr/bin/python3\n      a: 1\n      a: 2\n",
        "inv.yaml",
    );
    let w: Vec<String> = inv.warnings().iter().map(|w| w.message.clone()).collect();
    assert_eq!(
        w,
        [
            "all.hosts.h: duplicate key `a`; the last one wins",
            "variable `ansible_python_interpreter` is not used by rookery",
        ]
    );
    assert_eq!(inv.host("h").unwrap().vars["a"], json!(2));
}

#[test]
fn comma_separated_host_list_like_ansible() {
    let inv = rookery_inventory::Inventory::load("10.0.0.1, web2:2222,").unwrap();
    assert_eq!(
        names(&inv.hosts().iter().collect::<Vec<_>>()),
        ["10.0.0.1", "web2"]
    );
    assert_eq!(inv.host("web2").unwrap().connection.port, Some(2222));
    assert_eq!(inv.host("10.0.0.1").unwrap().groups, ["ungrouped"]);
}

#[test]
fn group_members_keep_their_own_order_and_ungrouped_is_fixed_up() {
    // Cross-checked against `ansible-inventory --graph` (ansible-core 2.19).
    let (_t, inv) = one(
        "all:\n  hosts:\n    a:\n    b:\n  children:\n    g1:\n      hosts:\n        b:\n    g2:\n      children:\n        g1:\ng3:\n  hosts:\n    c:\n    a:\nungrouped:\n  hosts:\n    d:\n",
        "inv.yaml",
    );
    assert_eq!(inv.group("g3").unwrap().hosts, ["c", "a"]);
    assert_eq!(inv.group("ungrouped").unwrap().hosts, ["d"]);
    assert_eq!(
        inv.group("all").unwrap().children,
        ["ungrouped", "g1", "g2", "g3"]
    );
    assert_eq!(inv.host("b").unwrap().groups, ["g1", "g2"]);
    assert_eq!(inv.host("a").unwrap().groups, ["g3"]);
}
