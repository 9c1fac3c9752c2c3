//! Fault injection for one simulated cluster, driven from tests.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::error::ApiError;

/// Which error a failing request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailWith {
    /// 500 InternalError.
    InternalError,
    /// 429 TooManyRequests with `Retry-After: 1`.
    TooManyRequests,
}

#[derive(Debug, Default)]
struct Plan {
    fail_next: u32,
    fail_with: Option<FailWith>,
    latency: Duration,
}

/// Faults of one cluster. Cheap to share; every request consults it first.
pub struct Faults {
    unreachable: AtomicBool,
    plan: Mutex<Plan>,
    /// Bumped to cut every open watch (and, when unreachable, every connection).
    cut: watch::Sender<u64>,
    pub(crate) store: std::sync::OnceLock<std::sync::Arc<crate::store::Store>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("unreachable", &self.is_unreachable())
            .finish_non_exhaustive()
    }
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            unreachable: AtomicBool::new(false),
            plan: Mutex::default(),
            cut: watch::channel(0).0,
            store: std::sync::OnceLock::new(),
        }
    }
}

impl Faults {
    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses every connection (open ones are closed) until `set_reachable`.
    pub fn set_unreachable(&self) {
        self.unreachable.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn set_reachable(&self) {
        self.unreachable.store(false, Ordering::SeqCst);
    }

    pub fn is_unreachable(&self) -> bool {
        self.unreachable.load(Ordering::SeqCst)
    }

    /// The next `n` requests fail with `with`.
    pub fn fail_next(&self, n: u32, with: FailWith) {
        let mut p = self.plan();
        p.fail_next = n;
        p.fail_with = Some(with);
    }

    /// Adds `latency` before every request is handled (zero removes it).
    pub fn set_latency(&self, latency: Duration) {
        self.plan().latency = latency;
    }

    /// Ends every open watch stream now; clients must re-watch.
    pub fn cut_watches(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    /// Shrinks the retained watch window to `events` at once: a watch from a version
    /// older than that answers 410 Gone.
    pub fn shrink_watch_window(&self, events: usize) {
        if let Some(s) = self.store.get() {
            s.set_window(events);
        }
    }

    /// Forgets all retained events (as after an etcd compaction) and cuts open watches,
    /// so every client re-watching from its last version gets 410 Gone.
    pub fn compact_and_cut(&self) {
        if let Some(s) = self.store.get() {
            s.compact();
        }
        self.cut_watches();
    }

    pub(crate) fn cut_signal(&self) -> watch::Receiver<u64> {
        self.cut.subscribe()
    }

    /// Called at the start of each request: latency, then a planned failure if any.
    pub(crate) async fn before_request(&self) -> Result<(), ApiError> {
        let (latency, fail) = {
            let mut p = self.plan();
            let fail = if p.fail_next > 0 {
                p.fail_next -= 1;
                p.fail_with
            } else {
                None
            };
            (p.latency, fail)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match fail {
            Some(FailWith::InternalError) => {
                Err(ApiError::internal("injected fault: internal error"))
            }
            Some(FailWith::TooManyRequests) => Err(ApiError::too_many_requests()),
            None => Ok(()),
        }
    }
}
