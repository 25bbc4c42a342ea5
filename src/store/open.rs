//! Opening and creating the store so that a power cut can never leave a file
//! that will not open: a new store is built under a temporary name, committed
//! once, fsynced, renamed into place and the directory fsynced. Opening runs
//! inside `catch_unwind`, so a damaged file becomes an error that names the
//! file and what to do, and is never deleted.

use super::backend::SyncOnGrow;
use super::tables::{self, SCHEMA_VERSION};
use redb::backends::FileBackend;
use redb::{Database, DatabaseError, ReadableTable, StorageBackend};
use std::fs::{File, OpenOptions};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// Another process (a running daemon) holds the store.
    Locked,
    /// The file exists but does not open or decode.
    Damaged,
    Other,
}

#[derive(Clone, Debug)]
pub struct StoreError {
    pub kind: StoreErrorKind,
    pub message: String,
}

impl StoreError {
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> StoreError {
        StoreError { kind, message: message.into() }
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

pub fn open_file(path: &Path, cache_bytes: usize) -> Result<Database, StoreError> {
    if !path.exists() {
        create(path, cache_bytes)?;
    }
    let file = OpenOptions::new().read(true).write(true).open(path).map_err(|err| {
        StoreError::new(
            StoreErrorKind::Other,
            format!("cannot open the store {}: {err}; check [store] path and its permissions", path.display()),
        )
    })?;
    let backend = FileBackend::new(file).map_err(|err| match err {
        DatabaseError::DatabaseAlreadyOpen => StoreError::new(
            StoreErrorKind::Locked,
            format!("the store {} is in use by another mediasync process (is the daemon running?)", path.display()),
        ),
        other => StoreError::new(StoreErrorKind::Other, format!("cannot lock the store {}: {other}", path.display())),
    })?;
    open_backend(SyncOnGrow::new(backend), cache_bytes).map_err(|err| match err.kind {
        StoreErrorKind::Damaged => StoreError::new(
            StoreErrorKind::Damaged,
            format!(
                "the store {} cannot be opened ({}); it was left untouched: move it aside (mv {0} {0}.broken) to start a fresh catalog, or restore a backup",
                path.display(),
                err.message
            ),
        ),
        _ => err,
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
        Ok(Err(err)) => return Err(StoreError::new(StoreErrorKind::Damaged, err.to_string())),
        Err(_) => return Err(StoreError::new(StoreErrorKind::Damaged, "redb panicked while opening it")),
    };
    initialise(&db)?;
    Ok(db)
}

/// Creates every table and records the schema version; checks the version of
/// an existing store.
fn initialise(db: &Database) -> Result<(), StoreError> {
    let other = |err: &dyn std::fmt::Display| StoreError::new(StoreErrorKind::Other, format!("store: {err}"));
    let txn = db.begin_write().map_err(|err| other(&err))?;
    {
        let mut meta = txn.open_table(tables::META).map_err(|err| other(&err))?;
        let stored = meta
            .get("schema_version")
            .map_err(|err| other(&err))?
            .and_then(|value| value.value().try_into().ok().map(u32::from_be_bytes));
        match stored {
            None => {
                meta.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice()).map_err(|err| other(&err))?;
            }
            Some(version) if version == SCHEMA_VERSION => {}
            Some(version) => {
                return Err(StoreError::new(
                    StoreErrorKind::Damaged,
                    format!(
                        "schema version {version} is not one this mediasync understands ({SCHEMA_VERSION}); it was written by a newer version: upgrade mediasync"
                    ),
                ));
            }
        }
        txn.open_table(tables::LIBRARIES).map_err(|err| other(&err))?;
        txn.open_table(tables::LIBRARY_STATE).map_err(|err| other(&err))?;
        txn.open_table(tables::ITEMS).map_err(|err| other(&err))?;
        txn.open_table(tables::SEEN).map_err(|err| other(&err))?;
        txn.open_table(tables::CHANGES).map_err(|err| other(&err))?;
        txn.open_table(tables::RUNS).map_err(|err| other(&err))?;
        txn.open_table(tables::SERVERS).map_err(|err| other(&err))?;
        txn.open_table(tables::CONTROLS).map_err(|err| other(&err))?;
        txn.open_table(tables::SESSIONS).map_err(|err| other(&err))?;
        txn.open_table(tables::PENDING).map_err(|err| other(&err))?;
    }
    txn.commit().map_err(|err| other(&err))
}

fn creating_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".creating");
    path.with_file_name(name)
}

/// Builds a new store beside `path` and renames it into place, so a file at
/// `path` has always held at least one commit.
fn create(path: &Path, cache_bytes: usize) -> Result<(), StoreError> {
    let fail = |what: &str, err: &dyn std::fmt::Display| {
        StoreError::new(
            StoreErrorKind::Other,
            format!(
                "cannot create the store {} ({what}: {err}); check [store] path and that its directory is writable",
                path.display()
            ),
        )
    };
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&directory).map_err(|err| fail("making its directory", &err))?;
    // A leftover temporary file never became the store: it is safe to drop.
    let temporary = creating_path(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)
        .map_err(|err| fail("creating", &err))?;
    let backend = FileBackend::new(file).map_err(|err| fail("locking", &err))?;
    let db = open_backend(SyncOnGrow::new(backend), cache_bytes)?;
    drop(db);
    File::open(&temporary).and_then(|file| file.sync_all()).map_err(|err| fail("syncing", &err))?;
    std::fs::rename(&temporary, path).map_err(|err| fail("renaming into place", &err))?;
    File::open(&directory).and_then(|dir| dir.sync_all()).map_err(|err| fail("syncing its directory", &err))?;
    log::info!("created a new store at {}", path.display());
    Ok(())
}
