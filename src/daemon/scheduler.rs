//! One task per server for the service's whole life: sleep until the next
//! run (the schedule's slot, the retry after a failed run, the end of a
//! wait the server asked for, the debounce of the server's notices) or a
//! request, at most 30 s at a time so a wall clock set late moves the
//! schedule; take a permit of the `max_concurrent_syncs` semaphore; sync on a blocking thread. A server's
//! syncs run one after another, so one server never syncs twice at once.
//! The task plans afresh (and checks the server) at start and whenever a
//! reload changes the server's entry or schedule, and idles while a reload
//! has removed the server.

use crate::app::push::Plan as PushPlan;
use crate::app::schedule;
use crate::app::{App, Retry, RunOutcome, ServerSlot, SyncRequest};
use crate::config::{Config, ServerConfig};
use crate::source::Stop;
use crate::sync;
use chrono::Local;
use std::sync::Arc;
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
        if planned_for.as_ref() != Some(&arrangement) {
            plan = Plan { due: due_at_start(&app, &name, &config, &schedule).await, ..Plan::default() };
            planned_for = Some(arrangement);
            check(&app, &name).await;
            recheck = false;
        }
        let server_wait = waiting_until(&app, &name).await.map(|at| at.saturating_mul(1000));
        let slot_at = schedule::next_after(&schedule, &Local::now()).map_or(i64::MAX, |at| at.timestamp_millis());
        let next = schedule::next_run(slot_at, plan.due, plan.retry.as_ref().map(|(at, _)| *at), server_wait, now_ms());
        slot.set_next_run(Some(next.saturating_add(999) / 1000), plan.shown_retry());
        if std::mem::take(&mut recheck) {
            check(&app, &name).await;
        }
        // `None`: the run is the notices'.
        let scheduled = match wait_for_run(&app, &slot, next).await {
            Woke::Changed => continue,
            Woke::Due => Some(slot.take_request().unwrap_or_default()),
            Woke::Requested(request) => Some(request),
            Woke::Pushed => None,
        };
        // A scheduled run consumes the start and the retry; a failure plans
        // the next retry. Notices' runs leave them: they sync only what the
        // notices named.
        if scheduled.is_some() {
            plan.due = false;
            plan.retry = None;
        }
        if is_paused(&app, &name).await {
            // A paused server syncs nothing, its notices' work included
            // (the first run after the resume catches up).
            slot.take_push_work();
            log::info!("{name}: paused; skipping this run");
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
        let Some(request) = scheduled else {
            run_once(&app, &slot, &name, Run::Notices(work.plan())).await;
            continue;
        };
        let failure = run_once(&app, &slot, &name, Run::Scheduled(request)).await;
        drop(permit);
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
    /// The schedule's, a retry, or one asked for.
    Scheduled(SyncRequest),
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

/// Syncs the server once; answers why it failed, if it did.
async fn run_once(app: &Arc<App>, slot: &ServerSlot, name: &str, run: Run) -> Option<String> {
    let full = matches!(run, Run::Scheduled(request) if request.full);
    let stop = Arc::new(Stop::new());
    // A reset or a check in progress finishes before the sync starts.
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
            Run::Scheduled(request) => app.sync_server(&name, *request, &stop),
            Run::Notices(plan) => {
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
            let failure = report.first_error().map(str::to_string);
            match &failure {
                Some(error) => log::warn!("{name}: FAILED: {error} (requests={})", report.requests),
                None => log::info!("{name}: done (requests={})", report.requests),
            }
            failure
        }
        Ok(Err(err)) => {
            slot.end_run(RunOutcome::Aborted, seconds);
            log::error!("{name}: {err}");
            Some(err.to_string())
        }
        Err(err) => {
            slot.end_run(RunOutcome::Aborted, seconds);
            log::error!("{name}: the sync thread panicked ({err}); the next run resumes from the last saved page");
            Some("the sync stopped unexpectedly; the next run resumes from the last saved page".into())
        }
    }
}
