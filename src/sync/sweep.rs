//! The full pass's deletions (a notice's few items are deleted by
//! `targeted`, on a lookup's word too). After a complete full walk
//! and the lookup of what it did not see (`confirm`), the items still unseen
//! are confirmed gone: the mass-deletion guard weighs them (with their
//! children in nested libraries), then they are deleted in batches. After
//! the children phase and its guard, `complete_children` drops the entries
//! past the end of each parent's complete, shortened listing. A failed run
//! never gets here; a resumed sweep is safe, since deleting unseen items
//! again is a no-op.

use super::Signals;
use super::report::kind_list;
use super::run::{Failure, Run};
use crate::store::records::{Checkpoint, LibraryState};
use crate::store::{StoreError, Writer};

/// Unseen items deleted per write transaction.
const SWEEP_BATCH: usize = 500;
/// Unseen items counted per read, for the guard.
const COUNT_BATCH: usize = 10_000;

impl Run<'_> {
    /// After a complete full walk: looks up what the walk did not see, checks
    /// the mass-deletion guard against what is confirmed gone, deletes it,
    /// and recounts.
    pub(super) fn sweep(&mut self) -> Result<(), Failure> {
        self.confirm()?;
        if !self.checkpoint.sweep_approved {
            self.approve_sweep()?;
        }
        let number = self.number;
        let nested = self.nested();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (mut keys, complete) =
                self.store.unseen(number, &self.checkpoint.kinds, after.as_deref(), SWEEP_BATCH)?;
            if !keys.is_empty() {
                self.commit(|writer, state, checkpoint| {
                    for key in &keys {
                        if writer.delete_key(state, key)? {
                            checkpoint.counters.deleted = checkpoint.counters.deleted.saturating_add(1);
                            if nested {
                                let parent = String::from_utf8_lossy(key.get(4..).unwrap_or_default()).into_owned();
                                delete_children(writer, number, state, checkpoint, &parent, None)?;
                                state.skipped.remove(&parent);
                            }
                        }
                    }
                    Ok(())
                })?;
            }
            if complete {
                break;
            }
            after = keys.pop();
        }
        self.recount()?;
        self.save()
    }

    /// Replaces the counts and newest change times of the pass's kinds,
    /// maintained per change, with the ground truth (a newest time stamped
    /// by a wrong clock goes with its item), and the unreadable entries with
    /// this pass's; in memory, for the next commit.
    pub(super) fn recount(&mut self) -> Result<(), Failure> {
        let number = self.number;
        let tallies = self.store.recount(number)?;
        let (state, checkpoint) = (&mut self.state, &self.checkpoint);
        for kind in &checkpoint.kinds {
            match tallies.get(kind) {
                Some(tally) => {
                    state.counts.insert(*kind, tally.count);
                    state.newest.insert(*kind, tally.newest);
                }
                None => {
                    state.counts.remove(kind);
                    state.newest.remove(kind);
                }
            }
            let unstored = checkpoint.unstored.get(kind).copied().unwrap_or(0);
            if unstored > 0 {
                state.unreadable.insert(*kind, unstored);
            } else {
                state.unreadable.remove(kind);
            }
        }
        Ok(())
    }

    /// The mass-deletion guard: deleting more than `max_delete_share` of the
    /// stored items of the pass's kinds (in a nested library, of all its
    /// items, counting the children that go with a deleted parent) is
    /// refused unless forced, and nothing is deleted. An approval is
    /// committed, so a resumed sweep does not ask again.
    fn approve_sweep(&mut self) -> Result<(), Failure> {
        let mut doomed = self.count_unseen()?;
        if self.nested() {
            doomed = doomed.saturating_add(self.store.children_of_unseen(self.number, &self.checkpoint.kinds)?);
        }
        let stored = self.stored_of_pass();
        if self.beyond_guard(doomed, stored) && !self.checkpoint.forced {
            return Err(self.mass_deletion(doomed, stored, &format!("{} items", kind_list(&self.checkpoint.kinds))));
        }
        self.checkpoint.sweep_approved = true;
        self.save()
    }

    /// The stored items the guard weighs deletions against: those of the
    /// pass's kinds, and in a nested library every item (parents and
    /// children).
    pub(super) fn stored_of_pass(&self) -> u64 {
        if self.nested() { self.state.total() } else { self.stored_of_kinds() }
    }

    /// The stored items of the pass's kinds.
    pub(super) fn stored_of_kinds(&self) -> u64 {
        self.checkpoint.kinds.iter().map(|kind| self.state.count(*kind)).fold(0, u64::saturating_add)
    }

    pub(super) fn count_unseen(&self) -> Result<u64, Failure> {
        let mut total = 0u64;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (mut keys, complete) =
                self.store.unseen(self.number, &self.checkpoint.kinds, after.as_deref(), COUNT_BATCH)?;
            total = total.saturating_add(u64::try_from(keys.len()).unwrap_or(u64::MAX));
            if complete {
                return Ok(total);
            }
            after = keys.pop();
        }
    }
}

impl Run<'_> {
    /// Stores the parents whose children are fetched, one per commit: each
    /// one's tail (the children its complete listing no longer has) goes,
    /// and its new version replaces the stored copy. Runs after the
    /// children's guard approved.
    pub(super) fn complete_children(&mut self, signals: Signals<'_>) -> Result<(), Failure> {
        let number = self.number;
        while let Some(parent) = self.store.first_fetched(number)? {
            signals.check()?;
            self.commit(|writer, state, checkpoint| {
                let deleted = writer.complete_fetched(number, state, &parent)?;
                checkpoint.counters.deleted = checkpoint.counters.deleted.saturating_add(deleted);
                Ok(())
            })?;
        }
        Ok(())
    }
}

/// Deletes a parent's children listed after `last` (all of them when
/// `None`): the tail its shortened listing no longer has, or every child of
/// a deleted parent. Counted in the run's `deleted`.
pub(super) fn delete_children(
    writer: &mut Writer<'_>,
    number: u32,
    state: &mut LibraryState,
    checkpoint: &mut Checkpoint,
    parent: &str,
    last: Option<&str>,
) -> Result<(), StoreError> {
    let deleted = writer.delete_children_after(number, state, parent, last)?;
    checkpoint.counters.deleted = checkpoint.counters.deleted.saturating_add(deleted);
    Ok(())
}
