//! `rookery probe`: owned by the transport/probe work (issue 2).

use std::process::ExitCode;

use crate::output::Output;

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {}

pub async fn run(_args: ProbeArgs, _out: Output) -> ExitCode {
    ExitCode::from(crate::exit::ERROR)
}
