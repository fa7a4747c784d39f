//! The `rookery` runner: command-line front end over the inventory, transport, playbook and
//! stack crates. Each subcommand lives in `commands/<name>.rs` with its own clap `Args`.

pub mod cli;
pub mod cluster;
pub mod commands;
pub mod connect;
pub mod error;
pub mod exit;
pub mod kube_modules;
pub mod output;
pub mod probe;
pub mod report;
