//! The few items a notice named, fetched alone: the library's batched
//! lookup (`Source::lookup`) answers for each id, and one transaction
//! stores what it holds and deletes what it says is gone (that answer is
//! the server's confirmation). What one lookup cannot settle exactly (a new
//! item that is not of the library's leaf kind, one whose parent is not
//! stored yet) is left to the library's incremental run. A deleted parent
//! takes its stored children with it, as on the server.

use super::report::LibraryReport;
use super::run::Failure;
use super::walk::tally;
use crate::model::{Item, Kind, LibraryInfo, Nesting, Strategy};
use crate::source::{Present, Source};
use crate::store::records::Counters;
use crate::store::tables::item_key;
use crate::store::{Ending, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// What became of a library's named items.
pub(super) enum Targeted {
    /// Fetched and committed.
    Done(LibraryReport),
    /// The library's incremental run is needed, for this reason.
    Incremental(String),
}

/// Fetches and commits the items `ids` of `library`, or says why the
/// incremental run must do it; nothing is written unless every id is
/// settled. Each id is asked about as the kind it is stored as, a new one
/// as the library's leaf kind (what additions mostly are: a movie, an
/// episode, a track).
pub(super) fn sync_items(
    server: &str,
    source: &dyn Source,
    store: &Store,
    library: &LibraryInfo,
    ids: &BTreeSet<String>,
) -> Result<Targeted, Failure> {
    let started = Instant::now();
    let requests_before = source.requests();
    let incremental = |why: String| Ok(Targeted::Incremental(why));
    if library.nesting == Nesting::Nested || library.strategy == Strategy::AppendOnly {
        return incremental("its items come with their parents' listings".into());
    }
    let (Some(number), Some(&leaf)) = (store.find_library(server, &library.id)?, library.kinds.last()) else {
        return incremental("the library is not synced yet".into());
    };
    // A run that was interrupted or owes a full pass goes on: it covers
    // the named items.
    match store.state(number)? {
        Some(state) if state.checkpoint.is_none() && state.needs_full.is_none() => {}
        _ => return incremental("the library's run is due".into()),
    }
    let mut stored: BTreeMap<&str, Kind> = BTreeMap::new();
    let mut asked: BTreeMap<Kind, Vec<String>> = BTreeMap::new();
    for id in ids {
        let kind = match store.item(number, id)? {
            Some(found) => *stored.entry(id).or_insert(found.item.kind),
            None => leaf,
        };
        asked.entry(kind).or_default().push(id.clone());
    }
    let mut found: BTreeMap<String, Present> = BTreeMap::new();
    let batch = usize::try_from(library.lookup_batch.max(1)).unwrap_or(1);
    for (kind, kind_ids) in &asked {
        let anchor = anchor(store, number, *kind, kind_ids)?;
        for chunk in kind_ids.chunks(batch) {
            for present in source.lookup(library, *kind, chunk, anchor.as_deref())? {
                if chunk.iter().any(|id| id == present.id()) {
                    found.insert(present.id().to_string(), present);
                }
            }
        }
    }
    let mut gone = Vec::new();
    for id in ids {
        match (found.get(id), stored.get(id.as_str())) {
            (Some(Present::Item(_)), _) | (Some(Present::Kept(_)), Some(_)) => {}
            // Of another kind (Plex answers every kind), or unreadable.
            (Some(Present::Kept(_)), None) => {
                return incremental(format!("the new item {id} is not a readable {leaf}"));
            }
            (None, Some(_)) => gone.push(id.clone()),
            (None, None) => return incremental(format!("the new item {id} is not among the library's {leaf} items")),
        }
    }
    let items: Vec<&Item> = found
        .values()
        .filter_map(|present| match present {
            Present::Item(item) => Some(&**item),
            Present::Kept(_) => None,
        })
        .collect();
    for item in &items {
        let Some(parent) = &item.parent_id else {
            continue;
        };
        let fetched = items.iter().any(|fetched| fetched.id == *parent);
        if !fetched && store.item(number, parent)?.is_none() {
            return incremental(format!("the parent {parent} of {} {} is not stored yet", item.kind, item.id));
        }
    }
    // The server deletes an item with everything under it, and tells the
    // item only.
    let under = descendants(store, number, &gone, library.kinds.len())?;
    gone.extend(under);
    let mut counters = Counters { kept: count(found.len().saturating_sub(items.len())), ..Counters::default() };
    store.write_unless_unchanged(|writer| {
        let Some(mut state) = writer.state(number)? else {
            return Ok(((), Ending::Abort));
        };
        // The cursor base stays where the incremental runs left it: other
        // changes may have come before these without a notice.
        let newest = state.newest.clone();
        for item in &items {
            tally(&mut counters, writer.upsert(number, &mut state, item, false)?);
        }
        for id in &gone {
            if writer.delete_key(&mut state, &item_key(number, id))? {
                counters.deleted = counters.deleted.saturating_add(1);
            }
        }
        state.newest = newest;
        writer.put_state(number, &state)?;
        Ok(((), Ending::Abort))
    })?;
    counters.requests = source.requests().saturating_sub(requests_before);
    let mut report = LibraryReport::new(library);
    report.mode = "notice".into();
    report.counters = counters;
    report.duration = started.elapsed();
    Ok(Targeted::Done(report))
}

/// A stored item of `kind` that is not asked about, asked for alongside:
/// Plex answers 404 when none of the ids it is asked for exists, so a
/// lookup of deleted items alone would prove nothing.
fn anchor(store: &Store, number: u32, kind: Kind, asked: &[String]) -> Result<Option<String>, Failure> {
    let (stored, _) = store.items_page(number, Some(kind), None, asked.len().saturating_add(1))?;
    Ok(stored.into_iter().map(|stored| stored.item.id).find(|id| !asked.contains(id)))
}

/// The stored items under `parents` (their children, theirs, …), found in
/// at most `depth` scans of the library's items, each keeping only the ids
/// it finds: memory follows what is deleted, not the library's size.
fn descendants(store: &Store, number: u32, parents: &[String], depth: usize) -> Result<Vec<String>, Failure> {
    let mut found: Vec<String> = Vec::new();
    let mut level: BTreeSet<String> = parents.iter().cloned().collect();
    for _ in 0..depth {
        if level.is_empty() {
            break;
        }
        let mut next = BTreeSet::new();
        let mut after: Option<String> = None;
        loop {
            let (page, more) = store.items_page(number, None, after.as_deref(), SCAN_PAGE)?;
            for stored in &page {
                if stored.item.parent_id.as_ref().is_some_and(|parent| level.contains(parent)) {
                    next.insert(stored.item.id.clone());
                }
            }
            after = page.last().map(|stored| stored.item.id.clone());
            if !more || after.is_none() {
                break;
            }
        }
        found.extend(next.iter().cloned());
        level = next;
    }
    Ok(found)
}

/// Items read per step of a scan for descendants.
const SCAN_PAGE: usize = 1000;

fn count(items: usize) -> u64 {
    u64::try_from(items).unwrap_or(u64::MAX)
}
