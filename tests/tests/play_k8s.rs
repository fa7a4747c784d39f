//! The playbook modules `k8s` and `k8s_info` against a real API server: objects from a
//! definition, a file and a template; server-side apply (a second run changes nothing);
//! `wait_condition` on a CRD's `Established`; label and field selectors with `register` +
//! `when`; `state: absent` with a wait; check mode (a server-side dry run: nothing is
//! created); diff mode (the live → applied diff); an unknown argument is an error naming the
//! task.
//!
//! Real: etcd and kube-apiserver (its apiextensions controller sets `Established`), the
//! `rookery` binary. Played: nothing — these objects need no controller.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use rookery_tests::cli::{self, Run};
use rookery_tests::kube::objects;
use rookery_tests::kube::{KubeCluster, missing_binaries};
use rookery_tests::require::{have_program, prerequisite};

/// An API-only control plane needs only these.
fn ready() -> bool {
    let missing = missing_binaries(&["etcd", "kube-apiserver"])
        .or_else(|| (!have_program("openssl")).then(|| "openssl".to_string()));
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

fn play(dir: &Path, kubeconfig: &Path, playbook: &str, args: &[&str]) -> Run {
    cli::run(
        cli::rookery()
            .arg("play")
            .arg("-i")
            .arg(dir.join("inv.yaml"))
            .arg(dir.join(playbook))
            .arg("-e")
            .arg(format!("rookery_kubeconfig={}", kubeconfig.display()))
            .args(args),
    )
}

fn recap_changed(out: &str) -> usize {
    let line = out
        .lines()
        .find(|l| l.starts_with("localhost") && l.contains("changed="))
        .unwrap_or_else(|| panic!("no recap in {out}"));
    line.split("changed=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

const SITE: &str = r#"
- hosts: localhost
  gather_facts: false
  vars:
    app: demo
    greeting: hello
  tasks:
    - name: config map present
      k8s:
        definition:
          apiVersion: v1
          kind: ConfigMap
          metadata:
            name: "{{ app }}-config"
            namespace: default
            labels: {app: "{{ app }}"}
          data: {greeting: "{{ greeting }}"}

    - name: widgets CRD from a template, waited for
      k8s:
        template: widget-crd.yaml.hbs
        wait_condition: {type: Established, status: "True"}
        wait_timeout: 60

    - name: a widget from a file, in the task's namespace
      k8s:
        src: widget.yaml
        namespace: default

    - name: config maps by label
      k8s_info:
        kind: ConfigMap
        namespace: default
        label_selectors: ["app={{ app }}"]
      register: cms

    - name: the config map holds the greeting
      assert:
        that:
          - cms.api_found
          - "cms.resources[0].data.greeting == greeting"

    - name: by field selector
      k8s_info:
        kind: ConfigMap
        namespace: default
        field_selectors: ["metadata.name=nothing-has-this-name"]
      register: none_found

    - name: runs only when something was found
      debug: {msg: "found {{ none_found.resources }}"}
      when: none_found.resources != []

    - name: a kind nobody serves
      k8s_info: {api_version: example.com/v1, kind: Gadget}
      register: gadgets

    - name: api_found is false for it
      assert: {that: ["not gadgets.api_found"]}

    - name: scratch config map absent
      k8s: {state: absent, kind: ConfigMap, name: scratch, namespace: default, wait: true}
"#;

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{{ group }}
spec:
  group: {{ group }}
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer}
"#;

const WIDGET: &str =
    "apiVersion: rookery.test/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 3\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k8s_modules_apply_wait_list_delete_check_and_diff() {
    if !ready() {
        return;
    }
    let cluster = KubeCluster::builder().api_only().start().await.unwrap();
    let client = cluster.client().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("inv.yaml"),
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n",
    )
    .unwrap();
    std::fs::write(d.join("site.yaml"), SITE).unwrap();
    std::fs::create_dir_all(d.join("templates")).unwrap();
    std::fs::write(d.join("templates/widget-crd.yaml.hbs"), CRD).unwrap();
    std::fs::write(d.join("widget.yaml"), WIDGET).unwrap();
    let kc = cluster.kubeconfig();
    let t0 = std::time::Instant::now();

    // Check mode first: a server-side dry run says what would happen, nothing is created.
    let check = play(
        d,
        kc,
        "site.yaml",
        &["-e", "group=rookery.test", "--check", "--diff"],
    );
    // The widget's kind does not exist until its CRD is applied for real: that task fails in
    // check mode, as `kubectl apply --dry-run=server` would.
    assert!(
        check.stdout.contains("+  greeting: hello"),
        "{}",
        check.stdout
    );
    assert!(
        check
            .stdout
            .contains("(create ConfigMap default/demo-config"),
        "{}",
        check.stdout
    );
    assert!(
        objects::get(&client, "v1", "ConfigMap", Some("default"), "demo-config")
            .await
            .unwrap()
            .is_none(),
        "check mode created the config map"
    );

    // For real: created, the CRD waited for until Established, listed, asserted.
    let first = play(d, kc, "site.yaml", &["-e", "group=rookery.test"]);
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    assert_eq!(recap_changed(&first.stdout), 3, "{}", first.stdout);
    assert!(
        first.stdout.contains("skipping: [localhost]"),
        "`when` skipped the debug: {}",
        first.stdout
    );
    let crd = objects::get(
        &client,
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
        "widgets.rookery.test",
    )
    .await
    .unwrap()
    .unwrap();
    assert!(objects::condition_true(&crd, "Established"));
    let w = objects::get(&client, "rookery.test/v1", "Widget", Some("default"), "w1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w["spec"]["size"], 3);
    let cm = objects::get(&client, "v1", "ConfigMap", Some("default"), "demo-config")
        .await
        .unwrap()
        .unwrap();
    let managers: Vec<&str> = cm["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["rookery"], "server-side apply as `rookery`");
    let rv = cm["metadata"]["resourceVersion"].clone();

    // Converged: nothing changes, not even a resourceVersion.
    let second = play(d, kc, "site.yaml", &["-e", "group=rookery.test"]);
    assert_eq!(second.code, 0);
    assert_eq!(recap_changed(&second.stdout), 0, "{}", second.stdout);
    let cm = objects::get(&client, "v1", "ConfigMap", Some("default"), "demo-config")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cm["metadata"]["resourceVersion"], rv);

    // Diff mode: the change, as `rookery diff` shows it.
    let changed = play(
        d,
        kc,
        "site.yaml",
        &["-e", "group=rookery.test", "-e", "greeting=hi", "--diff"],
    );
    assert_eq!(changed.code, 0);
    assert_eq!(recap_changed(&changed.stdout), 1, "{}", changed.stdout);
    assert!(
        changed.stdout.contains("-  greeting: hello"),
        "{}",
        changed.stdout
    );
    assert!(
        changed.stdout.contains("+  greeting: hi"),
        "{}",
        changed.stdout
    );

    // Absent, waited for until it is gone.
    std::fs::write(
        d.join("absent.yaml"),
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: widget gone\n      k8s:\n        state: absent\n        src: widget.yaml\n        namespace: default\n        wait: true\n        wait_timeout: 30\n",
    )
    .unwrap();
    let gone = play(d, kc, "absent.yaml", &[]);
    assert_eq!(gone.code, 0);
    assert_eq!(recap_changed(&gone.stdout), 1, "{}", gone.stdout);
    assert!(
        objects::get(&client, "rookery.test/v1", "Widget", Some("default"), "w1")
            .await
            .unwrap()
            .is_none()
    );
    let again = play(d, kc, "absent.yaml", &[]);
    assert_eq!(recap_changed(&again.stdout), 0, "{}", again.stdout);

    // A misspelt argument: refused before anything runs, naming the task and the argument.
    std::fs::write(
        d.join("typo.yaml"),
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: Typo task\n      k8s:\n        definiton: {apiVersion: v1, kind: ConfigMap, metadata: {name: x}}\n",
    )
    .unwrap();
    let typo = play(d, kc, "typo.yaml", &[]);
    assert_eq!(typo.code, 65);
    assert!(typo.stderr.contains("task `Typo task`"), "{}", typo.stderr);
    assert!(typo.stderr.contains("definiton"), "{}", typo.stderr);
    assert!(typo.stderr.contains("typo.yaml:5:7"), "{}", typo.stderr);
    // Whole file, control plane start excluded.
    eprintln!("play_k8s: {:.1?} of playbook runs", t0.elapsed());
}
