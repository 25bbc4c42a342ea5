//! Parents whose children are listed per parent (a Spotify playlist and its
//! entries). A parent listed with a new version waits in `pending` while its
//! children are fetched, page by page; once its listing is complete (or
//! refused) it moves to `fetched`, and once every waiting parent is fetched
//! and the guard approved the deletions, each one's shortened tail is
//! deleted and it replaces the stored copy. A crash anywhere in between
//! leaves the old version stored (its new `snapshot_id` is stored only with
//! its complete children) and the next run fetches the children again. A
//! child's id is its parent's id, '/', and a suffix that sorts in listing
//! order.

use super::item_record::{encode_content, split_record};
use super::records::{Fetched, LibraryState};
use super::tables::{FETCHED, ITEMS, PENDING, item_key, library_range, split_item_key};
use super::{Outcome, Store, StoreError, Writer};
use crate::model::{Item, Kind};
use redb::ReadableTable;

/// The key range of a parent's children: [parent ++ "/", parent ++ "0").
fn children_range(library: u32, parent: &str) -> (Vec<u8>, Vec<u8>) {
    (item_key(library, &format!("{parent}/")), item_key(library, &format!("{parent}0")))
}

/// The id in a key of `library`'s range.
fn key_id(key: &[u8]) -> String {
    split_item_key(key).map(|(_, id)| id.to_string()).unwrap_or_default()
}

/// How many of a parent's children sort after `last` (all when `None`).
fn count_children_after(
    items: &impl ReadableTable<&'static [u8], &'static [u8]>,
    library: u32,
    parent: &str,
    last: Option<&str>,
) -> Result<u64, StoreError> {
    let (start, end) = children_range(library, parent);
    let from = match last {
        Some(last) => item_key(library, last),
        None => start,
    };
    let mut count = 0u64;
    for entry in items.range::<&[u8]>(from.as_slice()..end.as_slice())? {
        let (key, _) = entry?;
        if last.is_none_or(|last| key.value() > item_key(library, last).as_slice()) {
            count = count.saturating_add(1);
        }
    }
    Ok(count)
}

impl Store {
    /// The first parent still waiting for its children, by id.
    pub fn first_pending(&self, library: u32) -> Result<Option<String>, StoreError> {
        self.first_in(PENDING, library)
    }

    /// Whether a parent waits for its children or for being stored.
    pub fn has_waiting_parents(&self, library: u32) -> Result<bool, StoreError> {
        Ok(self.first_pending(library)?.is_some() || self.first_fetched(library)?.is_some())
    }

    /// The first parent whose children are fetched and not yet stored.
    pub fn first_fetched(&self, library: u32) -> Result<Option<String>, StoreError> {
        self.first_in(FETCHED, library)
    }

    fn first_in(&self, table: redb::TableDefinition<&[u8], &[u8]>, library: u32) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(table)?;
        let (start, end) = library_range(library);
        let mut range = table.range::<&[u8]>(start.as_slice()..end.as_slice())?;
        match range.next() {
            Some(entry) => Ok(Some(key_id(entry?.0.value()))),
            None => Ok(None),
        }
    }

    /// The children the fetched parents' shortened listings leave behind:
    /// what completing them deletes (a refused listing deletes nothing).
    pub fn fetched_tails(&self, library: u32) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let fetched = txn.open_table(FETCHED)?;
        let items = txn.open_table(ITEMS)?;
        let (start, end) = library_range(library);
        let mut tails = 0u64;
        for entry in fetched.range::<&[u8]>(start.as_slice()..end.as_slice())? {
            let (key, value) = entry?;
            let record: Fetched = serde_json::from_slice(value.value()).map_err(StoreError::Record)?;
            if record.refused.is_none() {
                let parent = key_id(key.value());
                tails = tails.saturating_add(count_children_after(&items, library, &parent, record.last.as_deref())?);
            }
        }
        Ok(tails)
    }

    /// The children of the unseen parents of `kinds`: what deleting those
    /// parents deletes with them.
    pub fn children_of_unseen(&self, library: u32, kinds: &[Kind]) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let items = txn.open_table(ITEMS)?;
        let mut total = 0u64;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (mut keys, complete) = self.unseen(library, kinds, after.as_deref(), 1_000)?;
            for key in &keys {
                total = total.saturating_add(count_children_after(&items, library, &key_id(key), None)?);
            }
            if complete {
                return Ok(total);
            }
            after = keys.pop();
        }
    }
}

impl Writer<'_> {
    /// A parent from the listing: unchanged, it is only marked seen; new or
    /// changed, it waits in `pending` for its children (a stored copy is
    /// still marked seen, so the sweep keeps it).
    pub fn upsert_parent(&mut self, library: u32, item: &Item) -> Result<Outcome, StoreError> {
        let key = item_key(library, &item.id);
        let content = encode_content(item);
        let stored = self.items.get(key.as_slice())?.and_then(|value| {
            split_record(value.value()).map(|(old, stored)| (old.ordinal, old.kind == item.kind && stored == content))
        });
        let outcome = match stored {
            Some((ordinal, true)) => {
                self.mark_seen(library, ordinal)?;
                self.pending.remove(key.as_slice())?;
                return Ok(Outcome::Unchanged);
            }
            Some((ordinal, false)) => {
                self.mark_seen(library, ordinal)?;
                Outcome::Changed
            }
            None => Outcome::New,
        };
        self.pending.insert(key.as_slice(), item.body_json().as_slice())?;
        Ok(outcome)
    }

    /// A waiting parent's children are all fetched (`last` is the last one
    /// its listing had), or the server refused to list them (`refused`): it
    /// moves from `pending` to `fetched`.
    pub fn mark_fetched(
        &mut self,
        library: u32,
        parent: &str,
        last: Option<&str>,
        refused: Option<&str>,
    ) -> Result<(), StoreError> {
        let key = item_key(library, parent);
        let body = self.pending.remove(key.as_slice())?.map(|value| value.value().to_vec());
        let Some(body) = body else {
            return Ok(());
        };
        let item: Item = serde_json::from_slice(&body).map_err(StoreError::Record)?;
        let record = Fetched { item, last: last.map(str::to_string), refused: refused.map(str::to_string) };
        let json = serde_json::to_vec(&record).map_err(StoreError::Record)?;
        self.fetched.insert(key.as_slice(), json.as_slice())?;
        Ok(())
    }

    /// Stores a fetched parent: the children after its listing's last one
    /// go and the new version replaces the stored copy (marked seen). When
    /// the server refused the listing, the stored children stay; the new
    /// version is stored only if the parent has no children stored, so a
    /// parent whose stored children are now out of reach keeps the version
    /// they belong to (it is asked again when it changes). A new parent
    /// refused part-way is stored without the children fetched before the
    /// refusal. Records or clears the refusal in `state.skipped`. Returns the
    /// children deleted.
    pub fn complete_fetched(
        &mut self,
        library: u32,
        state: &mut LibraryState,
        parent: &str,
    ) -> Result<u64, StoreError> {
        let key = item_key(library, parent);
        let value = self.fetched.remove(key.as_slice())?.map(|value| value.value().to_vec());
        let Some(value) = value else {
            return Ok(0);
        };
        let record: Fetched = serde_json::from_slice(&value).map_err(StoreError::Record)?;
        let mut deleted = 0;
        match &record.refused {
            Some(reason) => {
                let stored = self.items.get(key.as_slice())?.is_some();
                if !stored {
                    // Refused part-way through a new parent's listing: what
                    // was fetched belongs to no version that is stored.
                    deleted = self.delete_children_after(library, state, parent, None)?;
                    self.upsert(library, state, &record.item, true)?;
                } else if count_children_after(&self.items, library, parent, None)? == 0 {
                    self.upsert(library, state, &record.item, true)?;
                }
                state.skipped.insert(parent.to_string(), reason.clone());
            }
            None => {
                deleted = self.delete_children_after(library, state, parent, record.last.as_deref())?;
                self.upsert(library, state, &record.item, true)?;
                state.skipped.remove(parent);
            }
        }
        Ok(deleted)
    }

    /// Forgets every waiting or fetched parent of a library (a new full pass
    /// lists them again).
    pub fn clear_pending(&mut self, library: u32) -> Result<(), StoreError> {
        let (start, end) = library_range(library);
        self.pending.retain_in::<&[u8], _>(start.as_slice()..end.as_slice(), |_, _| false)?;
        self.fetched.retain_in::<&[u8], _>(start.as_slice()..end.as_slice(), |_, _| false)?;
        Ok(())
    }

    /// Deletes the parent's children after `last` (all of them when `None`):
    /// the ones a shortened listing no longer has. Returns how many.
    pub fn delete_children_after(
        &mut self,
        library: u32,
        state: &mut LibraryState,
        parent: &str,
        last: Option<&str>,
    ) -> Result<u64, StoreError> {
        let (start, end) = children_range(library, parent);
        let mut keys = Vec::new();
        for entry in self.items.range::<&[u8]>(start.as_slice()..end.as_slice())? {
            let (key, _) = entry?;
            let key = key.value().to_vec();
            if last.is_none_or(|last| key.as_slice() > item_key(library, last).as_slice()) {
                keys.push(key);
            }
        }
        let mut deleted = 0u64;
        for key in keys {
            if self.delete_key(state, &key)? {
                deleted = deleted.saturating_add(1);
            }
        }
        Ok(deleted)
    }
}
