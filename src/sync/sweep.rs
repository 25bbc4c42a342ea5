//! The only code that deletes from the mirror. After a complete full walk,
//! the items the walk did not see are deleted, once the mass-deletion guard
//! approved it, with their children in nested libraries; and the children
//! phase drops a parent's children past the end of its shortened listing
//! (`delete_children`). A failed run never gets here; a resumed sweep is
//! safe, since deleting unseen items again is a no-op.

use super::report::kind_list;
use super::run::{Failure, Run};
use crate::store::records::{Checkpoint, LibraryState};
use crate::store::{StoreError, Writer};

/// Unseen items deleted per write transaction.
const SWEEP_BATCH: usize = 500;
/// Unseen items counted per read, for the guard.
const COUNT_BATCH: usize = 10_000;

impl Run<'_> {
    /// After a complete full walk: checks the mass-deletion guard, deletes
    /// what the walk did not see, and recounts.
    pub(super) fn sweep(&mut self) -> Result<(), Failure> {
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
        // The counters are maintained per change; the walk that just ended
        // is a cheap moment to replace them with the ground truth.
        let counts = self.store.recount(number)?;
        let (state, checkpoint) = (&mut self.state, &self.checkpoint);
        for kind in &checkpoint.kinds {
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
        self.save()
    }

    /// The mass-deletion guard: a sweep that would delete more than
    /// `max_delete_share` of the stored items of the pass's kinds is refused
    /// unless forced, and nothing is deleted. An approval is committed, so a
    /// resumed sweep does not ask again.
    fn approve_sweep(&mut self) -> Result<(), Failure> {
        let kinds = &self.checkpoint.kinds;
        let unseen = self.count_unseen()?;
        let stored: u64 = kinds.iter().map(|kind| self.state.count(*kind)).sum();
        let share = if stored == 0 { 0.0 } else { unseen as f64 / stored as f64 };
        if unseen > 0 && share > self.options.max_delete_share && !self.checkpoint.forced {
            let message = format!(
                "refusing to delete {unseen} of {stored} stored {} items ({:.0}% > max_delete_share {:.0}%): the server may be missing a drive or a library; nothing was deleted. If the deletions are real, run `mediasync sync --server {} --force`",
                kind_list(kinds),
                share * 100.0,
                self.options.max_delete_share * 100.0,
                self.state.server,
            );
            return Err(Failure::MassDeletion(message));
        }
        self.checkpoint.sweep_approved = true;
        self.save()
    }

    fn count_unseen(&self) -> Result<u64, Failure> {
        let mut total = 0u64;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (mut keys, complete) =
                self.store.unseen(self.number, &self.checkpoint.kinds, after.as_deref(), COUNT_BATCH)?;
            total = total.saturating_add(keys.len() as u64);
            if complete {
                return Ok(total);
            }
            after = keys.pop();
        }
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
    checkpoint.counters.deleted =
        checkpoint.counters.deleted.saturating_add(writer.delete_children_after(number, state, parent, last)?);
    Ok(())
}
