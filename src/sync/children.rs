//! The children phase of a nested library (Spotify playlists and their
//! entries). After the parents' walk and the sweep, the parents waiting in
//! `pending` (new or changed in this pass) have their children fetched in id
//! order, page by page, each page committed with the `ChildCursor`; a
//! parent whose listing is complete, or refused (403), moves to `fetched`.
//! Then the mass-deletion guard weighs the children those complete
//! listings leave behind, and only then is each parent's tail deleted and
//! its new version (its new `snapshot_id`) stored. A page that is empty or
//! short while its total says more fails in the source as an outage: it
//! never ends a listing. A refused parent keeps its stored children.

use super::report::kind_list;
use super::run::{Failure, Run};
use super::walk::{listing_ends, tally};
use crate::source::ErrorKind;
use crate::store::records::ChildCursor;
use std::sync::atomic::{AtomicBool, Ordering};

impl Run<'_> {
    pub(super) fn children(&mut self, stop: &AtomicBool) -> Result<(), Failure> {
        if self.checkpoint.children.is_none() {
            self.checkpoint.children = Some(ChildCursor::default());
            self.save()?;
        }
        while self.fetch_children(stop)? {}
        if !self.checkpoint.children_approved {
            self.approve_children()?;
        }
        self.complete_children(stop)
    }

    /// Fetches one page of the children of the parent being fetched (or of
    /// the next one waiting), committed with the advanced cursor. Returns
    /// whether there is more to fetch.
    fn fetch_children(&mut self, stop: &AtomicBool) -> Result<bool, Failure> {
        if stop.load(Ordering::Relaxed) {
            return Err(Failure::Interrupted);
        }
        let number = self.number;
        let size = self.options.page_size;
        // The cursor leaves the checkpoint here and returns, advanced, with
        // the page's commit.
        let cursor = self.checkpoint.children.take().unwrap_or_default();
        let parent = match cursor.parent {
            Some(parent) => parent,
            None => match self.store.first_pending(number)? {
                Some(parent) => parent,
                None => {
                    self.checkpoint.children = Some(ChildCursor::default());
                    return Ok(false);
                }
            },
        };
        let fetched = match self.source.children(self.library, &parent, cursor.start, size) {
            Ok(page) => Ok(page),
            Err(err) if err.kind == ErrorKind::Rejected => {
                log::info!("{}/{}: cannot read the entries of {parent}: {err}", self.state.server, self.library.id);
                Err(err.message().to_string())
            }
            Err(err) => {
                self.checkpoint.children = Some(ChildCursor { parent: Some(parent), ..cursor });
                return Err(err.into());
            }
        };
        let requests = self.requests();
        self.commit(move |writer, state, checkpoint| {
            checkpoint.counters.pages = checkpoint.counters.pages.saturating_add(1);
            checkpoint.counters.requests = requests;
            let page = match fetched {
                Ok(page) => page,
                Err(reason) => {
                    writer.mark_fetched(number, &parent, None, Some(&reason))?;
                    checkpoint.children = Some(ChildCursor::default());
                    return Ok(());
                }
            };
            for entry in &page.items {
                match entry {
                    Ok(item) => tally(&mut checkpoint.counters, writer.upsert(number, state, item, false)?),
                    Err(bad) => {
                        checkpoint.counters.bad = checkpoint.counters.bad.saturating_add(1);
                        log::warn!("{}/{parent}: skipped an unreadable entry: {}", state.server, bad.reason);
                    }
                }
            }
            let start = cursor.start.saturating_add(page.returned());
            let ends = listing_ends(&page, page.returned(), start, size);
            // The next page's children sort after the last one written.
            let last = page.items.into_iter().rev().find_map(Result::ok).map(|item| item.id).or(cursor.last);
            if ends {
                writer.mark_fetched(number, &parent, last.as_deref(), None)?;
                checkpoint.children = Some(ChildCursor::default());
            } else {
                checkpoint.children = Some(ChildCursor { parent: Some(parent), start, last });
            }
            Ok(())
        })?;
        Ok(true)
    }

    /// The guard over the children phase: deleting more than
    /// `max_delete_share` of the stored children (the tails the complete
    /// listings leave) is refused unless forced, and nothing is deleted.
    fn approve_children(&mut self) -> Result<(), Failure> {
        let tails = self.store.fetched_tails(self.number)?;
        let parents = self.stored_of_kinds();
        let children = self.state.total().saturating_sub(parents);
        if self.beyond_guard(tails, children) && !self.checkpoint.forced {
            let what = format!("children of {} items", kind_list(&self.checkpoint.kinds));
            return Err(self.mass_deletion(tails, children, &what));
        }
        self.checkpoint.children_approved = true;
        self.save()
    }
}
