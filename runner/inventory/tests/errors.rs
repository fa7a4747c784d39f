//! Inventory errors name the file, line, column and key path, and show the line.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use common::Tree;

fn err(name: &str, text: &str) -> String {
    Tree::new(&[(name, text)]).load_err(name)
}

#[test]
fn misspelt_group_key() {
    let e = err(
        "lab.yaml",
        "all:\n  children:\n    nodes:\n      host:\n        n1:\n",
    );
    assert_eq!(
        e,
        "T/lab.yaml:4:7: all.children.nodes.host: unknown key `host` in group `nodes` (a group has only `hosts`, `children` and `vars`); did you mean `hosts`?\n  |\n4 |       host:\n  |       ^"
    );
}

#[test]
fn misspelt_connection_variable() {
    let e = err(
        "lab.yaml",
        "all:\n  children:\n    nodes:\n      hosts:\n        n1:\n          ansible_hots: 10.0.0.1\n",
    );
    assert!(
        e.starts_with("T/lab.yaml:6:11: all.children.nodes.hosts.n1.ansible_hots: unknown Ansible variable `ansible_hots`; did you mean `ansible_host`?"),
        "{e}"
    );
    let e = err("lab.ini", "[g]\nh1 ansible_usr=ops\n");
    assert!(
        e.starts_with("T/lab.ini:2:4: [g] h1 ansible_usr: unknown Ansible variable `ansible_usr`; did you mean `ansible_user`?"),
        "{e}"
    );
    let e = err("lab.ini", "[g:vars]\nansible_bceome=true\n[g]\n");
    assert!(e.contains("did you mean `ansible_become`?"), "{e}");
}

#[test]
fn hosts_written_as_a_list() {
    let e = err("inv.yaml", "all:\n  hosts:\n    - a\n    - b\n");
    assert!(
        e.starts_with("T/inv.yaml:3:5: all.hosts: `hosts` must be a mapping, found a list; write each host as `name:` (a mapping), not `- name`"),
        "{e}"
    );
}

#[test]
fn host_vars_must_be_a_mapping() {
    let e = err("inv.yaml", "all:\n  hosts:\n    a: 10.0.0.1\n");
    assert!(e.starts_with("T/inv.yaml:3:8: all.hosts.a: host variables must be a mapping (`key: value`), found a string"), "{e}");
}

#[test]
fn yaml_syntax_error() {
    let e = err("inv.yaml", "all:\n  hosts:\n    a: [1, 2\n");
    assert!(e.starts_with("T/inv.yaml:4:1: "), "{e}");
}

#[test]
fn top_level_not_a_mapping_and_plugin_configs() {
    assert!(err("inv.yaml", "- a\n- b\n").starts_with(
        "T/inv.yaml:1:1: an inventory must be a mapping of group names (usually `all:`), found a list"
    ));
    assert!(
        err("aws.yaml", "plugin: amazon.aws.aws_ec2\n")
            .starts_with("T/aws.yaml:1:1: plugin: this is an inventory plugin configuration")
    );
}

#[test]
fn bad_ranges_and_ports() {
    let e = err("inv.yaml", "all:\n  hosts:\n    web[3:1]:\n");
    assert!(e.starts_with("T/inv.yaml:3:5: all.hosts.web[3:1]: host range `[3:1]` in `web[3:1]` must have begin <= end"), "{e}");
    let e = err("inv.ini", "[g]\nh:99999\n");
    assert!(
        e.starts_with("T/inv.ini:2:1: [g] h:99999: invalid port `99999` (expected 1-65535)"),
        "{e}"
    );
}

#[test]
fn ini_errors() {
    let e = err("inv.ini", "[g]\nh1 novalue\n");
    assert!(e.starts_with("T/inv.ini:2:4: [g] h1: expected `key=value` host variable, found `novalue`\n  |\n2 | h1 novalue\n  |    ^"), "{e}");
    let e = err("inv.ini", "[g:vars]\njust-a-word\n");
    assert!(
        e.starts_with("T/inv.ini:2:1: [g:vars]: expected `key=value`, found `just-a-word`"),
        "{e}"
    );
    let e = err("inv.ini", "[g:weird]\n");
    assert!(
        e.starts_with("T/inv.ini:1:1: [g:weird]: unknown section type `weird`"),
        "{e}"
    );
    let e = err("inv.ini", "[p:children]\nmissing\n");
    assert!(e.starts_with("T/inv.ini:2:1: [p:children]: section [p:children] names group `missing`, which is not defined in this file"), "{e}");
    let e = err("inv.ini", "[ghost:vars]\nx=1\n");
    assert!(
        e.starts_with("T/inv.ini:1:1: [ghost:vars]: section [ghost:vars] is for group `ghost`"),
        "{e}"
    );
    let e = err("inv.ini", "[g]\nh1 a=\"unterminated\n");
    assert!(
        e.starts_with("T/inv.ini:2:1: unterminated double quote"),
        "{e}"
    );
}

#[test]
fn cycles_are_errors() {
    let e = err(
        "inv.yaml",
        "all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a:\n",
    );
    assert_eq!(e, "group `a` is its own ancestor: a -> b -> a");
}

#[test]
fn vars_file_errors_are_located() {
    let t = Tree::new(&[
        ("inv.yaml", "all:\n  hosts:\n    h:\n"),
        ("host_vars/h.yml", "ok: 1\nansible_prot: 22\n"),
    ]);
    assert!(t.load_err("inv.yaml").starts_with("T/host_vars/h.yml:2:1: ansible_prot: unknown Ansible variable `ansible_prot`; did you mean `ansible_port`?"));
    let t = Tree::new(&[
        ("inv.yaml", "all:\n  hosts:\n    h:\n"),
        ("group_vars/all", "- not\n- a map\n"),
    ]);
    assert!(t.load_err("inv.yaml").starts_with(
        "T/group_vars/all:1:1: a vars file must be a mapping of variable names, found a list"
    ));
}

#[test]
fn missing_file() {
    let t = Tree::new(&[]);
    assert_eq!(
        t.load_err("nope.yaml"),
        "cannot read inventory `T/nope.yaml`"
    );
}

#[test]
fn snippets_mask_secret_values() {
    let e = err(
        "inv.yaml",
        "all:\n  hosts:\n    h: {ansible_become_pass: hunter2, ansible_hots: x}\n",
    );
    assert!(!e.contains("hunter2"), "{e}");
    assert!(e.contains("ansible_become_pass: <redacted>"), "{e}");
    let e = err(
        "inv.ini",
        "[g]\nh ansible_become_password='hunter 2' ansible_prot=1\n",
    );
    assert!(!e.contains("hunter"), "{e}");
}

/// Aliases were expanded without a bound: nine levels of ten aliases each built 10^9 nodes
/// (an OOM). Now the expansion has a budget and the error points at the alias that broke it.
#[test]
fn billion_laughs_inventory_is_a_located_error() {
    let mut text = String::from(
        "all:\n  vars:\n    l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..9 {
        let p = format!("*l{}", i - 1);
        let items = [p.as_str(); 10].join(", ");
        text.push_str(&format!("    l{i}: &l{i} [{items}]\n"));
    }
    text.push_str("  hosts:\n    n1:\n");
    let e = err("lab.yaml", &text);
    assert!(e.starts_with("T/lab.yaml:"), "{e}");
    assert!(
        e.contains("YAML aliases expand to more than 1000000 nodes"),
        "{e}"
    );
}

/// `n[0:99999999999]` tried to build 10^11 host names.
#[test]
fn huge_host_range_is_a_located_error() {
    let e = err("lab.yaml", "all:\n  hosts:\n    n[0:99999999999]:\n");
    assert!(e.starts_with("T/lab.yaml:3:5:"), "{e}");
    assert!(e.contains("expands to more than 100000 hosts"), "{e}");
    let e = err("lab.ini", "[g]\nn[0:99999999999]\n");
    assert!(e.starts_with("T/lab.ini:2:"), "{e}");
}
