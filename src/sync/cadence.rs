//! The commit cadence of a full pass: its pages wait in memory and commit
//! together, with the checkpoint after the last of them, once ~2 s have
//! passed since the run's last commit or ~1,000 items wait, and always
//! before the walk of the pass ends or the run stops. Fewer commits write
//! fewer copies of the B-tree's upper pages; a crash costs at most the
//! pages of one interval, fetched again.

use crate::model::{Item, Kind};
use crate::source::BadItem;
use std::time::{Duration, Instant};

/// A commit is due once this much time has passed since the last one.
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(2);
/// A commit is due once this many entries wait. With the page that brings
/// them over it, this bounds what waits in memory: fewer than
/// `COMMIT_ITEMS + page_size` entries.
pub const COMMIT_ITEMS: usize = 1_000;

/// The entries of one fetched page still to store, as the walk kept them
/// (the entry seen last on the page before already left out).
pub(super) struct PendingPage {
    pub(super) kind: Kind,
    pub(super) entries: Vec<Result<Item, BadItem>>,
}

/// The pages a full pass fetched since the run's last commit.
pub(super) struct Pending {
    pages: Vec<PendingPage>,
    entries: usize,
    last_commit: Instant,
}

impl Pending {
    pub(super) fn new(now: Instant) -> Pending {
        Pending { pages: Vec::new(), entries: 0, last_commit: now }
    }

    pub(super) fn push(&mut self, page: PendingPage) {
        self.entries = self.entries.saturating_add(page.entries.len());
        self.pages.push(page);
    }

    /// Whether the waiting pages must commit now.
    pub(super) fn due(&self, now: Instant) -> bool {
        !self.pages.is_empty()
            && (self.entries >= COMMIT_ITEMS || now.saturating_duration_since(self.last_commit) >= COMMIT_INTERVAL)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// The waiting pages, oldest first, for the commit that stores them.
    pub(super) fn take(&mut self) -> Vec<PendingPage> {
        self.entries = 0;
        std::mem::take(&mut self.pages)
    }

    /// A commit of the run succeeded at `now`.
    pub(super) fn committed(&mut self, now: Instant) {
        self.last_commit = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(entries: usize) -> PendingPage {
        let bad = || Err(BadItem { id: None, reason: "test".into() });
        PendingPage { kind: Kind::Movie, entries: (0..entries).map(|_| bad()).collect() }
    }

    #[test]
    fn due_by_size_or_time_never_when_empty() {
        let start = Instant::now();
        let mut pending = Pending::new(start);
        let later = start + COMMIT_INTERVAL;
        assert!(!pending.due(later), "nothing waits: nothing to commit");
        pending.push(page(COMMIT_ITEMS - 1));
        assert!(!pending.due(start));
        assert!(pending.due(later), "the interval passed");
        pending.push(page(1));
        assert!(pending.due(start), "enough entries wait");
        assert_eq!(pending.take().len(), 2);
        assert!(pending.is_empty() && !pending.due(later));
        pending.committed(later);
        pending.push(page(1));
        assert!(!pending.due(later) && pending.due(later + COMMIT_INTERVAL));
    }
}
