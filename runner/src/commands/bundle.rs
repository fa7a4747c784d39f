//! `rookery bundle`: the pinned upstream release files (lock file embedded in the binary).
//! `fetch` downloads into the cache and verifies every hash; `verify` checks a directory
//! prepared beforehand (air-gapped sites) without touching the network.

use std::path::PathBuf;
use std::process::ExitCode;

use rookery_stack::bundle::{self, Bundle, FileStatus};

use crate::exit;
use crate::output::{Output, OutputFormat};

/// Fetch or verify the pinned upstream manifests (Rook, Velero CRDs, snapshot controller).
#[derive(Debug, clap::Args)]
pub struct BundleCli {
    #[command(subcommand)]
    pub command: BundleCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum BundleCommand {
    /// Download every locked file that is missing or wrong, then verify all hashes.
    Fetch(BundleArgs),
    /// Verify a bundle directory against the lock file (no network).
    Verify(BundleArgs),
}

#[derive(Debug, clap::Args)]
pub struct BundleArgs {
    /// Bundle directory (default: ~/.cache/rookery/bundle/<bundle>).
    #[arg(long, value_name = "DIR", env = "ROOKERY_BUNDLE_DIR")]
    pub bundle_dir: Option<PathBuf>,
}

fn open(args: &BundleArgs) -> Result<Bundle, ExitCode> {
    let lock = bundle::lock().map_err(|e| {
        eprintln!("error: {}", crate::probe::error_chain(&e));
        ExitCode::from(exit::ERROR)
    })?;
    let dir = match &args.bundle_dir {
        Some(d) => d.clone(),
        None => bundle::default_dir(&lock).map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(exit::USAGE)
        })?,
    };
    Ok(Bundle::new(dir, lock))
}

pub async fn run(cmd: BundleCommand, out: Output) -> ExitCode {
    let (args, fetch) = match &cmd {
        BundleCommand::Fetch(a) => (a, true),
        BundleCommand::Verify(a) => (a, false),
    };
    let b = match open(args) {
        Ok(b) => b,
        Err(c) => return c,
    };
    if fetch {
        let res = b.fetch(|f, downloaded| {
            if !out.quiet && out.format == OutputFormat::Human {
                eprintln!(
                    "{} {}",
                    if downloaded {
                        "downloaded"
                    } else {
                        "cached    "
                    },
                    f.path
                );
            }
        });
        if let Err(e) = res {
            eprintln!("error: {}", crate::probe::error_chain(&e));
            eprintln!(
                "hint: without internet access, copy the files listed by `rookery bundle verify` \
                 into a directory and pass --bundle-dir"
            );
            return ExitCode::from(exit::ERROR);
        }
    }
    let results = b.verify();
    let bad = results.iter().filter(|(_, s)| *s != FileStatus::Ok).count();
    match out.format {
        OutputFormat::Json => {
            let files: Vec<_> = results
                .iter()
                .map(|(f, s)| serde_json::json!({ "file": f, "result": s }))
                .collect();
            let doc = serde_json::json!({
                "bundle": b.lock.bundle,
                "dir": b.dir.display().to_string(),
                "files": files,
                "ok": bad == 0,
            });
            println!("{doc:#}");
        }
        OutputFormat::Human => {
            for (f, s) in &results {
                match s {
                    FileStatus::Ok => {
                        if out.verbose > 0 {
                            println!("ok        {}", f.path);
                        }
                    }
                    FileStatus::Missing => println!("MISSING   {}  ({})", f.path, f.url),
                    FileStatus::Mismatch { actual } => println!(
                        "MISMATCH  {}  sha256 {actual}, lock file pins {}",
                        f.path, f.sha256
                    ),
                }
            }
            println!(
                "bundle {} in {}: {} of {} files verified",
                b.lock.bundle,
                b.dir.display(),
                results.len() - bad,
                results.len()
            );
        }
    }
    if bad > 0 {
        ExitCode::from(exit::VALIDATION)
    } else {
        ExitCode::from(exit::OK)
    }
}
