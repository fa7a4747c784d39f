//! The bundle lock file against the shared upstream copies, and hash verification.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use rookery_stack::bundle::{self, Bundle, FileStatus};

#[test]
fn lock_file_hashes_match_shared_upstream() {
    let lock = bundle::lock().unwrap();
    let b = Bundle::new(common::shared_upstream(), lock.clone());
    for (f, status) in b.verify() {
        assert_eq!(status, FileStatus::Ok, "{}", f.path);
        let bytes = std::fs::read(common::shared_upstream().join(&f.path)).unwrap();
        assert_eq!(bytes.len() as u64, f.bytes, "{}", f.path);
    }
    assert_eq!(lock.files.len(), 26);
}

/// The lock file agrees with the provenance table in shared/upstream/README.md (sha256,
/// tag, commit) and points at the release tag.
#[test]
fn lock_file_matches_upstream_readme() {
    let readme = std::fs::read_to_string(common::shared_upstream().join("README.md")).unwrap();
    for f in bundle::lock().unwrap().files {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", f.path)))
            .unwrap_or_else(|| panic!("{} not in README", f.path));
        assert!(row.contains(&f.sha256), "{}", f.path);
        assert!(row.contains(&format!("| {} |", f.version)), "{}", f.path);
        assert!(row.contains(&f.commit[..12]), "{}", f.path);
        assert!(f.url.contains(&format!("/{}/", f.version)), "{}", f.url);
        let upstream_path = f.path.split_once('/').unwrap().1;
        assert!(f.url.ends_with(upstream_path), "{}", f.url);
    }
}

#[test]
fn verify_and_read_detect_missing_and_tampered_files() {
    let lock = bundle::lock().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for f in &lock.files {
        let dest = tmp.path().join(&f.path);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(common::shared_upstream().join(&f.path), &dest).unwrap();
    }
    let b = Bundle::new(tmp.path(), lock.clone());
    assert!(b.verify().iter().all(|(_, s)| *s == FileStatus::Ok));
    let victim = &lock.files[11]; // rook operator.yaml
    let p = tmp.path().join(&victim.path);
    let mut text = std::fs::read_to_string(&p).unwrap();
    text.push_str("# extra\n");
    std::fs::write(&p, text).unwrap();
    std::fs::remove_file(tmp.path().join(&lock.files[0].path)).unwrap();
    let bad: Vec<_> = b
        .verify()
        .into_iter()
        .filter(|(_, s)| *s != FileStatus::Ok)
        .collect();
    assert_eq!(bad.len(), 2);
    assert!(matches!(bad[0].1, FileStatus::Missing));
    assert!(matches!(bad[1].1, FileStatus::Mismatch { .. }));
    let e = b.read(victim).unwrap_err();
    assert!(matches!(e, bundle::BundleError::HashMismatch { .. }), "{e}");
    // fetch of an already-complete file never touches the network; here the tampered one
    // would need curl, and github is unreachable from CI, so only the cached path is run.
    let good = Bundle::new(common::shared_upstream(), lock);
    let mut cached = 0;
    good.fetch(|_, downloaded| {
        assert!(!downloaded);
        cached += 1;
    })
    .unwrap();
    assert_eq!(cached, 26);
}

#[test]
fn rendering_refuses_a_tampered_bundle() {
    let (stack, cluster, _) = common::plan_example("lab-3node");
    let tmp = tempfile::tempdir().unwrap();
    let b = Bundle::new(tmp.path(), bundle::lock().unwrap());
    let opts = rookery_stack::render::RenderOptions {
        stack_dir: common::example_dir("lab-3node"),
        allow_missing_bundle: false,
    };
    let e = rookery_stack::render::render(&stack, &cluster, &b, &opts).unwrap_err();
    assert!(e.to_string().contains("is missing"), "{e}");
}

/// A server that accepts the connection and then says nothing (TLS never starts) costs the
/// connect timeout, not the run; curl's exit 28 (timeout) is reported with the URL.
#[test]
fn fetch_gives_up_on_a_silent_server() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepted connections are kept open and never answered.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("https://127.0.0.1:{port}/rook/crds.yaml");
    let lock = bundle::LockFile {
        bundle: "test".into(),
        files: vec![bundle::LockedFile {
            path: "rook/crds.yaml".into(),
            project: "rook".into(),
            version: "v0".into(),
            commit: "0".repeat(40),
            url: url.clone(),
            bytes: 10,
            sha256: "0".repeat(64),
        }],
    };
    let mut b = Bundle::new(tmp.path(), lock);
    b.fetch_limits = bundle::FetchLimits {
        connect_timeout: std::time::Duration::from_secs(1),
        max_time: std::time::Duration::from_secs(2),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(b.fetch(|_, _| {}).map_err(|e| e.to_string()));
    });
    let r = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("fetch must give up on a silent server");
    let e = r.unwrap_err();
    assert!(e.contains(&url) && e.contains("curl exit 28"), "{e}");
    assert!(!tmp.path().join("rook/crds.partial").exists());
}
