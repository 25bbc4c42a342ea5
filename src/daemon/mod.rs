//! `mediasync run`: the long-running service. A tokio runtime drives the
//! schedules, signals and shutdown; syncs and store reads run on blocking
//! threads. One task per server sleeps until its slot, a semaphore keeps at
//! most `max_concurrent_syncs` syncs at once, and a server's task runs its
//! syncs one after another, so one server never syncs twice at once.
//! `Daemon` is the state the status server reads and the controls change.

pub mod notify;
pub mod schedule;

use crate::config::Config;
use crate::store::{Store, StoreError};
use crate::sync::{self, Options};
use chrono::{Local, TimeZone};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The longest a scheduler sleeps before looking at the wall clock again,
/// so a clock set late (a Pi without a battery-backed clock, NTP after
/// boot) moves the schedule within a minute.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// How long shutdown waits for running syncs to reach a page boundary.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the daemon knows about a server beyond the store.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Live {
    pub syncing: bool,
    /// Waiting for a free sync slot (`max_concurrent_syncs`).
    pub queued: bool,
    pub run_started_at: Option<i64>,
    pub run_full: bool,
    pub next_run_at: Option<i64>,
    /// The running sync waits (rate limit, or backoff after a failed
    /// request) until then, epoch seconds, for the reason given.
    pub waiting_until: Option<i64>,
    pub waiting_for: Option<String>,
    /// Runs, failed runs, requests and seconds spent since the daemon started.
    pub runs: u64,
    pub failed_runs: u64,
    pub requests: u64,
    pub run_seconds: f64,
    #[serde(skip)]
    requested: Option<bool>,
    #[serde(skip)]
    run_stop: Option<Arc<AtomicBool>>,
    #[serde(skip)]
    resetting: bool,
}

struct Slot {
    live: Mutex<Live>,
    wake: tokio::sync::Notify,
}

/// A refused control, with the HTTP status it maps to.
#[derive(Debug, PartialEq, Eq)]
pub enum ControlError {
    NotFound(String),
    Conflict(String),
    Store(String),
}

impl From<StoreError> for ControlError {
    fn from(err: StoreError) -> ControlError {
        ControlError::Store(err.to_string())
    }
}

pub struct Daemon {
    pub config: Config,
    pub store: Store,
    pub started_at: i64,
    stopping: AtomicBool,
    slots: BTreeMap<String, Slot>,
    /// Spotify authorisations started from the status page.
    pub spotify_flows: crate::web::spotify::Flows,
}

impl Daemon {
    pub fn new(config: Config, store: Store) -> Daemon {
        let slots = config
            .servers
            .iter()
            .map(|server| (server.name.clone(), Slot { live: Mutex::default(), wake: tokio::sync::Notify::new() }))
            .collect();
        Daemon {
            config,
            store,
            started_at: sync::now_epoch(),
            stopping: AtomicBool::new(false),
            slots,
            spotify_flows: Default::default(),
        }
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    fn slot(&self, server: &str) -> Result<&Slot, ControlError> {
        self.slots.get(server).ok_or_else(|| {
            ControlError::NotFound(format!("no server named \"{server}\" in the config; see GET /api/status"))
        })
    }

    fn live_of(slot: &Slot) -> MutexGuard<'_, Live> {
        slot.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A copy of a server's live state.
    pub fn live(&self, server: &str) -> Option<Live> {
        self.slots.get(server).map(|slot| Self::live_of(slot).clone())
    }

    /// Asks for a sync as soon as a slot is free (`full` walks whole libraries).
    pub fn request_sync(&self, server: &str, full: bool) -> Result<(), ControlError> {
        let slot = self.slot(server)?;
        if self.store.control(server)?.paused {
            return Err(ControlError::Conflict(format!("server \"{server}\" is paused; resume it first")));
        }
        {
            let mut live = Self::live_of(slot);
            live.requested = Some(live.requested.unwrap_or(false) | full);
        }
        slot.wake.notify_one();
        Ok(())
    }

    /// Pauses a server (persisted): scheduled syncs are skipped and a
    /// running one stops at its next page boundary, keeping its checkpoint.
    pub fn pause(&self, server: &str) -> Result<(), ControlError> {
        let slot = self.slot(server)?;
        self.store.set_paused(server, true, sync::now_epoch())?;
        let live = Self::live_of(slot);
        if let Some(stop) = &live.run_stop {
            stop.store(true, Ordering::Relaxed);
        }
        log::info!("{server}: paused from the status API");
        Ok(())
    }

    pub fn resume(&self, server: &str) -> Result<(), ControlError> {
        let slot = self.slot(server)?;
        self.store.set_paused(server, false, sync::now_epoch())?;
        slot.wake.notify_one();
        log::info!("{server}: resumed from the status API");
        Ok(())
    }

    /// Forgets where the server's libraries stand so the next run is full.
    /// Refused while the server syncs (pause it first).
    pub fn reset(&self, server: &str) -> Result<u32, ControlError> {
        let slot = self.slot(server)?;
        {
            let mut live = Self::live_of(slot);
            if live.syncing {
                return Err(ControlError::Conflict(format!(
                    "server \"{server}\" is syncing; pause it, wait for the sync to stop, then reset"
                )));
            }
            live.resetting = true;
        }
        let result = self.store.reset_server(server);
        Self::live_of(slot).resetting = false;
        let libraries = result?;
        log::info!("{server}: reset from the status API ({libraries} libraries); the next run is a full one");
        Ok(libraries)
    }

    /// Stops starting work and asks running syncs to stop at a page boundary.
    pub fn shut_down(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        for slot in self.slots.values() {
            if let Some(stop) = &Self::live_of(slot).run_stop {
                stop.store(true, Ordering::Relaxed);
            }
            slot.wake.notify_one();
        }
    }

    fn any_syncing(&self) -> bool {
        self.slots.values().any(|slot| Self::live_of(slot).syncing)
    }
}

/// Runs the daemon until SIGTERM or SIGINT. `store` is already open (the
/// caller reports lock and damage errors with their exit codes).
pub fn run(config: Config, store: Store) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the async runtime: {err}"))?;
    let result = runtime.block_on(serve(config, store));
    // Dropping a runtime waits for every blocking task; a sync stuck in a
    // request (or a retry's backoff) must not hold the exit. Its last page
    // is committed already.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn serve(config: Config, store: Store) -> Result<(), String> {
    let listen = config.status.listen;
    let daemon = Arc::new(Daemon::new(config, store));
    let listener = std::net::TcpListener::bind(listen).map_err(|err| {
        format!(
            "cannot listen on {listen} for the status page: {err}; change [status] listen or stop what uses the port"
        )
    })?;
    let mut web = crate::web::start(Arc::clone(&daemon), listener).map_err(|err| format!("status server: {err}"))?;
    log::info!(
        "mediasync {} running: {} servers, status page on http://{}/",
        env!("CARGO_PKG_VERSION"),
        daemon.config.servers.len(),
        web.address()
    );
    let semaphore = Arc::new(tokio::sync::Semaphore::new(daemon.config.daemon.max_concurrent_syncs as usize));
    let mut tasks = Vec::new();
    for server in &daemon.config.servers {
        tasks.push(tokio::spawn(server_loop(Arc::clone(&daemon), server.name.clone(), Arc::clone(&semaphore))));
    }
    notify::notify("READY=1");

    let watchdog_every = notify::watchdog_interval();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|err| format!("cannot watch SIGTERM: {err}"))?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|err| format!("cannot watch SIGINT: {err}"))?;
    let mut tick = tokio::time::interval(watchdog_every.unwrap_or(Duration::from_secs(3600)));
    loop {
        tokio::select! {
            _ = terminate.recv() => { log::info!("SIGTERM: stopping"); break; }
            _ = interrupt.recv() => { log::info!("SIGINT: stopping"); break; }
            _ = tick.tick() => {
                // Fed only while every scheduler task and the status server live;
                // otherwise systemd restarts a daemon that stopped working.
                let schedulers_alive = tasks.iter().all(|task| !task.is_finished());
                if watchdog_every.is_some() && schedulers_alive && web.alive() {
                    notify::notify("WATCHDOG=1");
                } else if watchdog_every.is_some() {
                    log::error!("a scheduler task or the status server stopped; not feeding the watchdog");
                }
            }
        }
    }
    notify::notify("STOPPING=1");
    daemon.shut_down();
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while daemon.any_syncing() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if daemon.any_syncing() {
        log::warn!("a sync did not stop in time; its last committed page is kept and the next run resumes there");
    }
    web.stop();
    log::info!("stopped");
    Ok(())
}

/// One server's scheduler: wait for the slot (or a request), take a sync
/// permit, sync on a blocking thread, repeat.
async fn server_loop(daemon: Arc<Daemon>, name: String, semaphore: Arc<tokio::sync::Semaphore>) {
    let slot = &daemon.slots[&name];
    let schedule = schedule::for_server(&daemon.config, &name);
    let freshness = daemon.config.daemon.freshness.unwrap_or_else(|| schedule::interval(&schedule, &Local::now()));
    let last_success = {
        let daemon = Arc::clone(&daemon);
        let name = name.clone();
        tokio::task::spawn_blocking(move || daemon.store.server_state(&name).map(|state| state.last_success_at))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
    };
    let mut due = schedule::due_at_start(last_success, freshness, sync::now_epoch());
    if !due {
        log::info!("{name}: last success is recent; waiting for the next slot");
    }
    // A server told to wait (Spotify's Retry-After or spent daily quota,
    // stored with the session) runs again as soon as the wait is over,
    // rather than hammering it on schedule or waiting for the next slot.
    let mut resume = waiting_until(&daemon, &name).await;
    loop {
        if daemon.stopping() {
            return;
        }
        let next = match resume.take() {
            Some(at) => {
                let at = Local.timestamp_opt(at, 0).single().unwrap_or_else(Local::now);
                if due { at } else { at.min(next_slot(&schedule)) }
            }
            None if due => Local::now(),
            None => next_slot(&schedule),
        };
        if due {
            // The wait, not the freshness rule, decides when it runs.
            due = next <= Local::now();
        }
        Daemon::live_of(slot).next_run_at = Some(next.timestamp());
        let mut fired = due;
        while !fired && !daemon.stopping() {
            let wait = (next - Local::now()).to_std().unwrap_or(Duration::ZERO);
            if wait.is_zero() {
                fired = true;
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait.min(MAX_SLEEP)) => {}
                _ = slot.wake.notified() => {
                    if Daemon::live_of(slot).requested.is_some() {
                        break;
                    }
                }
            }
        }
        due = false;
        if daemon.stopping() {
            return;
        }
        let requested = Daemon::live_of(slot).requested.take();
        if requested.is_none() && !fired {
            continue;
        }
        if is_paused(&daemon, &name).await {
            log::info!("{name}: paused; skipping this slot");
            continue;
        }
        Daemon::live_of(slot).queued = true;
        let permit = tokio::select! {
            permit = Arc::clone(&semaphore).acquire_owned() => permit.ok(),
            _ = wait_for_stop(&daemon) => None,
        };
        Daemon::live_of(slot).queued = false;
        let Some(permit) = permit else {
            return;
        };
        // Paused while it waited for the slot.
        if is_paused(&daemon, &name).await {
            continue;
        }
        run_once(&daemon, slot, &name, requested.unwrap_or(false)).await;
        drop(permit);
        resume = waiting_until(&daemon, &name).await;
        if let Some(at) = resume {
            log::info!(
                "{name}: the server asked to wait; the next run starts at {}",
                Local
                    .timestamp_opt(at, 0)
                    .single()
                    .map_or_else(|| at.to_string(), |time| time.format("%Y-%m-%d %H:%M:%S").to_string())
            );
        }
    }
}

/// The end of a stored wait the server asked for, if one is running.
async fn waiting_until(daemon: &Arc<Daemon>, name: &str) -> Option<i64> {
    let daemon = Arc::clone(daemon);
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        daemon.store.session(&name).map(|session| session.waiting_until(sync::now_epoch()))
    })
    .await
    .ok()
    .and_then(Result::ok)
    .flatten()
}

async fn is_paused(daemon: &Arc<Daemon>, name: &str) -> bool {
    let daemon = Arc::clone(daemon);
    let name = name.to_string();
    tokio::task::spawn_blocking(move || daemon.store.control(&name).map(|control| control.paused))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(false)
}

async fn wait_for_stop(daemon: &Daemon) {
    while !daemon.stopping() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn next_slot(schedule: &cron::Schedule) -> chrono::DateTime<Local> {
    schedule::next_after(schedule, &Local::now())
        .unwrap_or_else(|| Local.timestamp_opt(i64::MAX / 1_000_000, 0).single().unwrap_or_else(Local::now))
}

fn try_start(slot: &Slot, full: bool, stop: &Arc<AtomicBool>) -> bool {
    let mut live = Daemon::live_of(slot);
    if live.resetting {
        return false;
    }
    live.syncing = true;
    live.run_full = full;
    live.run_started_at = Some(sync::now_epoch());
    live.run_stop = Some(Arc::clone(stop));
    true
}

async fn run_once(daemon: &Arc<Daemon>, slot: &Slot, name: &str, full: bool) {
    let stop = Arc::new(AtomicBool::new(false));
    // A reset in progress finishes before the sync starts.
    while !try_start(slot, full, &stop) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if daemon.stopping() {
        stop.store(true, Ordering::Relaxed);
    }
    let started = std::time::Instant::now();
    let report = {
        let daemon = Arc::clone(daemon);
        let name = name.to_string();
        tokio::task::spawn_blocking(move || {
            let server = daemon.config.servers.iter().find(|server| server.name == name).expect("a configured server");
            let source = crate::source::build(server, &daemon.config.sync, &daemon.store);
            let observed = Arc::clone(&daemon);
            let observed_name = name.clone();
            source.observe_waits(Arc::new(move |err, pause| {
                let reason = match err.kind {
                    crate::source::ErrorKind::RateLimited(_) => "the server's rate limit",
                    _ => "the server to answer again",
                };
                if let Some(slot) = observed.slots.get(&observed_name) {
                    let mut live = Daemon::live_of(slot);
                    live.waiting_until = Some(sync::now_epoch() + pause.as_secs_f64().ceil() as i64);
                    live.waiting_for = Some(reason.to_string());
                }
            }));
            let options = Options {
                full,
                force: false,
                full_every: daemon.config.sync.full_every,
                max_delete_share: daemon.config.sync.max_delete_share,
                history: daemon.config.sync.history,
                page_size: server.page_size,
            };
            sync::sync_server(&name, source.as_ref(), &daemon.store, &options, &stop)
        })
        .await
    };
    let mut live = Daemon::live_of(slot);
    live.syncing = false;
    live.run_stop = None;
    live.waiting_until = None;
    live.waiting_for = None;
    live.runs += 1;
    live.run_seconds += started.elapsed().as_secs_f64();
    match report {
        Ok(report) => {
            live.requests += report.requests;
            if !report.ok() {
                live.failed_runs += 1;
            }
            match &report.error {
                Some(error) => log::warn!("{name}: FAILED: {error} (requests={})", report.requests),
                None => log::info!("{name}: done (requests={})", report.requests),
            }
        }
        Err(err) => {
            live.failed_runs += 1;
            log::error!("{name}: the sync thread panicked ({err}); the next run resumes from the last saved page");
        }
    }
}
