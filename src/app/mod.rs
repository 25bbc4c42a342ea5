//! The application layer of `mediasync run`: the config (replaced whole by
//! a reload, `reload`), the store, each server's live state, the Spotify
//! flows started from the status page, the controls (`controls`), the admin
//! token they require (`admin_token`), the server checks (`check`,
//! `artwork_check`) and the
//! typed status document (`status`). The status server (`web`) serves it and
//! the daemon drives it; it knows neither, so nothing here depends on HTTP or
//! on the async runtime.

pub mod admin_token;
pub mod artwork_check;
pub mod check;
pub mod controls;
pub mod live;
pub mod push;
pub mod quick_connect;
pub mod reload;
pub mod schedule;
pub mod spotify;
pub mod status;

use crate::config::Config;
use crate::source::{ErrorKind, Stop};
use crate::store::{Store, TombstoneLimits};
use crate::sync::{self, Libraries, Options, Selection, ServerReport, Signals, UnchangedRuns};
pub use controls::ControlError;
pub use live::{Live, Retry, RunOutcome, ServerSlot, SyncRequest, Wait};
use reload::ReloadStatus;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock, RwLockWriteGuard};
use std::time::Duration;

/// The longest artwork pass after one sync of a server.
const ARTWORK_PASS: Duration = Duration::from_secs(10 * 60);

pub struct App {
    /// The config in force; a reload replaces it whole, so a reader holds
    /// one consistent version (`config()`).
    config: RwLock<Arc<Config>>,
    pub store: Store,
    pub started_at: i64,
    /// Set once, at shutdown: running syncs get their own stops (pause
    /// ends one), the notification listeners share this one.
    stopping: Arc<Stop>,
    /// A slot per server configured since the start: a reload adds slots,
    /// and keeps those of removed servers (their schedulers idle) so that a
    /// server removed and added again never has two schedulers.
    servers: RwLock<BTreeMap<String, Arc<ServerSlot>>>,
    /// Spotify authorisations started from the status page.
    spotify_flows: spotify::Flows,
    last_reload: Mutex<Option<ReloadStatus>>,
}

impl App {
    pub fn new(config: Config, store: Store) -> App {
        let servers =
            config.servers.iter().map(|server| (server.name.clone(), Arc::new(ServerSlot::default()))).collect();
        App {
            config: RwLock::new(Arc::new(config)),
            store,
            started_at: sync::now_epoch(),
            stopping: Arc::new(Stop::new()),
            servers: RwLock::new(servers),
            spotify_flows: spotify::Flows::default(),
            last_reload: Mutex::new(None),
        }
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn set_config(&self, config: Config) {
        *self.config.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(config);
    }

    /// A server's live state (also of a server a reload removed, whose
    /// scheduler idles).
    pub fn server(&self, name: &str) -> Option<Arc<ServerSlot>> {
        self.servers.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(name).cloned()
    }

    fn slots(&self) -> Vec<Arc<ServerSlot>> {
        self.servers.read().unwrap_or_else(|poisoned| poisoned.into_inner()).values().cloned().collect()
    }

    fn slots_mut(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Arc<ServerSlot>>> {
        self.servers.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A copy of a server's live state.
    pub fn live(&self, name: &str) -> Option<Live> {
        self.server(name).map(|slot| slot.live())
    }

    /// The outcome of the last reload, if there was one.
    pub fn last_reload(&self) -> Option<ReloadStatus> {
        self.last_reload.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn set_reload(&self, status: ReloadStatus) {
        *self.last_reload.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(status);
    }

    pub fn stopping(&self) -> bool {
        self.stopping.is_set()
    }

    /// The shutdown signal, for work that lasts as long as the service (the
    /// notification listeners): it ends their waits, sign-ins and reads.
    pub fn shutdown_signal(&self) -> Arc<Stop> {
        Arc::clone(&self.stopping)
    }

    /// Stops starting work and stops running syncs and the notification
    /// listeners at once (their waits and requests end; the last committed
    /// page stays).
    pub fn shut_down(&self) {
        self.stopping.set();
        for slot in self.slots() {
            slot.stop_run();
            slot.wake();
        }
    }

    pub fn any_syncing(&self) -> bool {
        self.slots().iter().any(|slot| slot.syncing())
    }

    /// Syncs the `selection` of one server's libraries on the calling
    /// (blocking) thread, showing the waits of its source in the server's
    /// live state; `stop` ends it at once, `yield_to` after the page under
    /// way. The caller marks the run begun and ended on the server's slot.
    pub fn sync_server(
        self: &Arc<Self>,
        name: &str,
        request: SyncRequest,
        selection: Selection<'_>,
        stop: &Arc<Stop>,
        yield_to: Option<&AtomicBool>,
    ) -> Result<ServerReport, ControlError> {
        self.sync_some(name, request, selection, stop, yield_to)
    }

    /// Runs what notices asked for (`push::Plan`): the items they named
    /// fetched alone where they are few (`push::FEW_ITEMS`), else the
    /// incremental run of the libraries they named, or of the whole server.
    pub fn sync_pushed(
        self: &Arc<Self>,
        name: &str,
        plan: &push::Plan,
        stop: &Arc<Stop>,
    ) -> Result<ServerReport, ControlError> {
        match plan {
            push::Plan::Everything => self.sync_some(name, SyncRequest::default(), Libraries::All.into(), stop, None),
            push::Plan::Libraries(libraries) => {
                let only: Vec<String> = libraries.keys().cloned().collect();
                let named = push::few_named(libraries);
                let selection =
                    Selection { libraries: Libraries::All, done: &[], only: Some(&only), named: Some(&named) };
                self.sync_some(name, SyncRequest::default(), selection, stop, None)
            }
        }
    }

    fn sync_some(
        self: &Arc<Self>,
        name: &str,
        request: SyncRequest,
        selection: Selection<'_>,
        stop: &Arc<Stop>,
        yield_to: Option<&AtomicBool>,
    ) -> Result<ServerReport, ControlError> {
        let config = self.config();
        let Some(server) = config.server(name) else {
            return Err(ControlError::UnknownServer(name.to_string()));
        };
        let source = crate::source::build(server, &config.sync, &self.store, stop);
        let observed = Arc::clone(self);
        let observed_name = name.to_string();
        source.observe_waits(Arc::new(move |err, pause| {
            let wait = match err.kind {
                ErrorKind::RateLimited(_) => Wait::RateLimit,
                _ => Wait::Outage,
            };
            if let Some(slot) = observed.server(&observed_name) {
                slot.set_waiting(seconds_after(sync::now_epoch(), pause), wait);
            }
        }));
        let options = Options {
            full: request.full,
            force: request.force,
            full_every: config.sync.full_every,
            max_delete_share: config.sync.max_delete_share,
            history: config.sync.history,
            page_size: server.page_size,
            unchanged_runs: UnchangedRuns::Recorded,
        };
        let signals = Signals { stop: stop.flag(), yield_to };
        let report = sync::sync_libraries(name, source.as_ref(), &self.store, &options, selection, signals);
        let store = &config.store;
        sync::compact_feed(&self.store, TombstoneLimits::new(store.max_tombstones, store.max_tombstone_age));
        if let Some(artwork) = &config.artwork {
            self.mirror_artwork(server, artwork, config.sync.timeout, stop);
        }
        Ok(report)
    }

    /// The artwork pass after a server's sync: its metadata is committed, so
    /// nothing here holds it up; at most `ARTWORK_PASS` long, so the next
    /// sync is never long delayed (the rest follows after it).
    fn mirror_artwork(
        &self,
        server: &crate::config::ServerConfig,
        artwork: &crate::config::ArtworkConfig,
        timeout: Duration,
        stop: &Arc<Stop>,
    ) {
        if stop.is_set() {
            return;
        }
        let budget = crate::artwork::Budget { deadline: std::time::Instant::now().checked_add(ARTWORK_PASS) };
        let pass = crate::artwork::Pass { timeout, stop, recheck: crate::artwork::Recheck::Missing, budget };
        match crate::artwork::mirror_server(&self.store, server, artwork, pass) {
            Ok(report) => log::info!("{}", report.summary_line(&server.name)),
            Err(err) => log::warn!("{}: the artwork pass failed: {err}", server.name),
        }
    }
}

/// `epoch` plus `wait` rounded up to the second, saturating.
fn seconds_after(epoch: i64, wait: Duration) -> i64 {
    let seconds = wait.as_secs().saturating_add(u64::from(wait.subsec_nanos() > 0));
    epoch.saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX))
}

/// Compares two secrets (the admin token, a flow's state) in a time that
/// does not depend on where they differ.
pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    left.iter().zip(right).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::{constant_time_eq, seconds_after};
    use std::time::Duration;

    #[test]
    fn waits_shown_round_up_and_saturate() {
        assert_eq!(seconds_after(100, Duration::from_millis(1500)), 102);
        assert_eq!(seconds_after(100, Duration::MAX), i64::MAX);
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
