//! The page walk: drives a run's checkpoint to the end of the run, an
//! incremental page per commit (none for a page that changes nothing), a
//! full pass's pages on the commit cadence, and decides between passes.
//! Every offset page after the first is asked from one entry earlier and
//! must begin with the entry seen last, or the listing moved: an incremental
//! walk starts the kind over, a full one goes on (the lookup before the
//! sweep finds what it missed). Counts that disagree with the server's turn
//! an incremental pass into a full reconcile of those kinds and repeat a
//! full pass once.

use super::cadence::PendingPage;
use super::entries::{EntryRules, store_entries};
use super::probe::{Counted, FILTER_PROBE_PAST};
use super::report::kind_list;
use super::run::{Failure, Run, clock_went_back};
use super::{Signals, now_epoch};
use crate::model::{Item, Kind, Strategy};
use crate::source::{BadItem, ErrorKind, Next, Order, Page, Position};
use crate::store::records::{Checkpoint, Counters, Gap, LibraryState, Pass};
use crate::store::{Ending, Outcome};
use std::time::Instant;

/// A full pass whose result disagrees with the server's count is repeated
/// once in the same run (items can shift between pages while it walks).
const MAX_FULL_PASSES: u32 = 2;
/// An incremental walk of a kind starts over at most this often when the
/// listing moves under it; after that the run walks the kinds whole.
const MAX_RESTARTS: u32 = 3;

impl Run<'_> {
    /// Drives the checkpoint to the end of the run. Pages still waiting
    /// for the cadence's commit are committed however the walk ends (but
    /// for a store error: then they are fetched again by the next run).
    pub(super) fn walk(&mut self, signals: Signals<'_>) -> Result<(), Failure> {
        let walked = self.walk_passes(signals);
        if self.pending.is_empty() || matches!(walked, Err(Failure::Store(_))) {
            return walked;
        }
        match self.save() {
            Ok(()) => walked,
            Err(err) if walked.is_ok() => Err(err),
            Err(err) => {
                log::warn!(
                    "{}/{}: could not commit the pages fetched before the run ended: {err}",
                    self.state.server,
                    self.library.id
                );
                walked
            }
        }
    }

    fn walk_passes(&mut self, signals: Signals<'_>) -> Result<(), Failure> {
        loop {
            signals.check()?;
            if let Some(kind) = self.current_kind() {
                let filtered = self.filtered();
                match self.page(kind) {
                    Err(Failure::Source(err))
                        if filtered && matches!(err.kind, ErrorKind::Unavailable | ErrorKind::Rejected) =>
                    {
                        self.filter_failed(kind, err)?;
                    }
                    outcome => outcome?,
                }
                continue;
            }
            // What ends the walk of a pass reads what its pages stored.
            if !self.pending.is_empty() {
                self.save()?;
            }
            match self.checkpoint.pass {
                Pass::Incremental if self.filtered() => {
                    if self.close_changed_pass()? == Counted::Agrees {
                        return Ok(());
                    }
                }
                Pass::Incremental => {
                    let mismatched = self.mismatched_kinds()?;
                    if mismatched.is_empty() {
                        return Ok(());
                    }
                    log::info!(
                        "{}/{}: counts differ from the server for {}; reconciling with a full pass",
                        self.state.server,
                        self.library.id,
                        kind_list(&mismatched)
                    );
                    self.start_full_pass(mismatched)?;
                }
                Pass::Full => {
                    if self.checkpoint.children.is_none() {
                        match self.whole_walk.take() {
                            Some(whole) => self.settle_whole_walk(whole)?,
                            None => self.sweep()?,
                        }
                    }
                    // With no parent waiting, the children phase has nothing
                    // to fetch, weigh or store.
                    if self.nested()
                        && (self.checkpoint.children.is_some() || self.store.has_waiting_parents(self.number)?)
                    {
                        self.children(signals)?;
                    }
                    let mismatched = self.mismatched_kinds()?;
                    let passes = self.checkpoint.full_passes;
                    if mismatched.is_empty() {
                        return Ok(());
                    }
                    if passes >= MAX_FULL_PASSES {
                        log::warn!(
                            "{}/{}: after {passes} full passes the counts of {} still differ from the server's; the library changed during the sync, the next run checks again",
                            self.state.server,
                            self.library.id,
                            kind_list(&mismatched)
                        );
                        return Ok(());
                    }
                    self.start_full_pass(mismatched)?;
                }
            }
        }
    }

    /// The kind being walked, if the walk of this pass is not over.
    fn current_kind(&self) -> Option<Kind> {
        let index = usize::try_from(self.checkpoint.kind_index).ok()?;
        self.checkpoint.kinds.get(index).copied()
    }

    /// Whether this pass walks a changed-since listing.
    fn filtered(&self) -> bool {
        self.checkpoint.pass == Pass::Incremental && self.library.strategy == Strategy::ChangedSince
    }

    /// Fetches the next page of `kind` and commits it with the advanced
    /// checkpoint; a page of an incremental walk that stores nothing is
    /// not committed (`commit_unless_unchanged`).
    fn page(&mut self, kind: Kind) -> Result<(), Failure> {
        if self.filtered() && self.checkpoint.kind_index > 0 {
            // A changed-since pass walks one listing across kinds and ends
            // at once past the last kind: a checkpoint between kinds is an
            // older version's walk of one kind at a time, walked again.
            self.checkpoint.kind_index = 0;
            next_kind_from_start(&mut self.checkpoint);
            return Ok(());
        }
        let checkpoint = &self.checkpoint;
        let pass = checkpoint.pass;
        let filtered = self.filtered();
        let append_only = self.append_only();
        let order = match pass {
            Pass::Full => Order::Stable,
            Pass::Incremental if filtered => {
                Order::ChangedSince(checkpoint.cursors.get(&kind).copied().unwrap_or(FILTER_PROBE_PAST))
            }
            Pass::Incremental if append_only => {
                Order::NewestSince(checkpoint.cursors.get(&kind).copied().unwrap_or(i64::MIN))
            }
            Pass::Incremental => Order::NewestChanged,
        };
        // An offset page starts one entry early, on the entry seen last.
        let overlap = match (&checkpoint.after, &checkpoint.last_id) {
            (None, Some(_)) if checkpoint.start > 0 => 1,
            _ => 0,
        };
        let position = match &checkpoint.after {
            Some(cursor) => Position::After(cursor),
            None => Position::Offset(checkpoint.start.saturating_sub(overlap)),
        };
        let size = self.options.page_size;
        let asked = if overlap == 1 { size.saturating_add(1) } else { size };
        let page = match order {
            // One listing across the library's kinds, each item of its own.
            Order::ChangedSince(since) => {
                self.source.changed(self.library, since, position.offset(self.source)?, asked)?
            }
            _ => self.source.page(self.library, kind, order, position, asked)?,
        };
        let first_page = self.checkpoint.start == 0 && self.checkpoint.after.is_none();
        if filtered && first_page && self.check_filter_ignored(page.total)? {
            return Ok(());
        }
        if self.checkpoint.server_started_at.is_none() {
            // A source that knew no clock before this answer: the run began
            // at this answer's, or later.
            self.checkpoint.server_started_at = self.source.server_time();
            // A history is never walked whole: its walk stops at stored plays.
            if pass == Pass::Incremental
                && !append_only
                && clock_went_back(&self.state, self.checkpoint.server_started_at)
            {
                log::warn!(
                    "{}/{}: the server's clock is behind where it stood at the last sync; walking whole libraries",
                    self.state.server,
                    self.library.id
                );
                return self.start_full_pass(self.checkpoint.kinds.clone());
            }
        }
        let continues = overlap == 1 && first_id(&page) == self.checkpoint.last_id.as_deref();
        let moved = overlap == 1 && !continues;
        // A history that keeps moving (plays arriving on top) is walked on
        // rather than whole: plays arriving only make entries listed twice.
        let history_moves_on = append_only && self.checkpoint.restarts >= MAX_RESTARTS;
        if moved && pass == Pass::Incremental && !history_moves_on {
            return self.restart_kind(kind);
        }
        let step = Step { kind, pass, filtered, append_only, overlap, size, moved, requests: self.requests() };
        // The entry seen last, asked again, is not walked twice.
        let skip = usize::from(continues);
        if pass == Pass::Full && self.whole_walk.is_none() {
            // A full pass stores every page: it waits for the cadence's
            // commit, the walk moving on at once. A whole walk's pages,
            // whose marks wait in memory, commit only when they change an
            // item (`whole_walk`).
            let entries = page.items.get(skip..).unwrap_or_default();
            before_entries(&step, &mut self.checkpoint, &page, entries);
            after_entries(&step, &mut self.state, &mut self.checkpoint, &page, entries.len(), false);
            let mut entries = page.items;
            entries.drain(..skip.min(entries.len()));
            self.pending.push(PendingPage { kind, entries });
            if self.pending.due(Instant::now()) {
                self.save()?;
            }
            return Ok(());
        }
        let rules = EntryRules { number: self.number, library: self.library, kind, pass, nested: self.nested() };
        let mut whole = self.whole_walk.take();
        let held = &mut whole;
        self.commit_unless_unchanged(move |writer, state, checkpoint| {
            if let Some(whole) = held.as_mut() {
                whole.begin_page(writer, rules.number, rules.nested)?;
            }
            let entries = page.items.get(skip..).unwrap_or_default();
            before_entries(&step, checkpoint, &page, entries);
            // The stop rule is only sound on a sorted listing.
            let cursor = checkpoint.cursors.get(&kind).copied().unwrap_or(i64::MIN);
            let stop_before = (!filtered && !checkpoint.order_broken).then_some(cursor);
            let stored = store_entries(writer, &rules, stop_before, state, checkpoint, entries)?;
            after_entries(&step, state, checkpoint, &page, entries.len(), stored.reached_cursor);
            // A nested walk keeps parents waiting: its pages always commit,
            // but a whole walk's (marks held in memory) only on a change.
            let ending =
                if stored.changed || (rules.nested && held.is_none()) { Ending::Commit } else { Ending::Abort };
            match held.as_mut() {
                Some(whole) => whole.end_page(writer, rules.number, ending),
                None => Ok(ending),
            }
        })?;
        self.whole_walk = whole;
        Ok(())
    }

    /// The listing moved under an incremental walk (an entry before the
    /// walk's position went away, so one after it may never be seen): the
    /// kind is walked again from the top, or, once that has happened
    /// `MAX_RESTARTS` times, the run walks its kinds whole.
    fn restart_kind(&mut self, kind: Kind) -> Result<(), Failure> {
        if self.checkpoint.restarts >= MAX_RESTARTS {
            log::warn!(
                "{}/{}: the {kind} listing keeps moving during the walk; walking whole libraries instead",
                self.state.server,
                self.library.id
            );
            return self.start_full_pass(self.checkpoint.kinds.clone());
        }
        log::info!(
            "{}/{}: the {kind} listing moved during the walk; walking it again",
            self.state.server,
            self.library.id
        );
        let requests = self.requests();
        self.commit(|_, _, checkpoint| {
            checkpoint.restarts = checkpoint.restarts.saturating_add(1);
            checkpoint.start = 0;
            checkpoint.last_id = None;
            checkpoint.counters.shifts = checkpoint.counters.shifts.saturating_add(1);
            checkpoint.counters.pages = checkpoint.counters.pages.saturating_add(1);
            checkpoint.counters.requests = requests;
            Ok(())
        })?;
        Ok(())
    }

    /// Kinds of this pass whose stored count differs from the server's. A
    /// history's never does: the server drops old plays, the store keeps
    /// them.
    pub(super) fn mismatched_kinds(&mut self) -> Result<Vec<Kind>, Failure> {
        if self.append_only() {
            return Ok(Vec::new());
        }
        if self.checkpoint.order_broken {
            log::warn!(
                "{}/{}: the server did not sort by change time; falling back to a full pass",
                self.state.server,
                self.library.id
            );
            return Ok(self.checkpoint.kinds.clone());
        }
        let mut mismatched = Vec::new();
        for &kind in &self.checkpoint.kinds {
            let reported = self.checkpoint.totals.get(&kind).copied();
            let total = match reported {
                Some(total) => Some(total),
                None => self.source.count(self.library, kind)?,
            };
            let local = self.state.count(kind).saturating_add(self.state.unreadable.get(&kind).copied().unwrap_or(0));
            if total != Some(local) {
                // The page's total can be stale by the time a later page was
                // walked; a fresh count settles it before more work is done.
                let fresh = if reported.is_some() { self.source.count(self.library, kind)? } else { total };
                if fresh != Some(local) {
                    mismatched.push(kind);
                }
            }
        }
        self.checkpoint.counters.requests = self.requests();
        Ok(mismatched)
    }
}

/// What moves a walk past a page, whatever its entries stored as.
struct Step {
    kind: Kind,
    pass: Pass,
    filtered: bool,
    append_only: bool,
    /// 1 when the page was asked from the entry seen last.
    overlap: u64,
    size: u32,
    /// The page did not begin with the entry seen last.
    moved: bool,
    requests: u64,
}

/// The checkpoint's bookkeeping that comes before a page's entries: the
/// listing's shifts, a listing found unsorted, the pass's first item.
fn before_entries(step: &Step, checkpoint: &mut Checkpoint, page: &Page, entries: &[Result<Item, BadItem>]) {
    if step.moved || checkpoint.totals.get(&step.kind).is_some_and(|total| Some(*total) != page.total) {
        checkpoint.counters.shifts = checkpoint.counters.shifts.saturating_add(1);
    }
    if step.pass == Pass::Incremental && !step.filtered && !newest_first(entries) {
        checkpoint.order_broken = true;
    }
    if step.pass == Pass::Full && checkpoint.anchor.is_none() {
        checkpoint.anchor = entries.iter().find_map(|entry| entry.as_ref().ok()).map(|item| item.id.clone());
    }
}

/// Moves the checkpoint past a page whose `fresh` entries (those not seen
/// before) were walked: the next position, or the next kind.
fn after_entries(
    step: &Step,
    state: &mut LibraryState,
    checkpoint: &mut Checkpoint,
    page: &Page,
    fresh: usize,
    reached_cursor: bool,
) {
    let kind = step.kind;
    // A filtered listing's total counts the changed items only; the
    // library's count is asked for when the pass ends.
    if let (Some(total), false) = (page.total, step.filtered) {
        checkpoint.totals.insert(kind, total);
    }
    let fresh = u64::try_from(fresh).unwrap_or(u64::MAX);
    checkpoint.start = checkpoint.start.saturating_sub(step.overlap).saturating_add(page.returned());
    // An unsorted history is walked to its end instead: it is never walked
    // whole by a full pass.
    let exhausted = reached_cursor
        || (step.pass == Pass::Incremental && checkpoint.order_broken && !step.append_only)
        || listing_ends(page, fresh, checkpoint.start, step.size);
    if exhausted && step.append_only && !reached_cursor {
        note_gap(state, checkpoint, kind, page);
    }
    if exhausted && step.filtered {
        // The changed listing held every kind: the walk is over.
        checkpoint.kind_index = u32::try_from(checkpoint.kinds.len()).unwrap_or(u32::MAX);
        next_kind_from_start(checkpoint);
    } else if exhausted {
        next_kind(checkpoint);
    } else {
        checkpoint.last_id = page.items.last().and_then(entry_id).map(str::to_string);
        checkpoint.after = match &page.next {
            Next::After(cursor) => Some(cursor.clone()),
            Next::Offset | Next::End => None,
        };
    }
    checkpoint.counters.pages = checkpoint.counters.pages.saturating_add(1);
    checkpoint.counters.requests = step.requests;
}

/// A history's walk ended without reaching its cursor: if plays were stored
/// before and the walk met none of them, the server no longer lists what
/// lies between (Spotify keeps only the last 50 plays). Recorded, shown on
/// the status page and logged, so the user can poll more often.
fn note_gap(state: &mut LibraryState, checkpoint: &Checkpoint, kind: Kind, page: &Page) {
    let counters = &checkpoint.counters;
    let stored_before = state.count(kind) > counters.new;
    let met_stored = counters.unchanged > 0 || counters.changed > 0;
    if !stored_before || met_stored {
        return;
    }
    let before = page.items.iter().filter_map(|entry| entry.as_ref().ok()).map(|item| item.updated_at).min();
    let count = state.gap.map_or(0, |gap| gap.count).saturating_add(1);
    state.gap = Some(Gap { found_at: now_epoch(), before, count });
    log::warn!(
        "{}/{}: every play this poll got is newer than the plays stored before; the server lists only its latest plays, so some may be missing (poll more often)",
        state.server,
        state.library_id
    );
}

/// Moves the checkpoint on to the next kind of the pass.
fn next_kind(checkpoint: &mut Checkpoint) {
    checkpoint.kind_index = checkpoint.kind_index.saturating_add(1);
    next_kind_from_start(checkpoint);
}

/// The walk of the kind at `kind_index` starts from the top.
fn next_kind_from_start(checkpoint: &mut Checkpoint) {
    checkpoint.start = 0;
    checkpoint.after = None;
    checkpoint.last_id = None;
    checkpoint.restarts = 0;
}

/// Counts a stored item in the run's tallies.
pub(super) fn tally(counters: &mut Counters, outcome: Outcome) {
    let counter = match outcome {
        Outcome::New => &mut counters.new,
        Outcome::Changed => &mut counters.changed,
        Outcome::Unchanged => &mut counters.unchanged,
    };
    *counter = counter.saturating_add(1);
}

/// Whether a listing ends with this page, whose `fresh` entries (those not
/// seen before) took the walk `start` entries in: the server said so, or
/// nothing new came, or the total is reached, or (no total) the page came
/// back short.
pub(super) fn listing_ends(page: &Page, fresh: u64, start: u64, size: u32) -> bool {
    match page.next {
        Next::End => true,
        _ if fresh == 0 => true,
        Next::After(_) => false,
        Next::Offset => match page.total {
            Some(total) => start >= total,
            None => fresh < u64::from(size),
        },
    }
}

/// The id of a page entry, readable or not.
fn entry_id(entry: &Result<Item, BadItem>) -> Option<&str> {
    match entry {
        Ok(item) => Some(&item.id),
        Err(bad) => bad.id.as_deref(),
    }
}

fn first_id(page: &Page) -> Option<&str> {
    page.items.first().and_then(entry_id)
}

/// Whether a page's readable items come most recently changed first.
fn newest_first(items: &[Result<Item, BadItem>]) -> bool {
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
