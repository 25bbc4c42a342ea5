//! Storing a walked page's entries in a write transaction: each readable
//! item upserted (a full pass marks it seen, a nested library keeps it
//! waiting for its children) and tallied, an unreadable one counted and
//! logged. One place for a page committed at once (an incremental walk's)
//! and for the pages a full pass's commit cadence kept waiting.

use super::cadence::PendingPage;
use super::walk::tally;
use crate::model::{Item, Kind, LibraryInfo};
use crate::source::BadItem;
use crate::store::records::{Checkpoint, LibraryState, Pass};
use crate::store::{Outcome, StoreError, Writer};

/// How a library's entries of one kind are stored.
pub(super) struct EntryRules<'a> {
    pub(super) number: u32,
    pub(super) library: &'a LibraryInfo,
    pub(super) kind: Kind,
    pub(super) pass: Pass,
    pub(super) nested: bool,
}

/// What storing a page's entries found.
pub(super) struct Stored {
    /// An item changed before `stop_before` ended the page (the rest were
    /// not stored).
    pub(super) reached_cursor: bool,
    /// Some item was new or changed.
    pub(super) changed: bool,
}

/// Stores `entries` in order, stopping at the first readable item changed
/// before `stop_before` when given (an incremental walk's stop rule).
pub(super) fn store_entries(
    writer: &mut Writer<'_>,
    rules: &EntryRules<'_>,
    stop_before: Option<i64>,
    state: &mut LibraryState,
    checkpoint: &mut Checkpoint,
    entries: &[Result<Item, BadItem>],
) -> Result<Stored, StoreError> {
    let mut stored = Stored { reached_cursor: false, changed: false };
    let full = rules.pass == Pass::Full;
    for entry in entries {
        match entry {
            Ok(item) => {
                if stop_before.is_some_and(|cursor| item.updated_at < cursor) {
                    stored.reached_cursor = true;
                    break;
                }
                let outcome = if rules.nested {
                    writer.upsert_parent(rules.number, item)?
                } else {
                    writer.upsert(rules.number, state, item, full)?
                };
                tally(&mut checkpoint.counters, outcome);
                stored.changed |= outcome != Outcome::Unchanged;
            }
            Err(bad) => {
                checkpoint.counters.bad = checkpoint.counters.bad.saturating_add(1);
                log::warn!(
                    "{}/{}: skipped an unreadable {} entry{}: {}",
                    state.server,
                    rules.library.id,
                    rules.kind,
                    bad.id.as_deref().map(|id| format!(" (id {id})")).unwrap_or_default(),
                    bad.reason
                );
                let kept = match (&bad.id, full) {
                    (Some(id), true) => writer.mark_seen_id(rules.number, id)?,
                    _ => false,
                };
                if full && !kept {
                    let unstored = checkpoint.unstored.entry(rules.kind).or_insert(0);
                    *unstored = unstored.saturating_add(1);
                }
            }
        }
    }
    Ok(stored)
}

/// Stores the pages a full pass kept waiting, oldest first, in the
/// transaction that commits them with the checkpoint past the last one.
pub(super) fn store_pending(
    writer: &mut Writer<'_>,
    number: u32,
    library: &LibraryInfo,
    nested: bool,
    state: &mut LibraryState,
    checkpoint: &mut Checkpoint,
    pages: &[PendingPage],
) -> Result<(), StoreError> {
    for page in pages {
        let rules = EntryRules { number, library, kind: page.kind, pass: Pass::Full, nested };
        store_entries(writer, &rules, None, state, checkpoint, &page.entries)?;
    }
    Ok(())
}
