//! rookery-kube: the only crate that talks to a Kubernetes API server.
//!
//! - [`connect`]: kubeconfig (file, `KUBECONFIG`, `~/.kube/config`, context), CA-verified,
//!   a deadline on every request; [`kubeconfig`]: a K3s server's kubeconfig made usable from
//!   here (only `server` rewritten).
//! - [`engine::apply`]: the stack's [`rookery_stack::desired::DesiredState`] applied stage by
//!   stage with server-side apply, each stage waited for ([`wait`], judged by [`health`]),
//!   recorded as an ApplySet ([`applyset`]) and optionally pruned.
//! - [`diff`]: what `apply` would change, from server-side dry runs.
//!
//! - [`drill`]: a restore checked object by object against its backup and the source.
//! - [`velero`]: Velero's Backups, Restores, storage locations and Schedules, read and created.
//!
//! The logic that decides (health, immutable fields, the ApplySet record) is plain functions
//! over JSON; only [`resolve`], [`wait`], [`engine`] and [`diff`] make requests.

// Errors carry the object, the controller's message and a hint, and travel only on the
// failure path of network calls: their size costs nothing measurable.
#![allow(clippy::result_large_err)]

pub mod applyset;
pub mod collision;
pub mod connect;
pub mod diff;
pub mod drill;
pub mod engine;
pub mod error;
pub mod events;
pub mod health;
pub mod immutable;
pub mod kubeconfig;
pub mod resolve;
pub mod snapshot;
pub mod velero;
pub mod wait;

pub use connect::{Cluster, Target, connect};
pub use engine::{ApplyOptions, ApplyReport, apply};
pub use error::KubeError;
pub use events::{Event, Reporter};
