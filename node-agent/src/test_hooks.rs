//! Fault hooks for tests, compiled only with the `test-hooks` cargo feature: the agent that
//! `cargo xtask agent` builds for hosts has none of this (no environment variable can make it
//! pause mid-wipe). The node-agent tests enable the feature for themselves; `cargo xtask
//! test` builds a separate debug agent with it for the end-to-end crash test.

#[cfg(feature = "test-hooks")]
mod enabled {
    use std::collections::HashMap;
    use std::sync::{Mutex, PoisonError};

    /// When set to a step name (or a prefix of one, e.g. `zero-tail`), the agent sleeps after
    /// that step's "after" audit record so a test can SIGKILL it mid-wipe.
    pub const PAUSE_ENV: &str = "ROOKERY_AGENT_TEST_PAUSE_AFTER_STEP";

    type Hook = Box<dyn FnOnce() + Send>;

    static AFTER_RESOLVE: Mutex<Option<HashMap<String, Hook>>> = Mutex::new(None);

    pub fn pause_after(step: &str) {
        if let Ok(want) = std::env::var(PAUSE_ENV)
            && !want.is_empty()
            && step.starts_with(&want)
        {
            eprintln!("rookery-agent: test hook {PAUSE_ENV}: pausing after {step}");
            std::thread::sleep(std::time::Duration::from_secs(600));
        }
    }

    /// Runs `hook` once, the next time prepare has resolved the device at `path` and before
    /// it opens it: the window in which a test swaps the device underneath.
    pub fn on_next_resolve(path: &str, hook: impl FnOnce() + Send + 'static) {
        AFTER_RESOLVE
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(HashMap::new)
            .insert(path.to_string(), Box::new(hook));
    }

    pub fn after_resolve(path: &str) {
        let hook = AFTER_RESOLVE
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .and_then(|m| m.remove(path));
        if let Some(h) = hook {
            h();
        }
    }

    pub const ENABLED: bool = true;
}

#[cfg(feature = "test-hooks")]
pub use enabled::*;

#[cfg(not(feature = "test-hooks"))]
mod disabled {
    #[inline(always)]
    pub fn pause_after(_step: &str) {}
    #[inline(always)]
    pub fn after_resolve(_path: &str) {}
    pub const ENABLED: bool = false;
}

#[cfg(not(feature = "test-hooks"))]
pub(crate) use disabled::*;
