//! `ansible_*` variables to a ConnectionSpec.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use std::path::PathBuf;

use common::one;
use rookery_inventory::{ConnectionKind, Inventory, StrictHostKeyChecking};

fn host_conn(vars_yaml: &str) -> Result<rookery_inventory::ConnectionSpec, String> {
    let text = format!("all:\n  hosts:\n    h:\n{}", indent(vars_yaml));
    Inventory::from_str_at(&text, "inv.yaml")
        .map(|inv| inv.host("h").unwrap().connection.clone())
        .map_err(|e| e.to_string())
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("      {l}\n")).collect()
}

#[test]
fn defaults() {
    let c = host_conn("x: 1").unwrap();
    assert_eq!(c.kind, ConnectionKind::Ssh);
    assert_eq!(c.address, "h");
    assert_eq!((c.port, c.user.as_deref(), c.become_), (None, None, false));
    assert!(c.ignored_ssh_options.is_empty());
}

#[test]
fn full_ssh_host() {
    let c = host_conn(
        "ansible_host: 10.1.1.1\nansible_port: '2222'\nansible_user: ops\n\
         ansible_ssh_private_key_file: ~/.ssh/lab\nansible_become: 'yes'\n\
         ansible_become_user: ceph\nansible_become_password: s3cret\n\
         ansible_ssh_common_args: -o ProxyJump=jump -o ServerAliveInterval=5\n\
         ansible_ssh_extra_args: \"-o UserKnownHostsFile=/tmp/kh -o StrictHostKeyChecking=no\"",
    )
    .unwrap();
    assert_eq!(c.address, "10.1.1.1");
    assert_eq!(c.port, Some(2222));
    assert_eq!(c.user.as_deref(), Some("ops"));
    let home = std::env::var("HOME").unwrap();
    assert_eq!(
        c.private_key_file,
        Some(PathBuf::from(format!("{home}/.ssh/lab")))
    );
    assert!(c.become_);
    assert_eq!(c.become_user.as_deref(), Some("ceph"));
    assert_eq!(c.become_password.as_deref(), Some("s3cret"));
    assert_eq!(c.proxy_jump.as_deref(), Some("jump"));
    assert_eq!(c.user_known_hosts_files, [PathBuf::from("/tmp/kh")]);
    assert_eq!(c.strict_host_key_checking, Some(StrictHostKeyChecking::No));
    assert_eq!(c.ignored_ssh_options, ["-o ServerAliveInterval=5"]);
}

#[test]
fn aliases_last_listed_wins_like_ansible() {
    let c = host_conn(
        "ansible_host: a\nansible_ssh_host: b\nansible_port: 1\nansible_ssh_port: 2\n\
         ansible_user: u1\nansible_ssh_user: u2\nansible_become_password: p1\nansible_become_pass: p2",
    )
    .unwrap();
    assert_eq!(
        (c.address.as_str(), c.port, c.user.as_deref()),
        ("b", Some(2), Some("u2"))
    );
    assert_eq!(c.become_password.as_deref(), Some("p2"));
}

#[test]
fn connection_types() {
    assert_eq!(
        host_conn("ansible_connection: local").unwrap().kind,
        ConnectionKind::Local
    );
    assert_eq!(
        host_conn("ansible_connection: smart").unwrap().kind,
        ConnectionKind::Ssh
    );
    assert_eq!(
        host_conn("ansible_connection: paramiko").unwrap().kind,
        ConnectionKind::Ssh
    );
    assert_eq!(
        host_conn("ansible_connection: winrm").unwrap_err(),
        "inv.yaml:4:7: host `h`: ansible_connection: connection `winrm` is not supported (rookery supports `ssh` and `local`)"
    );
}

#[test]
fn bad_values_are_located_errors() {
    assert_eq!(
        host_conn("ansible_port: 70000").unwrap_err(),
        "inv.yaml:4:7: host `h`: ansible_port: `70000` is not a port number (1-65535)"
    );
    assert_eq!(
        host_conn("ansible_become: maybe").unwrap_err(),
        "inv.yaml:4:7: host `h`: ansible_become: `maybe` is not a boolean (use true/false or yes/no)"
    );
    assert_eq!(
        host_conn("ansible_host: \"{{ inventory_hostname }}.lan\"").unwrap_err(),
        "inv.yaml:4:7: host `h`: ansible_host: templated connection variables (`{{ ... }}`) are not supported yet; write the value literally"
    );
    assert_eq!(
        host_conn("ansible_ssh_common_args: -o StrictHostKeyChecking=maybe").unwrap_err(),
        "inv.yaml:4:7: host `h`: ansible_ssh_common_args: -o StrictHostKeyChecking: expected yes, no, accept-new or ask, found `maybe`"
    );
    let err = host_conn("ansible_become_password: \"{{ vault_pw }}\"").unwrap_err();
    assert!(!err.contains("vault_pw"), "{err}");
}

#[test]
fn group_vars_reach_the_connection() {
    let (_t, inv) = one(
        "[nodes]\nn1 ansible_host=10.0.0.1\n[nodes:vars]\nansible_user=ops\nansible_become=true\n\
         ansible_ssh_common_args='-o ProxyCommand=\"ssh -W %h:%p -q ops@bastion\"'\n",
        "inv.ini",
    );
    let c = &inv.host("n1").unwrap().connection;
    assert_eq!(c.user.as_deref(), Some("ops"));
    assert!(c.become_);
    assert_eq!(c.proxy_jump.as_deref(), Some("ops@bastion"));
}
