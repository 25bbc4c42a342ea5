//! The whole walk of a small listing with no change marker (Spotify's
//! followed artists and playlists, `Strategy::Unordered`: every run is a
//! full pass). Its seen marks are held in memory: a page that changes no
//! item commits nothing, one that does commits the marks held so far with
//! it, so a stored checkpoint never runs ahead of the stored marks. At the
//! walk's end, a walk that saw every stored item writes nothing and skips
//! the lookup and the sweep; one that did not writes its marks in one
//! commit, and the lookup confirms what is gone before the sweep deletes.

use super::run::{Failure, Run};
use crate::store::{Ending, HeldMarks, MarksOfThePass, StoreError, Writer};

/// Marks held in memory at most (an ordinal in a `BTreeSet`, well under
/// 1 MiB in all): past this, a page commits them as a page that changed an
/// item does. A user's followed artists and playlists are far fewer.
pub(super) const MAX_HELD_MARKS: usize = 20_000;

/// What the store's seen bitmap holds for the library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StoredMarks {
    /// None of this pass's marks yet: the pass has not committed, and what
    /// is stored (marks, waiting parents) is an abandoned pass's, cleared
    /// by this pass's first commit.
    Stale,
    /// This pass's marks up to its stored checkpoint.
    OfThisPass,
}

pub(super) struct WholeWalk {
    pub(super) marks: HeldMarks,
    pub(super) stored: StoredMarks,
}

impl WholeWalk {
    pub(super) fn new(stored: StoredMarks) -> WholeWalk {
        WholeWalk { marks: HeldMarks::default(), stored }
    }

    /// Before a page's work in its transaction: marks go to memory, and an
    /// abandoned pass's marks and waiting parents are cleared (undone with
    /// the transaction if the page changes nothing).
    pub(super) fn begin_page(&mut self, writer: &mut Writer<'_>, number: u32, nested: bool) -> Result<(), StoreError> {
        writer.hold_marks(std::mem::take(&mut self.marks));
        if self.stored == StoredMarks::Stale {
            writer.clear_seen(number)?;
            if nested {
                writer.clear_pending(number)?;
            }
        }
        Ok(())
    }

    /// After a page's work: a page that commits (it changed an item, or
    /// too many marks are held) writes every held mark with it.
    pub(super) fn end_page(
        &mut self,
        writer: &mut Writer<'_>,
        number: u32,
        ending: Ending,
    ) -> Result<Ending, StoreError> {
        let marks = writer.release_marks();
        if ending == Ending::Abort && marks.len() <= MAX_HELD_MARKS {
            self.marks = marks;
            return Ok(Ending::Abort);
        }
        writer.write_marks(number, &marks)?;
        self.stored = StoredMarks::OfThisPass;
        Ok(Ending::Commit)
    }
}

impl Run<'_> {
    /// The end of a whole walk: skips the lookup and the sweep when the
    /// walk saw every stored item of its kinds (nothing written), else
    /// writes the held marks in one commit and sweeps.
    pub(super) fn settle_whole_walk(&mut self, whole: WholeWalk) -> Result<(), Failure> {
        let number = self.number;
        let marks = match whole.stored {
            StoredMarks::Stale => MarksOfThePass::Held(&whole.marks),
            StoredMarks::OfThisPass => MarksOfThePass::HeldAndStored(&whole.marks),
        };
        let all_seen = !self.store.any_unseen(number, &self.checkpoint.kinds, marks)?;
        // Parents an abandoned pass left waiting are cleared before the
        // children phase, which would fetch them.
        let stale_parents =
            whole.stored == StoredMarks::Stale && self.nested() && self.store.has_waiting_parents(number)?;
        if all_seen && !stale_parents {
            return self.recount();
        }
        let nested = self.nested();
        self.commit(|writer, _, _| {
            if whole.stored == StoredMarks::Stale {
                writer.clear_seen(number)?;
                if nested {
                    writer.clear_pending(number)?;
                }
            }
            writer.write_marks(number, &whole.marks)
        })?;
        self.sweep()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Item, Kind};
    use crate::store::Store;

    /// A store with `count` artists, and a page's transaction marking them
    /// all seen through a whole walk: how it ends, and what is stored.
    fn page_marking(count: u32) -> (Ending, WholeWalk, Store, u32) {
        let store = Store::in_memory().unwrap();
        let (number, mut state) = store.library("music", "artists", "Followed Artists").unwrap();
        let ids: Vec<String> = (0..count).map(|n| format!("artist{n:06}")).collect();
        store
            .write(|writer| {
                for id in &ids {
                    writer.upsert(number, &mut state, &Item::new(id.as_str(), Kind::Artist, "An artist", 7), false)?;
                }
                writer.put_state(number, &state)
            })
            .unwrap();
        let mut whole = WholeWalk::new(StoredMarks::OfThisPass);
        let ending = store
            .write_unless_unchanged(|writer| {
                whole.begin_page(writer, number, false)?;
                for id in &ids {
                    writer.mark_seen_id(number, id)?;
                }
                let ending = whole.end_page(writer, number, Ending::Abort)?;
                Ok((ending, ending))
            })
            .unwrap();
        (ending, whole, store, number)
    }

    #[test]
    fn a_page_that_changed_nothing_keeps_its_marks_in_memory_up_to_the_bound() {
        let (ending, whole, store, number) = page_marking(300);
        assert_eq!(ending, Ending::Abort);
        assert_eq!(whole.marks.len(), 300);
        assert!(store.any_unseen(number, &[Kind::Artist], MarksOfThePass::Stored).unwrap(), "nothing was written");
        assert!(!store.any_unseen(number, &[Kind::Artist], MarksOfThePass::Held(&whole.marks)).unwrap());
    }

    #[test]
    fn past_the_bound_a_page_that_changed_nothing_commits_its_marks() {
        let count = u32::try_from(MAX_HELD_MARKS).unwrap() + 1;
        let (ending, whole, store, number) = page_marking(count);
        assert_eq!(ending, Ending::Commit);
        assert!(whole.marks.is_empty());
        assert_eq!(whole.stored, StoredMarks::OfThisPass);
        assert!(!store.any_unseen(number, &[Kind::Artist], MarksOfThePass::Stored).unwrap(), "every mark is stored");
    }
}
