//! Parents whose children are listed per parent (a Spotify playlist and its
//! entries). A parent listed with a new version waits in `pending` while its
//! children are fetched, page by page; it replaces the stored copy in the
//! transaction of its last child page, so a crash in between leaves the old
//! version stored and the next run fetches the children again. A child's id
//! is its parent's id, '/', and a suffix that sorts in listing order.

use super::item_record::{encode_content, split_record};
use super::records::LibraryState;
use super::tables::{PENDING, item_key, library_range, split_item_key};
use super::{Outcome, Store, StoreError, Writer};
use crate::model::Item;
use redb::ReadableTable;

/// The key range of a parent's children: [parent ++ "/", parent ++ "0").
fn children_range(library: u32, parent: &str) -> (Vec<u8>, Vec<u8>) {
    (item_key(library, &format!("{parent}/")), item_key(library, &format!("{parent}0")))
}

impl Store {
    /// The first parent still waiting for its children, by id.
    pub fn first_pending(&self, library: u32) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PENDING)?;
        let (start, end) = library_range(library);
        let mut range = table.range::<&[u8]>(start.as_slice()..end.as_slice())?;
        match range.next() {
            Some(entry) => {
                let (key, _) = entry?;
                Ok(split_item_key(key.value()).map(|(_, id)| id.to_string()))
            }
            None => Ok(None),
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

    /// Takes a parent out of `pending` and stores it (marked seen).
    pub fn store_pending(&mut self, library: u32, state: &mut LibraryState, parent: &str) -> Result<(), StoreError> {
        let key = item_key(library, parent);
        let body = self.pending.remove(key.as_slice())?.map(|value| value.value().to_vec());
        if let Some(body) = body {
            let item: Item = serde_json::from_slice(&body).map_err(StoreError::Record)?;
            self.upsert(library, state, &item, true)?;
        }
        Ok(())
    }

    /// Forgets every waiting parent of a library (a new full pass lists
    /// them again).
    pub fn clear_pending(&mut self, library: u32) -> Result<(), StoreError> {
        let (start, end) = library_range(library);
        self.pending.retain_in::<&[u8], _>(start.as_slice()..end.as_slice(), |_, _| false)?;
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
