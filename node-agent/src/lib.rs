//! rookery-agent: the node side. Speaks rookery-proto over stdin/stdout.
//!
//! Modules: [`server`] (the protocol loop), [`probe`] (host facts, block devices, signatures,
//! availability verdict), [`exec`] and [`files`] (the runner's generic steps), [`prepare`]
//! (device wiping and readiness, issue 4), [`base64`] (payload decoding without a crate).

pub mod base64;
pub mod exec;
pub mod files;
pub mod prepare;
pub mod probe;
pub mod server;
