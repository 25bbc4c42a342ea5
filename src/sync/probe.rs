//! Whether a server's changed-since filter can be trusted
//! (`Strategy::ChangedSince`), checked on answers every incremental run
//! fetches anyway: the count that finds deletions goes through the filter
//! (for a date before any save it must count the whole library), and a
//! changed listing as long as the library is checked against a date ahead.
//! The verdict is kept in `LibraryState::filter`; an outage is never blamed
//! on the filter.

use super::now_epoch;
use super::run::{Failure, Run};
use crate::model::Kind;
use crate::source::{ErrorKind, SourceError};
use crate::store::records::FilterCheck;

/// A save time before any media server existed: a changed-since filter that
/// works counts every item for it. (Day two of the epoch, so no time-zone
/// conversion on the server can take it below the epoch.)
pub(super) const FILTER_PROBE_PAST: i64 = 86_400; // 1970-01-02T00:00:00Z
/// How far ahead of the server's clock the check of a filter that may be
/// ignored asks: a filter that works counts nothing there.
const FILTER_PROBE_AHEAD_SECS: i64 = 366 * 86_400;

/// Where a changed-since pass stands after its closing count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Counted {
    /// The store holds what the server counts: the pass is complete.
    Agrees,
    /// A full pass over some or all kinds was started in this run.
    Reconciling,
}

impl Run<'_> {
    /// Items of the library's kinds the store holds, the unreadable ones the
    /// server lists included: what the server's count must equal.
    pub(super) fn stored_in_library(&self) -> u64 {
        self.library.kinds.iter().fold(0u64, |sum, kind| {
            let unreadable = self.state.unreadable.get(kind).copied().unwrap_or(0);
            sum.saturating_add(self.state.count(*kind)).saturating_add(unreadable)
        })
    }

    /// The end of a changed-since pass: one count across the library's
    /// kinds, through the filter for a date before any save (plainly when
    /// nothing is stored yet: an empty store has nothing to check it on).
    /// Equal to what is stored: nothing was deleted and the filter counts
    /// right. Otherwise the plain count tells a deletion (the plain count
    /// agrees with the filtered one; the per-kind counts then name the kinds
    /// to reconcile) from a filter that leaves items out (recorded
    /// `Unusable`, and every kind reconciled now).
    pub(super) fn close_changed_pass(&mut self) -> Result<Counted, Failure> {
        let stored = self.stored_in_library();
        let saved_since = (stored > 0).then_some(FILTER_PROBE_PAST);
        let Some(filtered) = self.count_through_filter(saved_since)? else {
            return Ok(Counted::Reconciling);
        };
        self.checkpoint.counters.requests = self.requests();
        if filtered == Some(stored) {
            if saved_since.is_some() {
                self.state.filter = FilterCheck::Works { checked_at: now_epoch() };
            }
            return Ok(Counted::Agrees);
        }
        if saved_since.is_some() {
            let plain = self.source.count_library(self.library, None)?;
            // Asked again, a filter that works gives what the plain count
            // gave: the library changed between the two counts.
            let settled = plain == filtered || {
                let Some(again) = self.count_through_filter(saved_since)? else {
                    return Ok(Counted::Reconciling);
                };
                again == plain
            };
            if !settled {
                let shown = |count: Option<u64>| count.map_or_else(|| "no".to_string(), |count| count.to_string());
                let reason = format!(
                    "for a date before any save it counts {} items where the library holds {}",
                    shown(filtered),
                    shown(plain)
                );
                return self.filter_unusable(reason);
            }
        }
        let mismatched = self.mismatched_kinds()?;
        if mismatched.is_empty() {
            // The kinds agree one by one: the library changed while it was
            // counted, and the next run counts again.
            return Ok(Counted::Agrees);
        }
        log::info!(
            "{}/{}: counts differ from the server for {}; reconciling with a full pass",
            self.state.server,
            self.library.id,
            super::report::kind_list(&mismatched)
        );
        self.start_full_pass(mismatched)?;
        Ok(Counted::Reconciling)
    }

    /// The library's count through the filter (or plainly, with no date);
    /// `None` when the filter failed while the server answers otherwise
    /// (`filter_failed` has started the full reconcile).
    fn count_through_filter(&mut self, saved_since: Option<i64>) -> Result<Option<Option<u64>>, Failure> {
        match self.source.count_library(self.library, saved_since) {
            Ok(count) => Ok(Some(count)),
            Err(err) if saved_since.is_some() && matches!(err.kind, ErrorKind::Unavailable | ErrorKind::Rejected) => {
                let kind = self.library.kinds.first().copied().unwrap_or(Kind::Movie);
                self.filter_failed(kind, err)?;
                Ok(None)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The first page of a changed listing counts `listed` items, as many as
    /// the library holds: either everything changed, or the server ignores
    /// the filter. One count for a date a year ahead of the server's clock
    /// (where a filter that works counts nothing) tells which; an ignored
    /// filter is recorded `Unusable` and the run reconciles with a full pass.
    /// Returns whether it did.
    pub(super) fn check_filter_ignored(&mut self, listed: Option<u64>) -> Result<bool, Failure> {
        let stored = self.stored_in_library();
        if stored == 0 || listed.is_none_or(|listed| listed < stored) {
            return Ok(false);
        }
        let server_now = self.source.server_time().unwrap_or_else(now_epoch);
        let ahead = server_now.saturating_add(FILTER_PROBE_AHEAD_SECS);
        let Some(counted) = self.count_through_filter(Some(ahead))? else {
            return Ok(true);
        };
        if counted == Some(0) {
            return Ok(false);
        }
        let counted = counted.map_or_else(|| "no".to_string(), |count| count.to_string());
        self.filter_unusable(format!(
            "for a date a year ahead of the server's clock it counts {counted} items, not 0"
        ))?;
        Ok(true)
    }

    /// Records the filter `Unusable` for `reason` and reconciles every kind
    /// with a full pass now.
    fn filter_unusable(&mut self, reason: String) -> Result<Counted, Failure> {
        log::warn!(
            "{}/{}: the server's changed-since filter cannot be relied on ({reason}); reconciling with a full pass",
            self.state.server,
            self.library.id
        );
        self.state.filter = FilterCheck::Unusable { checked_at: now_epoch(), reason };
        self.start_full_pass(self.library.kinds.clone())?;
        Ok(Counted::Reconciling)
    }

    /// The filtered listing failed in the middle of an incremental pass. If
    /// the server still answers an unfiltered count, the filter is to blame:
    /// remember that and reconcile with a full pass now. Otherwise it is an
    /// outage, and the run fails as usual, keeping its checkpoint.
    pub(super) fn filter_failed(&mut self, kind: Kind, err: SourceError) -> Result<(), Failure> {
        match self.source.count(self.library, kind) {
            Ok(_) => {}
            Err(count_err) if count_err.kind == ErrorKind::Unauthorized => return Err(count_err.into()),
            Err(_) => return Err(err.into()),
        }
        log::warn!(
            "{}/{}: the changed-since listing failed ({err}) while the server answers otherwise; reconciling with a full pass",
            self.state.server,
            self.library.id
        );
        self.state.filter = FilterCheck::Unusable { checked_at: now_epoch(), reason: format!("it fails: {err}") };
        self.start_full_pass(self.library.kinds.clone())
    }
}
