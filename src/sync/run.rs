//! A run of one library and its checkpoint. A `Run` exists only once it has
//! a checkpoint (the interrupted run's, resumed, or a new one for the planned
//! pass), and every commit writes the state and that checkpoint together
//! with whatever the page changed. A run ends by `finish`, or by a failure
//! recorded on a freshly read state (`record_failure`).

use super::cadence::Pending;
use super::entries::store_pending;
use super::plan::{self, Plan};
use super::report::run_record;
use super::whole_walk::{StoredMarks, WholeWalk};
use super::{Options, now_epoch};
use crate::model::{Kind, LibraryInfo, Nesting, Strategy};
use crate::source::{ErrorKind, Source, SourceError};
use crate::store::records::{Checkpoint, Counters, FilterCheck, LibraryState, Pass, RefusedDeletion, RunRecord};
use crate::store::{Ending, Store, StoreError, Writer};
use std::collections::BTreeMap;
use std::time::Instant;

/// Incremental passes fetch what changed since the earliest of the newest
/// stored change time, the server's clock at the start of the last
/// successful run and the server's clock now, minus this margin (seconds).
/// Minutes, not seconds: a server stamps a change a moment before it is
/// visible to listings, the `Date` header is rounded down, and a clock may
/// be set a little back; a wider margin costs only reads, since an
/// unchanged item is not rewritten.
pub const CURSOR_MARGIN_SECS: i64 = 300;

/// Why a run ended before its end.
#[derive(Debug)]
pub(super) enum Failure {
    Source(SourceError),
    Store(StoreError),
    /// The sweep would delete more than `max_delete_share`; the message says
    /// what and how to allow it.
    MassDeletion(String, RefusedDeletion),
    /// The stop flag was set (shutdown, pause) between pages.
    Interrupted,
    /// A history poll fell due: the run ends after its last commit, to be
    /// resumed (`Signals::yield_to`).
    Yielded,
}

impl From<SourceError> for Failure {
    /// A source stopped mid-wait or mid-request is an interrupted run, like
    /// a stop seen between pages.
    fn from(err: SourceError) -> Failure {
        match err.kind {
            ErrorKind::Stopped => Failure::Interrupted,
            _ => Failure::Source(err),
        }
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
            Failure::MassDeletion(message, _) => f.write_str(message),
            Failure::Interrupted => f.write_str("interrupted; the next run resumes from the last saved page"),
            Failure::Yielded => f.write_str("paused for a history poll; the next run resumes from the last saved page"),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::Source(err) => Some(err),
            Failure::Store(err) => Some(err),
            Failure::MassDeletion(..) | Failure::Interrupted | Failure::Yielded => None,
        }
    }
}

pub(super) struct Run<'a> {
    pub(super) source: &'a dyn Source,
    pub(super) store: &'a Store,
    pub(super) library: &'a LibraryInfo,
    pub(super) options: &'a Options,
    pub(super) number: u32,
    /// The library's state as of the last commit plus this run's changes
    /// since. Holds no checkpoint of its own: the run's is `checkpoint`.
    pub(super) state: LibraryState,
    pub(super) checkpoint: Checkpoint,
    /// The seen marks of a whole walk held in memory (`whole_walk`): a full
    /// pass of a `Strategy::Unordered` library until its walk ends.
    pub(super) whole_walk: Option<WholeWalk>,
    /// The library's state as the store held it when the run began.
    as_stored: LibraryState,
    /// The store holds an interrupted run's checkpoint that this run does
    /// not resume: `open` replaces it at once.
    abandons_stored: bool,
    /// The source's request counter when this process took up the run.
    requests_base: u64,
    /// Requests counted by earlier attempts of a resumed run.
    requests_before: u64,
    /// When this process took up the run, and the time earlier attempts took.
    started: Instant,
    elapsed_before: u64,
    /// A full pass's pages waiting for the cadence's commit; every commit
    /// of the run stores them first.
    pub(super) pending: Pending,
}

impl<'a> Run<'a> {
    /// Plans the run and prepares its checkpoint: the interrupted run's,
    /// resumed, or a new one for the planned pass. Commits nothing (`open`
    /// does).
    pub(super) fn begin(
        source: &'a dyn Source,
        store: &'a Store,
        library: &'a LibraryInfo,
        options: &'a Options,
        number: u32,
        mut state: LibraryState,
        started: Instant,
    ) -> Result<Run<'a>, Failure> {
        let requests_base = source.requests();
        let now = now_epoch();
        let as_stored = state.clone();
        let mut abandons_stored = false;
        let checkpoint = match state.checkpoint.take() {
            Some(mut checkpoint) => match plan::interrupted(&checkpoint, library, options.full) {
                Plan::Resume => {
                    checkpoint.resumed = true;
                    checkpoint.forced |= options.force;
                    log::info!(
                        "{}/{}: resuming the interrupted {:?} pass at {} {}",
                        state.server,
                        library.id,
                        checkpoint.pass,
                        checkpoint.kinds.get(checkpoint.kind_index as usize).map_or("end", |kind| kind.name()),
                        checkpoint.start
                    );
                    checkpoint
                }
                Plan::Start(pass, reason) => {
                    abandons_stored = true;
                    new_checkpoint(source, library, options, &mut state, pass, &reason, now)?
                }
            },
            None => {
                let (pass, reason) = plan::fresh(&state, library.strategy, options.full, options.full_every, now);
                new_checkpoint(source, library, options, &mut state, pass, &reason, now)?
            }
        };
        // A resumed pass's stored marks are its own up to its checkpoint.
        let whole_walk = (library.strategy == Strategy::Unordered && checkpoint.pass == Pass::Full)
            .then(|| WholeWalk::new(if checkpoint.resumed { StoredMarks::OfThisPass } else { StoredMarks::Stale }));
        Ok(Run {
            whole_walk,
            source,
            store,
            library,
            options,
            number,
            state,
            as_stored,
            abandons_stored,
            // Nothing yet for a new run; what earlier attempts took for a
            // resumed one.
            requests_before: checkpoint.counters.requests,
            elapsed_before: checkpoint.elapsed_ms,
            checkpoint,
            requests_base,
            started,
            pending: Pending::new(started),
        })
    }

    /// The run's first commit, when it needs one before its pages: a new
    /// run that starts with a full pass (not a resumed one) leaves no seen
    /// marks or waiting parents of an earlier pass behind, and a run that
    /// abandons an interrupted one replaces its checkpoint. Otherwise the
    /// checkpoint waits for the first page that changes something (an
    /// unchanged resync commits only its bookkeeping, at the server's end);
    /// so does a whole walk's, whose first commit clears what an earlier
    /// pass left (`WholeWalk::begin_page`).
    pub(super) fn open(&mut self) -> Result<(), Failure> {
        let deferred = self.whole_walk.as_ref().is_some_and(|whole| whole.stored == StoredMarks::Stale);
        if deferred && !self.abandons_stored {
            Ok(())
        } else if self.checkpoint.pass == Pass::Full && !self.checkpoint.resumed {
            self.commit_new_full_pass()
        } else if self.abandons_stored {
            self.save()
        } else {
            Ok(())
        }
    }

    pub(super) fn requests(&self) -> u64 {
        self.requests_before.saturating_add(self.source.requests().saturating_sub(self.requests_base))
    }

    pub(super) fn elapsed_ms(&self) -> u64 {
        self.elapsed_before.saturating_add(u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn nested(&self) -> bool {
        self.library.nesting == Nesting::Nested
    }

    pub(super) fn append_only(&self) -> bool {
        self.library.strategy == Strategy::AppendOnly
    }

    /// Runs `work` in one write transaction that also stores the pages
    /// waiting for the cadence, then the state and the checkpoint as `work`
    /// leaves them, so the checkpoint never runs ahead of or behind the data.
    pub(super) fn commit<T>(
        &mut self,
        work: impl FnOnce(&mut Writer<'_>, &mut LibraryState, &mut Checkpoint) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pages = self.pending.take();
        let nested = self.nested();
        let Run { store, number, library, state, checkpoint, .. } = self;
        let value = store.write(|writer| {
            store_pending(writer, *number, library, nested, state, checkpoint, &pages)?;
            let value = work(writer, state, checkpoint)?;
            writer.put_running_state(*number, state, checkpoint)?;
            Ok(value)
        })?;
        self.pending.committed(Instant::now());
        Ok(value)
    }

    /// `commit` for work that may change nothing (a page of unchanged
    /// items), which it says by returning `Ending::Abort`: then nothing is
    /// committed (unless pages wait for the cadence), and the checkpoint
    /// `work` advanced stays in memory until the run's next commit. A crash
    /// meanwhile costs a refetch of those pages from the last committed
    /// checkpoint; they are unchanged again.
    pub(super) fn commit_unless_unchanged(
        &mut self,
        work: impl FnOnce(&mut Writer<'_>, &mut LibraryState, &mut Checkpoint) -> Result<Ending, StoreError>,
    ) -> Result<(), StoreError> {
        let pages = self.pending.take();
        let nested = self.nested();
        let Run { store, number, library, state, checkpoint, .. } = self;
        let ending = store.write_unless_unchanged(|writer| {
            store_pending(writer, *number, library, nested, state, checkpoint, &pages)?;
            let ending = match work(writer, state, checkpoint)? {
                _ if !pages.is_empty() => Ending::Commit,
                ending => ending,
            };
            writer.put_running_state(*number, state, checkpoint)?;
            Ok((ending, ending))
        })?;
        if ending == Ending::Commit {
            self.pending.committed(Instant::now());
        }
        Ok(())
    }

    /// Commits the state and checkpoint as they are.
    pub(super) fn save(&mut self) -> Result<(), Failure> {
        self.commit(|_, _, _| Ok(()))?;
        Ok(())
    }

    /// Commits a fresh full pass with no seen marks, nor (nested libraries)
    /// parents waiting for their children.
    fn commit_new_full_pass(&mut self) -> Result<(), Failure> {
        let number = self.number;
        let nested = self.nested();
        self.commit(|writer, _, _| {
            writer.clear_seen(number)?;
            if nested {
                writer.clear_pending(number)?;
            }
            Ok(())
        })?;
        if self.library.strategy == Strategy::Unordered {
            self.whole_walk = Some(WholeWalk::new(StoredMarks::OfThisPass));
        }
        Ok(())
    }

    /// Starts a fresh full pass over `kinds` in this run.
    pub(super) fn start_full_pass(&mut self, kinds: Vec<Kind>) -> Result<(), Failure> {
        self.checkpoint.kinds = kinds;
        reset_to_full_pass(&mut self.state, &mut self.checkpoint);
        self.commit_new_full_pass()
    }

    /// Ends a successful run: its history entry, timestamps and state with
    /// no checkpoint, for the server's closing commit (`Closing::write`).
    pub(super) fn finish(self) -> Closing {
        let now = now_epoch();
        let elapsed_ms = self.elapsed_ms();
        let Run { library, options, number, mut state, checkpoint, as_stored, .. } = self;
        // A run that started full walked every kind in its first pass, even
        // when a repair pass then walked only some of them again.
        let covered_all =
            checkpoint.started_as == Pass::Full || library.kinds.iter().all(|kind| checkpoint.kinds.contains(kind));
        if checkpoint.pass == Pass::Full && covered_all {
            state.last_full_at = Some(now);
            state.needs_full = None;
        }
        // A history has no full pass: whatever asked for one is answered by
        // any successful run.
        if (checkpoint.pass == Pass::Full && checkpoint.started_as == Pass::Full)
            || library.strategy == Strategy::AppendOnly
        {
            state.needs_full = None;
        }
        if checkpoint.server_started_at.is_some() {
            state.changed_since = checkpoint.server_started_at;
        }
        state.last_success_at = Some(now);
        state.last_error = None;
        state.refused = None;
        let record = run_record(&checkpoint, now, elapsed_ms, None);
        Closing { number, state, record, history: options.history, as_stored, strategy: library.strategy }
    }
}

/// What a successful run leaves to store: the server's sync commits every
/// library's in one transaction at its end. Until then the store holds the
/// run's last committed checkpoint (or none, or an earlier run's state), so
/// a crash meanwhile resumes from there, or starts the run again.
pub(super) struct Closing {
    number: u32,
    state: LibraryState,
    record: RunRecord,
    history: u32,
    /// The state the store held when the run began.
    as_stored: LibraryState,
    strategy: Strategy,
}

impl Closing {
    /// The run leaves the library's state as the store holds it but for
    /// the run's stamps (`without_run_stamps`): no checkpoint, error, full
    /// pass or unusable filter to record.
    pub(super) fn changes_only_stamps(&self) -> bool {
        // A changed-since cursor is worth recording once the listing since
        // it holds stored items (saves that changed nothing, such as a
        // library scan's): else every run would list them again.
        let cursor_saves_nothing =
            self.record.counters.unchanged == 0 || self.state.changed_since == self.as_stored.changed_since;
        cursor_saves_nothing
            && without_run_stamps(&self.state, self.strategy) == without_run_stamps(&self.as_stored, self.strategy)
    }

    pub(super) fn write(&self, writer: &mut Writer<'_>) -> Result<(), StoreError> {
        writer.clear_seen(self.number)?;
        writer.append_run(self.number, &self.record, self.history)?;
        writer.put_state(self.number, &self.state)
    }
}

/// `state` without what every successful run stamps anew: its count, its
/// success time, its changed-since cursor, and a filter found to work
/// (only an unusable filter's verdict plans runs; that one is kept). A
/// library walked whole every run (`Strategy::Unordered`) also stamps its
/// full pass's time and generation, which plan nothing there.
fn without_run_stamps(state: &LibraryState, strategy: Strategy) -> LibraryState {
    let filter = match &state.filter {
        FilterCheck::Works { .. } | FilterCheck::Unverified => FilterCheck::Unverified,
        unusable @ FilterCheck::Unusable { .. } => unusable.clone(),
    };
    let (last_full_at, generation) = match strategy {
        Strategy::Unordered => (None, 0),
        _ => (state.last_full_at, state.generation),
    };
    LibraryState {
        runs: 0,
        last_success_at: None,
        changed_since: None,
        filter,
        last_full_at,
        generation,
        ..state.clone()
    }
}

/// The checkpoint of a new run of this pass. (An incremental pass that
/// relies on a changed-since filter checks it on the answers it fetches:
/// `probe`.)
fn new_checkpoint(
    source: &dyn Source,
    library: &LibraryInfo,
    options: &Options,
    state: &mut LibraryState,
    pass: Pass,
    reason: &str,
    now: i64,
) -> Result<Checkpoint, Failure> {
    let strategy = library.strategy;
    let server_started_at = source.server_time();
    // A history is never walked whole: its walk stops at stored plays.
    let clock_went_back = strategy != Strategy::AppendOnly && clock_went_back(state, server_started_at);
    let (pass, reason) = if pass == Pass::Incremental && clock_went_back {
        (Pass::Full, "the server's clock is behind where it stood at the last sync")
    } else {
        (pass, reason)
    };
    log::info!("{}/{}: {:?} pass ({reason})", state.server, library.id, pass);
    state.runs = state.runs.saturating_add(1);
    let started_as = pass;
    if strategy == Strategy::ChangedSince && server_started_at.is_none() {
        log::warn!(
            "{}/{}: {} sent no Date header, so this run cannot move the changed-since cursor (later runs fetch more, or walk whole libraries); check any proxy in front of it",
            state.server,
            library.id,
            source.describe()
        );
    }
    let cursors = match pass {
        Pass::Full => BTreeMap::new(),
        Pass::Incremental => library
            .kinds
            .iter()
            .map(|kind| {
                // What a filter or stop rule may skip: older than every
                // bound. A change time ahead of the server's clock (stamped
                // while it was wrong) cannot hold the cursor up.
                let newest = match strategy {
                    Strategy::ChangedSince => None,
                    _ => state.newest.get(kind).copied(),
                };
                let bound = [newest, state.changed_since, server_started_at].into_iter().flatten().min();
                // A history with no play stored yet is walked to its end.
                let bound = bound.filter(|_| strategy != Strategy::AppendOnly || newest.is_some());
                (*kind, bound.map_or(i64::MIN, |bound| bound.saturating_sub(CURSOR_MARGIN_SECS)))
            })
            .collect(),
    };
    let mut checkpoint = Checkpoint {
        // A filter found unusable turns an incremental run into a
        // reconcile, reported as "incremental+reconcile".
        started_as,
        pass,
        generation: state.generation,
        kinds: library.kinds.clone(),
        kind_index: 0,
        start: 0,
        cursors,
        totals: BTreeMap::new(),
        unstored: BTreeMap::new(),
        full_passes: 0,
        sweep_approved: false,
        order_broken: false,
        forced: options.force,
        run: state.runs,
        started_at: now,
        server_started_at,
        resumed: false,
        after: None,
        children: None,
        children_approved: false,
        last_id: None,
        restarts: 0,
        anchor: None,
        confirm: None,
        counters: Counters::default(),
        elapsed_ms: 0,
    };
    if pass == Pass::Full {
        reset_to_full_pass(state, &mut checkpoint);
    }
    Ok(checkpoint)
}

/// Turns the checkpoint into a fresh full pass over its kinds, in memory: a
/// new generation, walking from the start.
fn reset_to_full_pass(state: &mut LibraryState, checkpoint: &mut Checkpoint) {
    state.generation = state.generation.saturating_add(1);
    checkpoint.pass = Pass::Full;
    checkpoint.generation = state.generation;
    checkpoint.kind_index = 0;
    checkpoint.start = 0;
    checkpoint.totals.clear();
    checkpoint.unstored.clear();
    checkpoint.sweep_approved = false;
    checkpoint.order_broken = false;
    checkpoint.after = None;
    checkpoint.children = None;
    checkpoint.children_approved = false;
    checkpoint.last_id = None;
    checkpoint.restarts = 0;
    checkpoint.anchor = None;
    checkpoint.confirm = None;
    checkpoint.full_passes = checkpoint.full_passes.saturating_add(1);
}

/// Whether the server's clock is behind where it stood at the start of the
/// last successful run, by more than the margin: it went back (or was ahead
/// then), so what changes from now on may be stamped before any cursor, and
/// only a full pass is sure to see it.
pub(super) fn clock_went_back(state: &LibraryState, server_now: Option<i64>) -> bool {
    match (server_now, state.changed_since) {
        (Some(now), Some(since)) => now.saturating_add(CURSOR_MARGIN_SECS) < since,
        _ => false,
    }
}

/// Records a failed run on a fresh copy of the state (the in-memory one may
/// hold changes of a transaction that never committed). The checkpoint stays
/// so the next run resumes; a refused sweep instead drops it and asks for a
/// full pass next time. A run that committed nothing yet (its pages changed
/// nothing) has no stored checkpoint: its history entry comes from `unsaved`,
/// the checkpoint it had in memory, which is not stored.
pub(super) fn record_failure(
    store: &Store,
    number: u32,
    history: u32,
    elapsed_ms: u64,
    message: &str,
    refused: Option<RefusedDeletion>,
    unsaved: Option<&Checkpoint>,
) -> Result<(), StoreError> {
    let now = now_epoch();
    let mut state = store.state(number)?.unwrap_or_default();
    state.last_error = Some(message.to_string());
    if let Some(checkpoint) = state.checkpoint.as_mut() {
        checkpoint.elapsed_ms = elapsed_ms;
    }
    let recorded = state.checkpoint.as_ref().or(unsaved);
    let record = recorded.map(|checkpoint| run_record(checkpoint, now, elapsed_ms, Some(message)));
    if let Some(record) = &record {
        // The run's number is taken even when nothing else of it was stored.
        state.runs = state.runs.max(record.run);
    }
    if refused.is_some() {
        state.checkpoint = None;
        state.needs_full = Some("the previous full pass was refused by the mass-deletion guard".into());
        state.refused = refused;
    }
    store.write(|writer| {
        if refused.is_some() {
            writer.clear_seen(number)?;
        }
        if let Some(record) = &record {
            writer.append_run(number, record, history)?;
        }
        writer.put_state(number, &state)
    })
}
