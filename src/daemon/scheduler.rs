//! One task per server for the service's whole life: sleep until the next
//! run (the schedule's slot, the retry after a failed run, the end of a
//! wait the server asked for, the debounce of the server's notices), a
//! request or the next history poll (`history_every`, Spotify), at most 30 s
//! at a time so a wall clock set late moves the schedule; take a permit of
//! the `max_concurrent_syncs` semaphore; sync on a blocking thread. A
//! server's runs go one after another, so one server never syncs twice at
//! once: a history poll falling due during a long library sync makes the
//! sync stop after its page under way, polls, and lets the sync resume
//! where it stopped. The task plans afresh (and checks the server) at start
//! and whenever a reload changes the server's entry or schedule, and idles
//! while a reload has removed the server.

use crate::app::push::Plan as PushPlan;
use crate::app::schedule;
use crate::app::{App, Retry, RunOutcome, ServerSlot, SyncRequest};
use crate::config::{Config, ServerConfig};
use crate::source::Stop;
use crate::sync::{self, Libraries, Selection};
use chrono::Local;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The longest a scheduler sleeps before looking at the wall clock again,
/// so a clock set late (a Pi without a battery-backed clock, NTP after
/// boot) moves the schedule within a minute.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// What decides the next run besides the schedule's slot.
#[derive(Default)]
struct Plan {
    /// Run at once: the server is new to the scheduler (start, reload) and
    /// its last run did not finish or its last success is stale.
    due: bool,
    /// Failed runs in a row.
    failures: u32,
    /// The retry after the last failed run: when (epoch milliseconds), and why.
    retry: Option<(i64, String)>,
}

impl Plan {
    /// What the status shows of the retry.
    fn shown_retry(&self) -> Option<Retry> {
        self.retry.as_ref().map(|(at, reason)| Retry {
            at: at.saturating_add(999) / 1000,
            failures: self.failures,
            reason: reason.clone(),
        })
    }

    /// Takes a run's end into account. A failed run is retried apart from
    /// the schedule, with a growing wait; while the server asked to wait
    /// (a stored rate limit), that wait decides instead.
    fn after_run(&mut self, failure: Option<String>, server_waits: bool, config: &Config) {
        let Some(reason) = failure else {
            self.failures = 0;
            return;
        };
        if server_waits {
            return;
        }
        self.failures = self.failures.saturating_add(1);
        let daemon = &config.daemon;
        let wait = schedule::retry_delay(daemon.retry_backoff, daemon.retry_backoff_max, self.failures, jitter());
        let at = now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
        self.retry = Some((at, reason));
    }
}

/// A library sync that made way for a history poll, resumed right after it.
struct MadeWay {
    /// What was asked of it (a full sync, deletions confirmed).
    request: SyncRequest,
    /// The libraries it had synced: left out of the resumed run.
    done: Vec<String>,
}

/// How a run ended.
enum Ended {
    /// Finished, with why it failed if it did.
    Finished(Option<String>),
    /// Stopped after a page to make way for a history poll; these libraries
    /// were synced to their end.
    MadeWay(Vec<String>),
}

/// How a wait for the next run ended.
enum Woke {
    /// The next run is due.
    Due,
    /// A sync was requested.
    Requested(SyncRequest),
    /// The server's notices' work is due (`app::push`).
    Pushed,
    /// Something else changed (a reload, pause, resume, shutdown): plan again.
    Changed,
}

/// One server's scheduler; returns when the service stops.
pub(super) async fn server_loop(app: Arc<App>, name: String, semaphore: Arc<tokio::sync::Semaphore>) {
    let Some(slot) = app.server(&name) else {
        log::error!("{name}: not a configured server; not scheduling it");
        return;
    };
    // The server's entry and schedule the plan was made for.
    let mut planned_for: Option<(ServerConfig, String)> = None;
    let mut plan = Plan::default();
    // A success after a failed check: checked again once the status shows
    // the success's plan (no stale retry while the check's request runs).
    let mut recheck = false;
    // The next history poll (epoch milliseconds), for a server whose history
    // has its own schedule; a library sync waiting to resume after one.
    let mut history_at: Option<i64> = None;
    let mut resume: Option<MadeWay> = None;
    while !app.stopping() {
        let config = app.config();
        let Some(server) = config.server(&name).cloned() else {
            if planned_for.take().is_some() {
                log::info!("{name}: no longer in the config; not scheduled");
            }
            slot.set_next_run(None, None);
            slot.woken().await;
            continue;
        };
        let schedule = schedule::for_server(&config, &name);
        let arrangement = (server, schedule.to_string());
        let history_every = config.daemon.history_every.get(&name).copied();
        if planned_for.as_ref() != Some(&arrangement) {
            plan = Plan { due: due_at_start(&app, &name, &config, &schedule).await, ..Plan::default() };
            planned_for = Some(arrangement);
            check(&app, &name).await;
            recheck = false;
            // A history of its own schedule is polled at start, then every
            // `history_every`.
            history_at = history_every.map(|_| now_ms());
            resume = None;
        }
        let server_wait = waiting_until(&app, &name).await.map(|at| at.saturating_mul(1000));
        let slot_at = schedule::next_after(&schedule, &Local::now()).map_or(i64::MAX, |at| at.timestamp_millis());
        let next = match &resume {
            Some(_) => server_wait.unwrap_or(0).max(now_ms()),
            None => {
                schedule::next_run(slot_at, plan.due, plan.retry.as_ref().map(|(at, _)| *at), server_wait, now_ms())
            }
        };
        // A stored wait holds the history too: it is the same app's quota.
        let history_next = history_at.map(|at| server_wait.map_or(at, |end| at.max(end)));
        slot.set_next_run(Some(next.saturating_add(999) / 1000), plan.shown_retry());
        slot.set_next_history_at(history_next.map(|at| at.saturating_add(999) / 1000));
        if std::mem::take(&mut recheck) {
            check(&app, &name).await;
        }
        let woke = wait_for_run(&app, &slot, history_next.map_or(next, |at| at.min(next))).await;
        let (requested, pushed) = match woke {
            Woke::Changed => continue,
            Woke::Due => (slot.take_request(), false),
            Woke::Requested(request) => (Some(request), false),
            Woke::Pushed => (None, true),
        };
        let now = now_ms();
        let history_due = history_next.is_some_and(|at| at <= now);
        let catalog_due = requested.is_some() || next <= now;
        // A scheduled run consumes the start and the retry; a failure plans
        // the next retry. Notices' runs leave them: they sync only what the
        // notices named.
        if catalog_due {
            plan.due = false;
            plan.retry = None;
        }
        if is_paused(&app, &name).await {
            // A paused server syncs nothing, its notices' work included
            // (the first run after the resume catches up).
            slot.take_push_work();
            log::info!("{name}: paused; skipping this run");
            history_at = later(history_every, now);
            resume = None;
            continue;
        }
        // When both are due, the history first: it is one request, and a
        // long first library sync must not starve it.
        if history_due {
            history_at = later(history_every, now);
            let Some(permit) = acquire(&app, &slot, &semaphore).await else {
                return;
            };
            if !is_paused(&app, &name).await {
                let poll =
                    Run::Scheduled { request: SyncRequest::default(), libraries: Libraries::History, done: Vec::new() };
                run_once(&app, &slot, &name, poll, None).await;
            }
            drop(permit);
        }
        if !catalog_due && !pushed {
            continue;
        }
        let Some(permit) = acquire(&app, &slot, &semaphore).await else {
            return;
        };
        // Paused while it waited for the slot.
        if is_paused(&app, &name).await {
            slot.take_push_work();
            continue;
        }
        // A scheduled or requested run covers whatever notices asked for.
        let work = slot.take_push_work();
        if !catalog_due {
            run_once(&app, &slot, &name, Run::Notices(work.plan()), None).await;
            continue;
        }
        let resumed = resume.take();
        let request = requested.or(resumed.as_ref().map(|made_way| made_way.request)).unwrap_or_default();
        let done = resumed.map(|made_way| made_way.done).unwrap_or_default();
        let libraries = if history_every.is_some() { Libraries::Catalog } else { Libraries::All };
        let run = Run::Scheduled { request, libraries, done: done.clone() };
        let ended = run_once(&app, &slot, &name, run, history_at).await;
        drop(permit);
        let failure = match ended {
            Ended::MadeWay(synced) => {
                let done = done.into_iter().chain(synced).collect();
                resume = Some(MadeWay { request, done });
                continue;
            }
            Ended::Finished(failure) => failure,
        };
        let server_wait = waiting_until(&app, &name).await;
        if let (Some(_), Some(at)) = (&failure, server_wait) {
            log::info!("{name}: the server asked to wait; the next run starts at {}", local_time(at));
        }
        recheck = failure.is_none() && slot.live().check.is_some_and(|check| !check.ok());
        plan.after_run(failure, server_wait.is_some(), &app.config());
        if let Some((at, reason)) = &plan.retry {
            log::warn!("{name}: retry {} at {} after: {reason}", plan.failures, local_time(at / 1000));
        }
    }
}

/// `every` after `now` (epoch milliseconds), for a history with its own
/// schedule.
fn later(every: Option<Duration>, now: i64) -> Option<i64> {
    every.map(|every| now.saturating_add(i64::try_from(every.as_millis()).unwrap_or(i64::MAX)))
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

/// Whether the server syncs at once: see `schedule::due_at_start`.
async fn due_at_start(app: &Arc<App>, name: &str, config: &Config, schedule: &cron::Schedule) -> bool {
    let freshness = config.daemon.freshness.unwrap_or_else(|| schedule::interval(schedule, &Local::now()));
    let (last_success, unfinished) = {
        let app = Arc::clone(app);
        let name = name.to_string();
        tokio::task::spawn_blocking(move || {
            let state = app.store.server_state(&name)?;
            let interrupted = app
                .store
                .libraries()?
                .iter()
                .any(|(_, library)| library.server == name && library.checkpoint.is_some());
            Ok::<_, crate::store::StoreError>((state.last_success_at, state.last_error.is_some() || interrupted))
        })
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or((None, false))
    };
    let due = schedule::due_at_start(last_success, unfinished, freshness, sync::now_epoch());
    match (due, unfinished) {
        (false, _) => log::info!("{name}: last success is recent; waiting for the next slot"),
        (true, true) => log::info!("{name}: the last run failed or was interrupted; syncing now"),
        (true, false) => {}
    }
    due
}

/// Checks the server (one request) and shows the result on the page.
async fn check(app: &Arc<App>, name: &str) {
    let app = Arc::clone(app);
    let name = name.to_string();
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(err) = app.check(&name) {
            log::info!("{name}: not checked: {err}");
        }
    })
    .await;
}

/// What `run_once` syncs.
enum Run {
    /// The schedule's, a retry, one asked for, or a history poll: these
    /// libraries but those `done` (synced by a run that made way for a
    /// history poll).
    Scheduled { request: SyncRequest, libraries: Libraries, done: Vec<String> },
    /// What the server's notices asked for.
    Notices(PushPlan),
}

/// Sleeps until `at` (epoch milliseconds), a wake-up or the debounce of
/// the server's notices.
async fn wait_for_run(app: &App, slot: &ServerSlot, at: i64) -> Woke {
    loop {
        if app.stopping() {
            return Woke::Changed;
        }
        if let Some(request) = slot.take_request() {
            return Woke::Requested(request);
        }
        let wait = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
        if wait == 0 {
            return Woke::Due;
        }
        let push_due = slot.push_due().map(tokio::time::Instant::from_std);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait).min(MAX_SLEEP)) => {}
            // A notice wakes the task too: planning again sees its debounce.
            _ = slot.woken() => {
                if !slot.is_requested() {
                    return Woke::Changed;
                }
            }
            _ = sleep_until(push_due) => return Woke::Pushed,
        }
    }
}

/// Resolves at `at`, or never.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The end of a stored wait the server asked for (epoch seconds), if one is running.
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

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn local_time(epoch_seconds: i64) -> String {
    use chrono::TimeZone;
    Local
        .timestamp_opt(epoch_seconds, 0)
        .single()
        .map_or_else(|| epoch_seconds.to_string(), |time| time.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// A random number from 0 to 1 for a retry's jitter; the middle if the
/// system has no randomness to give.
fn jitter() -> f64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 4];
    match ring::rand::SystemRandom::new().fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    }
}

/// Runs `run` once; from `yield_at` (epoch milliseconds) on, a scheduled
/// run makes way for a history poll after its page under way.
async fn run_once(app: &Arc<App>, slot: &ServerSlot, name: &str, run: Run, mut yield_at: Option<i64>) -> Ended {
    let full = matches!(run, Run::Scheduled { request, .. } if request.full);
    let stop = Arc::new(Stop::new());
    // A reset or a check in progress finishes before the sync starts.
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
        tokio::task::spawn_blocking(move || match &run {
            Run::Scheduled { request, libraries, done } => {
                let selection = Selection { libraries: *libraries, done, only: None, named: None };
                app.sync_server(&name, *request, selection, &stop, Some(&yield_to))
            }
            Run::Notices(plan) => {
                log::info!("{name}: syncing what the server's notifications named ({plan:?})");
                app.sync_pushed(&name, plan, &stop)
            }
        })
    };
    let report = loop {
        let wait = yield_at.map(|at| Duration::from_millis(u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0)));
        tokio::select! {
            report = &mut task => break report,
            _ = tokio::time::sleep(wait.unwrap_or(MAX_SLEEP).min(MAX_SLEEP)), if wait.is_some() => {
                if yield_at.is_some_and(|at| at <= now_ms()) {
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
            let failure = report.first_error().map(str::to_string);
            match &failure {
                Some(error) => log::warn!("{name}: FAILED: {error} (requests={})", report.requests),
                None if report.yielded => {
                    log::info!("{name}: paused for the history poll; resuming after it (requests={})", report.requests);
                    let synced = report.libraries.iter().filter(|library| !library.yielded);
                    return Ended::MadeWay(synced.map(|library| library.library_id.clone()).collect());
                }
                None => log::info!("{name}: done (requests={})", report.requests),
            }
            Ended::Finished(failure)
        }
        Ok(Err(err)) => {
            slot.end_run(RunOutcome::Aborted, seconds);
            log::error!("{name}: {err}");
            Ended::Finished(Some(err.to_string()))
        }
        Err(err) => {
            slot.end_run(RunOutcome::Aborted, seconds);
            log::error!("{name}: the sync thread panicked ({err}); the next run resumes from the last saved page");
            Ended::Finished(Some("the sync stopped unexpectedly; the next run resumes from the last saved page".into()))
        }
    }
}
