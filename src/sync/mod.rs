//! The sync engine: pure logic over a `Source` and a `Store`. For each
//! library it plans a pass (`plan`), walks the listing page by page and
//! commits every page together with its checkpoint, so a run killed at any
//! instant resumes from its last commit. ARCHITECTURE.md explains the
//! incremental, reconcile and sweep rules in full.

pub mod plan;

use crate::model::{Kind, LibraryInfo};
use crate::source::{ErrorKind, Next, Order, Source, SourceError, Strategy};
use crate::store::records::{
    Checkpoint, ChildCursor, Counters, FilterCheck, LibraryState, Pass, RunRecord, ServerState,
};
use crate::store::{Outcome, Store, StoreError};
use plan::Plan;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Incremental passes fetch items changed at or after the newest stored
/// change time minus this margin (server time, seconds).
pub const CURSOR_MARGIN_SECS: i64 = 1;
/// `Strategy::ChangedSince` passes ask for items saved since the server's
/// clock at the start of the last successful run minus this margin: the
/// `Date` header is rounded down to the second, and a server stamps an item's
/// save time a moment before the save is visible to listings.
pub const SERVER_CLOCK_MARGIN_SECS: i64 = 2;
/// A save time before any media server existed: a changed-since filter that
/// works counts every item for it. (Day two of the epoch, so no time-zone
/// conversion on the server can take it below the epoch.)
const FILTER_PROBE_PAST: i64 = 86_400; // 1970-01-02T00:00:00Z
/// How far ahead of the server's clock the second probe asks: a filter that
/// works counts nothing there.
const FILTER_PROBE_AHEAD_SECS: i64 = 366 * 86_400;
/// A full pass whose result disagrees with the server's count is repeated
/// once in the same run (items can shift between pages while it walks).
const MAX_FULL_PASSES: u32 = 2;
const SWEEP_BATCH: usize = 500;

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
}

#[derive(Clone, Debug)]
pub struct LibraryReport {
    pub library_id: String,
    pub title: String,
    pub mode: String,
    pub counters: Counters,
    pub duration: Duration,
    pub error: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ServerReport {
    pub server: String,
    pub libraries: Vec<LibraryReport>,
    /// Set when the server could not be synced at all (or was stopped).
    pub error: Option<String>,
    pub requests: u64,
}

impl ServerReport {
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.libraries.iter().all(|library| library.error.is_none())
    }
}

#[derive(Debug)]
enum Failure {
    Source(SourceError),
    Store(StoreError),
    MassDeletion(String),
    Interrupted,
}

impl From<SourceError> for Failure {
    fn from(err: SourceError) -> Failure {
        Failure::Source(err)
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Failure {
        Failure::Store(err)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Source(err) => write!(f, "{err}"),
            Failure::Store(err) => write!(f, "{err}"),
            Failure::MassDeletion(message) => f.write_str(message),
            Failure::Interrupted => f.write_str("interrupted; the next run resumes from the last saved page"),
        }
    }
}

pub fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0)
}

/// Syncs every library of one server. Never panics on bad input and never
/// leaves the store worse than it found it: failures are recorded per
/// library and the previous data stays.
pub fn sync_server(
    server: &str,
    source: &dyn Source,
    store: &Store,
    options: &Options,
    stop: &AtomicBool,
) -> ServerReport {
    let requests_before = source.requests();
    let mut report = ServerReport { server: server.to_string(), libraries: Vec::new(), error: None, requests: 0 };
    let libraries = match source.libraries() {
        Ok(libraries) => libraries,
        Err(err) => {
            report.error = Some(server_message(source, &err));
            record_server(store, server, report.error.clone());
            report.requests = source.requests() - requests_before;
            return report;
        }
    };
    if libraries.is_empty() {
        report.error =
            Some(format!("{} lists no library to sync; check `libraries` in its [[server]] entry", source.describe()));
    }
    for library in &libraries {
        if stop.load(Ordering::Relaxed) {
            report.error = Some("stopped before every library was synced".into());
            break;
        }
        let (library_report, halt) = sync_library(server, source, store, library, options, stop);
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
            None => {}
        }
    }
    let server_error =
        report.error.clone().or_else(|| report.libraries.iter().find_map(|library| library.error.clone()));
    record_server(store, server, server_error);
    report.requests = source.requests() - requests_before;
    report
}

fn server_message(source: &dyn Source, err: &SourceError) -> String {
    match err.kind {
        ErrorKind::Unauthorized => format!("{} refused the token ({err})", source.describe()),
        _ => format!("{}: {err}", source.describe()),
    }
}

fn record_server(store: &Store, server: &str, error: Option<String>) {
    let now = now_epoch();
    let result = store.server_state(server).and_then(|mut state| {
        state.last_attempt_at = Some(now);
        if error.is_none() {
            state.last_success_at = Some(now);
        }
        state.last_error = error;
        store.write(|writer| writer.put_server_state(server, &ServerState { ..state }))
    });
    if let Err(err) = result {
        log::error!("could not record the state of server \"{server}\": {err}");
    }
}

/// One line per library, as `sync` prints it.
pub fn summary_line(server: &str, report: &LibraryReport) -> String {
    let counters = &report.counters;
    let outcome = match &report.error {
        None => "ok".to_string(),
        Some(error) => format!("FAILED: {error}"),
    };
    format!(
        "{server}/{} ({}): mode={} new={} changed={} deleted={} unchanged={} bad={} requests={} duration={:.1}s {outcome}",
        report.library_id,
        report.title,
        report.mode,
        counters.new,
        counters.changed,
        counters.deleted,
        counters.unchanged,
        counters.bad,
        counters.requests,
        report.duration.as_secs_f64(),
    )
}

/// Why a server's remaining libraries are not synced in this run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Halt {
    /// The server refused the credentials.
    Unauthorized,
    /// The server asked for a pause longer than this run waits.
    RateLimited,
}

/// Syncs one library, and says whether the server's other libraries must
/// wait.
fn sync_library(
    server: &str,
    source: &dyn Source,
    store: &Store,
    library: &LibraryInfo,
    options: &Options,
    stop: &AtomicBool,
) -> (LibraryReport, Option<Halt>) {
    let started = Instant::now();
    let mut report = LibraryReport {
        library_id: library.id.clone(),
        title: library.title.clone(),
        mode: "full".into(),
        counters: Counters::default(),
        duration: Duration::ZERO,
        error: None,
    };
    let (number, mut state) = match store.library(server, &library.id, &library.title) {
        Ok(found) => found,
        Err(err) => {
            report.error = Some(err.to_string());
            return (report, None);
        }
    };
    let mut run = Run {
        source,
        store,
        library,
        strategy: source.strategy_for(library),
        nested: source.nested(library),
        number,
        options,
        requests_base: source.requests(),
        requests_before: 0,
        started,
        elapsed_before: 0,
    };
    let outcome = run.begin(&mut state).and_then(|()| run.walk(&mut state, stop));
    let checkpoint = state.checkpoint.clone();
    if let Some(checkpoint) = &checkpoint {
        report.mode = mode_name(checkpoint);
        report.counters = checkpoint.counters;
    }
    let mut halt = None;
    match outcome {
        Ok(()) => {
            if let Err(err) = run.finish(&mut state) {
                report.error = Some(err.to_string());
            }
        }
        Err(failure) => {
            halt = match &failure {
                Failure::Source(err) if err.kind == ErrorKind::Unauthorized => Some(Halt::Unauthorized),
                Failure::Source(err) if matches!(err.kind, ErrorKind::RateLimited(_)) => Some(Halt::RateLimited),
                _ => None,
            };
            let message = failure.to_string();
            if let Err(err) = run.record_failure(&message, matches!(failure, Failure::MassDeletion(_))) {
                log::error!("could not record the failure of {server}/{}: {err}", library.id);
            }
            report.error = Some(message);
        }
    }
    report.duration = started.elapsed();
    (report, halt)
}

fn mode_name(checkpoint: &Checkpoint) -> String {
    let base = if checkpoint.resumed {
        "resumed"
    } else {
        match checkpoint.started_as {
            Pass::Full => "full",
            Pass::Incremental => "incremental",
        }
    };
    if checkpoint.started_as == Pass::Incremental && checkpoint.pass == Pass::Full {
        format!("{base}+reconcile")
    } else {
        base.to_string()
    }
}

struct Run<'a> {
    source: &'a dyn Source,
    store: &'a Store,
    library: &'a LibraryInfo,
    /// How this library's incremental passes find changes.
    strategy: Strategy,
    /// Whether its items have children fetched per parent.
    nested: bool,
    number: u32,
    options: &'a Options,
    /// The source's request counter when this process took up the run.
    requests_base: u64,
    /// Requests counted by earlier attempts of a resumed run.
    requests_before: u64,
    /// When this process took up the run, and the time earlier attempts took.
    started: Instant,
    elapsed_before: u64,
}

impl Run<'_> {
    fn requests(&self) -> u64 {
        self.requests_before + self.source.requests().saturating_sub(self.requests_base)
    }

    fn elapsed_ms(&self) -> u64 {
        self.elapsed_before + self.started.elapsed().as_millis() as u64
    }

    /// Plans the run and commits its starting checkpoint.
    fn begin(&mut self, state: &mut LibraryState) -> Result<(), Failure> {
        let now = now_epoch();
        let strategy = self.strategy;
        let plan = plan::plan(state, self.library, strategy, self.options.full, self.options.full_every, now);
        match plan {
            Plan::Resume => {
                let checkpoint = state.checkpoint.as_mut().expect("resume needs a checkpoint");
                checkpoint.resumed = true;
                checkpoint.forced |= self.options.force;
                self.requests_before = checkpoint.counters.requests;
                self.elapsed_before = checkpoint.elapsed_ms;
                log::info!(
                    "{}/{}: resuming the interrupted {:?} pass at {} {}",
                    state.server,
                    self.library.id,
                    checkpoint.pass,
                    checkpoint.kinds.get(checkpoint.kind_index as usize).map_or("end", |kind| kind.name()),
                    checkpoint.start
                );
                let number = self.number;
                let state_copy = state.clone();
                self.store.write(|writer| writer.put_state(number, &state_copy))?;
            }
            Plan::Start(pass, reason) => {
                log::info!("{}/{}: {:?} pass ({reason})", state.server, self.library.id, pass);
                state.runs += 1;
                let started_as = pass;
                let mut pass = pass;
                let server_started_at = self.source.server_time();
                if strategy == Strategy::ChangedSince && server_started_at.is_none() {
                    log::warn!(
                        "{}/{}: {} sent no Date header, so this run cannot move the changed-since cursor (later runs fetch more, or walk whole libraries); check any proxy in front of it",
                        state.server,
                        self.library.id,
                        self.source.describe()
                    );
                }
                if pass == Pass::Incremental && strategy == Strategy::ChangedSince {
                    if let Some(reason) = self.check_filter(state, server_started_at.unwrap_or(now), now)? {
                        log::warn!(
                            "{}/{}: the server's changed-since filter is unusable ({reason}); reconciling with a full pass, and full passes until it is checked again",
                            state.server,
                            self.library.id
                        );
                        pass = Pass::Full;
                    }
                }
                let cursors = match pass {
                    Pass::Full => BTreeMap::new(),
                    Pass::Incremental if strategy == Strategy::ChangedSince => {
                        let since = state.changed_since.unwrap_or(i64::MIN).saturating_sub(SERVER_CLOCK_MARGIN_SECS);
                        self.library.kinds.iter().map(|kind| (*kind, since)).collect()
                    }
                    Pass::Incremental => self
                        .library
                        .kinds
                        .iter()
                        .map(|kind| {
                            let newest = state.newest.get(kind).copied().unwrap_or(i64::MIN);
                            (*kind, newest.saturating_sub(CURSOR_MARGIN_SECS))
                        })
                        .collect(),
                };
                let checkpoint = Checkpoint {
                    // A filter found unusable turns an incremental run into a
                    // reconcile, reported as "incremental+reconcile".
                    started_as,
                    pass,
                    generation: state.generation,
                    kinds: self.library.kinds.clone(),
                    kind_index: 0,
                    start: 0,
                    cursors,
                    totals: BTreeMap::new(),
                    unstored: BTreeMap::new(),
                    full_passes: 0,
                    sweep_approved: false,
                    order_broken: false,
                    forced: self.options.force,
                    run: state.runs,
                    started_at: now,
                    server_started_at,
                    resumed: false,
                    after: None,
                    children: None,
                    counters: Counters::default(),
                    elapsed_ms: 0,
                };
                state.checkpoint = Some(checkpoint);
                if pass == Pass::Full {
                    let kinds = self.library.kinds.clone();
                    self.start_full_pass(state, kinds)?;
                } else {
                    let number = self.number;
                    let state_copy = state.clone();
                    self.store.write(|writer| writer.put_state(number, &state_copy))?;
                }
            }
        }
        Ok(())
    }

    /// Turns the checkpoint into a fresh full pass over `kinds`: a new
    /// generation, no seen marks, walking from the start.
    fn start_full_pass(&mut self, state: &mut LibraryState, kinds: Vec<Kind>) -> Result<(), Failure> {
        state.generation += 1;
        let generation = state.generation;
        let checkpoint = state.checkpoint.as_mut().expect("a run has a checkpoint");
        checkpoint.pass = Pass::Full;
        checkpoint.generation = generation;
        checkpoint.kinds = kinds;
        checkpoint.kind_index = 0;
        checkpoint.start = 0;
        checkpoint.totals.clear();
        checkpoint.unstored.clear();
        checkpoint.sweep_approved = false;
        checkpoint.order_broken = false;
        checkpoint.after = None;
        checkpoint.children = None;
        checkpoint.full_passes += 1;
        let number = self.number;
        let nested = self.nested;
        let state_copy = state.clone();
        self.store.write(|writer| {
            writer.clear_seen(number)?;
            if nested {
                writer.clear_pending(number)?;
            }
            writer.put_state(number, &state_copy)
        })?;
        Ok(())
    }

    /// Drives the checkpoint to the end of the run.
    fn walk(&mut self, state: &mut LibraryState, stop: &AtomicBool) -> Result<(), Failure> {
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(Failure::Interrupted);
            }
            let checkpoint = state.checkpoint.as_ref().expect("a run has a checkpoint");
            if (checkpoint.kind_index as usize) < checkpoint.kinds.len() {
                let filtered = self.filtered(checkpoint.pass);
                match self.page(state) {
                    Err(Failure::Source(err))
                        if filtered && matches!(err.kind, ErrorKind::Unavailable | ErrorKind::Rejected) =>
                    {
                        self.filter_failed(state, err)?;
                    }
                    outcome => outcome?,
                }
                continue;
            }
            match checkpoint.pass {
                Pass::Incremental => {
                    let mismatched = self.mismatched_kinds(state)?;
                    if mismatched.is_empty() {
                        return Ok(());
                    }
                    log::info!(
                        "{}/{}: counts differ from the server for {}; reconciling with a full pass",
                        state.server,
                        self.library.id,
                        kind_list(&mismatched)
                    );
                    self.start_full_pass(state, mismatched)?;
                }
                Pass::Full => {
                    let in_children = state.checkpoint.as_ref().is_some_and(|checkpoint| checkpoint.children.is_some());
                    if !in_children {
                        self.sweep(state)?;
                    }
                    if self.nested {
                        self.children(state, stop)?;
                    }
                    let mismatched = self.mismatched_kinds(state)?;
                    let passes = state.checkpoint.as_ref().map_or(0, |checkpoint| checkpoint.full_passes);
                    if mismatched.is_empty() {
                        return Ok(());
                    }
                    if passes >= MAX_FULL_PASSES {
                        log::warn!(
                            "{}/{}: after {passes} full passes the counts of {} still differ from the server's; the library changed during the sync, the next run checks again",
                            state.server,
                            self.library.id,
                            kind_list(&mismatched)
                        );
                        return Ok(());
                    }
                    self.start_full_pass(state, mismatched)?;
                }
            }
        }
    }

    /// Fetches the next page and commits it with the advanced checkpoint.
    fn page(&mut self, state: &mut LibraryState) -> Result<(), Failure> {
        let checkpoint = state.checkpoint.as_ref().expect("a run has a checkpoint");
        let kind = checkpoint.kinds[checkpoint.kind_index as usize];
        let pass = checkpoint.pass;
        let filtered = self.filtered(pass);
        let order = match pass {
            Pass::Full => Order::Stable,
            Pass::Incremental if filtered => {
                Order::ChangedSince(checkpoint.cursors.get(&kind).copied().unwrap_or(FILTER_PROBE_PAST))
            }
            Pass::Incremental => Order::NewestChanged,
        };
        let size = self.options.page_size;
        let page =
            self.source.page_after(self.library, kind, order, checkpoint.start, checkpoint.after.as_deref(), size)?;
        let nested = self.nested;
        let requests = self.requests();
        let number = self.number;
        let server = state.server.clone();
        let library_id = self.library.id.clone();
        self.store.write(|writer| {
            let mut checkpoint = state.checkpoint.take().expect("a run has a checkpoint");
            let cursor = checkpoint.cursors.get(&kind).copied().unwrap_or(i64::MIN);
            let mut reached_cursor = false;
            if pass == Pass::Incremental && !filtered && !newest_first(&page.items) {
                // The stop rule below is only sound on a sorted listing.
                checkpoint.order_broken = true;
            }
            for entry in &page.items {
                match entry {
                    Ok(item) => {
                        if pass == Pass::Incremental
                            && !filtered
                            && !checkpoint.order_broken
                            && item.updated_at < cursor
                        {
                            reached_cursor = true;
                            break;
                        }
                        let outcome = if nested {
                            writer.upsert_parent(number, item)?
                        } else {
                            writer.upsert(number, state, item, pass == Pass::Full)?
                        };
                        match outcome {
                            Outcome::New => checkpoint.counters.new += 1,
                            Outcome::Changed => checkpoint.counters.changed += 1,
                            Outcome::Unchanged => checkpoint.counters.unchanged += 1,
                        }
                    }
                    Err(bad) => {
                        checkpoint.counters.bad += 1;
                        log::warn!(
                            "{server}/{library_id}: skipped an unreadable {kind} entry{}: {}",
                            bad.id.as_deref().map(|id| format!(" (id {id})")).unwrap_or_default(),
                            bad.reason
                        );
                        let stored = match (&bad.id, pass) {
                            (Some(id), Pass::Full) => writer.mark_seen_id(number, id)?,
                            _ => false,
                        };
                        if pass == Pass::Full && !stored {
                            *checkpoint.unstored.entry(kind).or_insert(0) += 1;
                        }
                    }
                }
            }
            // A filtered listing's total counts the changed items only; the
            // library's count is asked for when the pass ends.
            if let (Some(total), false) = (page.total, filtered) {
                checkpoint.totals.insert(kind, total);
            }
            checkpoint.start += page.returned();
            let exhausted = reached_cursor
                || (pass == Pass::Incremental && checkpoint.order_broken)
                || listing_ends(&page, checkpoint.start, size);
            checkpoint.after = match &page.next {
                Next::After(cursor) => Some(cursor.clone()),
                _ => None,
            };
            if exhausted {
                checkpoint.kind_index += 1;
                checkpoint.start = 0;
                checkpoint.after = None;
            }
            checkpoint.counters.pages += 1;
            checkpoint.counters.requests = requests;
            state.checkpoint = Some(checkpoint);
            writer.put_state(number, state)
        })?;
        Ok(())
    }

    /// Whether this pass walks a changed-since listing.
    fn filtered(&self, pass: Pass) -> bool {
        pass == Pass::Incremental && self.strategy == Strategy::ChangedSince
    }

    /// The children phase of a nested library: for every parent waiting in
    /// `pending` (new or changed in this pass's listing), fetches its
    /// children page by page, each page committed with the cursor, and on
    /// the last page deletes the children past the end and stores the
    /// parent. A parent whose children the server refuses (403) is stored,
    /// recorded in `skipped` and its old children deleted.
    fn children(&mut self, state: &mut LibraryState, stop: &AtomicBool) -> Result<(), Failure> {
        let number = self.number;
        if state.checkpoint.as_ref().is_some_and(|checkpoint| checkpoint.children.is_none()) {
            if let Some(checkpoint) = state.checkpoint.as_mut() {
                checkpoint.children = Some(ChildCursor::default());
            }
            let state_copy = state.clone();
            self.store.write(|writer| writer.put_state(number, &state_copy))?;
        }
        let size = self.options.page_size;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(Failure::Interrupted);
            }
            let checkpoint = state.checkpoint.as_ref().expect("a run has a checkpoint");
            let cursor = checkpoint.children.clone().unwrap_or_default();
            let parent = match cursor.parent.clone() {
                Some(parent) => parent,
                None => match self.store.first_pending(number)? {
                    Some(parent) => parent,
                    None => return Ok(()),
                },
            };
            let fetched = self.source.children(self.library, &parent, cursor.start, size);
            let page = match fetched {
                Ok(page) => Some(page),
                Err(err) if err.kind == ErrorKind::Rejected => {
                    log::info!("{}/{}: skipped the entries of {parent}: {err}", state.server, self.library.id);
                    state.skipped.insert(parent.clone(), err.message.clone());
                    None
                }
                Err(err) => return Err(err.into()),
            };
            let requests = self.requests();
            self.store.write(|writer| {
                let mut checkpoint = state.checkpoint.take().expect("a run has a checkpoint");
                let mut next =
                    ChildCursor { parent: Some(parent.clone()), start: cursor.start, last: cursor.last.clone() };
                let done = match &page {
                    None => true,
                    Some(page) => {
                        for entry in &page.items {
                            match entry {
                                Ok(item) => {
                                    match writer.upsert(number, state, item, false)? {
                                        Outcome::New => checkpoint.counters.new += 1,
                                        Outcome::Changed => checkpoint.counters.changed += 1,
                                        Outcome::Unchanged => checkpoint.counters.unchanged += 1,
                                    }
                                    next.last = Some(item.id.clone());
                                }
                                Err(bad) => {
                                    checkpoint.counters.bad += 1;
                                    log::warn!(
                                        "{}/{parent}: skipped an unreadable entry: {}",
                                        state.server,
                                        bad.reason
                                    );
                                }
                            }
                        }
                        next.start += page.returned();
                        listing_ends(page, next.start, size)
                    }
                };
                if done {
                    let last = if page.is_some() { next.last.as_deref() } else { None };
                    checkpoint.counters.deleted += writer.delete_children_after(number, state, &parent, last)?;
                    writer.store_pending(number, state, &parent)?;
                    if page.is_some() {
                        state.skipped.remove(&parent);
                    }
                    next = ChildCursor::default();
                }
                checkpoint.children = Some(next);
                checkpoint.counters.pages += 1;
                checkpoint.counters.requests = requests;
                state.checkpoint = Some(checkpoint);
                writer.put_state(number, state)
            })?;
        }
    }

    /// Probes the changed-since filter unless it was found to work within
    /// `full_every`: a filter that works counts every item of a kind for a
    /// date before any save and none for a date ahead of the server's clock.
    /// Records the verdict in `state` (committed with the run's first
    /// checkpoint) and returns why the filter cannot be used, if it cannot.
    /// An outage is returned as a failure, not blamed on the filter.
    fn check_filter(&self, state: &mut LibraryState, server_now: i64, now: i64) -> Result<Option<String>, Failure> {
        if let FilterCheck::Works { checked_at } = state.filter {
            if plan::within(checked_at, self.options.full_every, now) {
                return Ok(None);
            }
        }
        for kind in &self.library.kinds {
            let Some(total) = self.source.count(self.library, *kind)? else {
                continue;
            };
            if total == 0 {
                continue;
            }
            let probes = [
                (FILTER_PROBE_PAST, total, "a date before any save"),
                (server_now.saturating_add(FILTER_PROBE_AHEAD_SECS), 0, "a date a year ahead of the server's clock"),
            ];
            for (since, wanted, label) in probes {
                let problem = match self.source.page(self.library, *kind, Order::ChangedSince(since), 0, 0) {
                    Ok(page) if page.total == Some(wanted) => continue,
                    Ok(page) => format!(
                        "for {label} it counts {} {kind} items where {wanted} were expected",
                        page.total.map_or_else(|| "no".to_string(), |got| got.to_string())
                    ),
                    Err(err) if err.kind == ErrorKind::Unauthorized => return Err(err.into()),
                    Err(err) => {
                        // The server answered the count a moment ago; if it
                        // still does, the filter is what it cannot take.
                        self.source.count(self.library, *kind)?;
                        format!("it fails: {err}")
                    }
                };
                state.filter = FilterCheck::Unusable { checked_at: now, reason: problem.clone() };
                return Ok(Some(problem));
            }
            state.filter = FilterCheck::Works { checked_at: now };
            return Ok(None);
        }
        // Nothing to probe on: an empty library has no edits to miss, and
        // additions show in the counts.
        Ok(None)
    }

    /// The filtered listing failed in the middle of an incremental pass. If
    /// the server still answers an unfiltered count, the filter is to blame:
    /// remember that and reconcile with a full pass now. Otherwise it is an
    /// outage, and the run fails as usual, keeping its checkpoint.
    fn filter_failed(&mut self, state: &mut LibraryState, err: SourceError) -> Result<(), Failure> {
        let checkpoint = state.checkpoint.as_ref().expect("a run has a checkpoint");
        let kind = checkpoint.kinds[checkpoint.kind_index as usize];
        match self.source.count(self.library, kind) {
            Ok(_) => {}
            Err(count_err) if count_err.kind == ErrorKind::Unauthorized => return Err(count_err.into()),
            Err(_) => return Err(err.into()),
        }
        log::warn!(
            "{}/{}: the changed-since listing failed ({err}) while the server answers otherwise; reconciling with a full pass",
            state.server,
            self.library.id
        );
        state.filter = FilterCheck::Unusable { checked_at: now_epoch(), reason: format!("it fails: {err}") };
        let kinds = self.library.kinds.clone();
        self.start_full_pass(state, kinds)
    }

    /// Kinds of this pass whose stored count differs from the server's.
    fn mismatched_kinds(&mut self, state: &mut LibraryState) -> Result<Vec<Kind>, Failure> {
        let checkpoint = state.checkpoint.as_ref().expect("a run has a checkpoint");
        if checkpoint.order_broken {
            log::warn!(
                "{}/{}: the server did not sort by change time; falling back to a full pass",
                state.server,
                self.library.id
            );
            return Ok(checkpoint.kinds.clone());
        }
        let kinds = checkpoint.kinds.clone();
        let totals = checkpoint.totals.clone();
        let mut mismatched = Vec::new();
        for kind in kinds {
            let total = match totals.get(&kind) {
                Some(total) => Some(*total),
                None => self.source.count(self.library, kind)?,
            };
            let local = state.count(kind) + state.unreadable.get(&kind).copied().unwrap_or(0);
            if total != Some(local) {
                // The page's total can be stale by the time a later page was
                // walked; a fresh count settles it before more work is done.
                let fresh = if totals.contains_key(&kind) { self.source.count(self.library, kind)? } else { total };
                if fresh != Some(local) {
                    mismatched.push(kind);
                }
            }
        }
        let requests = self.requests();
        if let Some(checkpoint) = state.checkpoint.as_mut() {
            checkpoint.counters.requests = requests;
        }
        Ok(mismatched)
    }

    /// After a complete full walk: checks the mass-deletion guard, deletes
    /// what the walk did not see, and recounts. Resumable: deleting unseen
    /// items again is a no-op.
    fn sweep(&mut self, state: &mut LibraryState) -> Result<(), Failure> {
        let number = self.number;
        let checkpoint = state.checkpoint.clone().expect("a run has a checkpoint");
        let kinds = checkpoint.kinds.clone();
        if !checkpoint.sweep_approved {
            let unseen = self.count_unseen(&kinds)?;
            let stored: u64 = kinds.iter().map(|kind| state.count(*kind)).sum();
            let share = if stored == 0 { 0.0 } else { unseen as f64 / stored as f64 };
            if unseen > 0 && share > self.options.max_delete_share && !checkpoint.forced {
                let message = format!(
                    "refusing to delete {unseen} of {stored} stored {} items ({:.0}% > max_delete_share {:.0}%): the server may be missing a drive or a library; nothing was deleted. If the deletions are real, run `mediasync sync --server {} --force`",
                    kind_list(&kinds),
                    share * 100.0,
                    self.options.max_delete_share * 100.0,
                    state.server,
                );
                return Err(Failure::MassDeletion(message));
            }
            let checkpoint = state.checkpoint.as_mut().expect("a run has a checkpoint");
            checkpoint.sweep_approved = true;
            let state_copy = state.clone();
            self.store.write(|writer| writer.put_state(number, &state_copy))?;
        }
        let nested = self.nested;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (keys, complete) = self.store.unseen(number, &kinds, after.as_deref(), SWEEP_BATCH)?;
            if !keys.is_empty() {
                self.store.write(|writer| {
                    let mut deleted = 0;
                    for key in &keys {
                        if writer.delete_key(state, key)? {
                            deleted += 1;
                            if nested {
                                let parent = String::from_utf8_lossy(&key[4..]).into_owned();
                                deleted += writer.delete_children_after(number, state, &parent, None)?;
                                state.skipped.remove(&parent);
                            }
                        }
                    }
                    let checkpoint = state.checkpoint.as_mut().expect("a run has a checkpoint");
                    checkpoint.counters.deleted += deleted;
                    writer.put_state(number, state)
                })?;
            }
            if complete {
                break;
            }
            after = keys.last().cloned();
        }
        // The counters are maintained per change; the walk that just ended
        // is a cheap moment to replace them with the ground truth.
        let counts = self.store.recount(number)?;
        let checkpoint = state.checkpoint.as_ref().expect("a run has a checkpoint");
        for kind in &kinds {
            match counts.get(kind) {
                Some(count) => state.counts.insert(*kind, *count),
                None => state.counts.remove(kind),
            };
            let unstored = checkpoint.unstored.get(kind).copied().unwrap_or(0);
            if unstored > 0 {
                state.unreadable.insert(*kind, unstored);
            } else {
                state.unreadable.remove(kind);
            }
        }
        let state_copy = state.clone();
        self.store.write(|writer| writer.put_state(number, &state_copy))?;
        Ok(())
    }

    fn count_unseen(&self, kinds: &[Kind]) -> Result<u64, Failure> {
        let mut total = 0u64;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (keys, complete) = self.store.unseen(self.number, kinds, after.as_deref(), 10_000)?;
            total += keys.len() as u64;
            if complete {
                return Ok(total);
            }
            after = keys.last().cloned();
        }
    }

    /// Ends a successful run: history, timestamps, no checkpoint.
    fn finish(&mut self, state: &mut LibraryState) -> Result<(), StoreError> {
        let now = now_epoch();
        let checkpoint = state.checkpoint.take().expect("a run has a checkpoint");
        // A run that started full walked every kind in its first pass, even
        // when a repair pass then walked only some of them again.
        let covered_all = checkpoint.started_as == Pass::Full
            || self.library.kinds.iter().all(|kind| checkpoint.kinds.contains(kind));
        if checkpoint.pass == Pass::Full && covered_all {
            state.last_full_at = Some(now);
            state.needs_full = None;
        }
        if checkpoint.pass == Pass::Full && checkpoint.started_as == Pass::Full {
            state.needs_full = None;
        }
        if checkpoint.server_started_at.is_some() {
            state.changed_since = checkpoint.server_started_at;
        }
        state.last_success_at = Some(now);
        state.last_error = None;
        let record = run_record(&checkpoint, now, self.elapsed_ms(), None);
        let number = self.number;
        let history = self.options.history;
        self.store.write(|writer| {
            writer.clear_seen(number)?;
            writer.append_run(number, &record, history)?;
            writer.put_state(number, state)
        })
    }

    /// Records a failed run on a fresh copy of the state (the in-memory one
    /// may hold changes of a transaction that never committed). The
    /// checkpoint stays so the next run resumes; a refused sweep instead
    /// drops it and asks for a full pass next time.
    fn record_failure(&mut self, message: &str, refused_sweep: bool) -> Result<(), StoreError> {
        let number = self.number;
        let now = now_epoch();
        let history = self.options.history;
        let mut state = self.store.state(number)?.unwrap_or_default();
        state.last_error = Some(message.to_string());
        let elapsed_ms = self.elapsed_ms();
        if let Some(checkpoint) = state.checkpoint.as_mut() {
            checkpoint.elapsed_ms = elapsed_ms;
        }
        let record = state.checkpoint.as_ref().map(|checkpoint| run_record(checkpoint, now, elapsed_ms, Some(message)));
        if refused_sweep {
            state.checkpoint = None;
            state.needs_full = Some("the previous full pass was refused by the mass-deletion guard".into());
        }
        self.store.write(|writer| {
            if refused_sweep {
                writer.clear_seen(number)?;
            }
            if let Some(record) = &record {
                writer.append_run(number, record, history)?;
            }
            writer.put_state(number, &state)
        })
    }
}

fn run_record(checkpoint: &Checkpoint, now: i64, elapsed_ms: u64, error: Option<&str>) -> RunRecord {
    RunRecord {
        run: checkpoint.run,
        mode: mode_name(checkpoint),
        started_at: checkpoint.started_at,
        finished_at: now,
        duration_ms: elapsed_ms,
        counters: checkpoint.counters,
        error: error.map(str::to_string),
    }
}

/// Whether a listing ends with this page, `start` entries in: the server
/// said so, or it came back empty or short, or the total is reached.
fn listing_ends(page: &crate::source::Page, start: u64, size: u32) -> bool {
    match page.next {
        Next::End => true,
        _ if page.returned() == 0 => true,
        Next::After(_) => false,
        Next::Offset => match page.total {
            Some(total) => start >= total,
            None => page.returned() < u64::from(size),
        },
    }
}

/// Whether a page's readable items come most recently changed first.
fn newest_first(items: &[Result<crate::model::Item, crate::source::BadItem>]) -> bool {
    let mut times = items.iter().filter_map(|entry| entry.as_ref().ok()).map(|item| item.updated_at);
    let Some(mut previous) = times.next() else {
        return true;
    };
    for time in times {
        if time > previous {
            return false;
        }
        previous = time;
    }
    true
}

fn kind_list(kinds: &[Kind]) -> String {
    kinds.iter().map(|kind| kind.name()).collect::<Vec<_>>().join(", ")
}
