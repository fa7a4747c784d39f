//! The one way rookery runs a piece of work on many hosts at once: at most `forks` at a time,
//! every host's result kept in input order, and a host task that panics turned into a failed
//! outcome for that host instead of being lost (or taking the whole run down with it).
//!
//! The work runs as futures polled by the caller's task, not as spawned tasks, so it may
//! borrow from the caller (the playbook executor lends each host its `&mut` state). Host work
//! is network-bound and the SSH sessions do their crypto on their own tasks, so one polling
//! task is enough for hundreds of hosts.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};

/// A host task that panicked (a bug in rookery). The host counts as failed with this
/// message; it is never dropped from the results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPanic {
    pub message: String,
}

impl fmt::Display for HostPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "internal error: the task for this host panicked ({}); this is a bug in rookery",
            self.message
        )
    }
}

impl std::error::Error for HostPanic {}

/// What the work gave for one item: its value, or the panic that ended it.
pub type HostOutcome<T> = Result<T, HostPanic>;

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> HostPanic {
    let message = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_string()
    };
    HostPanic { message }
}

/// Run `work` on every item, at most `forks` at once, and return one outcome per item in the
/// order of `items`.
pub async fn fan_out<I, T, F, Fut>(
    items: impl IntoIterator<Item = I>,
    forks: usize,
    work: F,
) -> Vec<HostOutcome<T>>
where
    F: FnMut(I) -> Fut,
    Fut: Future<Output = T>,
{
    fan_out_with_progress(items, forks, work, |_, _| {}).await
}

/// [`fan_out`], calling `done(index, outcome)` as each item finishes (in completion order),
/// for live progress.
pub async fn fan_out_with_progress<I, T, F, Fut>(
    items: impl IntoIterator<Item = I>,
    forks: usize,
    mut work: F,
    mut done: impl FnMut(usize, &HostOutcome<T>),
) -> Vec<HostOutcome<T>>
where
    F: FnMut(I) -> Fut,
    Fut: Future<Output = T>,
{
    let forks = forks.max(1);
    let mut items = items.into_iter().enumerate();
    let mut out: Vec<Option<HostOutcome<T>>> = Vec::new();
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < forks {
            let Some((i, item)) = items.next() else {
                break;
            };
            out.push(None);
            // Building the future may panic too (a closure that does work before `async`).
            let fut = match std::panic::catch_unwind(AssertUnwindSafe(|| work(item))) {
                Ok(fut) => AssertUnwindSafe(fut)
                    .catch_unwind()
                    .map(move |r| (i, r.map_err(panic_message)))
                    .left_future(),
                Err(p) => futures::future::ready((i, Err(panic_message(p)))).right_future(),
            };
            running.push(fut);
        }
        let Some((i, r)) = running.next().await else {
            break;
        };
        done(i, &r);
        if let Some(slot) = out.get_mut(i) {
            *slot = Some(r);
        }
    }
    // Every started future finished above, so every slot is filled.
    out.into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                Err(HostPanic {
                    message: "the task never finished".into(),
                })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn order_kept_panics_become_outcomes_and_forks_bound_concurrency() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let mut seen = Vec::new();
        let out = fan_out_with_progress(
            0..20u64,
            3,
            |i| {
                let running = &running;
                let peak = &peak;
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    // Later items finish first: completion order differs from input order.
                    tokio::time::sleep(Duration::from_millis(20 - i)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    if i == 7 {
                        panic!("host {i} broke");
                    }
                    i * 10
                }
            },
            |i, _| seen.push(i),
        )
        .await;
        assert_eq!(out.len(), 20);
        for (i, r) in out.iter().enumerate() {
            if i == 7 {
                let e = r.as_ref().unwrap_err();
                assert_eq!(e.message, "host 7 broke");
                assert!(e.to_string().contains("bug in rookery"), "{e}");
            } else {
                assert_eq!(r.as_ref().ok(), Some(&(i as u64 * 10)));
            }
        }
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert_eq!(seen.len(), 20);
    }

    #[tokio::test]
    async fn a_panic_while_building_the_future_is_caught_too() {
        let out = fan_out(["a", "b"], 2, |h| {
            assert_ne!(h, "b", "eager panic");
            async move { h.len() }
        })
        .await;
        assert_eq!(out[0], Ok(1));
        assert!(out[1].as_ref().unwrap_err().message.contains("eager panic"));
    }
}
