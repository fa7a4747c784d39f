//! rookery-stack: the storage stack a user describes once (shaped like the seed's
//! `StorageModule`), checked against the machines before anything runs, rendered into every
//! Kubernetes object in apply order, plus the pinned upstream bundle those objects come from.
//!
//! Pipeline: [`yaml::load`] a [`model::Stack`] → [`hosts::plan_cluster`] against inventory
//! hosts and probe facts → [`validate::validate`] into [`findings::Finding`]s →
//! [`render::render`] a [`desired::DesiredState`] (objects with their stage and readiness rule)
//! from `playbooks/templates/` and the [`bundle`], which plan, render, diff and apply consume.

pub mod bundle;
pub mod credential;
pub mod desired;
pub mod findings;
pub mod hosts;
pub mod model;
pub mod namespaces;
pub mod readiness;
pub mod render;
pub mod timefmt;
pub mod validate;
pub mod versions;
pub mod yaml;

pub use findings::{Finding, Severity};
pub use model::Stack;
pub use namespaces::Namespaces;
