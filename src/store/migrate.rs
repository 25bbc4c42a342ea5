//! Bringing a store of schema version 1 to version 2 when it is opened.
//! Version 1 kept each item as a 30-byte header and the item's JSON;
//! version 2 keeps the compact record (`item_record`). Records are copied
//! in batches into a table of their own, each batch committed with its
//! progress, while the version-1 tables stay whole and authoritative; one
//! last transaction swaps the tables and the version. A power cut leaves
//! the old store (the next open goes on after the last batch) or the new
//! one, never half. The file is then compacted, once, to give back the
//! old records' pages; an interrupted compaction is taken up at the next
//! open.

use super::StoreError;
use super::item_record::{ItemHeader, encode_content, encode_item};
use super::tables::{self, ITEMS, META, SCHEMA_VERSION, split_item_key};
use crate::model::{Item, Kind};
use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use std::ops::Bound;

/// Records copied per transaction: bounded memory, progress kept often.
const BATCH: usize = 1000;
/// The version-2 records while they are being copied.
const MIGRATED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("items_migrating");
/// `meta` key of the copy's progress: the version-1 `next_seq` when the
/// copy began (u64 BE), then the key of the last record copied.
const PROGRESS: &str = "migration";
/// `meta` key present (empty value) while a compaction is owed.
pub(super) const COMPACTION_OWED: &str = "compaction_owed";

/// Migrates a version-1 store: copy, swap, compact.
pub(super) fn from_version_1(db: &mut Database) -> Result<(), StoreError> {
    log::info!(
        "migrating the store to schema version {SCHEMA_VERSION}; an interrupted migration goes on at the next start"
    );
    let mut skipped = 0u64;
    while !copy_batch(db, &mut skipped)? {}
    if skipped > 0 {
        log::warn!(
            "migration: {skipped} item records did not decode and were left out; the next full sync fetches them again"
        );
    }
    swap(db)?;
    compact(db)
}

/// Copies the next batch of records; true once every record is copied.
fn copy_batch(db: &Database, skipped: &mut u64) -> Result<bool, StoreError> {
    let txn = db.begin_write()?;
    let done = {
        let mut meta = txn.open_table(META)?;
        let next_seq = meta.get("next_seq")?.and_then(|value| value.value().try_into().ok().map(u64::from_be_bytes));
        let stamp = next_seq.unwrap_or(0).to_be_bytes();
        let progress = meta.get(PROGRESS)?.map(|value| value.value().to_vec());
        let after = match progress.as_deref().and_then(|progress| progress.strip_prefix(stamp.as_slice())) {
            Some(after) => Some(after.to_vec()),
            None => {
                // Not begun, or the version-1 store changed since (an older
                // mediasync ran): copy from the start.
                txn.delete_table(MIGRATED)?;
                None
            }
        };
        let old = txn.open_table(ITEMS)?;
        let mut new = txn.open_table(MIGRATED)?;
        let start = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let mut last = None;
        let mut copied = 0usize;
        for entry in old.range::<&[u8]>((start, Bound::Unbounded))?.take(BATCH) {
            let (key, value) = entry?;
            match convert_version_1(value.value()) {
                Some(record) => {
                    new.insert(key.value(), record.as_slice())?;
                }
                None => {
                    let (library, id) = split_item_key(key.value()).unwrap_or((0, "?"));
                    log::warn!("migration: the record of item {id} in library {library} does not decode");
                    *skipped = skipped.saturating_add(1);
                }
            }
            last = Some(key.value().to_vec());
            copied = copied.saturating_add(1);
        }
        if let Some(last) = last {
            meta.insert(PROGRESS, [stamp.as_slice(), &last].concat().as_slice())?;
        }
        copied < BATCH
    };
    txn.commit()?;
    Ok(done)
}

/// A version-1 record: version 1, kind, ordinal (u32 BE), hash, seq (u64
/// BE), updated_at (i64 BE), then the item's JSON. The hash and
/// `updated_at` are not kept: the fields hold them.
fn convert_version_1(record: &[u8]) -> Option<Vec<u8>> {
    let (&[version, kind], rest) = record.split_first_chunk::<2>()?;
    let (ordinal, rest) = rest.split_first_chunk::<4>()?;
    let (_hash, rest) = rest.split_first_chunk::<8>()?;
    let (seq, rest) = rest.split_first_chunk::<8>()?;
    let (_updated_at, json) = rest.split_first_chunk::<8>()?;
    if version != 1 {
        return None;
    }
    let item: Item = serde_json::from_slice(json).ok()?;
    let header = ItemHeader {
        kind: Kind::from_code(kind)?,
        ordinal: u32::from_be_bytes(*ordinal),
        seq: u64::from_be_bytes(*seq),
    };
    Some(encode_item(&header, &encode_content(&item)))
}

/// The version-2 records replace the version-1 ones, atomically.
fn swap(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(MIGRATED)?;
    txn.delete_table(ITEMS)?;
    txn.rename_table(MIGRATED, ITEMS)?;
    {
        let mut meta = txn.open_table(META)?;
        meta.remove(PROGRESS)?;
        meta.insert(COMPACTION_OWED, [].as_slice())?;
        meta.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice())?;
    }
    open_every_table(&txn)?;
    txn.commit()?;
    Ok(())
}

/// Gives the free pages back to the file system, then records it done.
pub(super) fn compact(db: &mut Database) -> Result<(), StoreError> {
    db.compact()?;
    let txn = db.begin_write()?;
    txn.open_table(META)?.remove(COMPACTION_OWED)?;
    txn.commit()?;
    Ok(())
}

/// `meta` key present (empty value) once every table exists, the feed's
/// tombstone index filled.
pub(super) const EVERY_TABLE: &str = "tombstones_indexed";

/// Creates every table of the current schema that does not exist yet, and
/// fills the tombstone index of a store made before it (`EVERY_TABLE`).
pub(super) fn open_every_table(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(tables::META)?;
    txn.open_table(tables::LIBRARIES)?;
    txn.open_table(tables::LIBRARY_STATE)?;
    txn.open_table(tables::ITEMS)?;
    txn.open_table(tables::SEEN)?;
    txn.open_table(tables::CHANGES)?;
    txn.open_table(tables::RUNS)?;
    txn.open_table(tables::SERVERS)?;
    txn.open_table(tables::CONTROLS)?;
    txn.open_table(tables::SESSIONS)?;
    txn.open_table(tables::PENDING)?;
    txn.open_table(tables::FETCHED)?;
    super::compact::index_tombstones(txn)?;
    txn.open_table(META)?.insert(EVERY_TABLE, [].as_slice())?;
    Ok(())
}
