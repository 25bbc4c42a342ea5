//! Stores of schema version 1 (a 30-byte header and the item's JSON per
//! record, ARCHITECTURE.md's history) are migrated when opened: in batches
//! of 1000 records, each committed with its progress, then one swap. These
//! tests write version-1 stores byte for byte as mediasync 0.1 did (the
//! real one in `tests/data` is read by `portability`) and check that the
//! migrated store reads the same items, hashes, change feed, seen marks and
//! counts; that a power cut at any sync point of a migration leaves the old
//! store whole or the new one whole, and the next open finishes the job;
//! and that a version-1 store written again by an older mediasync after an
//! interrupted migration is copied again from the start.

use crate::disk::{SimulatedDisk, memory_image};
use mediasync::model::{Item, Kind, content_hash};
use mediasync::store::Store;
use mediasync::store::backend::SyncOnGrow;
use mediasync::store::records::LibraryState;
use mediasync::store::tables::{CHANGES, ITEMS, LIBRARIES, LIBRARY_STATE, META, SEEN, library_key, seen_key};
use redb::{Database, ReadableTable, TableHandle};
use std::collections::BTreeMap;

const CACHE: usize = 1 << 20;
/// Two batches: the copy resumes mid-way after a cut.
const ITEMS_PER_STORE: u64 = 1050;
const LIBRARIES_IN_STORE: [u32; 2] = [1, 2];

/// Item `n`: in library 1 or 2, of every kind, with fields present or not,
/// large and negative numbers and non-ASCII text.
fn item(n: u64) -> (u32, Item) {
    let kind = Kind::ALL[(n % 8) as usize];
    let mut item = Item::new(format!("{n}"), kind, format!("Title {n} – ünïcode"), 1_600_000_000 + n as i64);
    if n % 2 == 0 {
        item.parent_id = Some(format!("{}", n / 2));
        item.index = Some(n as i64 % 13);
    }
    if n % 3 == 0 {
        item.added_at = Some(-(n as i64));
        item.year = Some(1990 + (n % 30) as i32);
        item.guid = Some(format!("plex://item/{n:024}"));
    }
    if n % 5 == 0 {
        item.duration_ms = Some(i64::MAX - n as i64);
        item.thumb = Some(format!("/library/metadata/{n}/thumb/1600000000"));
        item.file = Some(format!("/data/Media/Title {n}.mkv"));
    }
    if n % 7 == 0 {
        item.sort_title = Some(format!("title {n}"));
        item.parent_index = Some(-1);
        item.marker = Some(format!("etag-{n}"));
    }
    (LIBRARIES_IN_STORE[(n % 2) as usize], item)
}

/// What a store must read back: per library, (item, seq) by id.
type Catalog = BTreeMap<u32, BTreeMap<String, (Item, u64)>>;

fn catalog(items: impl Iterator<Item = (u32, Item, u64)>) -> Catalog {
    let mut catalog = Catalog::new();
    for (library, item, seq) in items {
        catalog.entry(library).or_default().insert(item.id.clone(), (item, seq));
    }
    catalog
}

/// Item `n` written at change `n + 1` (so the feed is 1..=ITEMS_PER_STORE).
fn original() -> Catalog {
    catalog((0..ITEMS_PER_STORE).map(|n| {
        let (library, item) = item(n);
        (library, item, n + 1)
    }))
}

/// The version-1 record: version 1, kind, ordinal (u32 BE), FNV-1a of the
/// JSON (u64 BE), seq (u64 BE), updated_at (i64 BE), the JSON.
fn version_1_record(item: &Item, ordinal: u32, seq: u64) -> Vec<u8> {
    let json = item.body_json();
    let mut record = vec![1, item.kind.code()];
    record.extend_from_slice(&ordinal.to_be_bytes());
    record.extend_from_slice(&content_hash(&json).to_be_bytes());
    record.extend_from_slice(&seq.to_be_bytes());
    record.extend_from_slice(&item.updated_at.to_be_bytes());
    record.extend_from_slice(&json);
    record
}

fn change_value(library: u32, id: &str) -> Vec<u8> {
    [&[1u8][..], &library.to_be_bytes(), id.as_bytes()].concat()
}

/// A version-1 store holding `catalog`, made before the controls, sessions
/// and pending tables existed. Ordinals follow the ids' order per library;
/// every third ordinal is marked seen.
fn version_1_image(catalog: &Catalog) -> Vec<u8> {
    let disk = SimulatedDisk::new(&[]);
    let db = Database::builder().create_with_backend(disk.clone()).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut meta = txn.open_table(META).unwrap();
        let mut libraries = txn.open_table(LIBRARIES).unwrap();
        let mut states = txn.open_table(LIBRARY_STATE).unwrap();
        let mut items = txn.open_table(ITEMS).unwrap();
        let mut changes = txn.open_table(CHANGES).unwrap();
        let mut seen = txn.open_table(SEEN).unwrap();
        let mut next_seq = 1;
        for (&library, entries) in catalog {
            let mut state = LibraryState {
                server: "home".into(),
                library_id: library.to_string(),
                title: format!("Library {library}"),
                ..LibraryState::default()
            };
            let mut bits = vec![0u8; 1024];
            for (ordinal, (item, seq)) in entries.values().enumerate() {
                let ordinal = ordinal as u32;
                let key = [&library.to_be_bytes()[..], item.id.as_bytes()].concat();
                items.insert(key.as_slice(), version_1_record(item, ordinal, *seq).as_slice()).unwrap();
                changes.insert(*seq, change_value(library, &item.id).as_slice()).unwrap();
                if ordinal % 3 == 0 {
                    bits[ordinal as usize / 8] |= 1 << (ordinal % 8);
                }
                *state.counts.entry(item.kind).or_insert(0) += 1;
                state.next_ordinal = ordinal + 1;
                next_seq = next_seq.max(seq + 1);
            }
            seen.insert(seen_key(library, 0).as_slice(), bits.as_slice()).unwrap();
            libraries.insert(library_key("home", &library.to_string()).as_slice(), library).unwrap();
            states.insert(library, serde_json::to_vec(&state).unwrap().as_slice()).unwrap();
        }
        meta.insert("schema_version", 1u32.to_be_bytes().as_slice()).unwrap();
        meta.insert("next_library", 3u32.to_be_bytes().as_slice()).unwrap();
        meta.insert("next_seq", u64::to_be_bytes(next_seq).as_slice()).unwrap();
    }
    txn.commit().unwrap();
    drop(db);
    disk.live()
}

/// The store reads exactly `expected`: items, hashes of their JSON (what
/// version 1 stored), seqs, the change feed, seen marks, counts.
fn assert_reads(store: &Store, expected: &Catalog) {
    let mut feed = Vec::new();
    for (&library, entries) in expected {
        let mut stored = BTreeMap::new();
        store
            .for_each_item(library, |entry| {
                assert_eq!(entry.hash, content_hash(&entry.item.body_json()));
                stored.insert(entry.item.id.clone(), (entry.item, entry.seq));
                true
            })
            .unwrap();
        assert_eq!(&stored, entries, "library {library}");
        let (unseen, complete) = store.unseen(library, &Kind::ALL, None, usize::MAX).unwrap();
        assert!(complete);
        let unseen_ids: Vec<String> = unseen.iter().map(|key| String::from_utf8(key[4..].to_vec()).unwrap()).collect();
        let expected_unseen: Vec<String> =
            entries.keys().enumerate().filter(|(ordinal, _)| ordinal % 3 != 0).map(|(_, id)| id.clone()).collect();
        assert_eq!(unseen_ids, expected_unseen, "seen marks of library {library}");
        let counts = store.state(library).unwrap().unwrap().counts;
        let recounted: BTreeMap<Kind, u64> =
            store.recount(library).unwrap().into_iter().map(|(kind, tally)| (kind, tally.count)).collect();
        assert_eq!(recounted, counts, "counts of library {library}");
        feed.extend(entries.values().map(|(item, seq)| (*seq, library, item.id.clone())));
    }
    feed.sort();
    let stored_feed: Vec<(u64, u32, String)> = store
        .changes(0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|change| {
            assert!(!change.deleted);
            (change.seq, change.library, change.id)
        })
        .collect();
    assert_eq!(stored_feed, feed, "the change feed");
}

/// The store still takes writes: an item added, read back.
fn assert_writable(store: &Store) {
    store
        .write(|writer| {
            let mut state = writer.state(1)?.unwrap();
            writer.upsert(1, &mut state, &Item::new("new", Kind::Movie, "Added after", 5), true)?;
            writer.put_state(1, &state)
        })
        .unwrap();
    assert_eq!(store.item(1, "new").unwrap().unwrap().item.title, "Added after");
}

/// A raw look at an image: its schema version, its tables, its meta keys.
struct Raw {
    version: u32,
    tables: Vec<String>,
    meta_keys: Vec<String>,
    db: Database,
}

fn raw(image: &[u8]) -> Raw {
    let db = Database::builder().create_with_backend(memory_image(image)).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    let version = u32::from_be_bytes(meta.get("schema_version").unwrap().unwrap().value().try_into().unwrap());
    let meta_keys = meta.iter().unwrap().map(|entry| entry.unwrap().0.value().to_string()).collect();
    let tables = txn.list_tables().unwrap().map(|table| table.name().to_string()).collect();
    drop(meta);
    drop(txn);
    Raw { version, tables, meta_keys, db }
}

impl Raw {
    /// The version-1 items table holds exactly `expected`, decodable.
    fn assert_version_1_whole(&self, expected: &Catalog) {
        let txn = self.db.begin_read().unwrap();
        let items = txn.open_table(ITEMS).unwrap();
        let mut count = 0;
        for entry in items.iter().unwrap() {
            let (key, value) = entry.unwrap();
            let (library, id) = key.value().split_at(4);
            let library = u32::from_be_bytes(library.try_into().unwrap());
            let (item, seq) = &expected[&library][std::str::from_utf8(id).unwrap()];
            let value = value.value();
            assert_eq!(value[0], 1, "a version-1 record");
            assert_eq!(u64::from_be_bytes(value[14..22].try_into().unwrap()), *seq);
            assert_eq!(&serde_json::from_slice::<Item>(&value[30..]).unwrap(), item);
            count += 1;
        }
        assert_eq!(count, expected.values().map(BTreeMap::len).sum::<usize>(), "every version-1 record is there");
    }
}

/// The `meta` keys of a current store with a history.
const CURRENT_META_KEYS: [&str; 4] = ["next_library", "next_seq", "schema_version", "tombstones_indexed"];

/// Opens `image` through the store (migrating it), checks it, and returns
/// the image it left.
fn open_and_check(image: &[u8], expected: &Catalog) -> Vec<u8> {
    let disk = SimulatedDisk::new(image);
    let store = Store::with_backend(SyncOnGrow::new(disk.clone()), CACHE).unwrap();
    assert_reads(&store, expected);
    drop(store);
    disk.live()
}

#[test]
fn a_version_1_store_migrates_once_and_reads_the_same() {
    let expected = original();
    let image = version_1_image(&expected);
    let before = raw(&image);
    assert_eq!(before.version, 1);
    before.assert_version_1_whole(&expected);

    let migrated = open_and_check(&image, &expected);
    let after = raw(&migrated);
    assert_eq!(after.version, 2);
    assert_eq!(after.meta_keys, CURRENT_META_KEYS, "no migration leftovers");
    for table in ["controls", "sessions", "pending", "fetched", "tombstones"] {
        assert!(after.tables.iter().any(|name| name == table), "{table} is created");
    }
    assert!(!after.tables.iter().any(|name| name.contains("migrating")), "{:?}", after.tables);
    drop(after);

    // Opened again, it is current: nothing to migrate, same reading.
    let disk = SimulatedDisk::new(&migrated);
    let store = Store::with_backend(SyncOnGrow::new(disk.clone()), CACHE).unwrap();
    assert_reads(&store, &expected);
    assert_writable(&store);
}

#[test]
fn a_power_cut_during_a_migration_leaves_the_old_store_or_the_new_one() {
    let expected = original();
    let image = version_1_image(&expected);
    let total_syncs = {
        let disk = SimulatedDisk::new(&image);
        drop(Store::with_backend(SyncOnGrow::new(disk.clone()), CACHE).unwrap());
        disk.syncs()
    };
    // Seeds per sync point: 4 natively, fewer under qemu (the ARM CI job
    // sets MEDIASYNC_MIGRATION_SEEDS), where every run is ten times slower.
    let seeds: u64 = std::env::var("MEDIASYNC_MIGRATION_SEEDS").ok().and_then(|seeds| seeds.parse().ok()).unwrap_or(4);
    let (mut old, mut new) = (0, 0);
    for cut in 1..=total_syncs {
        for seed in 0..seeds {
            let disk = SimulatedDisk::new(&image);
            disk.cut_after(cut, 0x51_7cc1_b727_220a ^ (cut << 24) ^ seed.wrapping_mul(104_729));
            drop(Store::with_backend(SyncOnGrow::new(disk.clone()), CACHE));
            let crash = disk.crash_image().unwrap_or_else(|| panic!("cut {cut} of {total_syncs} did not happen"));
            let found = raw(&crash);
            match found.version {
                1 => {
                    found.assert_version_1_whole(&expected);
                    old += 1;
                }
                2 => new += 1,
                version => panic!("cut {cut} seed {seed}: schema version {version}"),
            }
            drop(found);
            let disk = SimulatedDisk::new(&crash);
            let store = Store::with_backend(SyncOnGrow::new(disk.clone()), CACHE)
                .unwrap_or_else(|err| panic!("cut {cut} seed {seed}: the crash image does not open: {err}"));
            assert_reads(&store, &expected);
            assert_writable(&store);
            drop(store);
            assert_eq!(raw(&disk.live()).meta_keys, CURRENT_META_KEYS);
        }
    }
    println!("migration under power cuts: {total_syncs} sync points, {old} images held the old store, {new} the new");
    assert!(old > 0 && new > 0, "cuts fell both before and after the swap");
}

#[test]
fn a_version_1_store_written_after_an_interrupted_migration_is_copied_again() {
    let original = original();
    let image = version_1_image(&original);
    // Cut the power once the first batch is committed, before the swap.
    let crash = (1..)
        .find_map(|cut| {
            let disk = SimulatedDisk::new(&image);
            disk.cut_after(cut, 7);
            drop(Store::with_backend(SyncOnGrow::new(disk.clone()), CACHE));
            let crash = disk.crash_image()?;
            let found = raw(&crash);
            (found.version == 1 && found.meta_keys.iter().any(|key| key == "migration")).then_some(crash)
        })
        .unwrap();

    // An older mediasync opens it (version 1) and writes: an edit of an
    // item already copied, and a new item (marked seen by its full pass).
    let disk = SimulatedDisk::new(&crash);
    let db = Database::builder().create_with_backend(disk.clone()).unwrap();
    let mut expected = original.clone();
    let txn = db.begin_write().unwrap();
    {
        let mut items = txn.open_table(ITEMS).unwrap();
        let mut changes = txn.open_table(CHANGES).unwrap();
        let mut states = txn.open_table(LIBRARY_STATE).unwrap();
        let mut seen = txn.open_table(SEEN).unwrap();
        let mut state: LibraryState = serde_json::from_slice(states.get(2).unwrap().unwrap().value()).unwrap();
        let library = expected.get_mut(&2).unwrap();
        let first_seq = ITEMS_PER_STORE + 1;
        // Id "1" sorts first in library 2: ordinal 0, copied by the first batch.
        let (edited, seq) = library.get_mut("1").unwrap();
        changes.remove(*seq).unwrap();
        edited.title = "Edited by an older mediasync".into();
        *seq = first_seq;
        let key = [&2u32.to_be_bytes()[..], b"1"].concat();
        items.insert(key.as_slice(), version_1_record(edited, 0, first_seq).as_slice()).unwrap();
        changes.insert(first_seq, change_value(2, "1").as_slice()).unwrap();

        let added = Item::new("zz-added", Kind::Movie, "Added by an older mediasync", 7);
        let ordinal = state.next_ordinal;
        let key = [&2u32.to_be_bytes()[..], added.id.as_bytes()].concat();
        items.insert(key.as_slice(), version_1_record(&added, ordinal, first_seq + 1).as_slice()).unwrap();
        changes.insert(first_seq + 1, change_value(2, &added.id).as_slice()).unwrap();
        let mut bits = seen.get(seen_key(2, 0).as_slice()).unwrap().unwrap().value().to_vec();
        bits[ordinal as usize / 8] |= 1 << (ordinal % 8);
        seen.insert(seen_key(2, 0).as_slice(), bits.as_slice()).unwrap();
        state.next_ordinal += 1;
        *state.counts.entry(Kind::Movie).or_insert(0) += 1;
        states.insert(2, serde_json::to_vec(&state).unwrap().as_slice()).unwrap();
        txn.open_table(META).unwrap().insert("next_seq", (first_seq + 2).to_be_bytes().as_slice()).unwrap();
        library.insert(added.id.clone(), (added, first_seq + 1));
    }
    txn.commit().unwrap();
    drop(db);

    let migrated = open_and_check(&disk.live(), &expected);
    assert_eq!(raw(&migrated).version, 2);
}
