//! `rookery plan`, `rookery render` and `rookery bundle verify` driven through the built
//! binary (issue 5 item 5): exit codes, the seed example's placement explanation, JSON that
//! parses, numbered manifests in apply order, Secrets without values unless asked (and the
//! values never on stdout/stderr), `file:line:col` for a malformed stack, and a tampered
//! bundle copy rejected. Needs `cargo build -p rookery` and `../shared/upstream`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rookery_tests::bins;

fn example(name: &str) -> PathBuf {
    bins::repo_root().join("stacks").join(name)
}

fn upstream() -> PathBuf {
    bins::shared_dir().join("upstream")
}

/// `rookery [global...] <cmd> -i EX/inventory.yaml --stack EX/stack.yaml --facts EX/facts.json`.
fn stack_cmd(global: &[&str], cmd: &str, ex: &str) -> Command {
    let dir = example(ex);
    let mut c = Command::new(bins::rookery());
    c.args(global)
        .arg(cmd)
        .arg("-i")
        .arg(dir.join("inventory.yaml"))
        .arg("--stack")
        .arg(dir.join("stack.yaml"))
        .arg("--facts")
        .arg(dir.join("facts.json"))
        .arg("--bundle-dir")
        .arg(upstream());
    c
}

fn run(mut c: Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn b64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn plan_rejects_the_seed_example_with_the_placement_explanation() {
    let (code, out, err) = run(stack_cmd(&[], "plan", "seed-example"));
    assert_eq!(code, 8, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("error[placement]"), "{out}");
    assert!(
        out.contains("needs 3 replicas on 3 different hosts with deviceClass `nvme`")
            && out.contains("only 1 host has nvme OSD devices")
            && out.contains("can never place 3 copies"),
        "{out}"
    );
    assert!(
        out.contains("hint: add nvme devices on 2 more hosts"),
        "{out}"
    );
    assert!(out.contains("Plan REJECTED"), "{out}");
}

#[test]
fn plan_accepts_the_lab_and_its_json_parses() {
    let (code, out, err) = run(stack_cmd(&[], "plan", "lab-3node"));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("Plan OK"), "{out}");

    let (code, out, err) = run(stack_cmd(&["-o", "json"], "plan", "lab-3node"));
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["recap"]["errors"], 0, "{doc:#}");
    assert_eq!(doc["bundleComplete"], true, "{doc:#}");
    let nodes = doc["cluster"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert!(
        nodes[0]["devices"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("/dev/disk/by-id/"),
        "{doc:#}"
    );
    assert!(doc["manifests"].as_array().unwrap().len() > 10);

    // The seed's JSON parses too and carries the same verdict.
    let (code, out, _) = run(stack_cmd(&["-o", "json"], "plan", "seed-example"));
    assert_eq!(code, 8);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(doc["recap"]["errors"].as_u64().unwrap() >= 2);
    assert!(
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "placement")
    );
}

fn rendered(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn render_writes_numbered_files_in_apply_order_and_hides_secrets() {
    let lab = example("lab-3node");
    let kopia = std::fs::read(lab.join("secrets/kopia-password")).unwrap();
    let s3 = std::fs::read(lab.join("secrets/s3.ini")).unwrap();
    let kopia_text = String::from_utf8(kopia.clone()).unwrap();
    let kopia_text = kopia_text.trim();
    let s3_key_line = String::from_utf8(s3.clone())
        .unwrap()
        .lines()
        .find(|l| l.contains("secret"))
        .unwrap()
        .to_string();

    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("manifests");
    let mut c = stack_cmd(&[], "render", "lab-3node");
    c.arg("--out-dir").arg(&out_dir);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let names = rendered(&out_dir);
    assert!(names.len() > 20, "{names:?}");
    // Numbered 00, 01, ... without gaps; the listing printed is the apply order.
    for (i, n) in names.iter().enumerate() {
        assert!(n.starts_with(&format!("{i:02}-")), "{names:?}");
        assert!(n.ends_with(".yaml"), "{n}");
    }
    let printed: Vec<String> = out
        .lines()
        .map(|l| {
            Path::new(l)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(printed, names);
    // Apply order: every CRD first (so no kind is unknown when its objects arrive), then
    // namespaces and cluster RBAC, then the seed's order: snapshot controller, Rook operator,
    // CephCluster, filesystem, StorageClass; Velero; schedules last.
    let pos = |needle: &str| {
        names
            .iter()
            .position(|n| n.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not in {names:?}"))
    };
    assert!(pos("snapshot.storage.k8s.io_volumesnapshotclasses") < pos("rook-crds"));
    assert!(pos("rook-crds") < pos("velero.io_schedules"));
    assert!(pos("velero.io_schedules") < pos("namespace-velero"));
    assert!(pos("rook-crds") < pos("rook-common"));
    assert!(pos("rook-common") < pos("setup-snapshot-controller"));
    assert!(pos("setup-snapshot-controller") < pos("rook-operator.yaml"));
    assert!(pos("rook-operator.yaml") < pos("cephcluster-"));
    assert!(pos("cephcluster-") < pos("cephfilesystem-"));
    assert!(pos("cephfilesystem-") < pos("storageclass-"));
    assert!(pos("storageclass-") < pos("backupstoragelocation-"));
    assert!(pos("backupstoragelocation-") < pos("schedule-nightly"));

    // Secrets without values: each value reads where it comes from.
    let secrets: Vec<&String> = names.iter().filter(|n| n.contains("-secret-")).collect();
    assert_eq!(secrets.len(), 2, "{names:?}");
    for s in &secrets {
        let path = out_dir.join(s);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("rookery.dev/value-from"), "{text}");
        assert!(text.contains("<redacted: from file:secrets/"), "{text}");
        assert!(
            !text.contains(kopia_text) && !text.contains(&b64(&kopia)),
            "{text}"
        );
        assert!(
            !text.contains(&s3_key_line) && !text.contains(&b64(&s3)),
            "{text}"
        );
    }

    // A second render into the same directory is refused (a stale numbered file could be
    // applied by `kubectl apply -f DIR`); --force replaces the numbered files, and only them.
    std::fs::write(out_dir.join("99-stale-object.yaml"), "kind: Stale\n").unwrap();
    std::fs::write(out_dir.join("README.txt"), "mine\n").unwrap();
    let mut c = stack_cmd(&[], "render", "lab-3node");
    c.arg("--out-dir").arg(&out_dir);
    let (code, _, err) = run(c);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("is not empty") && err.contains("--force"),
        "{err}"
    );
    assert!(out_dir.join("99-stale-object.yaml").exists());
    let mut c = stack_cmd(&[], "render", "lab-3node");
    c.arg("--out-dir").arg(&out_dir).arg("--force");
    let (code, _, err) = run(c);
    assert_eq!(code, 0, "{err}");
    assert!(!out_dir.join("99-stale-object.yaml").exists());
    assert!(out_dir.join("README.txt").exists());

    // --show-secrets: the values are in the files, and never on stdout/stderr (human or JSON).
    for global in [&[][..], &["-o", "json"][..]] {
        let shown = tmp.path().join(format!("shown{}", global.len()));
        let mut c = stack_cmd(global, "render", "lab-3node");
        c.arg("--out-dir").arg(&shown).arg("--show-secrets");
        let (code, out, err) = run(c);
        assert_eq!(code, 0, "{err}");
        let repo = std::fs::read_to_string(
            shown.join(
                names
                    .iter()
                    .find(|n| n.contains("velero-repo-credentials"))
                    .unwrap(),
            ),
        )
        .unwrap();
        // The password file's trailing newline is not part of the password.
        assert!(repo.contains(&b64(kopia_text.as_bytes())), "{repo}");
        let cloud = std::fs::read_to_string(
            shown.join(
                names
                    .iter()
                    .find(|n| n.contains("cloud-credentials"))
                    .unwrap(),
            ),
        )
        .unwrap();
        assert!(cloud.contains(&b64(&s3)), "{cloud}");
        // Files with secret values are readable by their owner only.
        for n in rendered(&shown) {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(shown.join(&n))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{n}");
        }
        for stream in [&out, &err] {
            assert!(!stream.contains(kopia_text), "{stream}");
            assert!(!stream.contains(&b64(kopia_text.as_bytes())), "{stream}");
            assert!(!stream.contains(&s3_key_line), "{stream}");
            assert!(!stream.contains(&b64(&s3)), "{stream}");
        }
        assert!(
            err.contains("WITH secret values") || global.len() == 2,
            "{err}"
        );
    }

    // The seed example is not rendered at all: validation errors, exit 8, nothing written.
    let seed_dir = tmp.path().join("seed");
    let mut c = stack_cmd(&[], "render", "seed-example");
    c.arg("--out-dir").arg(&seed_dir);
    let (code, _, err) = run(c);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("error[placement]"), "{err}");
    assert!(!seed_dir.exists() || rendered(&seed_dir).is_empty());
}

#[test]
fn malformed_stack_exits_65_with_file_line_col() {
    let tmp = tempfile::tempdir().unwrap();
    let stack = tmp.path().join("stack.yaml");
    std::fs::write(
        &stack,
        "namespace: rook-ceph\ncephCluster:\n  monitorCont: 3\nstorageClasses: []\n",
    )
    .unwrap();
    for cmd in ["plan", "render"] {
        let mut c = Command::new(bins::rookery());
        c.arg(cmd)
            .arg("-i")
            .arg(example("lab-3node").join("inventory.yaml"))
            .arg("--stack")
            .arg(&stack)
            .arg("--bundle-dir")
            .arg(upstream());
        if cmd == "render" {
            c.arg("--out-dir").arg(tmp.path().join("out"));
        }
        let (code, out, err) = run(c);
        assert_eq!(code, 65, "{cmd}: stdout:\n{out}\nstderr:\n{err}");
        let want = format!(
            "{}:3:3: cephCluster.monitorCont: unknown field",
            stack.display()
        );
        assert!(err.contains(&want), "{cmd}: {err}");
        assert!(err.contains("unknown field `monitorCont`"), "{err}");
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

fn verify(dir: &Path) -> (i32, String, String) {
    let mut c = Command::new(bins::rookery());
    c.args(["bundle", "verify", "--bundle-dir"]).arg(dir);
    run(c)
}

#[test]
fn bundle_verify_accepts_the_shared_files_and_rejects_a_tampered_copy() {
    let (code, out, err) = verify(&upstream());
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");

    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("upstream");
    copy_tree(&upstream(), &copy);
    let (code, out, err) = verify(&copy);
    assert_eq!(code, 0, "an exact copy verifies: {out}{err}");

    // One byte changed in Rook's common.yaml.
    let victim = copy.join("rook-v1.20.6/deploy/examples/common.yaml");
    let mut bytes = std::fs::read(&victim).unwrap();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
    std::fs::write(&victim, &bytes).unwrap();
    let (code, out, err) = verify(&copy);
    assert_eq!(code, 8, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        format!("{out}{err}").contains("common.yaml"),
        "the tampered file is named: {out}{err}"
    );
}

/// The lab stack without its `nodes` list, beside a copy of its secrets, and the lab
/// inventory with `host_vars` added to every host.
fn lab_without_nodes(dir: &Path, host_vars: &str) -> (PathBuf, PathBuf) {
    let lab = example("lab-3node");
    let text = std::fs::read_to_string(lab.join("stack.yaml")).unwrap();
    let start = text.find("    nodes:\n").unwrap();
    let end = text.find("storageClasses:").unwrap();
    let stack = dir.join("stack.yaml");
    std::fs::write(&stack, format!("{}{}", &text[..start], &text[end..])).unwrap();
    copy_tree(&lab.join("secrets"), &dir.join("secrets"));
    let inv = std::fs::read_to_string(lab.join("inventory.yaml")).unwrap();
    let mut out = String::new();
    for line in inv.lines() {
        out.push_str(line);
        out.push('\n');
        if line.trim_start().starts_with("ansible_port:") {
            out.push_str(&format!("      {host_vars}\n"));
        }
    }
    let inventory = dir.join("inventory.yaml");
    std::fs::write(&inventory, out).unwrap();
    (stack, inventory)
}

fn plan_files(global: &[&str], stack: &Path, inventory: &Path) -> Command {
    let mut c = Command::new(bins::rookery());
    c.args(global)
        .arg("plan")
        .arg("-i")
        .arg(inventory)
        .arg("--stack")
        .arg(stack)
        .arg("--facts")
        .arg(example("lab-3node").join("facts.json"))
        .arg("--bundle-dir")
        .arg(upstream());
    c
}

#[test]
fn plan_takes_devices_from_the_inventory_when_the_stack_names_none() {
    let tmp = tempfile::tempdir().unwrap();
    let (stack, inv) = lab_without_nodes(
        tmp.path(),
        "rookery_devices: [{class: nvme}, {class: hdd, min_size: 10Gi}]",
    );
    let (code, out, err) = run(plan_files(&["-o", "json"], &stack, &inv));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let nodes = doc["cluster"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{doc:#}");
    for n in nodes {
        assert_eq!(n["origin"], "inventory", "{n:#}");
        assert_eq!(n["devices"].as_array().unwrap().len(), 2, "{n:#}");
    }

    // A broken entry is a bad inventory file: 65, naming host and entry.
    let tmp = tempfile::tempdir().unwrap();
    let (stack, inv) = lab_without_nodes(tmp.path(), "rookery_devices: [{nmae: /dev/sda}]");
    let (code, _, err) = run(plan_files(&[], &stack, &inv));
    assert_eq!(code, 65, "{err}");
    assert!(
        err.contains("lab-1") && err.contains("rookery_devices[0]"),
        "{err}"
    );
}
