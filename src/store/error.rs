//! What can go wrong with the store, as values that keep redb's, serde's or
//! the file system's error as their `source` (redb's own errors are not
//! flattened to text). `kind` is what callers decide on: a locked store
//! goes through the running daemon; a damaged one is left alone for the
//! user. `Display` gives the messages the edges print.

use super::tables::SCHEMA_VERSION;
use std::fmt;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// Another process (a running daemon) holds the store.
    Locked,
    /// The file exists but does not open or decode.
    Damaged,
    Other,
}

#[derive(Debug)]
pub enum StoreError {
    /// Another process holds the file's lock.
    Locked { path: PathBuf },
    /// The database does not open, or is of a schema this version does not
    /// know. `path` is known when the store was opened from a file (not for
    /// other backends); the file is never touched.
    Damaged { path: Option<PathBuf>, damage: Damage },
    /// The file exists but cannot be opened for reading and writing.
    Unopenable { path: PathBuf, source: std::io::Error },
    /// The file opened, but redb could not take its lock.
    Unlockable { path: PathBuf, source: redb::DatabaseError },
    /// A new store could not be made at `path`.
    Uncreatable { path: PathBuf, step: CreateStep, cause: CreateCause },
    /// A read or write transaction failed (boxed: redb's error is large,
    /// and every store call returns this type).
    Database(Box<redb::Error>),
    /// A JSON record (state, run, session, control, pending parent) does not
    /// encode or decode.
    Record(serde_json::Error),
    /// A binary item record does not decode.
    ItemRecord { library: u32 },
    /// No library number is left to allocate.
    LibraryNumbersExhausted,
    /// No item ordinal is left in a library.
    OrdinalsExhausted,
}

/// Why a database does not open.
#[derive(Debug)]
pub enum Damage {
    Database(redb::DatabaseError),
    /// redb panicked while opening it (caught: a damaged file must not take
    /// the process down).
    Panicked,
    /// Written by a newer mediasync.
    SchemaVersion(u32),
}

/// The steps of creating a store (`store::open`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateStep {
    MakingDirectory,
    Creating,
    Locking,
    Syncing,
    Renaming,
    SyncingDirectory,
}

#[derive(Debug)]
pub enum CreateCause {
    Io(std::io::Error),
    Database(redb::DatabaseError),
}

impl StoreError {
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            StoreError::Locked { .. } => StoreErrorKind::Locked,
            StoreError::Damaged { .. } | StoreError::ItemRecord { .. } => StoreErrorKind::Damaged,
            _ => StoreErrorKind::Other,
        }
    }
}

macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for StoreError {
            fn from(err: $error) -> StoreError {
                StoreError::Database(Box::new(err.into()))
            }
        }
    )*};
}

from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError,
    redb::UpgradeError
);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Locked { path } => {
                write!(
                    f,
                    "the store {} is in use by another mediasync process (is the daemon running?)",
                    path.display()
                )
            }
            StoreError::Damaged { path: None, damage } => write!(f, "{damage}"),
            StoreError::Damaged { path: Some(path), damage } => write!(
                f,
                "the store {0} cannot be opened ({damage}); it was left untouched: move it aside (mv {0} {0}.broken) to start a fresh catalog, or restore a backup",
                path.display()
            ),
            StoreError::Unopenable { path, source } => {
                write!(f, "cannot open the store {}: {source}; check [store] path and its permissions", path.display())
            }
            StoreError::Unlockable { path, source } => write!(f, "cannot lock the store {}: {source}", path.display()),
            StoreError::Uncreatable { path, step, cause } => write!(
                f,
                "cannot create the store {} ({step}: {cause}); check [store] path and that its directory is writable",
                path.display()
            ),
            StoreError::Database(err) => write!(f, "store: {err}"),
            StoreError::Record(err) => write!(f, "store: a record does not decode ({err})"),
            StoreError::ItemRecord { library } => {
                write!(f, "store: an item record of library {library} does not decode")
            }
            StoreError::LibraryNumbersExhausted => f.write_str("store: library numbers exhausted"),
            StoreError::OrdinalsExhausted => {
                f.write_str("store: item ordinals of this library are exhausted; reset the server")
            }
        }
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Database(err) => write!(f, "{err}"),
            Damage::Panicked => f.write_str("redb panicked while opening it"),
            Damage::SchemaVersion(version) => write!(
                f,
                "schema version {version} is not one this mediasync understands ({SCHEMA_VERSION}); it was written by a newer version: upgrade mediasync"
            ),
        }
    }
}

impl fmt::Display for CreateStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CreateStep::MakingDirectory => "making its directory",
            CreateStep::Creating => "creating",
            CreateStep::Locking => "locking",
            CreateStep::Syncing => "syncing",
            CreateStep::Renaming => "renaming into place",
            CreateStep::SyncingDirectory => "syncing its directory",
        })
    }
}

impl fmt::Display for CreateCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CreateCause::Io(err) => write!(f, "{err}"),
            CreateCause::Database(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Damaged { damage: Damage::Database(err), .. } => Some(err),
            StoreError::Unopenable { source, .. } => Some(source),
            StoreError::Unlockable { source, .. } => Some(source),
            StoreError::Uncreatable { cause: CreateCause::Io(err), .. } => Some(err),
            StoreError::Uncreatable { cause: CreateCause::Database(err), .. } => Some(err),
            StoreError::Database(err) => Some(err.as_ref()),
            StoreError::Record(err) => Some(err),
            _ => None,
        }
    }
}
