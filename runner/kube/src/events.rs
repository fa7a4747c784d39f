//! What the engine tells its caller while it works. Only the binary draws these (a progress
//! line per stage, or one JSON object per line), so the terminal and `--output json` always say
//! the same thing. Waiting events are emitted when an object's state *changes*, not per poll.

use std::time::Duration;

use rookery_stack::desired::{ObjectRef, Stage};
use serde::Serialize;

/// What applying one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Change {
    Created,
    Configured,
    Unchanged,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase", tag = "event")]
pub enum Event {
    Connected {
        server: String,
        context: Option<String>,
    },
    StageStarted {
        stage: Stage,
        title: &'static str,
        index: usize,
        total: usize,
        objects: usize,
    },
    Applied {
        stage: Stage,
        object: ObjectRef,
        change: Change,
    },
    /// An object is not ready yet; `reason` names what blocks it.
    Waiting {
        stage: Stage,
        object: ObjectRef,
        reason: String,
    },
    Ready {
        stage: Stage,
        object: ObjectRef,
        /// E.g. an accepted HEALTH_WARN, with its reason.
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    StageDone {
        stage: Stage,
        #[serde(serialize_with = "secs")]
        elapsed: Duration,
        changed: usize,
    },
    Pruned {
        object: ObjectRef,
    },
    Warning {
        message: String,
    },
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// Receives events. Implementations must be cheap: the engine calls them from its tasks.
pub trait Reporter: Send + Sync {
    fn event(&self, event: Event);
}

/// Discards everything (tests, quiet callers).
pub struct Silent;

impl Reporter for Silent {
    fn event(&self, _: Event) {}
}

impl<F: Fn(Event) + Send + Sync> Reporter for F {
    fn event(&self, event: Event) {
        self(event)
    }
}
