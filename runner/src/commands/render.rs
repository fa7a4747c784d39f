//! `rookery render`: write every manifest of the stack, numbered in apply order, into
//! `--out-dir` (for GitOps and review). Refuses, like `plan`, when validation finds errors.
//! Secrets are written without their values unless `--show-secrets`.

use std::path::PathBuf;
use std::process::ExitCode;

use rookery_stack::Severity;
use rookery_stack::render::{self, RenderOptions};

use crate::commands::plan::{StackArgs, prepare};
use crate::exit;
use crate::output::{Output, OutputFormat};

/// Write every manifest of a stack, numbered in apply order, into a directory.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    // StackArgs ends with its "With --probe" heading; the flags below set theirs back.
    #[command(flatten)]
    pub input: StackArgs,
    /// Directory to write `NN-<name>.yaml` files into (created if missing). `-o` is the
    /// global output format, hence the long name.
    #[arg(long, value_name = "DIR", help_heading = None::<&str>)]
    pub out_dir: PathBuf,
    /// Put credential values into the rendered Secrets (base64). Without it, Secrets carry
    /// an annotation naming the source instead of the value.
    #[arg(long, help_heading = None::<&str>)]
    pub show_secrets: bool,
}

pub async fn run(args: RenderArgs, out: Output) -> ExitCode {
    let p = match prepare(&args.input, &out).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let errors: Vec<_> = p
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    if !errors.is_empty() {
        for f in &errors {
            eprintln!("error[{}] {}: {}", f.code, f.path, f.message);
            eprintln!("    hint: {}", f.hint);
        }
        eprintln!(
            "error: the stack has {} validation error(s); nothing was rendered (see `rookery plan`)",
            errors.len()
        );
        return ExitCode::from(exit::VALIDATION);
    }
    let opts = RenderOptions {
        show_secrets: args.show_secrets,
        stack_dir: p.stack_dir.clone(),
        allow_missing_bundle: false,
    };
    let manifests = match render::render(&p.stack, &p.cluster, &p.bundle, &opts) {
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
    let written = match render::write_manifests(&manifests, &args.out_dir) {
        Ok(w) => w,
        Err(e) => {
            eprintln!(
                "error: cannot write manifests into `{}`: {e}",
                args.out_dir.display()
            );
            return ExitCode::from(exit::ERROR);
        }
    };
    match out.format {
        OutputFormat::Json => {
            let doc = serde_json::json!({
                "outDir": args.out_dir.display().to_string(),
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
            let secrets = manifests.iter().any(|m| m.has_secret_values);
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
