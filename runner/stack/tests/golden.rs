//! Golden tests: the rendered manifests and the findings of every example in `stacks/`,
//! compared with `tests/golden/<example>/`. Bundle files are not copied (they are upstream's
//! bytes); `bundle-manifests.txt` records their numbered names and hashes instead.
//!
//! Regenerate after an intended change: `ROOKERY_UPDATE_GOLDEN=1 cargo test -p rookery-stack --test golden`
//! and review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rookery_stack::bundle::{self, Bundle};
use rookery_stack::desired::Source;
use rookery_stack::render::{self, RenderOptions};

fn golden_dir(example: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(example)
}

fn update() -> bool {
    std::env::var_os("ROOKERY_UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

/// Compare (or with ROOKERY_UPDATE_GOLDEN=1 rewrite) a whole directory of expected files.
fn check(example: &str, files: Vec<(String, String)>) {
    let dir = golden_dir(example);
    if update() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in &files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        return;
    }
    let mut expected: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run with ROOKERY_UPDATE_GOLDEN=1 to create it",
                dir.display()
            )
        })
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    expected.sort();
    let mut actual: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    actual.sort();
    assert_eq!(actual, expected, "{example}: set of golden files differs");
    for (name, text) in files {
        let want = std::fs::read_to_string(dir.join(&name)).unwrap();
        assert!(
            want == text,
            "{example}/{name} differs from the golden file (ROOKERY_UPDATE_GOLDEN=1 to accept):\n--- expected\n{want}\n--- actual\n{text}"
        );
    }
}

fn findings_text(findings: &[rookery_stack::Finding]) -> String {
    let mut s = String::new();
    for f in findings {
        let _ = writeln!(s, "{}[{}] {}: {}", f.severity, f.code, f.path, f.message);
        let _ = writeln!(s, "    hint: {}", f.hint);
    }
    s
}

fn golden_example(example: &str) {
    let (stack, cluster, findings) = common::plan_example(example);
    let b = Bundle::new(common::shared_upstream(), bundle::lock().unwrap());
    let opts = RenderOptions {
        stack_dir: common::example_dir(example),
        allow_missing_bundle: false,
    };
    let desired = render::render(&stack, &cluster, &b, &opts).unwrap();
    let mut files = vec![("findings.txt".to_string(), findings_text(&findings))];
    let mut listing = String::new();
    for m in desired.manifests() {
        let text = desired.manifest_text(&m, None).unwrap();
        match &m.source {
            Source::Template { .. } => files.push((m.file_name.clone(), text)),
            Source::Bundle { path, .. } => {
                let _ = writeln!(
                    listing,
                    "{} <- {path} stage {} sha256-of-objects:{} ({} objects)",
                    m.file_name,
                    m.stage.name(),
                    bundle::sha256_hex(text.as_bytes()),
                    m.objects.len()
                );
            }
        }
    }
    files.push(("bundle-manifests.txt".into(), listing));
    check(example, files);
}

#[test]
fn lab_3node() {
    golden_example("lab-3node");
}

#[test]
fn production() {
    golden_example("production");
}

/// The seed's example cannot render a healthy cluster; its golden file is its findings,
/// which the README quotes.
#[test]
fn seed_example_findings() {
    let (_, _, findings) = common::plan_example("seed-example");
    check(
        "seed-example",
        vec![("findings.txt".into(), findings_text(&findings))],
    );
}
