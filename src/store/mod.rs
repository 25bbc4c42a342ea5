//! The catalog's persistence: one redb file. Only this module imports redb.
//! Writes happen in `Writer` transactions, one per synced page that changes
//! something, so items, seen marks and the checkpoint always commit
//! together; reads stream from read transactions and never load a whole
//! library into memory.

pub mod backend;
mod compact;
mod controls;
mod error;
mod item_record;
mod marks;
mod migrate;
mod nested;
mod open;
mod paging;
pub mod records;
mod session;
mod space;
pub mod tables;
mod writer;

use crate::model::{Item, Kind, content_hash};
use item_record::{ItemHeader, content_updated_at, decode_item, split_record};
use records::{LibraryState, RunRecord, ServerState};
use redb::{Database, ReadableTable, ReadableTableMetadata};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use tables::*;

pub use compact::TombstoneLimits;
pub use controls::ServerControl;
pub use error::{CreateCause, CreateStep, Damage, StoreError, StoreErrorKind};
pub use marks::{HeldMarks, MarksOfThePass};
pub use session::Session;
pub use space::{Space, TableSpace};
pub use writer::Writer;

pub struct Store {
    db: Database,
    /// Transactions committed since the store was opened (`commits`).
    commits: AtomicU64,
}

/// How a `write_unless_unchanged` transaction ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The work changed the store: commit it.
    Commit,
    /// The work changed nothing: drop the transaction.
    Abort,
}

/// What applying one item did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    New,
    Changed,
    Unchanged,
}

/// One exported row: the item, where it lives, its hash and last change.
pub struct StoredItem {
    pub library: u32,
    /// `content_hash` of the item's JSON, computed on reading (the record
    /// does not keep it: it follows from the fields).
    pub hash: u64,
    pub seq: u64,
    pub item: Item,
}

impl StoredItem {
    /// Decodes the record stored under `key` (library number, item id).
    fn decode(key: &[u8], record: &[u8]) -> Option<StoredItem> {
        let (library, id) = split_item_key(key)?;
        let (header, item) = decode_item(id, record)?;
        Some(StoredItem { library, hash: content_hash(&item.body_json()), seq: header.seq, item })
    }
}

/// A library's items of one kind, as `Store::recount` finds them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindTally {
    pub count: u64,
    /// The newest `updated_at` among them.
    pub newest: i64,
}

/// An entry of the change feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub seq: u64,
    pub deleted: bool,
    pub library: u32,
    pub id: String,
}

impl Store {
    /// Opens the store at `path`, creating it safely when it does not exist.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Store, StoreError> {
        open::open_file(path, cache_bytes).map(|db| Store { db, commits: AtomicU64::new(0) })
    }

    /// A store held in memory only, gone when dropped: for work that needs
    /// no catalog, such as checking a media server while a running daemon
    /// holds the store file.
    pub fn in_memory() -> Result<Store, StoreError> {
        Store::with_backend(redb::backends::InMemoryBackend::new(), 1 << 20)
    }

    /// A store on any backend (tests use memory and simulated power cuts).
    pub fn with_backend(backend: impl redb::StorageBackend, cache_bytes: usize) -> Result<Store, StoreError> {
        open::open_backend(backend, cache_bytes).map(|db| Store { db, commits: AtomicU64::new(0) })
    }

    /// Runs `work` in one write transaction and commits it. Nothing `work`
    /// wrote is visible, or durable, unless it returns `Ok`.
    pub fn write<T>(&self, work: impl FnOnce(&mut Writer<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let txn = self.db.begin_write()?;
        let value = {
            let mut writer = Writer::open(&txn)?;
            let value = work(&mut writer)?;
            writer.finish()?;
            value
        };
        self.commit(txn)?;
        Ok(value)
    }

    /// Commits `txn`, counted by `commits`.
    fn commit(&self, txn: redb::WriteTransaction) -> Result<(), StoreError> {
        txn.commit()?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// How many write transactions this process committed on the store
    /// since it opened it (opening's own commits aside).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// `write` for work that may change nothing: it says so with
    /// `Ending::Abort`, and then nothing is committed (no page written, no
    /// fsync). Work that wrote seen marks or took a change sequence number
    /// is committed whatever it says.
    pub fn write_unless_unchanged<T>(
        &self,
        work: impl FnOnce(&mut Writer<'_>) -> Result<(T, Ending), StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_write()?;
        let (value, ending) = {
            let mut writer = Writer::open(&txn)?;
            let (value, ending) = work(&mut writer)?;
            let wrote = writer.finish()?;
            (value, if wrote { Ending::Commit } else { ending })
        };
        match ending {
            Ending::Commit => self.commit(txn)?,
            Ending::Abort => txn.abort()?,
        }
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
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LIBRARIES)?;
        let key = library_key(server, library_id);
        Ok(table.get(key.as_slice())?.map(|value| value.value()))
    }

    pub fn state(&self, library: u32) -> Result<Option<LibraryState>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LIBRARY_STATE)?;
        let value = table.get(library)?;
        value.map(|value| serde_json::from_slice(value.value()).map_err(StoreError::Record)).transpose()
    }

    /// Every library the store knows, in library-number order.
    pub fn libraries(&self) -> Result<Vec<(u32, LibraryState)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LIBRARY_STATE)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            out.push((key.value(), serde_json::from_slice(value.value()).map_err(StoreError::Record)?));
        }
        Ok(out)
    }

    pub fn server_state(&self, server: &str) -> Result<ServerState, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SERVERS)?;
        let value = table.get(server)?;
        match value {
            Some(value) => serde_json::from_slice(value.value()).map_err(StoreError::Record),
            None => Ok(ServerState::default()),
        }
    }

    /// Streams a library's items in id order to `visit`, which may stop the
    /// walk by returning `false`.
    pub fn for_each_item(&self, library: u32, mut visit: impl FnMut(StoredItem) -> bool) -> Result<(), StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ITEMS)?;
        let (start, end) = library_range(library);
        for entry in table.range(start.as_slice()..end.as_slice())? {
            let (key, value) = entry?;
            let Some(stored) = StoredItem::decode(key.value(), value.value()) else {
                return Err(StoreError::ItemRecord { library });
            };
            if !visit(stored) {
                break;
            }
        }
        Ok(())
    }

    pub fn item(&self, library: u32, id: &str) -> Result<Option<StoredItem>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ITEMS)?;
        let key = item_key(library, id);
        let Some(value) = table.get(key.as_slice())? else {
            return Ok(None);
        };
        Ok(StoredItem::decode(&key, value.value()))
    }

    /// Counts a library's items per kind, with the newest change time of
    /// each, by walking them (the counters in `LibraryState` are maintained
    /// incrementally, and its newest times only ever rise; this is the
    /// ground truth).
    pub fn recount(&self, library: u32) -> Result<BTreeMap<Kind, KindTally>, StoreError> {
        let mut tallies: BTreeMap<Kind, KindTally> = BTreeMap::new();
        self.scan_headers(library, None, |_, header, content| {
            let updated_at = content_updated_at(content).unwrap_or(i64::MIN);
            let tally = tallies.entry(header.kind).or_insert(KindTally { count: 0, newest: updated_at });
            tally.count = tally.count.saturating_add(1);
            tally.newest = tally.newest.max(updated_at);
            true
        })?;
        Ok(tallies)
    }

    /// The ids of up to `limit` unseen items of one kind, after `after` (an
    /// id) in id order.
    pub fn unseen_ids(
        &self,
        library: u32,
        kind: Kind,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let after = after.map(|id| item_key(library, id));
        let (keys, _) = self.unseen(library, &[kind], after.as_deref(), limit)?;
        Ok(keys.iter().filter_map(|key| split_item_key(key).map(|(_, id)| id.to_string())).collect())
    }

    /// Walks item headers and undecoded contents from just after `after`.
    fn scan_headers(
        &self,
        library: u32,
        after: Option<&[u8]>,
        mut visit: impl FnMut(&[u8], ItemHeader, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ITEMS)?;
        let (start, end) = library_range(library);
        let range = match after {
            Some(after) => {
                table.range::<&[u8]>((std::ops::Bound::Excluded(after), std::ops::Bound::Excluded(end.as_slice())))
            }
            None => table.range::<&[u8]>(start.as_slice()..end.as_slice()),
        }?;
        for entry in range {
            let (key, value) = entry?;
            let Some((header, content)) = split_record(value.value()) else {
                continue;
            };
            if !visit(key.value(), header, content) {
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
        self.scan_unseen(library, kinds, after, limit, MarksOfThePass::Stored)
    }

    /// The last runs of a library, oldest first.
    pub fn runs(&self, library: u32) -> Result<Vec<RunRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RUNS)?;
        let (start, end) = library_range(library);
        let mut out = Vec::new();
        for entry in table.range(start.as_slice()..end.as_slice())? {
            let (_, value) = entry?;
            out.push(serde_json::from_slice(value.value()).map_err(StoreError::Record)?);
        }
        Ok(out)
    }

    /// Changes after sequence number `since`, at most `limit`.
    pub fn changes(&self, since: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CHANGES)?;
        let mut out = Vec::new();
        for entry in table.range(since.saturating_add(1)..)? {
            let (key, value) = entry?;
            let Some((&op, rest)) = value.value().split_first() else { continue };
            let Some((library, id)) = rest.split_first_chunk::<4>() else { continue };
            out.push(Change {
                seq: key.value(),
                deleted: op == OP_DELETE,
                library: u32::from_be_bytes(*library),
                id: String::from_utf8_lossy(id).into_owned(),
            });
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Number of stored items over all libraries.
    pub fn item_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ITEMS)?;
        Ok(table.len()?)
    }
}
