//! `Writer`: the tables of one write transaction, opened once per page.
//! It keeps an item's record, the library's counters and newest-change
//! times, the change feed and the seen bitmap in step, so whatever one
//! transaction commits is consistent; unchanged items are not rewritten.

use super::Outcome;
use super::StoreError;
use super::item_record::{ItemHeader, encode_content, encode_item, split_record};
use super::marks::HeldMarks;
use super::records::{Checkpoint, LibraryState, RunRecord, ServerState};
use super::tables::*;
use crate::model::{Item, Kind};
use redb::{ReadableTable, Table};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

pub struct Writer<'t> {
    pub(super) meta: Table<'t, &'static str, &'static [u8]>,
    libraries: Table<'t, &'static [u8], u32>,
    states: Table<'t, u32, &'static [u8]>,
    pub(super) items: Table<'t, &'static [u8], &'static [u8]>,
    seen: Table<'t, &'static [u8], &'static [u8]>,
    pub(super) changes: Table<'t, u64, &'static [u8]>,
    runs: Table<'t, &'static [u8], &'static [u8]>,
    servers: Table<'t, &'static str, &'static [u8]>,
    pub(super) pending: Table<'t, &'static [u8], &'static [u8]>,
    pub(super) fetched: Table<'t, &'static [u8], &'static [u8]>,
    pub(super) tombstones: Table<'t, u64, i64>,
    next_seq: u64,
    seq_dirty: bool,
    /// Seen chunks touched by this transaction, written back by `finish`.
    pub(super) seen_chunks: BTreeMap<[u8; 8], Vec<u8>>,
    /// Marks held in memory instead of the seen chunks (`hold_marks`).
    pub(super) held: Option<HeldMarks>,
}

impl<'t> Writer<'t> {
    pub(super) fn open(txn: &'t redb::WriteTransaction) -> Result<Writer<'t>, StoreError> {
        let meta = txn.open_table(META)?;
        let next_seq = read_u64(&meta, "next_seq")?.unwrap_or(1);
        Ok(Writer {
            meta,
            libraries: txn.open_table(LIBRARIES)?,
            states: txn.open_table(LIBRARY_STATE)?,
            items: txn.open_table(ITEMS)?,
            seen: txn.open_table(SEEN)?,
            changes: txn.open_table(CHANGES)?,
            runs: txn.open_table(RUNS)?,
            servers: txn.open_table(SERVERS)?,
            pending: txn.open_table(PENDING)?,
            fetched: txn.open_table(FETCHED)?,
            tombstones: txn.open_table(TOMBSTONES)?,
            next_seq,
            seq_dirty: false,
            seen_chunks: BTreeMap::new(),
            held: None,
        })
    }

    /// Writes back the seen chunks and the change sequence; whether there
    /// was any to write.
    pub(super) fn finish(&mut self) -> Result<bool, StoreError> {
        let wrote = self.seq_dirty || !self.seen_chunks.is_empty();
        for (key, bits) in std::mem::take(&mut self.seen_chunks) {
            self.seen.insert(key.as_slice(), bits.as_slice())?;
        }
        if self.seq_dirty {
            self.meta.insert("next_seq", self.next_seq.to_be_bytes().as_slice())?;
        }
        Ok(wrote)
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq = seq.saturating_add(1);
        self.seq_dirty = true;
        seq
    }

    pub(super) fn library(
        &mut self,
        server: &str,
        library_id: &str,
        title: &str,
    ) -> Result<(u32, LibraryState), StoreError> {
        let key = library_key(server, library_id);
        let existing = self.libraries.get(key.as_slice())?.map(|value| value.value());
        let number = match existing {
            Some(number) => number,
            None => {
                let number = read_u32(&self.meta, "next_library")?.unwrap_or(1);
                let next = number.checked_add(1).ok_or(StoreError::LibraryNumbersExhausted)?;
                self.meta.insert("next_library", next.to_be_bytes().as_slice())?;
                self.libraries.insert(key.as_slice(), number)?;
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
        let value = self.states.get(library)?;
        value.map(|value| serde_json::from_slice(value.value()).map_err(StoreError::Record)).transpose()
    }

    pub fn put_state(&mut self, library: u32, state: &LibraryState) -> Result<(), StoreError> {
        let json = serde_json::to_vec(state).map_err(StoreError::Record)?;
        self.states.insert(library, json.as_slice())?;
        Ok(())
    }

    /// `put_state` for a run under way, which holds its checkpoint apart
    /// from the state: one record, as if the checkpoint were in the state.
    pub fn put_running_state(
        &mut self,
        library: u32,
        state: &LibraryState,
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError> {
        let json = super::records::running_state_json(state, checkpoint).map_err(StoreError::Record)?;
        self.states.insert(library, json.as_slice())?;
        Ok(())
    }

    pub fn put_server_state(&mut self, server: &str, state: &ServerState) -> Result<(), StoreError> {
        let json = serde_json::to_vec(state).map_err(StoreError::Record)?;
        self.servers.insert(server, json.as_slice())?;
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
        let content = encode_content(item);
        let existing = self.items.get(key.as_slice())?.map(|value| {
            split_record(value.value()).map(|(old, stored)| (old, old.kind == item.kind && stored == content))
        });
        let (ordinal, outcome) = match existing {
            Some(Some((old, true))) => {
                if seen {
                    self.mark_seen(library, old.ordinal)?;
                }
                return Ok(Outcome::Unchanged);
            }
            Some(Some((old, false))) => {
                self.changes.remove(old.seq)?;
                if old.kind != item.kind {
                    decrement(state, old.kind);
                    increment(state, item.kind);
                }
                (old.ordinal, Outcome::Changed)
            }
            // An undecodable record is replaced; the next recount fixes the counters.
            Some(None) => (take_ordinal(state)?, Outcome::Changed),
            None => {
                increment(state, item.kind);
                (take_ordinal(state)?, Outcome::New)
            }
        };
        let seq = self.take_seq();
        let header = ItemHeader { kind: item.kind, ordinal, seq };
        self.items.insert(key.as_slice(), encode_item(&header, &content).as_slice())?;
        self.changes.insert(seq, change_value(OP_UPSERT, library, &item.id).as_slice())?;
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
        let header =
            self.items.get(key.as_slice())?.and_then(|value| split_record(value.value()).map(|(header, _)| header));
        match header {
            Some(header) => {
                self.mark_seen(library, header.ordinal)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub(super) fn mark_seen(&mut self, library: u32, ordinal: u32) -> Result<(), StoreError> {
        if let Some(held) = self.held.as_mut() {
            held.insert(ordinal);
            return Ok(());
        }
        self.mark_seen_in_chunks(library, ordinal)
    }

    /// Sets an item's bit in the seen chunks this transaction writes back.
    pub(super) fn mark_seen_in_chunks(&mut self, library: u32, ordinal: u32) -> Result<(), StoreError> {
        let key = seen_key(library, ordinal / SEEN_CHUNK_BITS);
        let bits = match self.seen_chunks.entry(key) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                let mut bits = match self.seen.get(key.as_slice())? {
                    Some(value) => value.value().to_vec(),
                    None => Vec::new(),
                };
                // Every chunk holds SEEN_CHUNK_BYTES; a shorter stored one
                // (damaged) is padded with unseen bits.
                if bits.len() < SEEN_CHUNK_BYTES {
                    bits.resize(SEEN_CHUNK_BYTES, 0);
                }
                entry.insert(bits)
            }
        };
        let bit = ordinal % SEEN_CHUNK_BITS;
        if let Some(byte) = bits.get_mut((bit / 8) as usize) {
            *byte |= 1 << (bit % 8);
        }
        Ok(())
    }

    /// Forgets every seen mark of a library (a new full pass begins).
    pub fn clear_seen(&mut self, library: u32) -> Result<(), StoreError> {
        let (start, end) = library_range(library);
        self.seen_chunks.retain(|key, _| !key.starts_with(&library.to_be_bytes()));
        self.seen.retain_in::<&[u8], _>(start.as_slice()..end.as_slice(), |_, _| false)?;
        Ok(())
    }

    /// Deletes an item by its key, recording a tombstone in the change feed.
    pub fn delete_key(&mut self, state: &mut LibraryState, key: &[u8]) -> Result<bool, StoreError> {
        let Some((library, id)) = split_item_key(key) else {
            return Ok(false);
        };
        let Some(old) = self.items.remove(key)? else {
            return Ok(false);
        };
        let header = split_record(old.value()).map(|(header, _)| header);
        drop(old);
        if let Some(header) = header {
            self.changes.remove(header.seq)?;
            decrement(state, header.kind);
        }
        let seq = self.take_seq();
        self.changes.insert(seq, change_value(OP_DELETE, library, id).as_slice())?;
        self.tombstones.insert(seq, super::compact::now())?;
        Ok(true)
    }

    /// Appends a run to the history, keeping the newest `keep`.
    pub fn append_run(&mut self, library: u32, record: &RunRecord, keep: u32) -> Result<(), StoreError> {
        let json = serde_json::to_vec(record).map_err(StoreError::Record)?;
        self.runs.insert(run_key(library, record.run).as_slice(), json.as_slice())?;
        let oldest_kept = record.run.saturating_sub(u64::from(keep).saturating_sub(1));
        let start = run_key(library, 0);
        let end = run_key(library, oldest_kept);
        self.runs.retain_in::<&[u8], _>(start.as_slice()..end.as_slice(), |_, _| false)?;
        Ok(())
    }
}

fn take_ordinal(state: &mut LibraryState) -> Result<u32, StoreError> {
    let ordinal = state.next_ordinal;
    state.next_ordinal = ordinal.checked_add(1).ok_or(StoreError::OrdinalsExhausted)?;
    Ok(ordinal)
}

fn increment(state: &mut LibraryState, kind: Kind) {
    let count = state.counts.entry(kind).or_insert(0);
    *count = count.saturating_add(1);
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
    let value = table.get(key)?;
    Ok(value.and_then(|value| value.value().try_into().ok().map(u64::from_be_bytes)))
}

fn read_u32(table: &impl ReadableTable<&'static str, &'static [u8]>, key: &str) -> Result<Option<u32>, StoreError> {
    let value = table.get(key)?;
    Ok(value.and_then(|value| value.value().try_into().ok().map(u32::from_be_bytes)))
}
