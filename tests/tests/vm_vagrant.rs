//! The shipped `vagrant/Vagrantfile` passes `vagrant validate` (Debian's vagrant and
//! vagrant-libvirt packages), with its defaults and with the knobs the README documents, and
//! rejects a nonsensical node count. Vagrant's state goes to a temporary directory so the test
//! leaves nothing in the repository or in ~/.vagrant.d.

use std::process::{Command, Output};

use rookery_tests::bins;
use rookery_tests::require::{have_program, prerequisite};

fn validate(env: &[(&str, &str)], args: &[&str]) -> Output {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let mut cmd = Command::new("vagrant");
    cmd.arg("validate")
        .args(args)
        .current_dir(bins::repo_root().join("vagrant"))
        .env("VAGRANT_HOME", state.path().join("home"))
        .env("VAGRANT_DOTFILE_PATH", state.path().join("dot"))
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .env("VAGRANT_BOX_UPDATE_CHECK_DISABLE", "1")
        .env("VAGRANT_DEFAULT_PROVIDER", "libvirt")
        .env("VAGRANT_NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run vagrant: {e}"));
    eprintln!(
        "vagrant validate {args:?} {env:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn vagrant_with_libvirt() -> bool {
    prerequisite(
        have_program("vagrant"),
        "`vagrant` (Debian package vagrant)",
    ) && prerequisite(
        Command::new("vagrant")
            .args(["plugin", "list"])
            .env("VAGRANT_CHECKPOINT_DISABLE", "1")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("vagrant-libvirt")),
        "the vagrant-libvirt plugin (Debian package vagrant-libvirt)",
    )
}

#[test]
fn vagrantfile_validates_with_libvirt_provider() {
    if !vagrant_with_libvirt() {
        return;
    }
    assert!(validate(&[], &[]).status.success());
    let knobs = [
        ("ROOKERY_LAB_NODES", "5"),
        ("ROOKERY_LAB_PREFIX", "lab"),
        ("ROOKERY_LAB_CPUS", "1"),
        ("ROOKERY_LAB_MEMORY", "2048"),
        ("ROOKERY_LAB_BOX", "generic/debian12"),
        ("ROOKERY_LAB_NVME_SIZE", "10G"),
        ("ROOKERY_LAB_HDD_SIZE", "512M"),
        ("ROOKERY_LAB_K3S", "0"),
    ];
    assert!(validate(&knobs, &[]).status.success());
    // VirtualBox is not installed here: validate its side with provider options ignored.
    assert!(validate(&[], &["--ignore-provider"]).status.success());
}

#[test]
fn vagrantfile_rejects_a_bad_node_count() {
    if !vagrant_with_libvirt() {
        return;
    }
    let out = validate(&[("ROOKERY_LAB_NODES", "0")], &[]);
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("ROOKERY_LAB_NODES"), "{text}");
}

#[test]
fn vagrant_inventory_matches_the_vagrantfile_defaults() {
    let vf = std::fs::read_to_string(bins::repo_root().join("vagrant/Vagrantfile")).unwrap();
    assert!(vf.contains(r#"ENV.fetch("ROOKERY_LAB_PREFIX", "rookery")"#));
    assert!(vf.contains(r#"ENV.fetch("ROOKERY_LAB_NET", "192.168.56")"#));
    assert!(vf.contains(r#"ENV.fetch("ROOKERY_LAB_NODES", "3")"#));
    assert!(vf.contains(r##"def node_ip(i) = "#{NET}.#{10 + i}""##));
    // What rookery itself resolves from the shipped inventory.
    for i in 1..=3 {
        let out = Command::new(bins::rookery())
            .args([
                "-o",
                "json",
                "inventory",
                "host",
                "-i",
                "inventories/vagrant.yaml",
            ])
            .arg(format!("rookery-{i}"))
            .current_dir(bins::repo_root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let host: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let c = &host["connection"];
        assert_eq!(c["address"], format!("192.168.56.{}", 10 + i), "{host:#}");
        assert_eq!(c["user"], "vagrant");
        assert_eq!(c["become"], true);
        assert_eq!(
            c["private_key_file"],
            format!("vagrant/.vagrant/machines/rookery-{i}/libvirt/private_key")
        );
        assert!(host["vars"]["rookery_devices"].is_array(), "{host:#}");
    }
}
