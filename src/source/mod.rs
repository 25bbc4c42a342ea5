//! The one narrow interface between the sync engine and a media server.
//! Each backend (Plex, Jellyfin/Emby, Spotify) implements `Source`; retries
//! and rate-limit waits wrap the trait in `retry`, so no backend carries its
//! own copy.

pub mod http;
pub mod jellyfin;
pub mod lenient;
pub mod plex;
pub mod plex_history;
pub mod retry;
pub mod signin;
pub mod spotify;
pub mod stop;

use crate::config::{Backend, ServerConfig, SyncConfig};
use crate::model::{Item, Kind, LibraryInfo};
use crate::store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
pub use stop::Stop;

/// The source for a configured server, wrapped in the shared retry policy.
/// The one place that maps a config `Backend` to a source. Sources that keep a
/// session between runs (Spotify's tokens and waits) keep it in `store`.
/// Setting `stop` ends the source's waits and requests at once.
pub fn build<'a>(
    server: &'a ServerConfig,
    sync: &SyncConfig,
    store: &'a Store,
    stop: &Arc<Stop>,
) -> Box<dyn Source + 'a> {
    let policy = retry::RetryPolicy {
        retries: sync.retries,
        delay: sync.retry_delay,
        max_rate_limit_wait: sync.max_rate_limit_wait,
    };
    let timeout = sync.timeout;
    match &server.backend {
        Backend::Plex(plex) => {
            Box::new(retry::Retrying::new(plex::Plex::new(server, plex, timeout, stop), policy, stop))
        }
        Backend::Jellyfin(jellyfin) => {
            Box::new(retry::Retrying::new(jellyfin::Jellyfin::new(server, jellyfin, timeout, stop), policy, stop))
        }
        Backend::Spotify(app) => {
            Box::new(retry::Retrying::new(spotify::Spotify::new(server, app, timeout, store, stop), policy, stop))
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
    /// The sync was stopped (pause, shutdown) during a wait or a request:
    /// the engine ends the run as interrupted.
    Stopped,
}

/// A failure of a source: the kind the engine acts on, a message for people
/// and, when another error caused it, that error (`cause`, and
/// `Error::source`). The message already names the cause, since the edges
/// (logs, the status page, the CLI) print one line.
#[derive(Debug)]
pub struct SourceError {
    pub kind: ErrorKind,
    /// What failed and what to do. Never holds a secret.
    message: String,
    cause: Option<Cause>,
}

/// The error underneath a `SourceError`.
#[derive(Debug)]
pub enum Cause {
    /// The HTTP exchange failed: connection, TLS, timeout, or the body.
    Http(ureq::Error),
    /// The body is not the JSON the source expects.
    Json(serde_json::Error),
    /// The store could not keep the source's session.
    Store(StoreError),
}

impl SourceError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> SourceError {
        SourceError { kind, message: message.into(), cause: None }
    }

    /// A wait or request at `at` ended by the stop signal.
    pub fn stopped(at: &str) -> SourceError {
        SourceError::new(ErrorKind::Stopped, format!("{at}: stopped; the next run resumes from the last saved page"))
    }

    /// The same error, recording the error that caused it.
    pub fn caused_by(self, cause: Cause) -> SourceError {
        SourceError { cause: Some(cause), ..self }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn cause(&self) -> Option<&Cause> {
        self.cause.as_ref()
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

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.cause.as_ref()? {
            Cause::Http(err) => Some(err),
            Cause::Json(err) => Some(err),
            Cause::Store(err) => Some(err),
        }
    }
}

/// The order a listing is walked in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// A stable order in which items that appear later sort after the ones
    /// already walked (oldest addition first): used by full passes.
    Stable,
    /// Most recently changed first: used by incremental passes of libraries
    /// whose strategy is `Strategy::StopAtCursor`.
    NewestChanged,
    /// Only the items saved at or after this server time (epoch seconds), in
    /// the stable order: used by incremental passes of libraries whose
    /// strategy is `Strategy::ChangedSince`, and (with a page size of 0) to
    /// probe whether the server honours the filter.
    ChangedSince(i64),
    /// Most recently changed first, from this time (epoch seconds) on: a
    /// source may leave older items out (Spotify's `after=`) or send them
    /// (the engine stops at the first one). Used by the walks of
    /// `Strategy::AppendOnly` libraries (histories).
    NewestSince(i64),
}

/// Where a page of a listing starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position<'a> {
    /// This many entries in (offset-paged listings, and the first page of
    /// every listing).
    Offset(u64),
    /// After this cursor, which the previous page returned (`Next::After`:
    /// cursor-paged listings, like Spotify's followed artists).
    After(&'a str),
}

impl Position<'_> {
    /// The offset, for a listing paged by offset only: such a listing never
    /// hands out a cursor, so being asked to continue after one is refused.
    pub fn offset(self, source: &(impl Source + ?Sized)) -> Result<u64, SourceError> {
        match self {
            Position::Offset(start) => Ok(start),
            Position::After(_) => Err(SourceError::new(
                ErrorKind::Rejected,
                format!("{}: this listing is paged by offset and has no cursor to continue after", source.describe()),
            )),
        }
    }
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
        u64::try_from(self.items.len()).unwrap_or(u64::MAX)
    }

    /// The page asked for `size` entries from `start`, unless it cannot be
    /// right by its own account: empty although its total says entries lie
    /// at or after `start`, or marked the last one although its total says
    /// more follow. A server in the middle of a scan, or a proxy cutting an
    /// answer short, sends such pages; they are an outage of that request
    /// (retried), never the end of a listing, which would make the engine
    /// drop what it did not get. Counts (`size` 0) and pages without a
    /// total pass as they are.
    pub fn checked(self, start: u64, size: u32, at: &str) -> Result<Page, SourceError> {
        let Some(total) = self.total.filter(|_| size > 0) else {
            return Ok(self);
        };
        let reached = start.saturating_add(self.returned());
        let broken = (self.items.is_empty() && start < total) || (self.next == Next::End && reached < total);
        if broken {
            return Err(SourceError::new(
                ErrorKind::Unavailable,
                format!(
                    "{at}: the server sent {} entries from {start} but counts {total}; the listing is not complete, so it is asked again",
                    self.returned()
                ),
            ));
        }
        Ok(self)
    }
}

/// What `Source::lookup` says about a candidate the server still holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Present {
    /// The item as the server has it now: it replaces the stored copy.
    Item(Box<Item>),
    /// Still there, but the answer carries no readable copy of it (an entry
    /// the source cannot read, or a check that answers yes or no): the
    /// stored copy is kept as it is.
    Kept(String),
}

impl Present {
    /// A looked-up entry of item `id` as `source` read it: the item, or,
    /// when unreadable, the stored copy kept.
    pub fn read(parsed: Result<Item, BadItem>, id: String, source: &str) -> Present {
        match parsed {
            Ok(item) => Present::Item(Box::new(item)),
            Err(bad) => {
                log::warn!("{source}: kept {id} as stored: {}", bad.reason);
                Present::Kept(id)
            }
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Present::Item(item) => &item.id,
            Present::Kept(id) => id,
        }
    }
}

/// A media server as the engine sees it. What differs between a source's
/// libraries (strategy, nesting) is on `LibraryInfo`. No method has a default
/// body, so a wrapper (`Retrying`) that forgets to forward one does not
/// compile, rather than silently falling back.
pub trait Source: Send + Sync {
    /// A short label for messages: "plex server \"living-room\"".
    fn describe(&self) -> String;

    /// The libraries to sync, already filtered to the configured ones.
    fn libraries(&self) -> Result<Vec<LibraryInfo>, SourceError>;

    /// One page of the items of one kind in a library, from `position` (an
    /// offset, or the cursor the previous page returned).
    fn page(
        &self,
        library: &LibraryInfo,
        kind: Kind,
        order: Order,
        position: Position<'_>,
        size: u32,
    ) -> Result<Page, SourceError>;

    /// One page of a parent's children, `start` entries in, for libraries
    /// whose nesting is `Nesting::Nested`; other sources refuse
    /// (`no_children`).
    fn children(&self, library: &LibraryInfo, parent: &str, start: u64, size: u32) -> Result<Page, SourceError>;

    /// How many items of one kind the library holds, if the server says.
    fn count(&self, library: &LibraryInfo, kind: Kind) -> Result<Option<u64>, SourceError>;

    /// One page, `start` entries in, of the items of every kind of a
    /// `Strategy::ChangedSince` library saved at or after `since` (server
    /// epoch seconds), in one listing: an unchanged library costs one
    /// request, whatever its kinds. Each item carries its own kind. Sources
    /// without a save-time filter refuse (`no_changed_since`).
    fn changed(&self, library: &LibraryInfo, since: i64, start: u64, size: u32) -> Result<Page, SourceError>;

    /// How many items of every kind the library holds, if the server says;
    /// with `saved_since`, through the save-time filter (a filter that works
    /// counts every item for a date before any save: the count that finds
    /// deletions checks the filter too). Sources without the filter refuse
    /// (`no_changed_since`).
    fn count_library(&self, library: &LibraryInfo, saved_since: Option<i64>) -> Result<Option<u64>, SourceError>;

    /// Which of `ids` (stored items of `kind` that a complete walk of
    /// `library` did not see; at most `library.lookup_batch` of them) the
    /// library still holds. An id the answer does not hold is gone from the
    /// library: deleted, or moved to another library. The answer is the
    /// proof the sweep deletes on, so a source that cannot tell (an answer
    /// it cannot read, or one holding items it was not asked about) fails
    /// rather than guess. `anchor` is an item of the library the walk saw: a
    /// source may ask for it alongside (it is never returned), so that an
    /// answer in which no candidate exists is still an answer (Plex answers
    /// 404 when none of the ids it is asked for exists).
    fn lookup(
        &self,
        library: &LibraryInfo,
        kind: Kind,
        ids: &[String],
        anchor: Option<&str>,
    ) -> Result<Vec<Present>, SourceError>;

    /// Requests sent to the server so far (retries included).
    fn requests(&self) -> u64;

    /// The server's clock (epoch seconds) as of its latest answer, from the
    /// HTTP `Date` header; `None` before an answer carried one.
    fn server_time(&self) -> Option<i64>;

    /// Registers a callback told about every wait (backoff, rate limit)
    /// before it starts; the daemon shows it on the status page. Only
    /// wrappers that wait (`Retrying`) keep it; a backend never waits.
    fn observe_waits(&self, observer: WaitObserver);
}

/// See `Source::observe_waits`: the error being waited out and the wait.
pub type WaitObserver = std::sync::Arc<dyn Fn(&SourceError, std::time::Duration) + Send + Sync>;

/// Whether a lookup's answer holds an item it was not asked about: then the
/// server did not take the ids as a filter, and absence from the answer
/// proves nothing.
pub fn unasked(at: &str, ids: &[String], anchor: Option<&str>, answered: &str) -> Option<SourceError> {
    if ids.iter().any(|id| id == answered) || anchor == Some(answered) {
        return None;
    }
    Some(SourceError::new(
        ErrorKind::Rejected,
        format!(
            "{at}: asked about {} items, the server answered item {answered} too; it does not filter by id, so nothing is deleted on its word",
            ids.len()
        ),
    ))
}

/// The answer of `Source::children` from a source whose libraries have no
/// children.
pub fn no_children(source: &str, library: &LibraryInfo, parent: &str) -> SourceError {
    SourceError::new(ErrorKind::Rejected, format!("{source}: {}/{parent} has no children", library.id))
}

/// The answer of `Source::changed` and `Source::count_library` from a source
/// with no save-time filter.
pub fn no_changed_since(source: &str, library: &LibraryInfo) -> SourceError {
    SourceError::new(
        ErrorKind::Rejected,
        format!("{source}: {} has no save-time filter to list changes by", library.id),
    )
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
