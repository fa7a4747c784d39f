//! One module per subcommand. Each defines its clap arguments and an async `run`.

pub mod bundle;
pub mod inventory;
pub mod plan;
pub mod play;
pub mod prepare;
pub mod probe;
pub mod render;
