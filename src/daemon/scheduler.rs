//! One task per server: sleep until its slot (at most 30 s at a time, so a
//! wall clock set late moves the schedule), a requested sync, the end of a
//! wait the server asked for or the debounce of the server's notices; take a permit of the `max_concurrent_syncs`
//! semaphore; sync on a blocking thread. A server's syncs run one after
//! another, so one server never syncs twice at once.

use crate::app::push::Plan;
use crate::app::schedule;
use crate::app::{App, RunOutcome, ServerSlot};
use crate::source::Stop;
use crate::sync;
use chrono::{Local, TimeZone};
use std::sync::Arc;
use std::time::Duration;

/// The longest a scheduler sleeps before looking at the wall clock again,
/// so a clock set late (a Pi without a battery-backed clock, NTP after
/// boot) moves the schedule within a minute.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// One server's scheduler: wait for the slot (or a request), take a sync
/// permit, sync on a blocking thread, repeat.
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
    // A server told to wait (Spotify's Retry-After or spent daily quota,
    // stored with the session) runs again as soon as the wait is over,
    // rather than hammering it on schedule or waiting for the next slot.
    let mut resume = waiting_until(&app, &name).await;
    loop {
        if app.stopping() {
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
        slot.set_next_run_at(next.timestamp());
        let mut fired = due;
        let mut pushed = false;
        while !fired && !app.stopping() {
            let wait = next.signed_duration_since(Local::now()).to_std().unwrap_or(Duration::ZERO);
            if wait.is_zero() {
                fired = true;
                break;
            }
            // Notices' work, when some is pending, is due at its debounce.
            let push_due = slot.push_due().map(tokio::time::Instant::from_std);
            tokio::select! {
                _ = tokio::time::sleep(wait.min(MAX_SLEEP)) => {}
                _ = slot.woken() => {
                    if slot.is_requested() {
                        break;
                    }
                }
                _ = sleep_until(push_due) => {
                    pushed = true;
                    break;
                }
            }
        }
        due = false;
        if app.stopping() {
            return;
        }
        let requested = slot.take_request();
        if requested.is_none() && !fired && !pushed {
            continue;
        }
        if is_paused(&app, &name).await {
            // A paused server syncs nothing, its notices' work included
            // (the first run after the resume catches up).
            slot.take_push_work();
            log::info!("{name}: paused; skipping this slot");
            continue;
        }
        slot.set_queued(true);
        let permit = tokio::select! {
            permit = Arc::clone(&semaphore).acquire_owned() => permit.ok(),
            _ = wait_for_stop(&app) => None,
        };
        slot.set_queued(false);
        let Some(permit) = permit else {
            return;
        };
        // Paused while it waited for the slot.
        if is_paused(&app, &name).await {
            slot.take_push_work();
            continue;
        }
        // A scheduled or requested run covers whatever notices asked for.
        let work = slot.take_push_work();
        let run = if fired || requested.is_some() {
            Run::Scheduled { full: requested.unwrap_or(false) }
        } else {
            Run::Pushed(work.plan())
        };
        run_once(&app, slot, &name, run).await;
        drop(permit);
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

fn next_slot(schedule: &cron::Schedule) -> chrono::DateTime<Local> {
    schedule::next_after(schedule, &Local::now())
        .unwrap_or_else(|| Local.timestamp_opt(i64::MAX / 1_000_000, 0).single().unwrap_or_else(Local::now))
}

/// What a run syncs.
enum Run {
    /// The schedule's run (or one asked for: `full` walks everything).
    Scheduled { full: bool },
    /// What the server's notices asked for.
    Pushed(Plan),
}

/// Resolves at `at`, or never.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn run_once(app: &Arc<App>, slot: &ServerSlot, name: &str, run: Run) {
    let full = matches!(run, Run::Scheduled { full: true });
    let stop = Arc::new(Stop::new());
    // A reset in progress finishes before the sync starts.
    while !slot.try_begin_run(full, sync::now_epoch(), &stop) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if app.stopping() {
        stop.set();
    }
    let started = std::time::Instant::now();
    let report = {
        let app = Arc::clone(app);
        let name = name.to_string();
        tokio::task::spawn_blocking(move || match &run {
            Run::Scheduled { full } => app.sync_server(&name, *full, &stop),
            Run::Pushed(plan) => {
                log::info!("{name}: syncing what the server's notifications named ({plan:?})");
                app.sync_pushed(&name, plan, &stop)
            }
        })
        .await
    };
    let seconds = started.elapsed().as_secs_f64();
    match report {
        Ok(Ok(report)) => {
            slot.end_run(RunOutcome::Finished { requests: report.requests, ok: report.ok() }, seconds);
            match &report.error {
                Some(error) => log::warn!("{name}: FAILED: {error} (requests={})", report.requests),
                None => log::info!("{name}: done (requests={})", report.requests),
            }
        }
        Ok(Err(err)) => {
            slot.end_run(RunOutcome::Aborted, seconds);
            log::error!("{name}: {err}");
        }
        Err(err) => {
            slot.end_run(RunOutcome::Aborted, seconds);
            log::error!("{name}: the sync thread panicked ({err}); the next run resumes from the last saved page");
        }
    }
}
