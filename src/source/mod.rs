//! The one narrow interface between the sync engine and a media server.
//! Each backend (Plex, Jellyfin/Emby) implements `Source`; retries and
//! rate-limit waits wrap the trait in `retry`, so no backend carries its own
//! copy.

pub mod http;
pub mod jellyfin;
pub mod lenient;
pub mod plex;
pub mod retry;
pub mod spotify;

use crate::config::{Backend, ServerConfig, SyncConfig};
use crate::model::{Item, Kind, LibraryInfo};
use crate::store::Store;
use std::time::Duration;

/// The source for a configured server, wrapped in the shared retry policy.
/// The one place that maps a config `Backend` to a source. Sources that keep a
/// session between runs (Spotify's tokens and waits) keep it in `store`.
pub fn build<'a>(server: &'a ServerConfig, sync: &SyncConfig, store: &'a Store) -> Box<dyn Source + 'a> {
    let policy = retry::RetryPolicy {
        retries: sync.retries,
        delay: sync.retry_delay,
        max_rate_limit_wait: sync.max_rate_limit_wait,
    };
    match &server.backend {
        Backend::Plex(plex) => Box::new(retry::Retrying::new(plex::Plex::new(server, plex, sync.timeout), policy)),
        Backend::Jellyfin(jellyfin) => {
            Box::new(retry::Retrying::new(jellyfin::Jellyfin::new(server, jellyfin, sync.timeout), policy))
        }
        Backend::Spotify(app) => {
            Box::new(retry::Retrying::new(spotify::Spotify::new(server, app, sync.timeout, store), policy))
        }
    }
}

/// What the engine should do about a failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Network trouble, 5xx, a truncated or garbled body: retry with backoff.
    Unavailable,
    /// Slow down: retry no earlier than after the given wait.
    RateLimited(Duration),
    /// The credentials were refused: stop this server and tell the user.
    Unauthorized,
    /// The server answered, but not with something we can use, and asking
    /// again will not help (404, 400).
    Rejected,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceError {
    pub kind: ErrorKind,
    /// What failed and what to do, for people. Never holds a secret.
    pub message: String,
}

impl SourceError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> SourceError {
        SourceError { kind, message: message.into() }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Unavailable | ErrorKind::RateLimited(_))
    }
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SourceError {}

/// The order a listing is walked in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// A stable order in which items that appear later sort after the ones
    /// already walked (oldest addition first): used by full passes.
    Stable,
    /// Most recently changed first: used by incremental passes of sources
    /// whose strategy is `Strategy::StopAtCursor`.
    NewestChanged,
    /// Only the items saved at or after this server time (epoch seconds), in
    /// the stable order: used by incremental passes of sources whose strategy
    /// is `Strategy::ChangedSince`, and (with a page size of 0) to probe
    /// whether the server honours the filter.
    ChangedSince(i64),
}

/// How a source finds what changed since the last sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Items carry a change time and the listing sorts by it: walk
    /// `Order::NewestChanged` and stop at the first item older than the
    /// newest stored change (Plex).
    StopAtCursor,
    /// Items carry no change time, but the listing filters by save time:
    /// walk every page of `Order::ChangedSince(cursor)`, the cursor being
    /// the server's own clock at the start of the last successful run
    /// (Jellyfin, Emby).
    ChangedSince,
    /// Items carry no change time and the listing has no filter: every run
    /// is a full pass with a sweep (Spotify's followed artists and
    /// playlists, where a page costs little and nothing else is sound).
    Unordered,
}

/// Where the page after this one starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Next {
    /// `returned()` entries further on; the listing ends when a page comes
    /// back short or the total is reached.
    #[default]
    Offset,
    /// After this cursor (cursor-paged listings, like Spotify's followed
    /// artists).
    After(String),
    /// The server said this is the last page.
    End,
}

/// An entry of a page the source could not turn into an `Item`. When its id
/// is known the engine keeps the stored copy and counts it as bad.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadItem {
    pub id: Option<String>,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<Result<Item, BadItem>>,
    /// How many entries the listing holds, when the server said so.
    pub total: Option<u64>,
    pub next: Next,
}

impl Page {
    /// The number of entries the server returned, good or bad: the amount the
    /// next page's offset moves by.
    pub fn returned(&self) -> u64 {
        self.items.len() as u64
    }
}

pub trait Source: Send + Sync {
    /// A short label for messages: "plex server \"living-room\"".
    fn describe(&self) -> String;

    /// The libraries to sync, already filtered to the configured ones.
    fn libraries(&self) -> Result<Vec<LibraryInfo>, SourceError>;

    /// One page of the items of one kind in a library, `start` entries in.
    fn page(&self, library: &LibraryInfo, kind: Kind, order: Order, start: u64, size: u32)
    -> Result<Page, SourceError>;

    /// `page` for listings paged by cursor: `after` is the cursor the
    /// previous page returned (`Next::After`), `None` on the first page.
    fn page_after(
        &self,
        library: &LibraryInfo,
        kind: Kind,
        order: Order,
        start: u64,
        _after: Option<&str>,
        size: u32,
    ) -> Result<Page, SourceError> {
        self.page(library, kind, order, start, size)
    }

    /// Whether the library's items have children listed per parent (a
    /// Spotify playlist's entries). The engine then stores a parent only
    /// once its children are fetched, and fetches them (`children`) only
    /// for parents that are new or changed. Children's ids are the parent's
    /// id, '/', and a suffix that sorts in listing order.
    fn nested(&self, _library: &LibraryInfo) -> bool {
        false
    }

    /// One page of a parent's children, `start` entries in.
    fn children(&self, library: &LibraryInfo, parent: &str, _start: u64, _size: u32) -> Result<Page, SourceError> {
        Err(SourceError::new(
            ErrorKind::Rejected,
            format!("{}: {}/{parent} has no children", self.describe(), library.id),
        ))
    }

    /// How many items of one kind the library holds, if the server says.
    fn count(&self, library: &LibraryInfo, kind: Kind) -> Result<Option<u64>, SourceError>;

    /// Requests sent to the server so far (retries included).
    fn requests(&self) -> u64;

    /// How incremental passes find changes.
    fn strategy(&self) -> Strategy {
        Strategy::StopAtCursor
    }

    /// How incremental passes find changes in one library, when a source's
    /// libraries differ.
    fn strategy_for(&self, _library: &LibraryInfo) -> Strategy {
        self.strategy()
    }

    /// The server's clock (epoch seconds) as of its latest answer, from the
    /// HTTP `Date` header, if the source tracks it.
    fn server_time(&self) -> Option<i64> {
        None
    }

    /// Registers a callback told about every wait (backoff, rate limit)
    /// before it starts; the daemon shows it on the status page. Only
    /// wrappers that wait (`Retrying`) call it.
    fn observe_waits(&self, _observer: WaitObserver) {}
}

/// See `Source::observe_waits`: the error being waited out and the wait.
pub type WaitObserver = std::sync::Arc<dyn Fn(&SourceError, std::time::Duration) + Send + Sync>;

impl<S: Source + ?Sized> Source for Box<S> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn libraries(&self) -> Result<Vec<LibraryInfo>, SourceError> {
        (**self).libraries()
    }
    fn page(
        &self,
        library: &LibraryInfo,
        kind: Kind,
        order: Order,
        start: u64,
        size: u32,
    ) -> Result<Page, SourceError> {
        (**self).page(library, kind, order, start, size)
    }
    fn page_after(
        &self,
        library: &LibraryInfo,
        kind: Kind,
        order: Order,
        start: u64,
        after: Option<&str>,
        size: u32,
    ) -> Result<Page, SourceError> {
        (**self).page_after(library, kind, order, start, after, size)
    }
    fn nested(&self, library: &LibraryInfo) -> bool {
        (**self).nested(library)
    }
    fn children(&self, library: &LibraryInfo, parent: &str, start: u64, size: u32) -> Result<Page, SourceError> {
        (**self).children(library, parent, start, size)
    }
    fn count(&self, library: &LibraryInfo, kind: Kind) -> Result<Option<u64>, SourceError> {
        (**self).count(library, kind)
    }
    fn strategy_for(&self, library: &LibraryInfo) -> Strategy {
        (**self).strategy_for(library)
    }
    fn requests(&self) -> u64 {
        (**self).requests()
    }
    fn strategy(&self) -> Strategy {
        (**self).strategy()
    }
    fn server_time(&self) -> Option<i64> {
        (**self).server_time()
    }
    fn observe_waits(&self, observer: WaitObserver) {
        (**self).observe_waits(observer)
    }
}

/// Keeps the libraries a `libraries = [...]` filter names (by title or id).
pub fn filter_libraries(libraries: Vec<LibraryInfo>, wanted: Option<&[String]>) -> Vec<LibraryInfo> {
    match wanted {
        None => libraries,
        Some(wanted) => libraries
            .into_iter()
            .filter(|library| wanted.iter().any(|name| name == &library.title || name == &library.id))
            .collect(),
    }
}
