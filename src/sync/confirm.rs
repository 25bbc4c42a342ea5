//! Absence from a walk is a hint, not a proof: after a complete full walk,
//! the items it did not see are looked up on the server, kind by kind, in
//! batches of `LibraryInfo::lookup_batch` (one request each), before the
//! sweep may delete anything. What the server still holds is refreshed (or
//! kept as stored) and marked seen, so the sweep keeps it; what is left
//! unseen is confirmed gone. Each batch commits with the cursor, so a run
//! stopped halfway resumes at the next batch; a failed lookup deletes
//! nothing and fails the run.

use super::report::kind_list;
use super::run::{Failure, Run};
use super::walk::tally;
use crate::source::Present;
use crate::store::records::{ConfirmCursor, RefusedDeletion};

impl Run<'_> {
    /// Looks up every unseen item of the pass's kinds, unless done already.
    pub(super) fn confirm(&mut self) -> Result<(), Failure> {
        if self.checkpoint.confirm.is_none() {
            self.refuse_an_empty_walk()?;
        }
        let number = self.number;
        let nested = self.nested();
        let batch = usize::try_from(self.library.lookup_batch.max(1)).unwrap_or(1);
        loop {
            let cursor = self.checkpoint.confirm.clone().unwrap_or_default();
            let Some(kind) =
                usize::try_from(cursor.kind_index).ok().and_then(|index| self.checkpoint.kinds.get(index)).copied()
            else {
                return Ok(());
            };
            let ids = self.store.unseen_ids(number, kind, cursor.after.as_deref(), batch)?;
            let Some(last) = ids.last().cloned() else {
                let next = ConfirmCursor { kind_index: cursor.kind_index.saturating_add(1), after: None };
                self.checkpoint.confirm = Some(next);
                self.save()?;
                continue;
            };
            let present = self.source.lookup(self.library, kind, &ids, self.checkpoint.anchor.as_deref())?;
            let requests = self.requests();
            self.commit(|writer, state, checkpoint| {
                for found in &present {
                    if !ids.iter().any(|id| id == found.id()) {
                        continue;
                    }
                    match found {
                        Present::Item(item) if item.kind == kind => {
                            let outcome = if nested {
                                writer.upsert_parent(number, item)?
                            } else {
                                writer.upsert(number, state, item, true)?
                            };
                            tally(&mut checkpoint.counters, outcome);
                        }
                        _ => {
                            writer.mark_seen_id(number, found.id())?;
                        }
                    }
                    checkpoint.counters.kept = checkpoint.counters.kept.saturating_add(1);
                }
                checkpoint.confirm = Some(ConfirmCursor { kind_index: cursor.kind_index, after: Some(last) });
                checkpoint.counters.requests = requests;
                Ok(())
            })?;
            if !present.is_empty() {
                log::info!(
                    "{}/{}: {} {kind} items the walk missed are still on the server (the listing moved); kept",
                    self.state.server,
                    self.library.id,
                    present.len()
                );
            }
        }
    }

    /// A walk that saw nothing at all while items are stored: the server
    /// lists none of them (a drive or a library missing), and there is no
    /// item to look the others up beside. Unless forced, that is refused
    /// before asking about each one, as the guard would refuse it after.
    fn refuse_an_empty_walk(&self) -> Result<(), Failure> {
        if self.checkpoint.anchor.is_some() || self.checkpoint.forced {
            return Ok(());
        }
        let unseen = self.count_unseen()?;
        let stored = self.stored_of_pass();
        if unseen == 0 || !self.beyond_guard(unseen, stored) {
            return Ok(());
        }
        Err(self.mass_deletion(unseen, stored, &format!("{} items", kind_list(&self.checkpoint.kinds))))
    }

    /// Whether deleting `doomed` of `stored` items exceeds `max_delete_share`.
    pub(super) fn beyond_guard(&self, doomed: u64, stored: u64) -> bool {
        #[allow(clippy::cast_precision_loss)] // a share: item counts far below 2^52
        let share = if stored == 0 { 0.0 } else { doomed as f64 / stored as f64 };
        doomed > 0 && share > self.options.max_delete_share
    }

    /// The guard's refusal to delete `doomed` of `stored` `what` ("movie
    /// items"): nothing is deleted, the message says why and how to allow
    /// it.
    pub(super) fn mass_deletion(&self, doomed: u64, stored: u64, what: &str) -> Failure {
        #[allow(clippy::cast_precision_loss)] // a share: item counts far below 2^52
        let percent = if stored == 0 { 100.0 } else { doomed as f64 * 100.0 / stored as f64 };
        let message = format!(
            "refusing to delete {doomed} of {stored} stored {what} ({percent:.0}% > max_delete_share {:.0}%): the server may be missing a drive or a library; nothing was deleted. If the deletions are real, run `mediasync sync --server {} --force` (or press \"Allow the deletions\" on the status page)",
            self.options.max_delete_share * 100.0,
            self.state.server,
        );
        Failure::MassDeletion(message, RefusedDeletion { items: doomed, stored })
    }
}
