//! rookery-agent: the node side. Speaks rookery-proto over stdin/stdout.
//!
//! Modules: [`server`] (the protocol loop), [`host`] (the OS seam: which disk is which, what
//! sits on it and uses it), [`probe`] (host facts, block devices, signatures, availability
//! verdict), [`exec`] and [`files`] (the runner's generic steps), [`prepare`] (device wiping
//! and readiness), [`base64`] (payload decoding without a crate). `test_hooks` exists only
//! with the `test-hooks` feature, which the shipped agent never has.

pub mod base64;
pub mod exec;
pub mod files;
pub mod host;
pub mod prepare;
pub mod probe;
pub mod server;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
#[cfg(not(feature = "test-hooks"))]
mod test_hooks;
