//! Where the store's bytes go: per table, the bytes of its keys and values
//! and of the pages its B-tree fills (with their slack); the item records'
//! keys and contents; and what redb has allocated in all. The benchmark
//! prints it beside the file's size, whose difference with the allocated
//! bytes is redb's free space and headers.

use super::item_record::split_record;
use super::tables::*;
use super::{Store, StoreError};
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, TableStats};

/// One table's share of the file.
#[derive(Clone, Debug)]
pub struct TableSpace {
    pub name: &'static str,
    /// Bytes of the keys and values themselves.
    pub stored_bytes: u64,
    /// Bytes of the table's pages: what is stored, redb's per-entry offsets
    /// and branch keys, and the unused rest of each page.
    pub page_bytes: u64,
    /// The unused part of `page_bytes`.
    pub slack_bytes: u64,
}

#[derive(Clone, Debug)]
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
        let mut measure = |name: &'static str, stats: TableStats| {
            let page_bytes =
                stats.stored_bytes().saturating_add(stats.metadata_bytes()).saturating_add(stats.fragmented_bytes());
            tables.push(TableSpace {
                name,
                stored_bytes: stats.stored_bytes(),
                page_bytes,
                slack_bytes: stats.fragmented_bytes(),
            });
        };
        let items = txn.open_table(ITEMS)?;
        measure("items", items.stats()?);
        let (mut item_body_bytes, mut item_key_bytes) = (0u64, 0u64);
        for entry in items.iter()? {
            let (key, value) = entry?;
            item_key_bytes = item_key_bytes.saturating_add(byte_count(key.value()));
            let content = split_record(value.value()).map_or(&[][..], |(_, content)| content);
            item_body_bytes = item_body_bytes.saturating_add(byte_count(content));
        }
        let changes = txn.open_table(CHANGES)?;
        measure("changes", changes.stats()?);
        for (name, definition) in [("seen", SEEN), ("runs", RUNS), ("pending", PENDING)] {
            let table = txn.open_table(definition)?;
            measure(name, table.stats()?);
        }
        let states = txn.open_table(LIBRARY_STATE)?;
        measure("library_state", states.stats()?);
        let libraries = txn.open_table(LIBRARIES)?;
        measure("libraries", libraries.stats()?);
        for (name, definition) in named_tables() {
            let table = txn.open_table(definition)?;
            measure(name, table.stats()?);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Item, Kind};
    use redb::backends::InMemoryBackend;

    #[test]
    fn the_items_bytes_are_counted_once_each() {
        let store = Store::with_backend(InMemoryBackend::new(), 1 << 20).unwrap();
        let (library, _) = store.library("home", "1", "Movies").unwrap();
        let ids: Vec<String> = (0..300).map(|n| format!("movie-{n}")).collect();
        store
            .write(|writer| {
                let mut state = writer.state(library)?.unwrap();
                for id in &ids {
                    writer.upsert(library, &mut state, &Item::new(id.as_str(), Kind::Movie, "A title", 7), false)?;
                }
                writer.put_state(library, &state)
            })
            .unwrap();
        let space = store.space().unwrap();
        let keys: usize = ids.iter().map(|id| id.len() + 4).sum();
        assert_eq!(space.item_key_bytes, keys as u64);
        // Each content: presence 0, title (1 + 7 bytes), updated_at 14.
        assert_eq!(space.item_body_bytes, 300 * 10);
        let items = space.tables.iter().find(|table| table.name == "items").unwrap();
        // Kind, ordinal (1 or 2 bytes), seq (1 or 2 bytes) per record.
        let fixed = items.stored_bytes - space.item_key_bytes - space.item_body_bytes;
        assert!((300 * 3..=300 * 5).contains(&fixed), "{fixed}");
        assert!(items.page_bytes >= items.stored_bytes + items.slack_bytes);
        let pages: u64 = space.tables.iter().map(|table| table.page_bytes).sum();
        assert!(space.allocated_bytes >= pages, "{space:?}");
    }
}
