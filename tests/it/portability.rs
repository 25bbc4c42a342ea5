//! A store written on one architecture must read identically on the others:
//! users move SD cards and NAS disks between boxes, and a 32-bit armv7 board
//! must not misread what a 64-bit machine wrote. `tests/data/` holds stores
//! written on x86_64 by `workload`, one per schema version (version 1 by
//! mediasync 0.1: opening it migrates it), and the snapshot both must read
//! back as; the ARM CI jobs run this test under qemu against the same files.
//! Refresh the snapshot after a record gains a field (on x86_64 only) with
//! MEDIASYNC_WRITE_FIXTURE=1; it writes the current version's store if it
//! is missing.

use mediasync::model::{Item, Kind};
use mediasync::store::Store;
use mediasync::store::records::{Counters, RunRecord};
use std::path::PathBuf;

const CACHE: usize = 1 << 20;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// A deterministic history touching every table: libraries, items of every
/// kind with large and negative numbers, updates, deletions, seen marks, runs.
fn workload(store: &Store) {
    let (movies, _) = store.library("home", "1", "Movies").unwrap();
    let (music, _) = store.library("home", "3", "Music").unwrap();
    store
        .write(|writer| {
            let mut state = writer.state(movies)?.unwrap();
            for n in 0..40i64 {
                let mut item = Item::new(format!("{n}"), Kind::Movie, format!("Film {n} – ünïcode"), 1_579_514_152 + n);
                item.year = Some(1999);
                item.duration_ms = Some(i64::MAX - n);
                item.added_at = Some(-n);
                writer.upsert(movies, &mut state, &item, n % 3 == 0)?;
            }
            state.last_full_at = Some(4_102_444_800); // beyond 2038: no 32-bit time
            writer.put_state(movies, &state)
        })
        .unwrap();
    store
        .write(|writer| {
            let mut state = writer.state(music)?.unwrap();
            let mut artist = Item::new("a1", Kind::Artist, "Artist", 10);
            artist.guid = Some("plex://artist/1".into());
            writer.upsert(music, &mut state, &artist, false)?;
            let mut album = Item::new("b1", Kind::Album, "Album", 11);
            album.parent_id = Some("a1".into());
            writer.upsert(music, &mut state, &album, false)?;
            for n in 0..9 {
                let mut track = Item::new(format!("t{n}"), Kind::Track, format!("Track {n}"), 12 + n);
                track.parent_id = Some("b1".into());
                track.index = Some(n + 1);
                writer.upsert(music, &mut state, &track, false)?;
            }
            writer.put_state(music, &state)
        })
        .unwrap();
    store
        .write(|writer| {
            let mut state = writer.state(movies)?.unwrap();
            let edited = Item::new("5", Kind::Movie, "Film 5 (director's cut)", 1_700_000_000);
            writer.upsert(movies, &mut state, &edited, false)?;
            let mut key = 1u32.to_be_bytes().to_vec();
            key.extend_from_slice(b"7");
            writer.delete_key(&mut state, &key)?;
            let record = RunRecord {
                run: u64::from(u32::MAX) + 5,
                mode: "full".into(),
                started_at: 1,
                finished_at: 2,
                duration_ms: 1000,
                counters: Counters { new: 40, ..Counters::default() },
                error: None,
            };
            writer.append_run(movies, &record, 20)?;
            writer.put_state(movies, &state)
        })
        .unwrap();
}

/// Everything a user can read back, as text.
fn snapshot(store: &Store) -> String {
    let mut out = Vec::new();
    mediasync::export::write(store, None, &mut out).unwrap();
    let mut text = String::from_utf8(out).unwrap();
    for (number, state) in store.libraries().unwrap() {
        text.push_str(&format!("library {number}: {}\n", serde_json::to_string(&state).unwrap()));
        for run in store.runs(number).unwrap() {
            text.push_str(&format!("run: {}\n", serde_json::to_string(&run).unwrap()));
        }
        let kinds = [Kind::Movie, Kind::Artist, Kind::Album, Kind::Track];
        let (unseen, _) = store.unseen(number, &kinds, None, 1_000).unwrap();
        text.push_str(&format!("unseen: {}\n", unseen.len()));
    }
    for change in store.changes(0, 1_000).unwrap() {
        text.push_str(&format!("change: {change:?}\n"));
    }
    text
}

/// Stores written on x86_64, oldest schema first; each must read as the
/// snapshot, before and after its migration.
const FIXTURES: [&str; 2] = ["store-v1-x86_64.redb", "store-v2-x86_64.redb"];
const SNAPSHOT: &str = "store-x86_64.snapshot";

#[test]
fn stores_written_on_x86_64_read_identically_here() {
    let dir = tempfile::tempdir().unwrap();
    let expected_path = data(SNAPSHOT);
    if std::env::var_os("MEDIASYNC_WRITE_FIXTURE").is_some() && cfg!(target_arch = "x86_64") {
        // A store file is written once (delete the current version's to
        // write it anew) so it keeps proving that its version still reads;
        // the snapshot follows the current record formats.
        let current = data(FIXTURES[FIXTURES.len() - 1]);
        if !current.exists() {
            workload(&Store::open(&current, CACHE).unwrap());
        }
        let scratch = dir.path().join("scratch.redb");
        std::fs::copy(&current, &scratch).unwrap();
        std::fs::write(&expected_path, snapshot(&Store::open(&scratch, CACHE).unwrap())).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap();
    for fixture in FIXTURES {
        let copy = dir.path().join(fixture);
        std::fs::copy(data(fixture), &copy).unwrap();
        assert_eq!(redb_file_formats(&copy), [2, 2], "{fixture} was written with redb's file format v2");
        let moved = Store::open(&copy, CACHE).unwrap();
        assert_eq!(snapshot(&moved), expected, "{fixture} reads differently on {}", std::env::consts::ARCH);
        drop(moved);
        assert_eq!(redb_file_formats(&copy), [3, 3], "{fixture} is upgraded to redb's file format v3 on open");
        let reopened = Store::open(&copy, CACHE).unwrap();
        assert_eq!(snapshot(&reopened), expected, "{fixture} reads differently once reopened");
    }

    // The same history written here produces the same catalog.
    let local = Store::open(&dir.path().join("local.redb"), CACHE).unwrap();
    workload(&local);
    assert_eq!(snapshot(&local), expected);
    drop(local);
    assert_eq!(redb_file_formats(&dir.path().join("local.redb")), [3, 3], "a new store is made with file format v3");
}

/// The file format version in each of the redb header's two commit slots
/// (redb 2.6's layout: slots of 128 bytes from byte 64, the version first).
fn redb_file_formats(path: &std::path::Path) -> [u8; 2] {
    let bytes = std::fs::read(path).unwrap();
    [bytes[64], bytes[64 + 128]]
}

/// Stores made before the change feed's tombstones were indexed (both
/// fixtures) get their existing deletions indexed when opened, so they are
/// compacted too.
#[test]
fn deletions_of_an_older_store_are_compacted_too() {
    let dir = tempfile::tempdir().unwrap();
    for fixture in FIXTURES {
        let copy = dir.path().join(fixture);
        std::fs::copy(data(fixture), &copy).unwrap();
        let store = Store::open(&copy, CACHE).unwrap();
        let tombstones =
            |store: &Store| store.changes(0, 1_000).unwrap().into_iter().filter(|change| change.deleted).count();
        assert_eq!(tombstones(&store), 1, "{fixture}");
        let keep_none = mediasync::store::TombstoneLimits { count: 0, age_secs: i64::MAX };
        assert_eq!(store.compact_tombstones(keep_none, 0).unwrap(), 1, "{fixture}");
        assert_eq!(tombstones(&store), 0, "{fixture}");
        assert_eq!(store.compacted_through().unwrap(), 53, "{fixture}");
    }
}
