//! `rookery play` against real sshd hosts on loopback (plus one whose port is closed): a
//! multi-play playbook with vars precedence, when, loop, register, handlers, tags and serial;
//! check mode changes nothing on disk; a failing host and an unreachable host leave the others
//! completing (exit 6, retry file); the second run reports zero changes; the JSON event stream
//! parses; template errors name the task, its file:line and the variable.
//!
//! All lab hosts share this machine's filesystem, so every path includes the host name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

use rookery_tests::require::prerequisite;
use rookery_tests::sshd::{SshLab, free_port, missing_prerequisite};
use serde_json::Value;

fn ready() -> bool {
    let missing = missing_prerequisite();
    prerequisite(missing.is_none(), missing.as_deref().unwrap_or(""))
}

const PLAYBOOK: &str = r#"
- name: configure
  hosts: nodes
  vars:
    level: play
    items_to_write: [one, two]
  vars_files: [vars.yaml]
  tasks:
    - name: host dir
      file: {path: "{{ base }}/{{ inventory_hostname }}", state: directory, mode: "0750"}
      tags: [files]
    - name: settings file
      copy:
        dest: "{{ base }}/{{ inventory_hostname }}/settings"
        content: "level={{ level }} group={{ group_level }} host={{ host_level }} extra={{ extra_level }}\n"
        mode: "0640"
      notify: settings changed
      tags: [files]
    - name: item files
      copy: {dest: "{{ base }}/{{ inventory_hostname }}/item-{{ it }}", content: "{{ it }}"}
      loop: "{{ items_to_write }}"
      loop_control: {loop_var: it}
    - name: node2 breaks
      command: "false"
      when: inventory_hostname == 'node2'
    - name: read settings
      command: cat {{ base }}/{{ inventory_hostname }}/settings
      register: settings
      changed_when: false
      check_mode: false
      failed_when: settings.rc != 0 and not ansible_check_mode
    - name: fact from result
      set_fact: {settings_text: "{{ settings.stdout }}"}
    - name: never runs by default
      file: {path: "{{ base }}/{{ inventory_hostname }}/never", state: directory}
      tags: [never, debug]
  handlers:
    - name: settings changed
      command: touch {{ base }}/{{ inventory_hostname }}/handler-ran

- name: rolling
  hosts: nodes
  serial: 1
  tasks:
    - name: rolling marker
      command: touch {{ base }}/{{ inventory_hostname }}/rolled
      args: {creates: "{{ base }}/{{ inventory_hostname }}/rolled"}
    - name: facts persist across plays
      when: not ansible_check_mode
      assert:
        that:
          - settings_text is defined
          - "'level=vars_file' in settings_text"
"#;

struct Lab {
    lab: SshLab,
    inv: std::path::PathBuf,
    kh: std::path::PathBuf,
    base: std::path::PathBuf,
    pb: std::path::PathBuf,
}

fn setup(n: usize) -> Lab {
    let lab = SshLab::start(n).unwrap();
    let kh = lab
        .known_hosts("known_hosts", &(0..n).collect::<Vec<_>>())
        .unwrap();
    let base = lab.path().join("out");
    std::fs::create_dir_all(&base).unwrap();
    let mut text = format!(
        "all:\n  vars:\n    base: {}\n    host_level: from-all\n    group_level: from-all\n    level: inventory\n  children:\n    nodes:\n      vars:\n        group_level: from-group\n      hosts:\n",
        base.display()
    );
    let key = lab.client_key.display().to_string();
    for (i, h) in lab.hosts.iter().enumerate() {
        text.push_str(&format!(
            "        node{i}:\n          ansible_host: 127.0.0.1\n          ansible_port: {}\n          ansible_user: root\n          ansible_ssh_private_key_file: {key}\n          host_level: from-host\n",
            h.port
        ));
    }
    let closed = free_port().unwrap();
    text.push_str(&format!(
        "        down:\n          ansible_host: 127.0.0.1\n          ansible_port: {closed}\n          ansible_user: root\n          ansible_ssh_private_key_file: {key}\n"
    ));
    let inv = lab.write("inventory.yaml", &text).unwrap();
    lab.write(
        "vars.yaml",
        "level: vars_file\nextra_level: from-vars-file\n",
    )
    .unwrap();
    let pb = lab.write("site.yaml", PLAYBOOK).unwrap();
    Lab {
        lab,
        inv,
        kh,
        base,
        pb,
    }
}

impl Lab {
    fn play(&self, extra: &[&str]) -> Output {
        let mut c = self.lab.rookery();
        c.arg("play")
            .arg("-i")
            .arg(&self.inv)
            .arg("--known-hosts")
            .arg(&self.kh)
            .arg("--connect-timeout")
            .arg("5")
            .arg(&self.pb)
            .args(extra);
        c.output().unwrap()
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every stdout line is one JSON event; returns them.
fn events(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("not a JSON event line ({e}): {l}\n{}", text(o)))
        })
        .collect()
}

fn recap(ev: &[Value]) -> &Value {
    let r = ev
        .iter()
        .find(|e| e["event"] == "recap")
        .expect("no recap event");
    &r["hosts"]
}

fn results<'a>(ev: &'a [Value], task: &str) -> Vec<&'a Value> {
    ev.iter()
        .filter(|e| e["event"] == "host_result" && e["task"] == task)
        .collect()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn playbook_over_sshd_hosts() {
    if !ready() {
        return;
    }
    let l = setup(3);
    let host_dir = |h: &str| l.base.join(h);

    // 1. Check mode: nothing on any host changes (node2's failing command is skipped in check
    //    mode, like Ansible); the unreachable `down` gives exit 4.
    let o = l.play(&["--check", "-e", "extra_level=from-cli", "-o", "json"]);
    let ev = events(&o);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    for h in ["node0", "node1", "node2"] {
        assert!(
            !host_dir(h).exists(),
            "check mode created {h}'s dir\n{}",
            text(&o)
        );
    }
    // Facts are gathered first (Ansible's default), which is where `down` drops out.
    let gathered = results(&ev, "Gathering Facts");
    assert!(
        gathered
            .iter()
            .any(|r| r["host"] == "down" && r["status"] == "unreachable"),
        "{}",
        text(&o)
    );
    let would = results(&ev, "host dir");
    assert_eq!(would.len(), 3, "{}", text(&o));
    assert!(
        would
            .iter()
            .filter(|r| r["host"] != "down")
            .all(|r| r["status"] == "changed" && r["check_mode"] == true),
        "{}",
        text(&o)
    );
    assert_eq!(recap(&ev)["down"]["unreachable"], 1);

    // 2. Real run: node2 fails, down is unreachable, node0/node1 complete everything.
    let o = l.play(&["-e", "extra_level=from-cli", "-o", "json"]);
    let ev = events(&o);
    assert_eq!(
        o.status.code(),
        Some(6),
        "failed + unreachable\n{}",
        text(&o)
    );
    for h in ["node0", "node1"] {
        let d = host_dir(h);
        assert_eq!(
            read(&d.join("settings")),
            format!("level=vars_file group=from-group host=from-host extra=from-cli\n"),
            "precedence for {h}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("settings"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        assert_eq!(read(&d.join("item-one")), "one");
        assert_eq!(read(&d.join("item-two")), "two");
        assert!(d.join("handler-ran").exists(), "handler did not run on {h}");
        assert!(d.join("rolled").exists(), "second play did not run on {h}");
        assert!(!d.join("never").exists(), "`never` task ran");
    }
    // node2 got as far as its failure, then dropped out (no handler, no second play).
    assert!(host_dir("node2").join("settings").exists());
    assert!(!host_dir("node2").join("handler-ran").exists());
    assert!(!host_dir("node2").join("rolled").exists());
    let r = recap(&ev);
    assert_eq!(r["node2"]["failed"], 1, "{}", text(&o));
    assert_eq!(r["down"]["unreachable"], 1, "{}", text(&o));
    assert_eq!(r["node0"]["failed"], 0, "{}", text(&o));
    assert!(r["node0"]["changed"].as_u64().unwrap() >= 5, "{}", text(&o));
    // serial: 1 ran the rolling play in one batch per host.
    let batches = ev.iter().filter(|e| e["event"] == "batch_start").count();
    assert_eq!(batches, 2, "{}", text(&o));
    let items: Vec<_> = results(&ev, "item files")
        .into_iter()
        .filter(|r| r["host"] == "node0" && r["item"].is_string())
        .collect();
    assert_eq!(items.len(), 2, "{}", text(&o));
    // Retry file beside the playbook names the failed and the unreachable host.
    let retry = read(&l.lab.path().join("site.retry"));
    assert_eq!(retry, "down\nnode2\n");

    // 3. Second run on the healthy hosts: zero changes, exit 0.
    let o = l.play(&[
        "-e",
        "extra_level=from-cli",
        "-o",
        "json",
        "--limit",
        "node0:node1",
    ]);
    let ev = events(&o);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for h in ["node0", "node1"] {
        assert_eq!(
            recap(&ev)[h]["changed"],
            0,
            "second run changed {h}\n{}",
            text(&o)
        );
    }
    assert!(
        results(&ev, "settings changed").is_empty(),
        "handler ran again"
    );

    // 4. Tags: only `files` tasks, human output, and a `--limit @retry` run.
    let o = l.play(&[
        "-e",
        "extra_level=changed",
        "--tags",
        "files",
        "--diff",
        "--limit",
        "node0",
    ]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out.contains("TASK [settings file]"), "{out}");
    assert!(!out.contains("TASK [item files]"), "{out}");
    assert!(
        out.contains("-level=vars_file group=from-group host=from-host extra=from-cli"),
        "{out}"
    );
    assert!(
        out.contains("+level=vars_file group=from-group host=from-host extra=changed"),
        "{out}"
    );
    assert!(out.contains("RUNNING HANDLER [settings changed]"), "{out}");
    assert!(out.contains("PLAY RECAP"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("node0") && l.contains("changed=2 ")),
        "{out}"
    );
    let retry = l.lab.path().join("site.retry");
    let o = l.play(&[
        "-e",
        "extra_level=changed",
        "--limit",
        &format!("@{}", retry.display()),
        "--list-hosts",
    ]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.contains("node2") && out.contains("down") && !out.contains("node0"),
        "{out}"
    );
    let o = l.play(&["--list-tasks", "--tags", "files"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        out.contains("settings file") && out.contains("site.yaml:"),
        "{out}"
    );
    assert!(!out.contains("item files"), "{out}");
}

#[test]
fn template_errors_point_at_task_and_variable() {
    if !ready() {
        return;
    }
    let l = setup(1);
    let pb = l
        .lab
        .write(
            "bad.yaml",
            "- hosts: node0\n  tasks:\n    - name: fine\n      command: \"true\"\n    - name: uses a typo\n      copy:\n        dest: /tmp/x\n        content: \"{{ bsae }}\"\n",
        )
        .unwrap();
    let o = l
        .lab
        .rookery()
        .arg("play")
        .arg("-i")
        .arg(&l.inv)
        .arg("--known-hosts")
        .arg(&l.kh)
        .arg(&pb)
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("task `uses a typo`"), "{out}");
    assert!(out.contains("bad.yaml:5:7"), "{out}");
    assert!(out.contains("undefined variable `bsae`"), "{out}");

    // A typo in a keyword fails before anything runs, with file:line:col (exit 65).
    let pb = l
        .lab
        .write(
            "typo.yaml",
            "- hosts: node0\n  tasks:\n    - name: x\n      command: \"true\"\n      regsiter: r\n",
        )
        .unwrap();
    let o = l
        .lab
        .rookery()
        .arg("play")
        .arg("-i")
        .arg(&l.inv)
        .arg(&pb)
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(65), "{out}");
    assert!(
        out.contains("typo.yaml:5:7") && out.contains("regsiter"),
        "{out}"
    );
}
