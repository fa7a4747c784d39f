//! Choosing OSD devices and preparing them safely:
//!
//! * [`spec`]: the `rookery_devices` inventory variable (names, serials, WWNs, rules, the
//!   `wipe: true` flag) and its validation;
//! * [`select`]: the one implementation of device matching (name, by-id, serial, WWN, class,
//!   size range, model glob, all) and the gates a rule-picked device must pass — shared with
//!   rookery-stack's `nodes[].devices[]` and `deviceSelection`;
//! * [`plan`]: resolving those entries against probe facts to stable identities, the
//!   per-host plan, its printing and the consent rules;
//! * [`audit`]: the control-machine audit log (JSON lines);
//! * [`prepare`]: the prepare flow itself (audit lines, the agent's prepare, results), shared
//!   by `rookery prepare` and the `prepare_devices` playbook module.
//!
//! No transport here: [`prepare`] talks to agents through its one-method
//! [`prepare::AgentCalls`] trait, which the front ends implement.

pub mod audit;
pub mod plan;
pub mod prepare;
pub mod select;
pub mod spec;

pub use audit::{AuditLog, AuditSource, ControlAuditRecord};
pub use plan::{HostPlan, PlanEntry, PlannedAction, plan_host, render_plan};
pub use select::{Pick, Resolution, Selected, resolve_named, select};
pub use spec::{DeviceSpec, Selection, parse_host_specs};
