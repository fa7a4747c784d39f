//! The executor end to end over real agents on the control machine (`ansible_connection:
//! local`): vars precedence, when, loop, register, handlers, tags, serial, check mode, a
//! second run with zero changes, a failing host and an unreachable host leaving the others
//! to finish, and template errors that name the task and the variable.
//!
//! Needs a built `rookery-agent` ($ROOKERY_AGENT_BIN, $ROOKERY_AGENT, or target/debug). Under
//! ROOKERY_REQUIRE_REAL=1 a missing agent fails the test instead of skipping it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rookery_inventory::Inventory;
use rookery_playbook::{
    CollectingReporter, Executor, InventorySource, Registry, RunEvent, RunOptions, RunSummary,
    Status, load_playbook,
};
use rookery_transport::{AgentBinary, ConnectOptions, Connector};
use serde_json::{Map, Value, json};

fn agent() -> Option<AgentBinary> {
    let candidates = [
        std::env::var_os("ROOKERY_AGENT_BIN").map(PathBuf::from),
        std::env::var_os("ROOKERY_AGENT").map(PathBuf::from),
        // The size-optimised static build starts much faster than the debug one (it hashes
        // itself on start).
        Some(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/x86_64-unknown-linux-musl/agent/rookery-agent"),
        ),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/rookery-agent")),
    ];
    for c in candidates.into_iter().flatten() {
        if c.is_file() {
            return AgentBinary::load(&c).ok();
        }
    }
    None
}

fn require_agent() -> Option<AgentBinary> {
    let a = agent();
    if a.is_none() {
        let strict = std::env::var("ROOKERY_REQUIRE_REAL").is_ok_and(|v| v == "1" || v == "true");
        assert!(
            !strict,
            "prerequisite missing: rookery-agent binary (cargo build -p rookery-agent)"
        );
        eprintln!("SKIPPED: no rookery-agent binary (cargo build -p rookery-agent)");
    }
    a
}

struct Run {
    summary: RunSummary,
    events: Vec<RunEvent>,
}

impl Run {
    fn results(&self, task: &str) -> Vec<(String, Status, Option<String>, Value)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                RunEvent::HostResult(r) if r.task == task => {
                    Some((r.host.clone(), r.status, r.item.clone(), r.result.clone()))
                }
                _ => None,
            })
            .collect()
    }
    fn changed_total(&self) -> u32 {
        self.summary.hosts.values().map(|s| s.changed).sum()
    }
}

async fn run(
    agent: &AgentBinary,
    dir: &Path,
    inventory: &str,
    playbook: &str,
    tweak: impl FnOnce(&mut RunOptions),
) -> Run {
    let inv_path = dir.join("inventory.yaml");
    std::fs::write(&inv_path, inventory).unwrap();
    let pb_path = dir.join("play.yaml");
    std::fs::write(&pb_path, playbook).unwrap();
    let inv = Inventory::load(&inv_path).unwrap();
    let registry = Arc::new(Registry::builtin());
    let pb = load_playbook(&pb_path, &registry).unwrap();
    let mut opts = RunOptions::default();
    tweak(&mut opts);
    let mut copts = ConnectOptions::new(agent.clone());
    copts.connect_timeout = std::time::Duration::from_secs(3);
    let connector = Arc::new(Connector::new(copts));
    let reporter = Arc::new(CollectingReporter::default());
    let exec = Executor::new(registry, connector, opts, reporter.clone());
    let source = InventorySource {
        inventory: &inv,
        limit: None,
    };
    let summary = exec.run(&pb, &source).await.unwrap();
    let events = reporter.events.lock().unwrap().clone();
    Run { summary, events }
}

fn inventory(dir: &Path) -> String {
    format!(
        r#"all:
  vars:
    level: inventory
    from_inventory: yes-inv
  children:
    web:
      hosts:
        h1:
          ansible_connection: local
          level: host
          out: {d}/h1
        h2:
          ansible_connection: local
          out: {d}/h2
"#,
        d = dir.display()
    )
}

const PLAYBOOK: &str = r#"
- name: files and precedence
  hosts: web
  vars:
    level: play
    greeting: "hello {{ inventory_hostname }}"
    pkgs: [a, b, c]
  vars_files: [vars.yaml]
  tasks:
    - name: make dir
      file: {path: "{{ out }}", state: directory, mode: "0755"}
      tags: [files]
    - name: write config
      template: {src: conf.j2, dest: "{{ out }}/app.conf", mode: "0640"}
      notify: restart app
      tags: [files]
    - name: copy content
      copy: {content: "{{ greeting }}\n", dest: "{{ out }}/greeting"}
      tags: [files]
    - name: loop with custom var
      copy: {content: "{{ p }}", dest: "{{ out }}/pkg-{{ p }}"}
      loop: "{{ pkgs }}"
      loop_control: {loop_var: p}
    - name: only on h1
      command: "touch {{ out }}/only-h1"
      args: {creates: "{{ out }}/only-h1"}
      when: inventory_hostname == 'h1'
    - name: read back
      command: cat {{ out }}/greeting
      register: greet
      changed_when: false
    - name: set a fact
      set_fact: {from_fact: "{{ greet.stdout }}!"}
    - name: check values
      assert:
        that:
          - greet.rc == 0
          - "'hello' in greet.stdout"
          - from_fact is defined and from_fact != greet.stdout
      tags: [never]
    - name: show precedence
      debug: {msg: "{{ level }}|{{ from_file }}|{{ from_inventory }}|{{ from_fact }}|{{ x }}"}
      register: shown
  handlers:
    - name: restart app
      command: "touch {{ out }}/restarted"

- name: second play sees registered results
  hosts: h2
  serial: 1
  tasks:
    - name: greet again
      assert:
        that:
          - greet is defined
          - greet.rc == 0
          - from_fact is defined
"#;

fn setup(dir: &Path) {
    std::fs::write(
        dir.join("vars.yaml"),
        "level: vars_file\nfrom_file: file\nx: file-x\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("templates/conf.j2"),
        "name={{ inventory_hostname }}\nlevel={{ level }}\n{{#each pkgs}}pkg={{this}}\n{{/each}}",
    )
    .unwrap();
}

fn extra(m: Value) -> Map<String, Value> {
    match m {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_run_check_mode_and_idempotence() {
    let Some(agent) = require_agent() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir);
    let inv = inventory(dir);
    let pb = PLAYBOOK;

    // 1. Check mode: nothing on disk changes, but tasks say what they would do.
    let r = run(&agent, dir, &inv, pb, |o| {
        o.check = true;
        o.extra_vars = extra(json!({"x": "extra-x"}));
    })
    .await;
    assert!(!dir.join("h1").exists(), "check mode created files");
    assert!(!dir.join("h2").exists());
    let mk = r.results("make dir");
    assert_eq!(mk.len(), 2);
    assert!(mk.iter().all(|(_, s, _, _)| *s == Status::Changed));

    // 2. Real run.
    let r = run(&agent, dir, &inv, pb, |o| {
        o.extra_vars = extra(json!({"x": "extra-x"}));
        o.diff = true;
    })
    .await;
    assert!(r.summary.failed_hosts.is_empty(), "{:?}", r.events);
    assert_eq!(
        std::fs::read_to_string(dir.join("h1/greeting")).unwrap(),
        "hello h1\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("h2/app.conf")).unwrap(),
        "name=h2\nlevel=vars_file\npkg=a\npkg=b\npkg=c\n"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("h1/app.conf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    for p in ["a", "b", "c"] {
        assert_eq!(
            std::fs::read_to_string(dir.join(format!("h2/pkg-{p}"))).unwrap(),
            p
        );
    }
    assert!(dir.join("h1/only-h1").exists());
    assert!(!dir.join("h2/only-h1").exists());
    // Handler ran once per notifying host.
    assert!(dir.join("h1/restarted").exists() && dir.join("h2/restarted").exists());
    let loops = r.results("loop with custom var");
    assert_eq!(loops.iter().filter(|x| x.2.is_some()).count(), 6);
    // Precedence: vars_file beats play and inventory; extra beats vars_file; fact is set.
    let shown = r.results("show precedence");
    let h1 = shown.iter().find(|x| x.0 == "h1").unwrap();
    assert_eq!(h1.3["msg"], "vars_file|file|yes-inv|hello h1!|extra-x");
    // when: skipped on h2.
    let only = r.results("only on h1");
    assert!(only.iter().any(|x| x.0 == "h2" && x.1 == Status::Skipped));
    // Second play: registered results persist across plays.
    assert!(r.results("greet again").iter().all(|x| x.1 == Status::Ok));
    // Diff was produced for the created template.
    let diffs = r
        .events
        .iter()
        .filter(|e| matches!(e, RunEvent::HostResult(h) if h.diff.is_some()))
        .count();
    assert!(diffs >= 2, "no diffs reported");

    // 3. Second run: zero changes, and no handler.
    let r = run(&agent, dir, &inv, pb, |o| {
        o.extra_vars = extra(json!({"x": "extra-x"}));
    })
    .await;
    assert_eq!(
        r.changed_total(),
        0,
        "second run changed: {:#?}",
        r.summary.hosts
    );
    assert!(r.results("restart app").is_empty());

    // 4. Tags: only `files` tasks run; `never` tasks run only when asked.
    let r = run(&agent, dir, &inv, pb, |o| {
        o.tags = vec!["files".into()];
        o.extra_vars = extra(json!({"x": "extra-x"}));
    })
    .await;
    assert_eq!(r.results("make dir").len(), 2);
    assert!(r.results("read back").is_empty());
    let r = run(&agent, dir, &inv, pb, |o| {
        o.tags = vec!["never".into()];
        o.extra_vars = extra(json!({"x": "extra-x"}));
    })
    .await;
    assert!(r.results("make dir").is_empty());
    // `check values` needs `greet`, registered earlier in this same run only.
    assert_eq!(r.results("check values").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_and_unreachable_hosts_leave_others_running() {
    let Some(agent) = require_agent() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inv = format!(
        r#"all:
  hosts:
    good:
      ansible_connection: local
    bad:
      ansible_connection: local
    gone:
      ansible_host: 127.0.0.1
      ansible_port: 1
  vars:
    d: {}
"#,
        dir.display()
    );
    let pb = r#"
- hosts: all
  tasks:
    - name: fail on bad
      command: "false"
      when: inventory_hostname == 'bad'
    - name: after
      command: touch {{ d }}/{{ inventory_hostname }}
    - name: with_items flattens
      debug: {msg: "{{ item }}"}
      with_items: [[a, b], c]
      when: inventory_hostname == 'good'
    - name: ignored failure
      shell: exit 3
      ignore_errors: true
      register: r3
    - name: failed_when
      command: echo fine
      register: f
      failed_when: "'fine' in f.stdout and inventory_hostname == 'nobody'"
"#;
    let r = run(&agent, dir, &inv, pb, |_| {}).await;
    assert!(dir.join("good").exists());
    assert!(!dir.join("bad").exists());
    assert!(r.summary.failed_hosts.contains("bad"));
    assert!(
        r.summary.unreachable_hosts.contains_key("gone"),
        "{:?}",
        r.summary
    );
    let good = r.summary.hosts["good"];
    assert_eq!(good.failed, 0);
    assert_eq!(good.ignored, 1);
    assert_eq!(r.summary.hosts["bad"].failed, 1);
    assert_eq!(r.summary.hosts["gone"].unreachable, 1);
    let flat: Vec<_> = r
        .results("with_items flattens")
        .into_iter()
        .filter_map(|x| x.2)
        .collect();
    assert_eq!(flat, vec!["a", "b", "c"]);
    let fw = r.results("failed_when");
    assert_eq!(fw.len(), 1);
    assert_eq!(fw[0].1, Status::Changed);
    let retry = r.summary.retry_hosts();
    assert_eq!(retry.into_iter().collect::<Vec<_>>(), vec!["bad", "gone"]);
}

/// `any_errors_fatal` on a play: an unreachable host stops the whole run after that task —
/// no later task on the healthy hosts, no later play (the bring-up must not reach the
/// cluster with a host missing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_errors_fatal_stops_the_run() {
    let Some(agent) = require_agent() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inv = format!(
        r#"all:
  hosts:
    good:
      ansible_connection: local
    gone:
      ansible_host: 127.0.0.1
      ansible_port: 1
  vars:
    d: {}
"#,
        dir.display()
    );
    let pb = r#"
- hosts: all
  any_errors_fatal: true
  gather_facts: false
  tasks:
    - name: first
      command: touch {{ d }}/first-{{ inventory_hostname }}
    - name: second
      command: touch {{ d }}/second-{{ inventory_hostname }}
- hosts: good
  gather_facts: false
  tasks:
    - name: later play
      command: touch {{ d }}/later
"#;
    let r = run(&agent, dir, &inv, pb, |_| {}).await;
    assert!(dir.join("first-good").exists());
    assert!(!dir.join("second-good").exists(), "the run went on");
    assert!(!dir.join("later").exists(), "a later play ran");
    assert!(r.summary.unreachable_hosts.contains_key("gone"));
    assert!(r.events.iter().any(
        |e| matches!(e, RunEvent::Aborted { hosts, .. } if hosts == &vec!["gone".to_string()])
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_errors_name_task_and_variable() {
    let Some(agent) = require_agent() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inv = "all:\n  hosts:\n    h:\n      ansible_connection: local\n";
    let pb = r#"
- hosts: all
  vars:
    broken: "{{ nope }}-x"
  tasks:
    - name: uses a missing var
      debug: {msg: "value is {{ missing_var }}"}
      ignore_errors: true
    - name: uses a broken var
      debug: {msg: "{{ broken }}"}
      ignore_errors: true
    - name: jinja filter
      debug: {msg: "{{ x | default('y') }}"}
      ignore_errors: true
    - name: template file with a typo
      template: {src: bad.j2, dest: "{{ playbook_dir }}/out.txt"}
      ignore_errors: true
    - name: when on undefined
      debug: {msg: hi}
      when: undefined_thing == 1
"#;
    std::fs::write(dir.join("bad.j2"), "line one\nvalue={{ typo_var }}\n").unwrap();
    let r = run(&agent, dir, inv, pb, |_| {}).await;
    let msg = |t: &str| -> String {
        r.events
            .iter()
            .find_map(|e| match e {
                RunEvent::HostResult(h) if h.task == t => h.msg.clone(),
                _ => None,
            })
            .unwrap_or_default()
    };
    let m = msg("uses a missing var");
    assert!(
        m.contains("task `uses a missing var`") && m.contains("play.yaml:6:7"),
        "{m}"
    );
    assert!(m.contains("undefined variable `missing_var`"), "{m}");
    let m = msg("uses a broken var");
    assert!(
        m.contains("`broken` is defined") && m.contains("`nope`"),
        "{m}"
    );
    let m = msg("jinja filter");
    assert!(m.contains("{{default x \"y\"}}"), "{m}");
    let m = msg("template file with a typo");
    assert!(
        m.contains("task `template file with a typo`")
            && m.contains("bad.j2")
            && m.contains("undefined variable `typo_var`"),
        "{m}"
    );
    let m = msg("when on undefined");
    assert!(m.contains("undefined variable `undefined_thing`"), "{m}");
    assert_eq!(r.summary.hosts["h"].failed, 1);
    assert_eq!(r.summary.hosts["h"].ignored, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_redacted_in_events() {
    let Some(agent) = require_agent() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inv = "all:\n  hosts:\n    h:\n      ansible_connection: local\n      db_password: hunter2secret\n";
    let pb = r#"
- hosts: all
  tasks:
    - name: leak attempt
      debug: {msg: "pw is {{ db_password }}"}
    - name: leak via command
      command: echo {{ db_password }}
      register: out
    - name: still usable
      assert: {that: ["out.stdout == 'hunter2secret'"]}
"#;
    let r = run(&agent, dir, inv, pb, |_| {}).await;
    let all = serde_json::to_string(&r.events).unwrap();
    assert!(!all.contains("hunter2secret"), "{all}");
    assert!(all.contains("pw is <redacted>"), "{all}");
    assert_eq!(r.summary.hosts["h"].failed, 0, "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_ports_and_paths() {
    let Some(agent) = require_agent() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let inv = "all:\n  hosts:\n    h:\n      ansible_connection: local\n";
    let pb = format!(
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: open port
      wait_for: {{port: {open}, timeout: 5}}
    - name: closed port stays closed
      wait_for: {{port: {closed}, state: stopped, timeout: 5}}
    - name: path appears
      wait_for: {{path: "{d}/later", timeout: 10}}
    - name: closed port times out
      wait_for: {{port: {closed}, timeout: 1}}
      ignore_errors: true
"#,
        d = dir.display()
    );
    let later = dir.join("later");
    let writer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        std::fs::write(later, "x").unwrap();
    });
    let r = run(&agent, dir, inv, &pb, |_| {}).await;
    writer.join().unwrap();
    drop(listener);
    let status = |t: &str| r.results(t).first().map(|x| x.1);
    assert_eq!(status("open port"), Some(Status::Ok), "{:#?}", r.events);
    assert_eq!(status("closed port stays closed"), Some(Status::Ok));
    assert_eq!(status("path appears"), Some(Status::Ok), "{:#?}", r.events);
    assert_eq!(status("closed port times out"), Some(Status::Ignored));
}
