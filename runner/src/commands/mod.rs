//! One module per subcommand. Each defines its clap arguments and an async `run`.

pub mod inventory;
pub mod probe;
