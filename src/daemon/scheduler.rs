//! One task per server: sleep until its slot (at most 30 s at a time, so a
//! wall clock set late moves the schedule), a requested sync, the end of a
//! wait the server asked for, or its next history poll (`history_every`,
//! Spotify); take a permit of the `max_concurrent_syncs` semaphore; sync on
//! a blocking thread. A server's runs go one after another, so one server
//! never syncs twice at once: a history poll falling due during a long
//! library sync makes the sync stop after its page under way, polls, and
//! lets the sync resume where it stopped.

use crate::app::schedule;
use crate::app::{App, RunOutcome, ServerSlot};
use crate::source::Stop;
use crate::sync::{self, Libraries, Selection};
use chrono::{DateTime, Local, TimeZone};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The longest a scheduler sleeps before looking at the wall clock again,
/// so a clock set late (a Pi without a battery-backed clock, NTP after
/// boot) moves the schedule within a minute.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// One server's scheduler: wait for the slot, a request or a history poll,
/// take a sync permit, run on a blocking thread, repeat.
pub(super) async fn server_loop(app: Arc<App>, name: String, semaphore: Arc<tokio::sync::Semaphore>) {
    let Some(slot) = app.server(&name) else {
        log::error!("{name}: not a configured server; not scheduling it");
        return;
    };
    let schedule = schedule::for_server(&app.config, &name);
    let freshness = app.config.daemon.freshness.unwrap_or_else(|| schedule::interval(&schedule, &Local::now()));
    let last_success = {
        let app = Arc::clone(&app);
        let name = name.clone();
        tokio::task::spawn_blocking(move || app.store.server_state(&name).map(|state| state.last_success_at))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
    };
    let mut due = schedule::due_at_start(last_success, freshness, sync::now_epoch());
    if !due {
        log::info!("{name}: last success is recent; waiting for the next slot");
    }
    let catalog = app.catalog(&name);
    let history_every = app.config.daemon.history_every.get(&name).copied();
    // A history of its own schedule is polled at start, then every `history_every`.
    let mut history_at = history_every.map(|_| Local::now());
    // A library sync that made way for a history poll resumes right after
    // it, full if it was, leaving out the libraries it had synced.
    let mut resume_catalog = false;
    let mut resume_full = false;
    let mut done: Vec<String> = Vec::new();
    // A server told to wait (Spotify's Retry-After or spent daily quota,
    // stored with the session) runs again as soon as the wait is over,
    // rather than hammering it on schedule or waiting for the next slot.
    let mut resume = waiting_until(&app, &name).await;
    loop {
        if app.stopping() {
            return;
        }
        let wait_end = resume.take().and_then(|at| Local.timestamp_opt(at, 0).single());
        let next = match wait_end {
            _ if resume_catalog => wait_end.map_or_else(Local::now, |end| end.max(Local::now())),
            Some(at) if due => at,
            Some(at) => at.min(next_slot(&schedule)),
            None if due => Local::now(),
            None => next_slot(&schedule),
        };
        // A stored wait holds the history too: it is the same app's quota.
        let history_next = history_at.map(|at| wait_end.map_or(at, |end| at.max(end)));
        slot.set_next_run_at(next.timestamp());
        if let Some(at) = history_next {
            slot.set_next_history_at(at.timestamp());
        }
        let first = history_next.map_or(next, |at| at.min(next));
        let requested = wait_for(&app, slot, first).await;
        if app.stopping() {
            return;
        }
        due = false;
        let now = Local::now();
        let history_due = history_next.is_some_and(|at| at <= now);
        let catalog_due = requested.is_some() || next <= now;
        if !history_due && !catalog_due {
            continue;
        }
        if is_paused(&app, &name).await {
            log::info!("{name}: paused; skipping this slot");
            history_at = later(history_every, now);
            resume_catalog = false;
            done.clear();
            continue;
        }
        // When both are due, the history first: it is one request, and a
        // long first library sync must not starve it.
        if history_due {
            history_at = later(history_every, now);
            let Some(permit) = acquire(&app, slot, &semaphore).await else {
                return;
            };
            if !is_paused(&app, &name).await {
                run_once(&app, slot, &name, false, Libraries::History.into(), None).await;
            }
            drop(permit);
        }
        if catalog_due {
            let Some(permit) = acquire(&app, slot, &semaphore).await else {
                return;
            };
            // Paused while it waited for the slot.
            if is_paused(&app, &name).await {
                continue;
            }
            let full = requested.unwrap_or(resume_catalog && resume_full);
            let selection = Selection { libraries: catalog, done: &done };
            let made_way = run_once(&app, slot, &name, full, selection, history_at).await;
            drop(permit);
            resume_catalog = made_way.is_some();
            resume_full = full;
            match made_way {
                Some(synced) => done.extend(synced),
                None => done.clear(),
            }
        }
        resume = waiting_until(&app, &name).await;
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

/// Sleeps until `until`, a requested sync or shutdown; answers the request
/// (`Some(full)`) if one was made.
async fn wait_for(app: &App, slot: &ServerSlot, until: DateTime<Local>) -> Option<bool> {
    while !app.stopping() {
        let wait = until.signed_duration_since(Local::now()).to_std().unwrap_or(Duration::ZERO);
        if wait.is_zero() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait.min(MAX_SLEEP)) => {}
            _ = slot.woken() => {
                if slot.is_requested() {
                    break;
                }
            }
        }
    }
    slot.take_request()
}

/// `every` after `now`, for a history with its own schedule.
fn later(every: Option<Duration>, now: DateTime<Local>) -> Option<DateTime<Local>> {
    let every = chrono::Duration::from_std(every?).unwrap_or(chrono::Duration::MAX);
    Some(now.checked_add_signed(every).unwrap_or(now))
}

/// A permit of the sync semaphore, shown as queued while it waits; None
/// when the daemon stops first.
async fn acquire(
    app: &App,
    slot: &ServerSlot,
    semaphore: &Arc<tokio::sync::Semaphore>,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    slot.set_queued(true);
    let permit = tokio::select! {
        permit = Arc::clone(semaphore).acquire_owned() => permit.ok(),
        _ = wait_for_stop(app) => None,
    };
    slot.set_queued(false);
    permit
}

/// The end of a stored wait the server asked for, if one is running.
async fn waiting_until(app: &Arc<App>, name: &str) -> Option<i64> {
    let app = Arc::clone(app);
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        app.store.session(&name).map(|session| session.waiting_until(sync::now_epoch()))
    })
    .await
    .ok()
    .and_then(Result::ok)
    .flatten()
}

async fn is_paused(app: &Arc<App>, name: &str) -> bool {
    let app = Arc::clone(app);
    let name = name.to_string();
    tokio::task::spawn_blocking(move || app.store.control(&name).map(|control| control.paused))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(false)
}

async fn wait_for_stop(app: &App) {
    while !app.stopping() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn next_slot(schedule: &cron::Schedule) -> DateTime<Local> {
    schedule::next_after(schedule, &Local::now())
        .unwrap_or_else(|| Local.timestamp_opt(i64::MAX / 1_000_000, 0).single().unwrap_or_else(Local::now))
}

/// Runs the `selection` once; from `yield_at` on, the run makes way for a
/// history poll after its page under way. When it did, answers the
/// libraries it synced to the end.
async fn run_once(
    app: &Arc<App>,
    slot: &ServerSlot,
    name: &str,
    full: bool,
    selection: Selection<'_>,
    mut yield_at: Option<DateTime<Local>>,
) -> Option<Vec<String>> {
    let stop = Arc::new(Stop::new());
    // A reset in progress finishes before the sync starts.
    while !slot.try_begin_run(full, sync::now_epoch(), &stop) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if app.stopping() {
        stop.set();
    }
    let yield_to = Arc::new(AtomicBool::new(false));
    let started = std::time::Instant::now();
    let mut task = {
        let app = Arc::clone(app);
        let name = name.to_string();
        let yield_to = Arc::clone(&yield_to);
        let (libraries, done) = (selection.libraries, selection.done.to_vec());
        tokio::task::spawn_blocking(move || {
            let selection = Selection { libraries, done: &done };
            app.sync_server(&name, full, selection, &stop, Some(&yield_to))
        })
    };
    let report = loop {
        let wait = yield_at.map(|at| at.signed_duration_since(Local::now()).to_std().unwrap_or(Duration::ZERO));
        tokio::select! {
            report = &mut task => break report,
            _ = tokio::time::sleep(wait.unwrap_or(MAX_SLEEP).min(MAX_SLEEP)), if wait.is_some() => {
                if yield_at.is_some_and(|at| at <= Local::now()) {
                    yield_to.store(true, Ordering::Relaxed);
                    yield_at = None;
                }
            }
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    match report {
        Ok(Ok(report)) => {
            slot.end_run(RunOutcome::Finished { requests: report.requests, ok: report.ok() }, seconds);
            match &report.error {
                Some(error) => log::warn!("{name}: FAILED: {error} (requests={})", report.requests),
                None if report.yielded => {
                    log::info!("{name}: paused for the history poll; resuming after it (requests={})", report.requests)
                }
                None => log::info!("{name}: done (requests={})", report.requests),
            }
            report.yielded.then(|| {
                report
                    .libraries
                    .iter()
                    .filter(|library| !library.yielded)
                    .map(|library| library.library_id.clone())
                    .collect()
            })
        }
        Ok(Err(err)) => {
            slot.end_run(RunOutcome::Aborted, seconds);
            log::error!("{name}: {err}");
            None
        }
        Err(err) => {
            slot.end_run(RunOutcome::Aborted, seconds);
            log::error!("{name}: the sync thread panicked ({err}); the next run resumes from the last saved page");
            None
        }
    }
}
