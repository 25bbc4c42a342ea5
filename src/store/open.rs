//! Opening and creating the store so that a power cut can never leave a file
//! that will not open: a new store is built under a temporary name, committed
//! once, fsynced, renamed into place and the directory fsynced. Opening runs
//! inside `catch_unwind`, so a damaged file becomes an error that names the
//! file and what to do, and is never deleted. An older store is migrated
//! (`migrate`); a current one is only read.

use super::backend::SyncOnGrow;
use super::error::{CreateCause, CreateStep, Damage, StoreError};
use super::migrate;
use super::tables::{self, SCHEMA_VERSION};
use redb::backends::FileBackend;
use redb::{Database, DatabaseError, StorageBackend};
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

/// Opens (or initialises, when empty) a database on `backend` and brings it
/// to the current schema. A panic inside redb becomes a `Damaged` error.
pub fn open_backend(backend: impl StorageBackend, cache_bytes: usize) -> Result<Database, StoreError> {
    let opened = catch_unwind(AssertUnwindSafe(move || {
        Database::builder().set_cache_size(cache_bytes).create_with_backend(backend)
    }));
    let mut db = match opened {
        Ok(Ok(db)) => db,
        Ok(Err(err)) => return Err(StoreError::Damaged { path: None, damage: Damage::Database(err) }),
        Err(_) => return Err(StoreError::Damaged { path: None, damage: Damage::Panicked }),
    };
    initialise(&mut db)?;
    Ok(db)
}

/// Creates every table and records the schema version in a new store;
/// migrates an older one. A current store is only read: opening it
/// commits nothing.
fn initialise(db: &mut Database) -> Result<(), StoreError> {
    match read_schema(db)? {
        Schema::Current => Ok(()),
        Schema::CompactionOwed => migrate::compact(db),
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
        Some(SCHEMA_VERSION) => Ok(Schema::Current),
        Some(version) => Ok(Schema::Version(version)),
    }
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
