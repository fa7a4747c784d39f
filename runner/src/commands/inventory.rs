//! `rookery inventory`: owned by the inventory work (issue 2).

use std::process::ExitCode;

use crate::output::Output;

#[derive(Debug, clap::Subcommand)]
pub enum InventoryCommand {
    /// List resolved hosts.
    List,
}

pub async fn run(_cmd: InventoryCommand, _out: Output) -> ExitCode {
    ExitCode::from(crate::exit::ERROR)
}
