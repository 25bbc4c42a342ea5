//! The sync engine: pure logic over a `Source` and a `Store`. Each library
//! gets a `run` that `plan` decided, `walk`s the listing committing the
//! pages that change something with the run's checkpoint (a full pass's on
//! the `cadence`; a run killed at any instant resumes from its last commit), looks up what a full walk
//! did not see (`confirm`), `sweep`s what is confirmed gone, fetches nested
//! `children` and `probe`s changed-since filters as needed; `report` tells
//! people.
//! ARCHITECTURE.md explains the incremental, reconcile and sweep rules.

mod cadence;
mod children;
mod confirm;
mod entries;
pub mod plan;
mod played;
mod probe;
mod report;
mod run;
mod sweep;
mod targeted;
mod walk;
mod whole_walk;

pub use cadence::{COMMIT_INTERVAL, COMMIT_ITEMS};
pub use report::{LibraryReport, ServerReport, summary_line};
pub use run::CURSOR_MARGIN_SECS;

use crate::model::{LibraryInfo, Strategy};
use crate::source::{ErrorKind, Source, SourceError};
use crate::store::{Store, StoreError, TombstoneLimits};
use report::mode_name;
use run::{Closing, Failure, Run, record_failure};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use targeted::Targeted;

#[derive(Clone, Debug)]
pub struct Options {
    /// Start a full pass even when an incremental one would do.
    pub full: bool,
    /// Allow a sweep that deletes more than `max_delete_share`.
    pub force: bool,
    pub full_every: Duration,
    pub max_delete_share: f64,
    pub history: u32,
    pub page_size: u32,
    pub unchanged_runs: UnchangedRuns,
}

/// Whether a server's sync that changed nothing (no commit, every library's
/// state the same but for its run stamps) records its runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnchangedRuns {
    /// The daemon: one commit of the runs' history and timestamps, which
    /// the status page shows and the schedule reads (about 30 KiB).
    Recorded,
    /// A one-shot `mediasync sync`: nothing is committed, so closing the
    /// store writes only its header. A commit would cost redb's allocator
    /// state at close as well (about 1 MiB, `docs/power-loss.md`). The
    /// store stays as the last run that changed something left it, which
    /// is what a crash just before the closing commit leaves: the next run
    /// plans from there, and asks for changes since that run.
    Unrecorded,
}

pub fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Which of a server's libraries a run syncs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Libraries {
    /// Every library, the histories first.
    All,
    /// Every library but the histories.
    Catalog,
    /// The histories (`Strategy::AppendOnly`) alone.
    History,
}

impl Libraries {
    fn includes(self, library: &LibraryInfo) -> bool {
        let history = library.strategy == Strategy::AppendOnly;
        match self {
            Libraries::All => true,
            Libraries::Catalog => !history,
            Libraries::History => history,
        }
    }
}

/// What a run syncs: the `libraries` of the server but those in `done`,
/// the ones a run that made way for a history poll already synced (the
/// next run takes up where it stopped), and only those `only` lists when
/// it lists any (a notification named them). The libraries `named` holds
/// fetch just those items when one lookup settles them, else run as usual.
#[derive(Clone, Copy, Debug)]
pub struct Selection<'a> {
    pub libraries: Libraries,
    pub done: &'a [String],
    pub only: Option<&'a [String]>,
    pub named: Option<&'a BTreeMap<String, BTreeSet<String>>>,
}

impl From<Libraries> for Selection<'_> {
    fn from(libraries: Libraries) -> Self {
        Selection { libraries, done: &[], only: None, named: None }
    }
}

/// What ends a run at the next page boundary.
#[derive(Clone, Copy)]
pub struct Signals<'a> {
    /// Pause or shutdown: the run ends as interrupted.
    pub stop: &'a AtomicBool,
    /// Set when a history poll falls due during a library sync: the run
    /// ends after the page under way, nothing is recorded as failed, and
    /// the next run resumes where it stopped (`ServerReport::yielded`).
    pub yield_to: Option<&'a AtomicBool>,
}

impl Signals<'_> {
    /// Fails with why the run must end now, if it must.
    fn check(&self) -> Result<(), Failure> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(Failure::Interrupted);
        }
        if self.yield_to.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
            return Err(Failure::Yielded);
        }
        Ok(())
    }
}

/// Syncs every library of one server (histories first). Never panics on
/// bad input and never leaves the store worse than it found it: failures
/// are recorded per library and the previous data stays. The successful
/// runs' bookkeeping and the server's state commit together at the end: an
/// unchanged resync makes that one commit.
pub fn sync_server(
    server: &str,
    source: &dyn Source,
    store: &Store,
    options: &Options,
    stop: &AtomicBool,
) -> ServerReport {
    sync_libraries(server, source, store, options, Libraries::All.into(), Signals { stop, yield_to: None })
}

/// Syncs the `selection` of one server's libraries, as `sync_server` does.
pub fn sync_libraries(
    server: &str,
    source: &dyn Source,
    store: &Store,
    options: &Options,
    selection: Selection<'_>,
    signals: Signals<'_>,
) -> ServerReport {
    let which = selection.libraries;
    let requests_before = source.requests();
    let mut report =
        ServerReport { server: server.to_string(), libraries: Vec::new(), error: None, requests: 0, yielded: false };
    // One commit ends the run: the successful runs' closings and, for a run
    // of the whole server that is over, the server's state. A history poll
    // alone, a run of the libraries a notification named, or a run that
    // made way for a history poll is not that: the server's state (the last
    // success the schedule's freshness rule reads) is left as it is.
    let record = |error: Option<String>, closings: &[Closing], over: bool| {
        let whole = (over && which != Libraries::History && selection.only.is_none()).then_some(error);
        record_end(store, server, whole, closings)
    };
    // A user resolved on an earlier run spares the users listing.
    if let Some(user) = store.server_state(server).ok().and_then(|state| state.user_id) {
        source.assume_user(&user);
    }
    let commits_before = store.commits();
    let libraries = match source.libraries() {
        Ok(libraries) => {
            let mut libraries: Vec<LibraryInfo> = libraries
                .into_iter()
                .filter(|library| which.includes(library) && !selection.done.contains(&library.id))
                .collect();
            // A history poll costs a request or two and goes stale: first.
            libraries.sort_by_key(|library| library.strategy != Strategy::AppendOnly);
            libraries
        }
        Err(err) => {
            report.error = Some(server_message(source, &err));
            if let Err(err) = record(report.error.clone(), &[], true) {
                log::error!("could not record the state of server \"{server}\": {err}");
            }
            report.requests = source.requests().saturating_sub(requests_before);
            return report;
        }
    };
    let libraries: Vec<LibraryInfo> = match selection.only {
        Some(only) => libraries.into_iter().filter(|library| only.contains(&library.id)).collect(),
        None => libraries,
    };
    // A server may have no history to poll (a Spotify account connected
    // before mediasync read histories): nothing to do, nothing wrong.
    if libraries.is_empty() && which != Libraries::History && selection.done.is_empty() && selection.only.is_none() {
        report.error =
            Some(format!("{} lists no library to sync; check `libraries` in its [[server]] entry", source.describe()));
    }
    // The played state before the libraries: a play during their walk is
    // newer than the cursor this keeps, and found by the next run.
    if which != Libraries::History && selection.only.is_none() && selection.done.is_empty() {
        match played::sync_played(server, source, store, &libraries) {
            Ok(0) => {}
            Ok(changed) => log::info!("{server}: the played state of {changed} items changed"),
            Err(err) => log::warn!("{server}: {err}; the played state is brought up to date on the next run"),
        }
    }
    let mut closings = Vec::new();
    for library in &libraries {
        match signals.check() {
            Err(Failure::Yielded) => {
                report.yielded = true;
                break;
            }
            Err(_) => {
                report.error = Some("stopped before every library was synced".into());
                break;
            }
            Ok(()) => {}
        }
        if let Some(ids) = selection.named.and_then(|named| named.get(&library.id)) {
            match targeted::sync_items(server, source, store, library, ids) {
                Ok(Targeted::Done(library_report)) => {
                    log::info!("{}", summary_line(server, &library_report));
                    report.libraries.push(library_report);
                    continue;
                }
                Ok(Targeted::Incremental(why)) => {
                    log::info!("{server}/{}: the notice's items need the incremental run: {why}", library.id);
                }
                Err(failure) => {
                    log::warn!("{server}/{}: the notice's items: {failure}; the incremental run follows", library.id);
                }
            }
        }
        let (library_report, halt) = sync_library(server, source, store, library, options, signals, &mut closings);
        log::info!("{}", summary_line(server, &library_report));
        let error = library_report.error.clone().unwrap_or_default();
        report.libraries.push(library_report);
        match halt {
            Some(Halt::Unauthorized) => {
                report.error = Some(format!(
                    "{} refused the token ({error}); the remaining libraries were not synced",
                    source.describe()
                ));
                break;
            }
            Some(Halt::RateLimited) => {
                report.error = Some(format!("{error}; the remaining libraries wait for the next run"));
                break;
            }
            Some(Halt::Yielded) => {
                report.yielded = true;
                break;
            }
            None => {}
        }
    }
    // A run that made way for a history poll is not over: its resumption
    // records how it went (a restart in between finds no recent success,
    // so the rest of the sync is due at once); the libraries it finished
    // still close.
    let over = !report.yielded;
    let error = report.first_error().map(str::to_string);
    let unchanged = over
        && error.is_none()
        && store.commits() == commits_before
        && closings.iter().all(Closing::changes_only_stamps)
        && store.server_state(server).is_ok_and(|state| state.last_error.is_none());
    if unchanged && options.unchanged_runs == UnchangedRuns::Unrecorded {
        log::info!("{server}: nothing changed; the store is left as it was (a one-shot sync records changes only)");
    } else if let Err(err) = record(error, &closings, over) {
        let message = format!("could not record the end of the runs: {err}");
        log::error!("{server}: {message}");
        report.error.get_or_insert(message);
    }
    report.requests = source.requests().saturating_sub(requests_before);
    report
}

/// Drops the change feed's tombstones beyond `limits` (after a server's
/// sync made new ones). A failure is logged: the feed only grows meanwhile.
pub fn compact_feed(store: &Store, limits: TombstoneLimits) {
    match store.compact_tombstones(limits, now_epoch()) {
        Ok(0) => {}
        Ok(dropped) => log::info!("dropped the {dropped} oldest deletions from the change feed"),
        Err(err) => log::error!("could not compact the change feed: {err}"),
    }
}

fn server_message(source: &dyn Source, err: &SourceError) -> String {
    match err.kind {
        ErrorKind::Unauthorized => format!("{} refused the token ({err})", source.describe()),
        _ => format!("{}: {err}", source.describe()),
    }
}

/// The libraries' `closings` and, when `whole` holds the run's error (or
/// none) for a run of the whole server, the server's state: one commit,
/// none when there is nothing to write.
fn record_end(
    store: &Store,
    server: &str,
    whole: Option<Option<String>>,
    closings: &[Closing],
) -> Result<(), StoreError> {
    let state = match whole {
        Some(error) => {
            let now = now_epoch();
            let mut state = store.server_state(server)?;
            state.last_attempt_at = Some(now);
            if error.is_none() {
                state.last_success_at = Some(now);
            }
            state.last_error = error;
            Some(state)
        }
        None if closings.is_empty() => return Ok(()),
        None => None,
    };
    store.write(|writer| {
        for closing in closings {
            closing.write(writer)?;
        }
        match &state {
            Some(state) => writer.put_server_state(server, state),
            None => Ok(()),
        }
    })
}

/// Why a server's remaining libraries are not synced in this run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Halt {
    /// The server refused the credentials.
    Unauthorized,
    /// The server asked for a pause longer than this run waits.
    RateLimited,
    /// The run made way for a history poll (`Signals::yield_to`).
    Yielded,
}

/// Syncs one library, and says whether the server's other libraries must
/// wait. A successful run adds its bookkeeping to `closings`.
fn sync_library(
    server: &str,
    source: &dyn Source,
    store: &Store,
    library: &LibraryInfo,
    options: &Options,
    signals: Signals<'_>,
    closings: &mut Vec<Closing>,
) -> (LibraryReport, Option<Halt>) {
    let started = Instant::now();
    let mut report = LibraryReport::new(library);
    let (number, state) = match store.library(server, &library.id, &library.title) {
        Ok(found) => found,
        Err(err) => {
            report.error = Some(err.to_string());
            return (report, None);
        }
    };
    // A run fails with the time it took, over all its attempts.
    let outcome = match Run::begin(source, store, library, options, number, state, started) {
        Ok(mut run) => {
            let outcome = run.open().and_then(|()| run.walk(signals));
            report.mode = mode_name(&run.checkpoint);
            report.counters = run.checkpoint.counters;
            match outcome {
                Ok(()) => {
                    closings.push(run.finish());
                    Ok(())
                }
                Err(failure) => Err((failure, run.elapsed_ms(), Some(run.checkpoint))),
            }
        }
        Err(failure) => Err((failure, u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX), None)),
    };
    let mut halt = None;
    if let Err((Failure::Yielded, _, _)) = outcome {
        // The next run resumes from the last committed checkpoint (pages
        // that changed nothing since are fetched again), and nothing failed.
        report.duration = started.elapsed();
        report.yielded = true;
        return (report, Some(Halt::Yielded));
    }
    if let Err((failure, elapsed_ms, unsaved)) = outcome {
        halt = match &failure {
            Failure::Source(err) if err.kind == ErrorKind::Unauthorized => Some(Halt::Unauthorized),
            Failure::Source(err) if matches!(err.kind, ErrorKind::RateLimited(_)) => Some(Halt::RateLimited),
            _ => None,
        };
        let message = failure.to_string();
        let refused = match &failure {
            Failure::MassDeletion(_, refused) => Some(*refused),
            _ => None,
        };
        if let Err(err) =
            record_failure(store, number, options.history, elapsed_ms, &message, refused, unsaved.as_ref())
        {
            log::error!("could not record the failure of {server}/{}: {err}", library.id);
        }
        report.error = Some(message);
    }
    report.duration = started.elapsed();
    (report, halt)
}
