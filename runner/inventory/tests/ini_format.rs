//! Ansible's INI inventory format.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use common::{names, one};
use serde_json::json;

const INI: &str = r#"
# hosts before any section are ungrouped
bare ansible_host=192.0.2.9

[servers]
s1 ansible_host=10.0.0.1 ansible_port=2222 note="two words" quoted='it''s' flag=True
s2:2200    # a comment after the host

[agents]
a[01:03] role=agent
db-[a:b].lan

[nodes:children]
servers
agents

[nodes:vars]
ntp = pool.ntp.org
count = 3
list = ['x', 'y']
become = yes
pct = 0.5

[all:vars]
ansible_user=ops
"#;

#[test]
fn sections_vars_children_ranges_and_values() {
    let (_t, inv) = one(INI, "inv.ini");
    assert_eq!(
        names(&inv.hosts().iter().collect::<Vec<_>>()),
        [
            "bare", "s1", "s2", "a01", "a02", "a03", "db-a.lan", "db-b.lan"
        ]
    );
    assert_eq!(inv.host("bare").unwrap().groups, ["ungrouped"]);
    let s1 = inv.host("s1").unwrap();
    assert_eq!(s1.groups, ["nodes", "servers"]);
    assert_eq!(s1.vars["ansible_port"], json!(2222));
    assert_eq!(s1.vars["note"], json!("two words"));
    assert_eq!(s1.vars["quoted"], json!("its"));
    assert_eq!(s1.vars["flag"], json!(true));
    assert_eq!(s1.vars["count"], json!(3));
    assert_eq!(s1.vars["list"], json!(["x", "y"]));
    assert_eq!(s1.vars["become"], json!("yes"));
    assert_eq!(s1.vars["pct"], json!(0.5));
    assert_eq!(s1.vars["ansible_user"], json!("ops"));
    assert_eq!(s1.connection.port, Some(2222));
    assert_eq!(inv.host("s2").unwrap().connection.port, Some(2200));
    assert_eq!(inv.host("a02").unwrap().vars["role"], json!("agent"));
    assert_eq!(
        inv.host("db-b.lan").unwrap().vars["ntp"],
        json!("pool.ntp.org")
    );
}

#[test]
fn vars_section_before_group_and_children_before_definition() {
    let (_t, inv) = one(
        "[web:vars]\nport=80\n[all:children]\nweb\n[web]\nw1\n",
        "inv.ini",
    );
    assert_eq!(inv.host("w1").unwrap().vars["port"], json!(80));
}

#[test]
fn ini_var_origins_point_at_the_token() {
    let (t, inv) = one("[g]\nh1  a=1 b=2\n", "inv.ini");
    let loc = &inv.host("h1").unwrap().var_origins["b"];
    assert_eq!(
        loc.to_string(),
        format!("{}:2:9", t.path("inv.ini").display())
    );
}
