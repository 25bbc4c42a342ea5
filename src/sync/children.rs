//! The children phase of a nested library (Spotify playlists and their
//! entries). After the parents' walk and the sweep, the parents waiting in
//! `pending` (new or changed in this pass) have their children fetched in id
//! order, page by page, each page committed with the `ChildCursor`; the last
//! page drops the children past the end and stores the parent, in the same
//! transaction. A parent whose children the server refuses (403) is stored
//! without them and recorded in `skipped`.

use super::run::{Failure, Run};
use super::sweep::delete_children;
use super::walk::{listing_ends, tally};
use crate::source::ErrorKind;
use crate::store::records::ChildCursor;
use std::sync::atomic::{AtomicBool, Ordering};

impl Run<'_> {
    pub(super) fn children(&mut self, stop: &AtomicBool) -> Result<(), Failure> {
        let number = self.number;
        if self.checkpoint.children.is_none() {
            self.checkpoint.children = Some(ChildCursor::default());
            self.save()?;
        }
        let size = self.options.page_size;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(Failure::Interrupted);
            }
            // The cursor leaves the checkpoint here and returns, advanced,
            // with the page's commit.
            let cursor = self.checkpoint.children.take().unwrap_or_default();
            let parent = match cursor.parent {
                Some(parent) => parent,
                None => match self.store.first_pending(number)? {
                    Some(parent) => parent,
                    None => {
                        self.checkpoint.children = Some(ChildCursor::default());
                        return Ok(());
                    }
                },
            };
            let fetched = match self.source.children(self.library, &parent, cursor.start, size) {
                Ok(page) => Ok(page),
                Err(err) if err.kind == ErrorKind::Rejected => {
                    log::info!("{}/{}: skipped the entries of {parent}: {err}", self.state.server, self.library.id);
                    Err(err.message().to_string())
                }
                Err(err) => return Err(err.into()),
            };
            let requests = self.requests();
            self.commit(move |writer, state, checkpoint| {
                checkpoint.counters.pages = checkpoint.counters.pages.saturating_add(1);
                checkpoint.counters.requests = requests;
                let (last, refused) = match fetched {
                    Ok(page) => {
                        let mut last = cursor.last;
                        for entry in &page.items {
                            match entry {
                                Ok(item) => tally(&mut checkpoint.counters, writer.upsert(number, state, item, false)?),
                                Err(bad) => {
                                    checkpoint.counters.bad = checkpoint.counters.bad.saturating_add(1);
                                    log::warn!(
                                        "{}/{parent}: skipped an unreadable entry: {}",
                                        state.server,
                                        bad.reason
                                    );
                                }
                            }
                        }
                        let start = cursor.start.saturating_add(page.returned());
                        let ends = listing_ends(&page, start, size);
                        // The next page's children sort after the last one
                        // written.
                        if let Some(item) = page.items.into_iter().rev().find_map(Result::ok) {
                            last = Some(item.id);
                        }
                        if !ends {
                            checkpoint.children = Some(ChildCursor { parent: Some(parent), start, last });
                            return Ok(());
                        }
                        (last, None)
                    }
                    Err(reason) => (None, Some(reason)),
                };
                // The parent's listing is complete, or refused: the children
                // past the last one written go, and the parent replaces its
                // stored copy.
                delete_children(writer, number, state, checkpoint, &parent, last.as_deref())?;
                writer.store_pending(number, state, &parent)?;
                match refused {
                    Some(reason) => {
                        state.skipped.insert(parent, reason);
                    }
                    None => {
                        state.skipped.remove(&parent);
                    }
                }
                checkpoint.children = Some(ChildCursor::default());
                Ok(())
            })?;
        }
    }
}
