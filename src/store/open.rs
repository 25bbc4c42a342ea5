//! Opening and creating the store so that a power cut can never leave a file
//! that will not open, and two processes starting at once cannot clobber
//! each other: a new store is built under a temporary name whose lock is
//! taken first, committed once, linked into place (never over an existing
//! store) and the directory fsynced. Opening runs inside `catch_unwind`, so
//! a damaged file becomes an error that names the file and what to do, and
//! is never deleted. An older store is migrated (`migrate`); a current one
//! is only read. Stores use redb's file format v3 (older files are upgraded
//! on open): closing a v3 file that committed nothing writes only its header.

use super::backend::SyncOnGrow;
use super::error::{CreateCause, CreateStep, Damage, StoreError};
use super::migrate;
use super::tables::{self, SCHEMA_VERSION};
use redb::backends::FileBackend;
use redb::{Database, DatabaseError, StorageBackend};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a creator waits for another one (a second process started at
/// the same moment) to finish before calling the store in use.
const CREATOR_WAIT: Duration = Duration::from_secs(10);

/// Tells the kernel the store is read at random (redb's B-tree pages): no
/// readahead. Besides sparing reads of pages nobody asked for, this keeps
/// the file's page cache in single pages: a kernel that caches file data in
/// large folios (Linux 6.x ext4) made by readahead counts a whole folio
/// (up to 2 MiB) as dirtied in `/proc/PID/io` and `getrusage` when a commit
/// writes 4 KiB of it, though the disk gets only the 4 KiB. Advice only: a
/// refusal changes nothing else.
fn advise_random_access(file: &File, path: &Path) {
    if let Err(err) = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::Random) {
        log::debug!("{}: no access-pattern advice for the kernel: {err}", path.display());
    }
}

pub fn open_file(path: &Path, cache_bytes: usize) -> Result<Database, StoreError> {
    if !path.exists() {
        create(path, cache_bytes)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| StoreError::Unopenable { path: path.to_path_buf(), source })?;
    advise_random_access(&file, path);
    let backend = FileBackend::new(file).map_err(|err| match err {
        DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: path.to_path_buf() },
        source => StoreError::Unlockable { path: path.to_path_buf(), source },
    })?;
    open_backend(SyncOnGrow::new(backend), cache_bytes).map_err(|err| match err {
        StoreError::Damaged { path: None, damage } => StoreError::Damaged { path: Some(path.to_path_buf()), damage },
        other => other,
    })
}

/// Opens (or initialises, when empty) a database on `backend` and brings it
/// to the current schema. A panic inside redb becomes a `Damaged` error.
pub fn open_backend(backend: impl StorageBackend, cache_bytes: usize) -> Result<Database, StoreError> {
    let opened = catch_unwind(AssertUnwindSafe(move || {
        let told = std::sync::atomic::AtomicBool::new(false);
        Database::builder()
            .set_cache_size(cache_bytes)
            .create_with_file_format_v3(true)
            .set_repair_callback(move |_| {
                if !told.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    log::warn!("the store was not closed cleanly; checking it before use (this reads the whole file)");
                }
            })
            .create_with_backend(backend)
    }));
    let mut db = match opened {
        Ok(Ok(db)) => db,
        Ok(Err(err)) => return Err(StoreError::Damaged { path: None, damage: Damage::Database(err) }),
        Err(_) => return Err(StoreError::Damaged { path: None, damage: Damage::Panicked }),
    };
    upgrade_file_format(&mut db)?;
    initialise(&mut db)?;
    Ok(db)
}

/// Brings a store written with redb's file format v2 (every store made
/// before v3 was adopted) to v3, once: with v2, closing the file rewrites
/// its region tracker and allocator state (about 536 KiB) even when the
/// session committed nothing. redb's upgrade commits twice with two-phase
/// commit, then writes both header slots with the new version; a power cut
/// meanwhile leaves a v2 or a v3 file holding the same data (the migration
/// power-cut test opens every such image).
fn upgrade_file_format(db: &mut Database) -> Result<(), StoreError> {
    match db.upgrade() {
        Ok(true) => {
            log::info!("upgraded the store to redb's file format v3 (it writes less on every close)");
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Creates every table and records the schema version in a new store;
/// migrates an older one, and adds the tables a current one made before
/// them lacks. A current store with every table is only read: opening it
/// commits nothing.
fn initialise(db: &mut Database) -> Result<(), StoreError> {
    match read_schema(db)? {
        Schema::Current => Ok(()),
        Schema::TablesOwed => add_tables(db),
        Schema::CompactionOwed => {
            add_tables(db)?;
            migrate::compact(db)
        }
        Schema::Version(1) => migrate::from_version_1(db),
        Schema::Version(version) => Err(StoreError::Damaged { path: None, damage: Damage::SchemaVersion(version) }),
        Schema::New => {
            let txn = db.begin_write()?;
            txn.open_table(tables::META)?.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice())?;
            migrate::open_every_table(&txn)?;
            txn.commit()?;
            Ok(())
        }
    }
}

/// What opening a store has to do.
enum Schema {
    /// No schema version: a new store.
    New,
    /// Current, with every table (new stores and migrations create them all).
    Current,
    /// Current, but made before some of its tables existed (the feed's
    /// tombstone index, fetched parents).
    TablesOwed,
    /// Current, but the migration's compaction did not finish.
    CompactionOwed,
    /// Another version.
    Version(u32),
}

fn read_schema(db: &Database) -> Result<Schema, StoreError> {
    let txn = db.begin_read()?;
    let meta = match txn.open_table(tables::META) {
        Ok(meta) => meta,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Schema::New),
        Err(err) => return Err(err.into()),
    };
    let version = meta.get("schema_version")?.and_then(|value| value.value().try_into().ok().map(u32::from_be_bytes));
    match version {
        None => Ok(Schema::New),
        Some(SCHEMA_VERSION) if meta.get(migrate::COMPACTION_OWED)?.is_some() => Ok(Schema::CompactionOwed),
        Some(SCHEMA_VERSION) if meta.get(migrate::EVERY_TABLE)?.is_none() => Ok(Schema::TablesOwed),
        Some(SCHEMA_VERSION) => Ok(Schema::Current),
        Some(version) => Ok(Schema::Version(version)),
    }
}

/// Creates the tables a store of the current version made before they
/// existed lacks, in one commit.
fn add_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    migrate::open_every_table(&txn)?;
    txn.commit()?;
    Ok(())
}

fn creating_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".creating");
    path.with_file_name(name)
}

/// Builds a new store beside `path` and links it into place, so a file at
/// `path` has always held at least one commit and an existing store is
/// never replaced. A creator takes the temporary file's lock before it
/// touches the file; a second creator waits until the first one's store is
/// in place (and then opens it like any other).
fn create(path: &Path, cache_bytes: usize) -> Result<(), StoreError> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&directory).map_err(|err| uncreatable(path, CreateStep::MakingDirectory, err))?;
    let temporary = creating_path(path);
    let started = Instant::now();
    loop {
        if path.exists() {
            return Ok(());
        }
        match lock_temporary(path, &temporary)? {
            Some(backend) => return build(path, &temporary, &directory, backend, cache_bytes),
            None if started.elapsed() < CREATOR_WAIT => std::thread::sleep(Duration::from_millis(20)),
            None => return Err(StoreError::Locked { path: path.to_path_buf() }),
        }
    }
}

/// Opens the temporary file and takes its lock. `None` while another
/// creator holds it, or when the file locked is no longer the temporary
/// one (its creator linked it into place and removed the name meanwhile).
fn lock_temporary(path: &Path, temporary: &Path) -> Result<Option<FileBackend>, StoreError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(temporary)
        .map_err(|err| uncreatable(path, CreateStep::Creating, err))?;
    let opened = file.metadata().map_err(|err| uncreatable(path, CreateStep::Creating, err))?;
    let backend = match FileBackend::new(file) {
        Ok(backend) => backend,
        Err(DatabaseError::DatabaseAlreadyOpen) => return Ok(None),
        Err(err) => {
            return Err(StoreError::Uncreatable {
                path: path.to_path_buf(),
                step: CreateStep::Locking,
                cause: CreateCause::Database(err),
            });
        }
    };
    let still_there =
        std::fs::metadata(temporary).is_ok_and(|named| (named.dev(), named.ino()) == (opened.dev(), opened.ino()));
    Ok(still_there.then_some(backend))
}

/// Builds the store in the locked temporary file and links it into place,
/// holding the lock until the temporary name is gone.
fn build(
    path: &Path,
    temporary: &Path,
    directory: &Path,
    backend: FileBackend,
    cache_bytes: usize,
) -> Result<(), StoreError> {
    // A leftover of a creation cut short never became the store.
    backend.set_len(0).map_err(|err| uncreatable(path, CreateStep::Creating, err))?;
    // Commits once, with redb's immediate durability (fsynced).
    let db = open_backend(SyncOnGrow::new(backend), cache_bytes)?;
    File::open(temporary)
        .and_then(|file| file.sync_all())
        .map_err(|err| uncreatable(path, CreateStep::Syncing, err))?;
    // A link never replaces a file: if a store appeared meanwhile (made by
    // something that took no lock), it is kept and this one dropped.
    let placed = match std::fs::hard_link(temporary, path) {
        Ok(()) => true,
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => false,
        // A file system without hard links (FAT): only a creator holding
        // this lock renames, and only onto a free name.
        Err(_) if !path.exists() => {
            std::fs::rename(temporary, path).map_err(|err| uncreatable(path, CreateStep::Renaming, err))?;
            true
        }
        Err(err) => return Err(uncreatable(path, CreateStep::Renaming, err)),
    };
    match std::fs::remove_file(temporary) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(uncreatable(path, CreateStep::Renaming, err));
        }
        _ => {}
    }
    File::open(directory)
        .and_then(|dir| dir.sync_all())
        .map_err(|err| uncreatable(path, CreateStep::SyncingDirectory, err))?;
    drop(db);
    if placed {
        log::info!("created a new store at {}", path.display());
    }
    Ok(())
}

fn uncreatable(path: &Path, step: CreateStep, err: std::io::Error) -> StoreError {
    StoreError::Uncreatable { path: path.to_path_buf(), step, cause: CreateCause::Io(err) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    /// Creators racing for a new store: each keeps trying until it holds
    /// the store, writes its own library, and lets go. A creator that
    /// replaced (or truncated) another's store would lose that library.
    #[test]
    fn racing_creators_never_clobber_each_other() {
        const CREATORS: usize = 4;
        for round in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let path = Arc::new(dir.path().join("state").join("catalog.redb"));
            let barrier = Arc::new(Barrier::new(CREATORS));
            let creators: Vec<_> = (0..CREATORS)
                .map(|creator| {
                    let (path, barrier) = (Arc::clone(&path), Arc::clone(&barrier));
                    std::thread::spawn(move || {
                        barrier.wait();
                        let mut locked = 0;
                        loop {
                            match crate::store::Store::open(&path, 1 << 20) {
                                Ok(store) => {
                                    store.library("home", &format!("{creator}"), "Movies").unwrap();
                                    return locked;
                                }
                                Err(err) if err.kind() == crate::store::StoreErrorKind::Locked => {
                                    locked += 1;
                                    std::thread::sleep(Duration::from_millis(5));
                                }
                                Err(err) => panic!("round {round}, creator {creator}: {err}"),
                            }
                        }
                    })
                })
                .collect();
            for creator in creators {
                creator.join().unwrap();
            }
            let store = crate::store::Store::open(&path, 1 << 20).unwrap();
            assert_eq!(store.libraries().unwrap().len(), CREATORS, "round {round}: a creator's library was lost");
            assert!(!creating_path(&path).exists(), "round {round}: the temporary file is left behind");
        }
    }
}
