//! Opening and creating the store so that a power cut can never leave a file
//! that will not open: a new store is built under a temporary name, committed
//! once, fsynced, renamed into place and the directory fsynced. Opening runs
//! inside `catch_unwind`, so a damaged file becomes an error that names the
//! file and what to do, and is never deleted.

use super::backend::SyncOnGrow;
use super::error::{CreateCause, CreateStep, Damage, StoreError};
use super::tables::{self, SCHEMA_VERSION};
use redb::backends::FileBackend;
use redb::{Database, DatabaseError, ReadableTable, StorageBackend};
use std::fs::{File, OpenOptions};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

pub fn open_file(path: &Path, cache_bytes: usize) -> Result<Database, StoreError> {
    if !path.exists() {
        create(path, cache_bytes)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| StoreError::Unopenable { path: path.to_path_buf(), source })?;
    let backend = FileBackend::new(file).map_err(|err| match err {
        DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: path.to_path_buf() },
        source => StoreError::Unlockable { path: path.to_path_buf(), source },
    })?;
    open_backend(SyncOnGrow::new(backend), cache_bytes).map_err(|err| match err {
        StoreError::Damaged { path: None, damage } => StoreError::Damaged { path: Some(path.to_path_buf()), damage },
        other => other,
    })
}

/// Opens (or initialises, when empty) a database on `backend` and checks
/// its schema version. A panic inside redb becomes a `Damaged` error.
pub fn open_backend(backend: impl StorageBackend, cache_bytes: usize) -> Result<Database, StoreError> {
    let opened = catch_unwind(AssertUnwindSafe(move || {
        Database::builder().set_cache_size(cache_bytes).create_with_backend(backend)
    }));
    let db = match opened {
        Ok(Ok(db)) => db,
        Ok(Err(err)) => return Err(StoreError::Damaged { path: None, damage: Damage::Database(err) }),
        Err(_) => return Err(StoreError::Damaged { path: None, damage: Damage::Panicked }),
    };
    initialise(&db)?;
    Ok(db)
}

/// Creates every table and records the schema version; checks the version of
/// an existing store.
fn initialise(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(tables::META)?;
        let stored =
            meta.get("schema_version")?.and_then(|value| value.value().try_into().ok().map(u32::from_be_bytes));
        match stored {
            None => {
                meta.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice())?;
            }
            Some(version) if version == SCHEMA_VERSION => {}
            Some(version) => {
                return Err(StoreError::Damaged { path: None, damage: Damage::SchemaVersion(version) });
            }
        }
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
    }
    super::compact::index_tombstones(&txn)?;
    txn.commit()?;
    Ok(())
}

fn creating_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".creating");
    path.with_file_name(name)
}

/// Builds a new store beside `path` and renames it into place, so a file at
/// `path` has always held at least one commit.
fn create(path: &Path, cache_bytes: usize) -> Result<(), StoreError> {
    let fail = |step: CreateStep, err: std::io::Error| StoreError::Uncreatable {
        path: path.to_path_buf(),
        step,
        cause: CreateCause::Io(err),
    };
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&directory).map_err(|err| fail(CreateStep::MakingDirectory, err))?;
    // A leftover temporary file never became the store: it is safe to drop.
    let temporary = creating_path(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)
        .map_err(|err| fail(CreateStep::Creating, err))?;
    let backend = FileBackend::new(file).map_err(|err| StoreError::Uncreatable {
        path: path.to_path_buf(),
        step: CreateStep::Locking,
        cause: CreateCause::Database(err),
    })?;
    let db = open_backend(SyncOnGrow::new(backend), cache_bytes)?;
    drop(db);
    File::open(&temporary).and_then(|file| file.sync_all()).map_err(|err| fail(CreateStep::Syncing, err))?;
    std::fs::rename(&temporary, path).map_err(|err| fail(CreateStep::Renaming, err))?;
    File::open(&directory).and_then(|dir| dir.sync_all()).map_err(|err| fail(CreateStep::SyncingDirectory, err))?;
    log::info!("created a new store at {}", path.display());
    Ok(())
}
