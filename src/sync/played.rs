//! The synced user's played state of stored items kept current between
//! full passes (Jellyfin/Emby): one server-wide listing of played items,
//! newest play first, walked down to the last run's newest play, and its
//! count to catch un-markings (which clear the date and so never lead).
//! Changed items are rewritten as any edit is, so export and feed see them.

use crate::model::{LibraryInfo, PlayState};
use crate::source::{Source, SourceError};
use crate::store::records::PlayedCursor;
use crate::store::{Store, StoreError};
use std::collections::{HashMap, HashSet};

/// Entries asked per page: one page covers the plays of a usual interval.
const PAGE: u32 = 50;

/// Entries asked per page of the whole played listing (an un-marking).
const WHOLE_PAGE: u32 = 200;

#[derive(Debug)]
pub enum PlayedError {
    Source(SourceError),
    Store(StoreError),
}

impl std::fmt::Display for PlayedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlayedError::Source(err) => write!(f, "the played items listing failed: {err}"),
            PlayedError::Store(err) => write!(f, "could not store the played state: {err}"),
        }
    }
}

impl From<SourceError> for PlayedError {
    fn from(err: SourceError) -> PlayedError {
        PlayedError::Source(err)
    }
}

impl From<StoreError> for PlayedError {
    fn from(err: StoreError) -> PlayedError {
        PlayedError::Store(err)
    }
}

/// Brings the played state of `server`'s stored items in `libraries` up to
/// date and keeps the resolved user; how many items changed. Commits only
/// when something did.
pub fn sync_played(
    server: &str,
    source: &dyn Source,
    store: &Store,
    libraries: &[LibraryInfo],
) -> Result<usize, PlayedError> {
    let before = store.server_state(server)?;
    let cursor = before.played.unwrap_or_default();
    let known = before.played.is_some();
    let Some(first) = source.played(0, PAGE)? else {
        return Ok(0);
    };
    let total = first.total.unwrap_or(first.entries.len() as u64);
    let newest = first.entries.iter().filter_map(|(_, state)| state.last_played_at).max();
    let mut walked = first.entries;
    // Down to the last run's newest play (same second included: a play in
    // it may have come after the last run's listing).
    let mut start = walked.len() as u64;
    let reached = |entries: &[(String, PlayState)]| {
        entries.iter().any(|(_, state)| state.last_played_at.is_none_or(|at| Some(at) < cursor.newest_played_at))
    };
    while known && !reached(&walked) && start < total {
        let Some(page) = source.played(start, PAGE)? else { break };
        if page.entries.is_empty() {
            break;
        }
        start = start.saturating_add(page.entries.len() as u64);
        walked.extend(page.entries);
    }
    let numbers = library_numbers(store, server, libraries)?;
    // Only the walked items are read from the store (a point read each):
    // an unchanged run costs as much as its new plays, whatever the size
    // of the libraries.
    let mut walked_ids: HashSet<String> = HashSet::new();
    let mut changed: HashMap<String, (u32, PlayState)> = HashMap::new();
    let mut newly_played = 0u64;
    for (id, state) in walked {
        if state.last_played_at.is_some_and(|at| Some(at) < cursor.newest_played_at) {
            break;
        }
        if !walked_ids.insert(id.clone()) {
            continue;
        }
        let stored = stored_state(store, &numbers, &id)?;
        if !stored.is_some_and(|(_, old)| old.played) {
            newly_played = newly_played.saturating_add(1);
        }
        if let Some((library, old)) = stored {
            if old != state {
                changed.insert(id, (library, state));
            }
        }
    }
    // The count tells what the walk cannot see: an un-marking (the date is
    // cleared), or a re-marking (an old date kept). Then the whole played
    // listing says which items are played.
    let mut total_after = total;
    // A store synced before the played state was followed (no cursor yet,
    // items stored) reads the whole listing once too.
    let unexplained = total != cursor.played_total.saturating_add(newly_played);
    if (known && unexplained) || (!known && any_stored(store, &numbers)?) {
        // An absence un-marks, so only a listing that held as many items
        // as it counted is trusted (a play during it shifts the pages);
        // else the old count stays and the next run lists them again.
        let (played, counted) = whole_listing(source)?;
        if played.len() as u64 == counted {
            total_after = counted;
            reconcile_stored(store, &numbers, &played, &walked_ids, &mut changed)?;
        } else {
            total_after = cursor.played_total;
            log::info!("{server}: the played items changed while listed; the next run lists them again");
        }
    }
    let after = PlayedCursor { newest_played_at: newest.max(cursor.newest_played_at), played_total: total_after };
    let user = source.known_user();
    if changed.is_empty() && before.played == Some(after) && before.user_id == user {
        return Ok(0);
    }
    let mut rewritten = Vec::new();
    for (id, (library, state)) in &changed {
        if let Some(stored) = store.item(*library, id)? {
            let mut item = stored.item;
            item.play_state = Some(*state);
            rewritten.push((*library, item));
        }
    }
    let mut server_state = before.clone();
    server_state.played = Some(after);
    server_state.user_id = user;
    store.write(|writer| {
        for (library, item) in &rewritten {
            let Some(mut library_state) = writer.state(*library)? else {
                continue;
            };
            writer.upsert(*library, &mut library_state, item, false)?;
            writer.put_state(*library, &library_state)?;
        }
        writer.put_server_state(server, &server_state)
    })?;
    Ok(rewritten.len())
}

/// The store's numbers of the libraries already stored.
fn library_numbers(store: &Store, server: &str, libraries: &[LibraryInfo]) -> Result<Vec<u32>, StoreError> {
    let mut numbers = Vec::new();
    for library in libraries {
        if let Some(number) = store.find_library(server, &library.id)? {
            numbers.push(number);
        }
    }
    Ok(numbers)
}

/// The library and played state (unplayed when none was listed) of the
/// stored item `id`, if one of `numbers` holds it.
fn stored_state(store: &Store, numbers: &[u32], id: &str) -> Result<Option<(u32, PlayState)>, StoreError> {
    for number in numbers {
        if let Some(stored) = store.item(*number, id)? {
            return Ok(Some((*number, stored.item.play_state.unwrap_or_default())));
        }
    }
    Ok(None)
}

/// Whether any of `numbers` holds an item.
fn any_stored(store: &Store, numbers: &[u32]) -> Result<bool, StoreError> {
    let mut found = false;
    for number in numbers {
        store.for_each_item(*number, |_| {
            found = true;
            false
        })?;
        if found {
            break;
        }
    }
    Ok(found)
}

/// Adds to `changed` every stored item whose played state differs from
/// the whole played listing `played` (an absence is unplayed), streaming the
/// libraries rather than holding them; the walk's answer stands for the
/// items it saw.
fn reconcile_stored(
    store: &Store,
    numbers: &[u32],
    played: &HashMap<String, PlayState>,
    walked_ids: &HashSet<String>,
    changed: &mut HashMap<String, (u32, PlayState)>,
) -> Result<(), StoreError> {
    for number in numbers {
        store.for_each_item(*number, |stored| {
            let id = &stored.item.id;
            if walked_ids.contains(id) {
                return true;
            }
            let old = stored.item.play_state.unwrap_or_default();
            let state = match played.get(id) {
                Some(state) => *state,
                None if old.played => PlayState::default(),
                None => return true,
            };
            if state != old {
                changed.insert(id.clone(), (*number, state));
            }
            true
        })?;
    }
    Ok(())
}

/// The whole played listing, by id, and the count its last page gave.
fn whole_listing(source: &dyn Source) -> Result<(HashMap<String, PlayState>, u64), SourceError> {
    let mut played = HashMap::new();
    let mut start = 0u64;
    let mut counted = 0u64;
    loop {
        let Some(page) = source.played(start, WHOLE_PAGE)? else { break };
        let returned = page.entries.len() as u64;
        counted = page.total.unwrap_or(start.saturating_add(returned));
        for (id, state) in page.entries {
            played.entry(id).or_insert(state);
        }
        start = start.saturating_add(returned);
        if returned == 0 || start >= counted {
            break;
        }
    }
    Ok((played, counted))
}
