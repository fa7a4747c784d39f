//! One module per subcommand. Each defines its clap arguments and an async `run`.

pub mod apply;
pub mod backup;
pub mod bundle;
pub mod diff;
pub mod doctor;
pub mod drill;
pub mod inventory;
pub mod plan;
pub mod play;
pub mod prepare;
pub mod probe;
pub mod render;
pub mod restore;
pub mod status;
pub mod up;
