//! Whether a server's changed-since filter can be trusted
//! (`Strategy::ChangedSince`): probed before an incremental pass relies on
//! it, and asked again when the filtered listing fails mid-pass. The verdict
//! is kept in `LibraryState::filter`; an outage is never blamed on the
//! filter.

use super::run::{Failure, Run};
use super::{Options, now_epoch, plan};
use crate::model::{Kind, LibraryInfo};
use crate::source::{ErrorKind, Order, Position, Source, SourceError};
use crate::store::records::{FilterCheck, LibraryState};

/// A save time before any media server existed: a changed-since filter that
/// works counts every item for it. (Day two of the epoch, so no time-zone
/// conversion on the server can take it below the epoch.)
pub(super) const FILTER_PROBE_PAST: i64 = 86_400; // 1970-01-02T00:00:00Z
/// How far ahead of the server's clock the second probe asks: a filter that
/// works counts nothing there.
const FILTER_PROBE_AHEAD_SECS: i64 = 366 * 86_400;

/// Probes the changed-since filter unless it was found to work within
/// `full_every`: a filter that works counts every item of a kind for a date
/// before any save and none for a date ahead of the server's clock. Records
/// the verdict in `state` (committed with the run's first checkpoint) and
/// returns why the filter cannot be used, if it cannot. A count that moved
/// while probing (the library is changing) gives no verdict, only a full
/// pass this time. An outage is returned as a failure, not blamed on the
/// filter.
pub(super) fn check_filter(
    source: &dyn Source,
    library: &LibraryInfo,
    options: &Options,
    state: &mut LibraryState,
    server_now: i64,
    now: i64,
) -> Result<Option<String>, Failure> {
    if let FilterCheck::Works { checked_at } = state.filter {
        if plan::within(checked_at, options.full_every, now) {
            return Ok(None);
        }
    }
    for kind in &library.kinds {
        let Some(total) = source.count(library, *kind)? else {
            continue;
        };
        if total == 0 {
            continue;
        }
        let probes = [
            (FILTER_PROBE_PAST, total, "a date before any save"),
            (server_now.saturating_add(FILTER_PROBE_AHEAD_SECS), 0, "a date a year ahead of the server's clock"),
        ];
        for (since, wanted, label) in probes {
            let problem = match source.page(library, *kind, Order::ChangedSince(since), Position::Offset(0), 0) {
                Ok(page) if page.total == Some(wanted) => continue,
                Ok(_) if source.count(library, *kind)? != Some(total) => {
                    // The library changed between the counts: no verdict on
                    // the filter, and no trusting it this time either.
                    return Ok(Some(format!("the {kind} count changed while the filter was probed")));
                }
                Ok(page) => format!(
                    "for {label} it counts {} {kind} items where {wanted} were expected",
                    page.total.map_or_else(|| "no".to_string(), |got| got.to_string())
                ),
                Err(err) if err.kind == ErrorKind::Unauthorized => return Err(err.into()),
                Err(err) => {
                    // The server answered the count a moment ago; if it
                    // still does, the filter is what it cannot take.
                    source.count(library, *kind)?;
                    format!("it fails: {err}")
                }
            };
            state.filter = FilterCheck::Unusable { checked_at: now, reason: problem.clone() };
            return Ok(Some(problem));
        }
        state.filter = FilterCheck::Works { checked_at: now };
        return Ok(None);
    }
    // Nothing to probe on: an empty library has no edits to miss, and
    // additions show in the counts.
    Ok(None)
}

impl Run<'_> {
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
