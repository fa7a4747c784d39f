//! `rookery render`: write every object of the stack, in files numbered in apply order, into
//! `--out-dir` (for GitOps and review). Refuses, like `plan`, when validation finds errors.
//! Secrets are written without their values unless `--show-secrets` (then every file is
//! 0600); a non-empty directory is refused unless `--force`.

use std::path::PathBuf;
use std::process::ExitCode;

use rookery_stack::desired::WriteError;
use rookery_stack::render::{self, RenderOptions};

use crate::commands::plan::{StackArgs, prepare};
use crate::exit;
use crate::output::{Output, OutputFormat};

/// Write every manifest of a stack, numbered in apply order, into a directory.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    // StackArgs ends with its "SSH (with --probe or --kubeconfig-from)" heading; the flags below set theirs back.
    #[command(flatten)]
    pub input: StackArgs,
    /// Directory to write `NN-<name>.yaml` files into (created if missing). `-o` is the
    /// global output format, hence the long name.
    #[arg(long, value_name = "DIR", help_heading = None::<&str>)]
    pub out_dir: PathBuf,
    /// Put credential values into the rendered Secrets (base64) and write every file 0600.
    /// Without it, each Secret value reads `<redacted: from REF>`.
    #[arg(long, help_heading = None::<&str>)]
    pub show_secrets: bool,
    /// Replace the numbered manifests (`NN-*.yaml`) an earlier render left in `--out-dir`
    /// (without it a non-empty directory is refused, so `kubectl apply -f DIR` never sees a
    /// stale object).
    #[arg(long, help_heading = None::<&str>)]
    pub force: bool,
}

pub async fn run(args: RenderArgs, out: Output) -> ExitCode {
    let p = match prepare(&args.input, &out).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Err(code) = p.refuse_on_errors("nothing was rendered") {
        return code;
    }
    let opts = RenderOptions {
        stack_dir: p.stack_dir.clone(),
        allow_missing_bundle: false,
    };
    let desired = match render::render(&p.stack, &p.cluster, &p.bundle, &opts) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {}", crate::probe::error_chain(&e));
            if matches!(e, render::RenderError::Bundle(_)) {
                eprintln!(
                    "hint: run `rookery bundle fetch`, or pass --bundle-dir with a verified copy"
                );
            }
            return ExitCode::from(exit::ERROR);
        }
    };
    let reveal = args.show_secrets.then_some(p.stack_dir.as_path());
    let written = match desired.write_manifests(&args.out_dir, reveal, args.force) {
        Ok(w) => w,
        Err(e @ WriteError::NotEmpty { .. }) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::USAGE);
        }
        Err(e) => {
            eprintln!("error: {}", crate::probe::error_chain(&e));
            return ExitCode::from(exit::ERROR);
        }
    };
    let manifests = desired.manifests();
    match out.format {
        OutputFormat::Json => {
            let doc = serde_json::json!({
                "outDir": args.out_dir.display().to_string(),
                "secretValues": args.show_secrets,
                "manifests": manifests,
            });
            println!("{doc:#}");
        }
        OutputFormat::Human => {
            if !out.quiet {
                for w in &written {
                    println!("{}", w.display());
                }
            }
            let secrets = args.show_secrets && manifests.iter().any(|m| m.has_secrets);
            eprintln!(
                "wrote {} manifests to {}{}",
                written.len(),
                args.out_dir.display(),
                if secrets {
                    " (WITH secret values: do not commit them)"
                } else {
                    ""
                }
            );
        }
    }
    ExitCode::from(exit::OK)
}
