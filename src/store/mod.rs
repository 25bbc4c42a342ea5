//! The catalog's persistence: one redb file. Only this module imports redb.
//! Writes happen in `Writer` transactions, one per synced page, so items,
//! seen marks and the checkpoint always commit together; reads stream from
//! read transactions and never load a whole library into memory.

pub mod backend;
mod controls;
mod nested;
mod open;
mod paging;
pub mod records;
mod session;
pub mod tables;

use crate::model::{Item, Kind, content_hash};
use records::{ItemHeader, LibraryState, RunRecord, ServerState, decode_header, decode_item, encode_item};
use redb::{Database, ReadableTable, ReadableTableMetadata, Table};
use std::collections::BTreeMap;
use std::path::Path;
use tables::*;

pub use controls::ServerControl;
pub use open::{StoreError, StoreErrorKind};
pub use session::Session;

pub struct Store {
    db: Database,
}

/// What applying one item did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    New,
    Changed,
    Unchanged,
}

/// One exported row: the item, where it lives and its stored hash.
pub struct StoredItem {
    pub library: u32,
    pub hash: u64,
    pub seq: u64,
    pub item: Item,
}

/// An entry of the change feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub seq: u64,
    pub deleted: bool,
    pub library: u32,
    pub id: String,
}

fn db_error(err: impl std::fmt::Display) -> StoreError {
    StoreError::new(StoreErrorKind::Other, format!("store: {err}"))
}

fn json_error(err: serde_json::Error) -> StoreError {
    StoreError::new(StoreErrorKind::Other, format!("store: a record does not decode ({err})"))
}

impl Store {
    /// Opens the store at `path`, creating it safely when it does not exist.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Store, StoreError> {
        open::open_file(path, cache_bytes).map(|db| Store { db })
    }

    /// A store on any backend (tests use memory and simulated power cuts).
    pub fn with_backend(backend: impl redb::StorageBackend, cache_bytes: usize) -> Result<Store, StoreError> {
        open::open_backend(backend, cache_bytes).map(|db| Store { db })
    }

    /// Runs `work` in one write transaction and commits it. Nothing `work`
    /// wrote is visible, or durable, unless it returns `Ok`.
    pub fn write<T>(&self, work: impl FnOnce(&mut Writer<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        let value = {
            let mut writer = Writer::open(&txn)?;
            let value = work(&mut writer)?;
            writer.finish()?;
            value
        };
        txn.commit().map_err(db_error)?;
        Ok(value)
    }

    /// The library number for a server's library, allocated on first sight.
    pub fn library(&self, server: &str, library_id: &str, title: &str) -> Result<(u32, LibraryState), StoreError> {
        if let Some(number) = self.find_library(server, library_id)? {
            let state = self.state(number)?.unwrap_or_default();
            if state.title == title {
                return Ok((number, state));
            }
        }
        self.write(|writer| writer.library(server, library_id, title))
    }

    pub fn find_library(&self, server: &str, library_id: &str) -> Result<Option<u32>, StoreError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(LIBRARIES).map_err(db_error)?;
        let key = library_key(server, library_id);
        Ok(table.get(key.as_slice()).map_err(db_error)?.map(|value| value.value()))
    }

    pub fn state(&self, library: u32) -> Result<Option<LibraryState>, StoreError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(LIBRARY_STATE).map_err(db_error)?;
        let value = table.get(library).map_err(db_error)?;
        value.map(|value| serde_json::from_slice(value.value()).map_err(json_error)).transpose()
    }

    /// Every library the store knows, in library-number order.
    pub fn libraries(&self) -> Result<Vec<(u32, LibraryState)>, StoreError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(LIBRARY_STATE).map_err(db_error)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_error)? {
            let (key, value) = entry.map_err(db_error)?;
            out.push((key.value(), serde_json::from_slice(value.value()).map_err(json_error)?));
        }
        Ok(out)
    }

    pub fn server_state(&self, server: &str) -> Result<ServerState, StoreError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(SERVERS).map_err(db_error)?;
        let value = table.get(server).map_err(db_error)?;
        match value {
            Some(value) => serde_json::from_slice(value.value()).map_err(json_error),
            None => Ok(ServerState::default()),
        }
    }

    /// Streams a library's items in id order to `visit`, which may stop the
    /// walk by returning `false`.
    pub fn for_each_item(&self, library: u32, mut visit: impl FnMut(StoredItem) -> bool) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(ITEMS).map_err(db_error)?;
        let (start, end) = library_range(library);
        for entry in table.range(start.as_slice()..end.as_slice()).map_err(db_error)? {
            let (_, value) = entry.map_err(db_error)?;
            let Some((header, item)) = decode_item(value.value()) else {
                return Err(StoreError::new(
                    StoreErrorKind::Damaged,
                    format!("store: an item record of library {library} does not decode"),
                ));
            };
            let keep_going = visit(StoredItem { library, hash: header.hash, seq: header.seq, item });
            if !keep_going {
                break;
            }
        }
        Ok(())
    }

    pub fn item(&self, library: u32, id: &str) -> Result<Option<StoredItem>, StoreError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(ITEMS).map_err(db_error)?;
        let key = item_key(library, id);
        let Some(value) = table.get(key.as_slice()).map_err(db_error)? else {
            return Ok(None);
        };
        Ok(decode_item(value.value()).map(|(header, item)| StoredItem {
            library,
            hash: header.hash,
            seq: header.seq,
            item,
        }))
    }

    /// Counts a library's items per kind by walking them (the counters in
    /// `LibraryState` are maintained incrementally; this is the ground truth).
    pub fn recount(&self, library: u32) -> Result<BTreeMap<Kind, u64>, StoreError> {
        let mut counts = BTreeMap::new();
        self.scan_headers(library, None, |_, header| {
            *counts.entry(header.kind).or_insert(0) += 1;
            true
        })?;
        Ok(counts)
    }

    /// Walks item headers (no JSON decoding) from just after `after`.
    fn scan_headers(
        &self,
        library: u32,
        after: Option<&[u8]>,
        mut visit: impl FnMut(&[u8], ItemHeader) -> bool,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(ITEMS).map_err(db_error)?;
        let (start, end) = library_range(library);
        let range = match after {
            Some(after) => {
                table.range::<&[u8]>((std::ops::Bound::Excluded(after), std::ops::Bound::Excluded(end.as_slice())))
            }
            None => table.range::<&[u8]>(start.as_slice()..end.as_slice()),
        }
        .map_err(db_error)?;
        for entry in range {
            let (key, value) = entry.map_err(db_error)?;
            let Some(header) = decode_header(value.value()) else {
                continue;
            };
            if !visit(key.value(), header) {
                break;
            }
        }
        Ok(())
    }

    /// Items of the given kinds whose seen bit is not set, from just after
    /// `after`, at most `limit` of them: (item keys, the walk is complete).
    pub fn unseen(
        &self,
        library: u32,
        kinds: &[Kind],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StoreError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let seen = txn.open_table(SEEN).map_err(db_error)?;
        let mut chunk: Option<(u32, Option<Vec<u8>>)> = None;
        let mut keys = Vec::new();
        let mut error = None;
        let mut complete = true;
        self.scan_headers(library, after, |key, header| {
            if !kinds.contains(&header.kind) {
                return true;
            }
            let wanted = header.ordinal / SEEN_CHUNK_BITS;
            if chunk.as_ref().map(|(number, _)| *number) != Some(wanted) {
                let bits = match seen.get(seen_key(library, wanted).as_slice()) {
                    Ok(value) => value.map(|value| value.value().to_vec()),
                    Err(err) => {
                        error = Some(db_error(err));
                        return false;
                    }
                };
                chunk = Some((wanted, bits));
            }
            let bit = header.ordinal % SEEN_CHUNK_BITS;
            let is_seen = chunk
                .as_ref()
                .and_then(|(_, bits)| bits.as_ref())
                .is_some_and(|bits| bits[(bit / 8) as usize] & (1 << (bit % 8)) != 0);
            if !is_seen {
                keys.push(key.to_vec());
                if keys.len() >= limit {
                    complete = false;
                    return false;
                }
            }
            true
        })?;
        match error {
            Some(err) => Err(err),
            None => Ok((keys, complete)),
        }
    }

    /// The last runs of a library, oldest first.
    pub fn runs(&self, library: u32) -> Result<Vec<RunRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(RUNS).map_err(db_error)?;
        let (start, end) = library_range(library);
        let mut out = Vec::new();
        for entry in table.range(start.as_slice()..end.as_slice()).map_err(db_error)? {
            let (_, value) = entry.map_err(db_error)?;
            out.push(serde_json::from_slice(value.value()).map_err(json_error)?);
        }
        Ok(out)
    }

    /// Changes after sequence number `since`, at most `limit`.
    pub fn changes(&self, since: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(CHANGES).map_err(db_error)?;
        let mut out = Vec::new();
        for entry in table.range(since.saturating_add(1)..).map_err(db_error)? {
            let (key, value) = entry.map_err(db_error)?;
            let value = value.value();
            if value.len() < 5 {
                continue;
            }
            out.push(Change {
                seq: key.value(),
                deleted: value[0] == OP_DELETE,
                library: u32::from_be_bytes(value[1..5].try_into().unwrap()),
                id: String::from_utf8_lossy(&value[5..]).into_owned(),
            });
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Number of stored items over all libraries.
    pub fn item_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(ITEMS).map_err(db_error)?;
        table.len().map_err(db_error)
    }
}

/// The tables of one write transaction, opened once.
pub struct Writer<'t> {
    meta: Table<'t, &'static str, &'static [u8]>,
    libraries: Table<'t, &'static [u8], u32>,
    states: Table<'t, u32, &'static [u8]>,
    items: Table<'t, &'static [u8], &'static [u8]>,
    seen: Table<'t, &'static [u8], &'static [u8]>,
    changes: Table<'t, u64, &'static [u8]>,
    runs: Table<'t, &'static [u8], &'static [u8]>,
    servers: Table<'t, &'static str, &'static [u8]>,
    pending: Table<'t, &'static [u8], &'static [u8]>,
    next_seq: u64,
    seq_dirty: bool,
    /// Seen chunks touched by this transaction, written back by `finish`.
    seen_chunks: BTreeMap<[u8; 8], Vec<u8>>,
}

impl<'t> Writer<'t> {
    fn open(txn: &'t redb::WriteTransaction) -> Result<Writer<'t>, StoreError> {
        let meta = txn.open_table(META).map_err(db_error)?;
        let next_seq = read_u64(&meta, "next_seq")?.unwrap_or(1);
        Ok(Writer {
            meta,
            libraries: txn.open_table(LIBRARIES).map_err(db_error)?,
            states: txn.open_table(LIBRARY_STATE).map_err(db_error)?,
            items: txn.open_table(ITEMS).map_err(db_error)?,
            seen: txn.open_table(SEEN).map_err(db_error)?,
            changes: txn.open_table(CHANGES).map_err(db_error)?,
            runs: txn.open_table(RUNS).map_err(db_error)?,
            servers: txn.open_table(SERVERS).map_err(db_error)?,
            pending: txn.open_table(PENDING).map_err(db_error)?,
            next_seq,
            seq_dirty: false,
            seen_chunks: BTreeMap::new(),
        })
    }

    fn finish(&mut self) -> Result<(), StoreError> {
        for (key, bits) in std::mem::take(&mut self.seen_chunks) {
            self.seen.insert(key.as_slice(), bits.as_slice()).map_err(db_error)?;
        }
        if self.seq_dirty {
            self.meta.insert("next_seq", self.next_seq.to_be_bytes().as_slice()).map_err(db_error)?;
        }
        Ok(())
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.seq_dirty = true;
        seq
    }

    fn library(&mut self, server: &str, library_id: &str, title: &str) -> Result<(u32, LibraryState), StoreError> {
        let key = library_key(server, library_id);
        let existing = self.libraries.get(key.as_slice()).map_err(db_error)?.map(|value| value.value());
        let number = match existing {
            Some(number) => number,
            None => {
                let number = read_u32(&self.meta, "next_library")?.unwrap_or(1);
                let next = number.checked_add(1).ok_or_else(|| db_error("library numbers exhausted"))?;
                self.meta.insert("next_library", next.to_be_bytes().as_slice()).map_err(db_error)?;
                self.libraries.insert(key.as_slice(), number).map_err(db_error)?;
                number
            }
        };
        let mut state = self.state(number)?.unwrap_or_else(|| LibraryState {
            server: server.to_string(),
            library_id: library_id.to_string(),
            ..LibraryState::default()
        });
        state.title = title.to_string();
        self.put_state(number, &state)?;
        Ok((number, state))
    }

    pub fn state(&self, library: u32) -> Result<Option<LibraryState>, StoreError> {
        let value = self.states.get(library).map_err(db_error)?;
        value.map(|value| serde_json::from_slice(value.value()).map_err(json_error)).transpose()
    }

    pub fn put_state(&mut self, library: u32, state: &LibraryState) -> Result<(), StoreError> {
        let json = serde_json::to_vec(state).map_err(json_error)?;
        self.states.insert(library, json.as_slice()).map_err(db_error)?;
        Ok(())
    }

    pub fn put_server_state(&mut self, server: &str, state: &ServerState) -> Result<(), StoreError> {
        let json = serde_json::to_vec(state).map_err(json_error)?;
        self.servers.insert(server, json.as_slice()).map_err(db_error)?;
        Ok(())
    }

    /// Stores `item` unless an identical copy is there already; with `seen`,
    /// also marks it seen by the current full pass. Keeps the library's
    /// counters, newest-change times and the change feed in step.
    pub fn upsert(
        &mut self,
        library: u32,
        state: &mut LibraryState,
        item: &Item,
        seen: bool,
    ) -> Result<Outcome, StoreError> {
        let key = item_key(library, &item.id);
        let body = item.body_json();
        let hash = content_hash(&body);
        let existing = self.items.get(key.as_slice()).map_err(db_error)?.map(|value| decode_header(value.value()));
        let (ordinal, outcome) = match existing {
            Some(Some(old)) if old.hash == hash && old.kind == item.kind => {
                if seen {
                    self.mark_seen(library, old.ordinal)?;
                }
                return Ok(Outcome::Unchanged);
            }
            Some(Some(old)) => {
                self.changes.remove(old.seq).map_err(db_error)?;
                if old.kind != item.kind {
                    decrement(state, old.kind);
                    *state.counts.entry(item.kind).or_insert(0) += 1;
                }
                (old.ordinal, Outcome::Changed)
            }
            // An undecodable record is replaced; the next recount fixes the counters.
            Some(None) => (take_ordinal(state)?, Outcome::Changed),
            None => {
                *state.counts.entry(item.kind).or_insert(0) += 1;
                (take_ordinal(state)?, Outcome::New)
            }
        };
        let seq = self.take_seq();
        let header = ItemHeader { kind: item.kind, ordinal, hash, seq, updated_at: item.updated_at };
        self.items.insert(key.as_slice(), encode_item(&header, &body).as_slice()).map_err(db_error)?;
        self.changes.insert(seq, change_value(OP_UPSERT, library, &item.id).as_slice()).map_err(db_error)?;
        let newest = state.newest.entry(item.kind).or_insert(item.updated_at);
        *newest = (*newest).max(item.updated_at);
        if seen {
            self.mark_seen(library, ordinal)?;
        }
        Ok(outcome)
    }

    /// Marks a stored item seen without changing it (used for entries the
    /// server sent in a form we could not read: the stored copy stays).
    pub fn mark_seen_id(&mut self, library: u32, id: &str) -> Result<bool, StoreError> {
        let key = item_key(library, id);
        let header = self.items.get(key.as_slice()).map_err(db_error)?.and_then(|value| decode_header(value.value()));
        match header {
            Some(header) => {
                self.mark_seen(library, header.ordinal)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn mark_seen(&mut self, library: u32, ordinal: u32) -> Result<(), StoreError> {
        let key = seen_key(library, ordinal / SEEN_CHUNK_BITS);
        if !self.seen_chunks.contains_key(&key) {
            let bits = match self.seen.get(key.as_slice()).map_err(db_error)? {
                Some(value) => value.value().to_vec(),
                None => vec![0u8; SEEN_CHUNK_BYTES],
            };
            self.seen_chunks.insert(key, bits);
        }
        let bits = self.seen_chunks.get_mut(&key).expect("inserted above");
        let bit = ordinal % SEEN_CHUNK_BITS;
        bits[(bit / 8) as usize] |= 1 << (bit % 8);
        Ok(())
    }

    /// Forgets every seen mark of a library (a new full pass begins).
    pub fn clear_seen(&mut self, library: u32) -> Result<(), StoreError> {
        let (start, end) = library_range(library);
        self.seen_chunks.retain(|key, _| key[..4] != start[..4]);
        self.seen.retain_in::<&[u8], _>(start.as_slice()..end.as_slice(), |_, _| false).map_err(db_error)?;
        Ok(())
    }

    /// Deletes an item by its key, recording a tombstone in the change feed.
    pub fn delete_key(&mut self, state: &mut LibraryState, key: &[u8]) -> Result<bool, StoreError> {
        let Some(old) = self.items.remove(key).map_err(db_error)? else {
            return Ok(false);
        };
        let header = decode_header(old.value());
        drop(old);
        if key.len() < 4 {
            return Ok(false);
        }
        let library = u32::from_be_bytes(key[..4].try_into().unwrap());
        let id = String::from_utf8_lossy(&key[4..]).into_owned();
        if let Some(header) = header {
            self.changes.remove(header.seq).map_err(db_error)?;
            decrement(state, header.kind);
        }
        let seq = self.take_seq();
        self.changes.insert(seq, change_value(OP_DELETE, library, &id).as_slice()).map_err(db_error)?;
        Ok(true)
    }

    /// Appends a run to the history, keeping the newest `keep`.
    pub fn append_run(&mut self, library: u32, record: &RunRecord, keep: u32) -> Result<(), StoreError> {
        let json = serde_json::to_vec(record).map_err(json_error)?;
        self.runs.insert(run_key(library, record.run).as_slice(), json.as_slice()).map_err(db_error)?;
        let oldest_kept = record.run.saturating_sub(u64::from(keep).saturating_sub(1));
        let start = run_key(library, 0);
        let end = run_key(library, oldest_kept);
        self.runs.retain_in::<&[u8], _>(start.as_slice()..end.as_slice(), |_, _| false).map_err(db_error)?;
        Ok(())
    }
}

fn take_ordinal(state: &mut LibraryState) -> Result<u32, StoreError> {
    let ordinal = state.next_ordinal;
    state.next_ordinal = ordinal
        .checked_add(1)
        .ok_or_else(|| db_error("item ordinals of this library are exhausted; reset the server"))?;
    Ok(ordinal)
}

fn decrement(state: &mut LibraryState, kind: Kind) {
    if let Some(count) = state.counts.get_mut(&kind) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            state.counts.remove(&kind);
        }
    }
}

fn read_u64(table: &impl ReadableTable<&'static str, &'static [u8]>, key: &str) -> Result<Option<u64>, StoreError> {
    let value = table.get(key).map_err(db_error)?;
    Ok(value.and_then(|value| value.value().try_into().ok().map(u64::from_be_bytes)))
}

fn read_u32(table: &impl ReadableTable<&'static str, &'static [u8]>, key: &str) -> Result<Option<u32>, StoreError> {
    let value = table.get(key).map_err(db_error)?;
    Ok(value.and_then(|value| value.value().try_into().ok().map(u32::from_be_bytes)))
}
