//! Where the store's bytes go: per table, its entries, the bytes of its keys
//! and values, and the pages its B-tree fills (with their slack); the item
//! records split into their fixed part and their body; and what redb has
//! allocated in all. The benchmark prints it beside the file's size, whose
//! difference with the allocated bytes is redb's free space.

use super::item_record::split_record;
use super::tables::*;
use super::{Store, StoreError};
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, TableStats};

/// One table's share of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpace {
    pub name: &'static str,
    pub entries: u64,
    /// Bytes of the keys and values themselves.
    pub stored_bytes: u64,
    /// Bytes of the table's pages: what is stored, redb's per-entry offsets
    /// and branch keys, and the unused rest of each page.
    pub page_bytes: u64,
    /// The unused part of `page_bytes`.
    pub slack_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Space {
    pub tables: Vec<TableSpace>,
    /// Of the `items` table's values: the contents (past kind, ordinal, seq).
    pub item_body_bytes: u64,
    /// Of the `items` table's stored bytes: the keys.
    pub item_key_bytes: u64,
    /// Pages redb has allocated, for the tables and its own bookkeeping.
    pub allocated_bytes: u64,
}

impl Store {
    /// Measures the store (reads every item record once).
    pub fn space(&self) -> Result<Space, StoreError> {
        let write = self.db.begin_write()?;
        let stats = write.stats()?;
        write.abort()?;
        let page_size = u64::try_from(stats.page_size()).unwrap_or(u64::MAX);
        let txn = self.db.begin_read()?;
        let mut tables = Vec::new();
        let mut measure = |name: &'static str, entries: u64, stats: TableStats| {
            let page_bytes =
                stats.stored_bytes().saturating_add(stats.metadata_bytes()).saturating_add(stats.fragmented_bytes());
            tables.push(TableSpace {
                name,
                entries,
                stored_bytes: stats.stored_bytes(),
                page_bytes,
                slack_bytes: stats.fragmented_bytes(),
            });
        };
        let items = txn.open_table(ITEMS)?;
        measure("items", items.len()?, items.stats()?);
        let (mut item_body_bytes, mut item_key_bytes) = (0u64, 0u64);
        for entry in items.iter()? {
            let (key, value) = entry?;
            item_key_bytes = item_key_bytes.saturating_add(byte_count(key.value()));
            let content = split_record(value.value()).map_or(&[][..], |(_, content)| content);
            item_body_bytes = item_body_bytes.saturating_add(byte_count(content));
        }
        let changes = txn.open_table(CHANGES)?;
        measure("changes", changes.len()?, changes.stats()?);
        for (name, definition) in [("seen", SEEN), ("runs", RUNS), ("pending", PENDING)] {
            let table = txn.open_table(definition)?;
            measure(name, table.len()?, table.stats()?);
        }
        let states = txn.open_table(LIBRARY_STATE)?;
        measure("library_state", states.len()?, states.stats()?);
        let libraries = txn.open_table(LIBRARIES)?;
        measure("libraries", libraries.len()?, libraries.stats()?);
        for (name, definition) in named_tables() {
            let table = txn.open_table(definition)?;
            measure(name, table.len()?, table.stats()?);
        }
        Ok(Space {
            tables,
            item_body_bytes,
            item_key_bytes,
            allocated_bytes: stats.allocated_pages().saturating_mul(page_size),
        })
    }
}

fn byte_count(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

/// The tables keyed by a name (`&str`).
fn named_tables() -> [(&'static str, TableDefinition<'static, &'static str, &'static [u8]>); 4] {
    [("meta", META), ("servers", SERVERS), ("controls", CONTROLS), ("sessions", SESSIONS)]
}
