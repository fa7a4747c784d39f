//! `tests/vmlab/apt-mirror.sh`: the VM lab (build-image.sh, the Vagrant nodes) takes its Debian
//! mirror from this machine's apt configuration, in both of apt's formats, and falls back to
//! deb.debian.org only when there is none. Each case is a real apt directory layout in a temp
//! dir (`ROOKERY_APT_DIR`); the last case reads this machine's own /etc/apt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use rookery_tests::bins;

fn mirror(apt_dir: Option<&Path>) -> String {
    let mut cmd = Command::new(bins::repo_root().join("tests/vmlab/apt-mirror.sh"));
    if let Some(d) = apt_dir {
        cmd.env("ROOKERY_APT_DIR", d);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn apt_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("sources.list.d")).unwrap();
    for (name, text) in files {
        std::fs::write(d.path().join(name), text).unwrap();
    }
    d
}

#[test]
fn one_line_sources_list() {
    let d = apt_dir(&[(
        "sources.list",
        "# deb http://commented.example/debian bookworm main\n\
         deb-src http://src.example/debian bookworm main\n\
         deb http://security.debian.org/debian-security bookworm-security main\n\
         deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
         http://mirror.example.org/debian/ bookworm main contrib\n",
    )]);
    assert_eq!(mirror(Some(d.path())), "http://mirror.example.org/debian");
}

#[test]
fn deb822_sources() {
    let d = apt_dir(&[
        (
            "sources.list.d/a-disabled.sources",
            "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\n\
             Enabled: no\n",
        ),
        (
            "sources.list.d/debian.sources",
            "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
             URIs: http://deb-security.example/debian-security\nSuites: bookworm-security\n\
             Components: main\n\nTypes: deb deb-src\n\
             URIs: https://proxy.example:3142/debian http://second.example/debian\n\
             Suites: bookworm bookworm-updates\nComponents: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
        ),
        (
            "sources.list.d/z-other.sources",
            "Types: deb\nURIs: http://later.example/debian\nSuites: bookworm\nComponents: main\n",
        ),
    ]);
    assert_eq!(mirror(Some(d.path())), "https://proxy.example:3142/debian");
}

#[test]
fn falls_back_without_a_debian_entry() {
    let d = apt_dir(&[(
        "sources.list.d/nodesource.list",
        "deb https://deb.nodesource.com/node_20.x nodistro main\n",
    )]);
    assert_eq!(mirror(Some(d.path())), "http://deb.debian.org/debian");
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(mirror(Some(empty.path())), "http://deb.debian.org/debian");
}

#[test]
fn this_machine() {
    let m = mirror(None);
    assert!(m.starts_with("http://") || m.starts_with("https://"), "{m}");
}
