//! Ansible-style playbooks for rookery: the language ([`language`]), variables and their
//! precedence ([`vars`]), handlebars templates ([`template`]), `when` conditions ([`expr`]),
//! the module interface with its built-in modules ([`modules`]), and the executor that runs
//! plays over agent sessions and reports [`events`].
//!
//! Entry points: [`load_playbook`] then [`Executor::run`] with a [`HostSource`] (the CLI wraps
//! the inventory) and a [`Reporter`].

pub mod events;
pub mod executor;
pub mod expr;
pub mod language;
pub mod modules;
pub mod source;
pub mod template;
pub mod vars;
pub mod yaml;

pub use events::{
    CollectingReporter, HostResult, HostStats, NullReporter, Reporter, RunEvent, Status,
};
pub use executor::{
    ExecError, Executor, HostSource, RunOptions, RunSummary, TargetHost, tags_selected,
};
pub use language::{LoadError, Play, Playbook, Task, load_playbook, parse_playbook};
pub use modules::{
    Action, Change, Module, ModuleCtx, ModuleError, ModuleResult, Query, Registry, RunsOn,
};
pub use source::InventorySource;
pub use template::{Templar, TemplateError};
