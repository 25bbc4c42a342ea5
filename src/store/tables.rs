//! Every redb table and key encoding, in one place. ARCHITECTURE.md
//! documents the layout byte by byte; keep the two in step. Integers inside
//! keys and records are big-endian and fixed-width (never `usize`), so a
//! store written on x86_64 reads the same on armv7 and aarch64, and byte
//! order equals numeric order inside composite keys.

use redb::TableDefinition;

/// The version of the layout below. Bump it, and add a migration in
/// `store::migrate`, whenever the meaning of a stored byte changes.
/// Version 2: the compact item record (`item_record`).
pub const SCHEMA_VERSION: u32 = 2;

/// "schema_version" → u32 BE; "next_library" → u32 BE; "next_seq" → u64 BE;
/// "compacted_through" → u64 BE, the newest change sequence number whose
/// tombstone was compacted away (absent: none was); "tombstones_indexed" →
/// empty, set once `TOMBSTONES` holds every tombstone of `CHANGES`.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// server name length (u16 BE) ++ server name ++ library id → library number.
pub const LIBRARIES: TableDefinition<&[u8], u32> = TableDefinition::new("libraries");
/// library number → JSON `LibraryState` (counters, cursors, checkpoint).
pub const LIBRARY_STATE: TableDefinition<u32, &[u8]> = TableDefinition::new("library_state");
/// library number (u32 BE) ++ item id → item record (see `records`).
pub const ITEMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("items");
/// library number (u32 BE) ++ chunk (u32 BE) → 1024-byte bitmap: bit
/// `ordinal % 8192` of chunk `ordinal / 8192` is set when the item with that
/// ordinal was seen by the current full pass.
pub const SEEN: TableDefinition<&[u8], &[u8]> = TableDefinition::new("seen");
/// change sequence number → op (1 upsert, 2 delete) ++ library number (u32 BE) ++ item id.
pub const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");
/// library number (u32 BE) ++ run number (u64 BE) → JSON `RunRecord`.
pub const RUNS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("runs");
/// server name → JSON `ServerState`.
pub const SERVERS: TableDefinition<&str, &[u8]> = TableDefinition::new("servers");
/// server name → JSON `ServerControl` (paused by the daemon's controls).
/// Created by `open` in stores made before it existed.
pub const CONTROLS: TableDefinition<&str, &[u8]> = TableDefinition::new("controls");

/// server name → JSON `Session`: what a source keeps between runs outside
/// the catalog (Spotify's tokens, the time before which the server must not
/// be asked again). Created by `open` in stores made before it existed.
pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// library number (u32 BE) ++ parent item id → JSON `Item`: a parent (a
/// Spotify playlist) listed with a new version whose children are still
/// being fetched; it replaces the stored copy when its last child page
/// commits. Created by `open` in stores made before it existed.
pub const PENDING: TableDefinition<&[u8], &[u8]> = TableDefinition::new("pending");
/// library number (u32 BE) ++ parent item id → JSON `Fetched`: a parent out
/// of `pending` whose children are all fetched, waiting for the children
/// guard before its shortened listing's tail is deleted and it replaces the
/// stored copy. Created by `open` in stores made before it existed.
pub const FETCHED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("fetched");
/// change sequence number → deletion time (i64 BE, local epoch seconds):
/// the delete tombstones of `CHANGES`, oldest first, so the feed can be
/// compacted by count and age. Created by `open` (and filled from
/// `CHANGES`) in stores made before it existed.
pub const TOMBSTONES: TableDefinition<u64, i64> = TableDefinition::new("tombstones");

pub const SEEN_CHUNK_BITS: u32 = 8192;
pub const SEEN_CHUNK_BYTES: usize = (SEEN_CHUNK_BITS / 8) as usize;

#[allow(clippy::expect_used, reason = "config validation limits server names to 64 bytes")]
pub fn library_key(server: &str, library_id: &str) -> Vec<u8> {
    let server = server.as_bytes();
    let length = u16::try_from(server.len()).expect("server names are at most 64 bytes");
    let mut key = Vec::with_capacity(server.len().saturating_add(library_id.len()).saturating_add(2));
    key.extend_from_slice(&length.to_be_bytes());
    key.extend_from_slice(server);
    key.extend_from_slice(library_id.as_bytes());
    key
}

pub fn item_key(library: u32, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len().saturating_add(4));
    key.extend_from_slice(&library.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// The library number and item id of an item key (or a pending parent's).
pub fn split_item_key(key: &[u8]) -> Option<(u32, &str)> {
    let (library, id) = key.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*library), std::str::from_utf8(id).ok()?))
}

/// The half-open key range holding every item (or seen chunk, or run) of a
/// library: [library ++ "", library+1 ++ "").
pub fn library_range(library: u32) -> (Vec<u8>, Vec<u8>) {
    let start = library.to_be_bytes().to_vec();
    let end = match library.checked_add(1) {
        Some(next) => next.to_be_bytes().to_vec(),
        None => vec![0xff; 5],
    };
    (start, end)
}

pub fn seen_key(library: u32, chunk: u32) -> [u8; 8] {
    let mut key = [0u8; 8];
    key[..4].copy_from_slice(&library.to_be_bytes());
    key[4..].copy_from_slice(&chunk.to_be_bytes());
    key
}

pub fn run_key(library: u32, run: u64) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&library.to_be_bytes());
    key[4..].copy_from_slice(&run.to_be_bytes());
    key
}

pub const OP_UPSERT: u8 = 1;
pub const OP_DELETE: u8 = 2;

pub fn change_value(op: u8, library: u32, id: &str) -> Vec<u8> {
    let mut value = Vec::with_capacity(id.len().saturating_add(5));
    value.push(op);
    value.extend_from_slice(&library.to_be_bytes());
    value.extend_from_slice(id.as_bytes());
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_explicit_big_endian() {
        assert_eq!(item_key(1, "55"), vec![0, 0, 0, 1, b'5', b'5']);
        assert_eq!(split_item_key(&item_key(258, "a/1")), Some((258, "a/1")));
        assert_eq!(split_item_key(&[0, 0, 1]), None);
        assert_eq!(library_key("ab", "1"), vec![0, 2, b'a', b'b', b'1']);
        assert_eq!(seen_key(2, 3), [0, 0, 0, 2, 0, 0, 0, 3]);
        assert_eq!(run_key(1, 258), [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2]);
        let (start, end) = library_range(1);
        assert!(start.as_slice() <= item_key(1, "").as_slice());
        assert!(item_key(1, "\u{10ffff}").as_slice() < end.as_slice());
        assert!(end.as_slice() <= item_key(2, "").as_slice());
    }
}
