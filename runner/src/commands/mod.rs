//! One module per subcommand. Each defines its clap arguments and an async `run`.

pub mod apply;
pub mod bundle;
pub mod diff;
pub mod doctor;
pub mod inventory;
pub mod plan;
pub mod play;
pub mod prepare;
pub mod probe;
pub mod render;
pub mod status;
