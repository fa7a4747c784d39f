//! Benchmark: `rookery apply` against the careful `kubectl apply --server-side`, side by
//! side in one run, on fresh real control planes (issue 9 item 9). A report, not a test.
//!
//! Same objects for both: the lab stack rendered by `rookery render --show-secrets`.
//! kubectl the careful way: the CRD files with `--server-side`, `kubectl wait
//! --for=condition=Established crd --all`, then every file with `--server-side`. rookery:
//! `rookery apply --no-wait` (CRDs are still waited for Established; no other health waits,
//! as for kubectl). Then a converged re-apply of both. Each figure is the median of --runs
//! runs, each on a fresh cluster; ratios are kubectl / rookery.
//!
//! Usage: cargo run --release -p rookery-tests --bin apply-bench -- [--runs 3]
//!        [--rookery PATH] [--json FILE]
//! Needs the binaries `tests/kube/build.sh` builds (kubectl is used only here).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rookery_tests::bins;
use rookery_tests::kube::{self, KubeCluster};

fn run(cmd: &mut Command) -> Result<Duration> {
    let t0 = Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let took = t0.elapsed();
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

struct Args {
    runs: usize,
    rookery: PathBuf,
    json: Option<PathBuf>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        runs: 3,
        rookery: bins::rookery(),
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--runs" => a.runs = it.next().context("--runs N")?.parse()?,
            "--rookery" => a.rookery = it.next().context("--rookery PATH")?.into(),
            "--json" => a.json = Some(it.next().context("--json FILE")?.into()),
            other => bail!("unknown argument {other}"),
        }
    }
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(a)
}

fn lab() -> PathBuf {
    bins::repo_root().join("stacks/lab-3node")
}

fn rookery_cmd(rookery: &Path, sub: &str) -> Command {
    let mut c = Command::new(rookery);
    c.arg(sub)
        .arg("-i")
        .arg(lab().join("inventory.yaml"))
        .arg("--stack")
        .arg(lab().join("stack.yaml"))
        .arg("--facts")
        .arg(lab().join("facts.json"))
        .arg("--bundle-dir")
        .arg(bins::shared_dir().join("upstream"))
        .env_remove("KUBECONFIG");
    c
}

/// The rendered files, split into the CRD stage's and all (in apply order), and the number
/// of objects.
fn rendered(rookery: &Path, dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>, usize)> {
    run(rookery_cmd(rookery, "render")
        .arg("--out-dir")
        .arg(dir)
        .arg("--show-secrets"))?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let mut crds = Vec::new();
    let mut objects = 0;
    for f in &files {
        let text = std::fs::read_to_string(f)?;
        objects += text
            .lines()
            .filter(|l| l.starts_with("apiVersion:"))
            .count();
        if text
            .lines()
            .next()
            .is_some_and(|l| l.ends_with("stage crds"))
        {
            crds.push(f.clone());
        }
    }
    Ok((crds, files, objects))
}

fn kubectl(cluster: &KubeCluster) -> Command {
    let mut c = Command::new(kube::binary("kubectl"));
    c.arg("--kubeconfig").arg(cluster.kubeconfig());
    c
}

fn kubectl_apply(cluster: &KubeCluster, files: &[PathBuf]) -> Result<Duration> {
    let mut c = kubectl(cluster);
    c.args(["apply", "--server-side"]);
    for f in files {
        c.arg("-f").arg(f);
    }
    run(&mut c)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let a = args()?;
    if let Some(missing) = kube::missing_prerequisite() {
        bail!("missing: {missing}");
    }
    let tmp = tempfile::tempdir()?;
    let (crds, all, objects) = rendered(&a.rookery, &tmp.path().join("manifests"))?;
    eprintln!(
        "apply-bench: {} files ({} with CRDs), {objects} objects, {} runs",
        all.len(),
        crds.len(),
        a.runs
    );
    let nodes = ["lab-1", "lab-2", "lab-3"];
    let (mut k_first, mut k_conv, mut r_first, mut r_conv) = (vec![], vec![], vec![], vec![]);
    for i in 0..a.runs {
        // kubectl, the careful way, on a fresh cluster.
        let cluster = KubeCluster::start(&nodes).await?;
        let t0 = Instant::now();
        kubectl_apply(&cluster, &crds)?;
        run(kubectl(&cluster).args([
            "wait",
            "--for=condition=Established",
            "crd",
            "--all",
            "--timeout=120s",
        ]))?;
        kubectl_apply(&cluster, &all)?;
        k_first.push(t0.elapsed().as_secs_f64());
        k_conv.push(kubectl_apply(&cluster, &all)?.as_secs_f64());
        drop(cluster);

        // rookery on another fresh cluster.
        let cluster = KubeCluster::start(&nodes).await?;
        let apply = || {
            let mut c = rookery_cmd(&a.rookery, "apply");
            c.arg("--kubeconfig")
                .arg(cluster.kubeconfig())
                .arg("--no-wait");
            c
        };
        if std::env::var_os("APPLY_BENCH_SHOW").is_some() {
            let mut c = apply();
            c.arg("-v");
            let t0 = Instant::now();
            let out = c.output()?;
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            r_first.push(t0.elapsed().as_secs_f64());
        } else {
            r_first.push(run(&mut apply())?.as_secs_f64());
        }
        r_conv.push(run(&mut apply())?.as_secs_f64());
        eprintln!(
            "run {}: kubectl {:.2} s then {:.2} s; rookery {:.2} s then {:.2} s",
            i + 1,
            k_first[i],
            k_conv[i],
            r_first[i],
            r_conv[i]
        );
    }
    let (kf, kc, rf, rc) = (
        median(k_first),
        median(k_conv),
        median(r_first),
        median(r_conv),
    );
    println!(
        "| apply ({objects} objects, median of {}) | kubectl --server-side | rookery | kubectl / rookery |",
        a.runs
    );
    println!("|---|---|---|---|");
    println!(
        "| first, fresh cluster | {kf:.2} s | {rf:.2} s | {:.1}x |",
        kf / rf
    );
    println!(
        "| converged re-apply | {kc:.2} s | {rc:.2} s | {:.1}x |",
        kc / rc
    );
    if let Some(path) = a.json {
        let doc = serde_json::json!({
            "objects": objects, "runs": a.runs,
            "kubectl": {"first": kf, "converged": kc},
            "rookery": {"first": rf, "converged": rc},
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(())
}
