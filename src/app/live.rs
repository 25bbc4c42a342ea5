//! Per-server live state: what the running service knows about a server
//! beyond the store (syncing, queued, next run, the retry after a failed
//! run, waits, the last check, counters since start), plus the pending sync
//! request and the running sync's stop flag. The controls write here and
//! the daemon's scheduler reads and updates it; one mutex per server keeps
//! a reset or a check from overlapping a sync.

use super::check::ServerCheck;
use crate::source::Stop;
use serde::Serialize;
use std::sync::{Arc, Mutex, MutexGuard};

/// What a running sync waits for, as the status shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Wait {
    #[serde(rename = "the server's rate limit")]
    RateLimit,
    #[serde(rename = "the server to answer again")]
    Outage,
}

impl Wait {
    pub fn text(self) -> &'static str {
        match self {
            Wait::RateLimit => "the server's rate limit",
            Wait::Outage => "the server to answer again",
        }
    }
}

/// The part of a server's live state the status document shows.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Live {
    pub syncing: bool,
    /// Waiting for a free sync slot (`max_concurrent_syncs`).
    pub queued: bool,
    pub run_started_at: Option<i64>,
    pub run_full: bool,
    pub next_run_at: Option<i64>,
    /// Set while the last run failed: when it is tried again (apart from
    /// the schedule, `[daemon] retry_backoff`) and why.
    pub retry: Option<Retry>,
    /// The last check of the server (at start, after a reload that changed
    /// it, on demand).
    pub check: Option<ServerCheck>,
    /// The running sync waits (rate limit, or backoff after a failed
    /// request) until then, epoch seconds, for the reason given.
    pub waiting_until: Option<i64>,
    pub waiting_for: Option<Wait>,
    /// Runs, failed runs, requests and seconds spent since the daemon started.
    pub runs: u64,
    pub failed_runs: u64,
    pub requests: u64,
    pub run_seconds: f64,
    /// The server's notification socket, for servers that listen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notifications: Option<super::push::Notifications>,
}

/// A sync asked for from the command line or the status page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncRequest {
    /// Walk whole libraries.
    pub full: bool,
    /// Allow deletions beyond `max_delete_share` (the user confirmed them).
    pub force: bool,
}

/// The retry of a server whose last run failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Retry {
    /// When, epoch seconds.
    pub at: i64,
    /// Failed runs in a row.
    pub failures: u32,
    /// The last failure, as the status shows it.
    pub reason: String,
}

/// How a sync run ended, for the counters.
#[derive(Clone, Copy, Debug)]
pub enum RunOutcome {
    Finished {
        requests: u64,
        ok: bool,
    },
    /// Ended without a report (its thread panicked); its last committed
    /// page stays.
    Aborted,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) live: Live,
    /// A sync asked for and not started yet.
    requested: Option<SyncRequest>,
    /// The running sync's stop signal (pause, shutdown and a reload that
    /// changes or removes the server set it).
    run_stop: Option<Arc<Stop>>,
    /// A reset or a check holds the server: no sync starts meanwhile.
    held: bool,
    /// What the server's notices ask to sync (`app::push`).
    pub(super) push: super::push::Work,
    /// No sign-in for the socket before this (after a failed one).
    pub(super) sign_in_after: Option<std::time::Instant>,
    /// A Quick Connect started from the page, waiting for its code.
    pub(super) quick_connect: Option<super::quick_connect::Pending>,
}

/// One configured server's live state and the wake-up its scheduler waits on.
#[derive(Default)]
pub struct ServerSlot {
    state: Mutex<State>,
    wake: tokio::sync::Notify,
}

impl ServerSlot {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A copy of the live state.
    pub fn live(&self) -> Live {
        self.lock().live.clone()
    }

    pub fn syncing(&self) -> bool {
        self.lock().live.syncing
    }

    /// The next run, and the retry it is if the last run failed; `None`
    /// while the server is not configured (a reload removed it).
    pub fn set_next_run(&self, at: Option<i64>, retry: Option<Retry>) {
        let mut state = self.lock();
        state.live.next_run_at = at;
        state.live.retry = retry;
    }

    pub fn set_check(&self, check: ServerCheck) {
        self.lock().live.check = Some(check);
    }

    pub fn set_queued(&self, queued: bool) {
        self.lock().live.queued = queued;
    }

    /// Whether a sync was requested and has not started yet.
    pub fn is_requested(&self) -> bool {
        self.lock().requested.is_some()
    }

    /// Takes the pending request, when one was made.
    pub fn take_request(&self) -> Option<SyncRequest> {
        self.lock().requested.take()
    }

    /// Resolves when a control (or shutdown) wakes this server's scheduler;
    /// a wake-up given while nobody waited is kept for the next call.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Records a request; requests made before the sync starts add up.
    pub(super) fn request(&self, request: SyncRequest) {
        let mut state = self.lock();
        let pending = state.requested.unwrap_or_default();
        state.requested =
            Some(SyncRequest { full: pending.full || request.full, force: pending.force || request.force });
    }

    /// Stops the running sync, if any, at once: its wait or request in
    /// flight ends, and nothing more is sent.
    pub(crate) fn stop_run(&self) {
        let stop = self.lock().run_stop.clone();
        if let Some(stop) = stop {
            stop.set();
        }
    }

    /// Holds the server for a reset or a check, so no sync starts until
    /// `release`; refused (false) while the server syncs or is held. A
    /// check's `stop` is set as a running sync's would be.
    pub(super) fn hold(&self, stop: Option<&Arc<Stop>>) -> bool {
        let mut state = self.lock();
        if state.live.syncing || state.held {
            return false;
        }
        state.held = true;
        state.run_stop = stop.cloned();
        true
    }

    pub(super) fn release(&self) {
        let mut state = self.lock();
        state.held = false;
        state.run_stop = None;
    }

    /// Marks a sync started with `stop` as its stop signal; refused (false)
    /// while a reset or a check holds the server.
    pub fn try_begin_run(&self, full: bool, started_at: i64, stop: &Arc<Stop>) -> bool {
        let mut state = self.lock();
        if state.held {
            return false;
        }
        state.live.syncing = true;
        state.live.run_full = full;
        state.live.run_started_at = Some(started_at);
        state.run_stop = Some(Arc::clone(stop));
        true
    }

    pub(super) fn set_waiting(&self, until: i64, wait: Wait) {
        let mut state = self.lock();
        state.live.waiting_until = Some(until);
        state.live.waiting_for = Some(wait);
    }

    /// Marks the sync ended and counts it.
    pub fn end_run(&self, outcome: RunOutcome, seconds: f64) {
        let mut state = self.lock();
        state.run_stop = None;
        let live = &mut state.live;
        live.syncing = false;
        live.waiting_until = None;
        live.waiting_for = None;
        live.runs = live.runs.saturating_add(1);
        live.run_seconds += seconds;
        match outcome {
            RunOutcome::Finished { requests, ok } => {
                live.requests = live.requests.saturating_add(requests);
                if !ok {
                    live.failed_runs = live.failed_runs.saturating_add(1);
                }
            }
            RunOutcome::Aborted => live.failed_runs = live.failed_runs.saturating_add(1),
        }
    }
}
