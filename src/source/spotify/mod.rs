//! Spotify as a `Source`: the user's saved tracks, saved albums, followed
//! artists and playlists (with their entries), in that order, as four
//! libraries. Tokens and rate-limit pauses live in the store's `Session`
//! (see `auth`), so a restart neither loses the account nor asks the API
//! before a `Retry-After` it was given has passed. See
//! `docs/servers.md` for the API's quirks.

pub mod auth;
mod entry;
pub mod history;
mod image;

pub use entry::{Entry, read_children, read_page};
use entry::{Following, Paging, children_of, page_of};

use super::http::{DEFAULT_RETRY_AFTER, Http, MAX_WAIT, Reply, body_cap};
use super::lenient::{Flag, Object, Text};
use super::{
    Cause, ErrorKind, Order, Page, Position, Present, Source, SourceError, Stop, WaitObserver, filter_libraries,
    no_changed_since,
};
use crate::config::{ServerConfig, SpotifyConfig};
use crate::model::{HISTORY, Kind, LibraryInfo, Nesting, Strategy};
use crate::store::{Session, Store};
use auth::{Accounts, Refusal};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An access token is refreshed when it has less than this left.
const REFRESH_MARGIN_SECS: i64 = 60;
/// The most URIs `/me/library/contains` takes in one request.
const CONTAINS_MAX: u32 = 40;
/// A wait longer than this is a spent daily quota, not the rolling window.
const QUOTA_WAIT: Duration = Duration::from_secs(3600);

/// The Web API's error body, `{"error": {"status": …, "message": …}}`.
#[derive(Default, Deserialize)]
#[serde(default)]
struct ApiError {
    error: Object<ApiErrorDetail>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ApiErrorDetail {
    message: Text,
}

pub struct Spotify<'a> {
    name: String,
    api: Http,
    accounts: Accounts<'a>,
    store: &'a Store,
    libraries: Option<Vec<String>>,
    /// The width an item's image marker is picked for (`image::closest`).
    image_width: u32,
    /// The session as last read or written: every change is written through.
    session: Mutex<Session>,
}

impl<'a> Spotify<'a> {
    /// `server` gives the name and library selection, `app` the rest;
    /// `stop` interrupts its requests.
    pub fn new(
        server: &ServerConfig,
        app: &'a SpotifyConfig,
        timeout: Duration,
        store: &'a Store,
        stop: &Arc<Stop>,
    ) -> Spotify<'a> {
        let session = store.session(&server.name).unwrap_or_else(|err| {
            log::error!("spotify \"{}\": cannot read the saved session ({err}); treating it as empty", server.name);
            Session::default()
        });
        Spotify {
            name: server.name.clone(),
            api: Http::new(&app.api_url, timeout, stop),
            accounts: Accounts::new(app, timeout, stop),
            store,
            libraries: server.libraries.clone(),
            image_width: app.image_width,
            session: Mutex::new(session),
        }
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes the session in the store and in memory, in that order.
    fn update(&self, change: impl FnOnce(&mut Session)) -> Result<(), SourceError> {
        let written = self.store.update_session(&self.name, change).map_err(|err| {
            SourceError::new(ErrorKind::Unavailable, format!("cannot save the Spotify session in the store: {err}"))
                .caused_by(Cause::Store(err))
        })?;
        *self.session() = written;
        Ok(())
    }

    /// Refuses to send anything before a stored `Retry-After` has passed.
    fn gate(&self) -> Result<(), SourceError> {
        let session = self.session();
        let Some(until) = session.not_before else {
            return Ok(());
        };
        let left = millis_until(until);
        if left.is_zero() {
            return Ok(());
        }
        let reason = session.not_before_reason.clone().unwrap_or_else(|| "rate limit".into());
        Err(SourceError::new(
            ErrorKind::RateLimited(left.min(MAX_WAIT)),
            format!("Spotify's {reason}: waiting until {} (progress is saved)", clock_time(until)),
        ))
    }

    /// Records a 429: nothing more is sent before `Retry-After` has passed,
    /// even after a restart. A wait longer than an hour is a spent quota.
    fn rate_limited(&self, retry_after: Option<Duration>, at: &str) -> SourceError {
        let wait = retry_after.unwrap_or(DEFAULT_RETRY_AFTER).min(MAX_WAIT);
        // Whole seconds from the next second up: never before the server's
        // own deadline, whatever the rounding.
        let wait_secs = wait.as_secs().saturating_add(u64::from(wait.subsec_nanos() > 0));
        let wait_secs = i64::try_from(wait_secs).unwrap_or(i64::MAX);
        let until = now_ms().div_euclid(1000).saturating_add(1).saturating_add(wait_secs);
        let reason = if wait > QUOTA_WAIT { "daily quota" } else { "rate limit" };
        if let Err(err) = self.update(|session| {
            session.not_before = Some(until);
            session.not_before_reason = Some(reason.to_string());
        }) {
            log::error!("{err}");
        }
        SourceError::new(
            ErrorKind::RateLimited(millis_until(until)),
            format!("{at}: Spotify's {reason} (HTTP 429): waiting until {} (progress is saved)", clock_time(until)),
        )
    }

    fn not_connected(&self) -> Option<SourceError> {
        let session = self.session();
        let message = match (&session.refresh_token, &session.reauthorize) {
            (_, Some(reason)) => reason.clone(),
            (None, None) => format!(
                "spotify \"{}\" is not connected to an account yet; open the status page and choose \"Connect Spotify\"",
                self.name
            ),
            (Some(_), None) => return None,
        };
        Some(SourceError::new(ErrorKind::Unauthorized, message))
    }

    /// A valid access token, refreshed when it expires within a minute.
    fn access_token(&self) -> Result<String, SourceError> {
        if let Some(err) = self.not_connected() {
            return Err(err);
        }
        let (current, expires_at, refresh_token) = {
            let session = self.session();
            (session.access_token.clone(), session.access_expires_at, session.refresh_token.clone())
        };
        if let (Some(token), Some(expires_at)) = (current, expires_at) {
            if expires_at.saturating_sub(REFRESH_MARGIN_SECS) > now_ms() / 1000 {
                return Ok(token);
            }
        }
        // Missing only if the session changed since the check above.
        let Some(refresh_token) = refresh_token else {
            return Err(self.not_connected().unwrap_or_else(|| {
                SourceError::new(
                    ErrorKind::Unavailable,
                    "the Spotify session changed while its token was read; trying again".to_string(),
                )
            }));
        };
        match self.accounts.refresh(&refresh_token) {
            Ok(tokens) => {
                let expires_at = tokens.expires_at(now_ms() / 1000);
                let access = tokens.access_token.clone();
                self.update(|session| {
                    session.access_token = Some(tokens.access_token);
                    session.access_expires_at = Some(expires_at);
                    // Spotify may rotate the refresh token; keep the old one
                    // when none is returned.
                    if let Some(rotated) = tokens.refresh_token {
                        session.refresh_token = Some(rotated);
                    }
                    if tokens.scope.is_some() {
                        session.scope = tokens.scope;
                    }
                })?;
                Ok(access)
            }
            Err((err, Refusal::Grant)) => {
                log::warn!("spotify \"{}\": {err}", self.name);
                let reason = err.message().to_string();
                self.update(|session| {
                    session.access_token = None;
                    session.access_expires_at = None;
                    session.reauthorize = Some(reason);
                })?;
                Err(err)
            }
            Err((err, Refusal::Other)) => match err.kind {
                ErrorKind::RateLimited(_) => Err(self.rate_limited(None, "the token endpoint")),
                _ => Err(err),
            },
        }
    }

    fn forget_access_token(&self) -> Result<(), SourceError> {
        self.update(|session| {
            session.access_token = None;
            session.access_expires_at = None;
        })
    }

    /// GETs an API path listing `entries` entries at most and reads its
    /// JSON. A 401 refreshes the token and asks once more.
    fn get<T: DeserializeOwned>(&self, path: &str, entries: u32) -> Result<T, SourceError> {
        let mut refreshed = false;
        loop {
            self.gate()?;
            let token = self.access_token()?;
            let bearer = format!("Bearer {token}");
            let reply =
                self.api.send(path, &[("Authorization", bearer.as_str()), ("Accept", "application/json")], None)?;
            let at = reply.at().to_string();
            let status = reply.status;
            if (200..=299).contains(&status) {
                return reply.json(body_cap(entries), "Spotify JSON");
            }
            let retry_after = reply.retry_after;
            let message = error_message(reply);
            return match status {
                401 if !refreshed => {
                    refreshed = true;
                    self.forget_access_token()?;
                    continue;
                }
                401 => Err(SourceError::new(
                    ErrorKind::Unauthorized,
                    format!(
                        "{at}: Spotify refused a fresh access token (HTTP 401 {message}); connect the account again on the status page"
                    ),
                )),
                403 => Err(SourceError::new(
                    ErrorKind::Rejected,
                    format!(
                        "{at}: forbidden (HTTP 403 {message}): Spotify lets an app read only playlists the user owns or collaborates on, and only with the scopes granted when connecting"
                    ),
                )),
                429 => Err(self.rate_limited(retry_after, &at)),
                408 | 500..=599 => Err(SourceError::new(
                    ErrorKind::Unavailable,
                    format!("{at}: server error (HTTP {status} {message}); will retry"),
                )),
                status => Err(SourceError::new(ErrorKind::Rejected, format!("{at}: HTTP {status} {message}"))),
            };
        }
    }

    fn listing_path(&self, library: &LibraryInfo, position: Position<'_>, size: u32) -> Result<String, SourceError> {
        let path = match library.id.as_str() {
            "tracks" => format!("/me/tracks?limit={size}&offset={}", position.offset(self)?),
            "albums" => format!("/me/albums?limit={size}&offset={}", position.offset(self)?),
            "playlists" => format!("/me/playlists?limit={size}&offset={}", position.offset(self)?),
            // Paged by cursor only: an offset can only be the first page's.
            "artists" => match position {
                Position::After(after) => {
                    format!("/me/following?type=artist&limit={size}&after={}", super::http::encode(after))
                }
                Position::Offset(_) => format!("/me/following?type=artist&limit={size}"),
            },
            other => {
                return Err(SourceError::new(ErrorKind::Rejected, format!("spotify has no library \"{other}\"")));
            }
        };
        Ok(path)
    }
}

impl Source for Spotify<'_> {
    fn describe(&self) -> String {
        format!("spotify \"{}\"", self.name)
    }

    /// The four collections. Asks nothing of the API: a disconnected account
    /// or a running pause is reported before any request.
    fn libraries(&self) -> Result<Vec<LibraryInfo>, SourceError> {
        if let Some(err) = self.not_connected() {
            return Err(err);
        }
        self.gate()?;
        // Saved tracks and albums come most recently saved first (the only
        // order Spotify has) and carry `added_at`; followed artists and
        // playlists have no change marker a listing could stop at. The
        // history needs a scope accounts connected before it lack: it is
        // left out until the user connects again (the status page says so).
        let history = auth::grants(self.session().scope.as_deref(), auth::HISTORY_SCOPE);
        let all = [
            (HISTORY, "Recently Played", Kind::Play, Strategy::AppendOnly, Nesting::Flat),
            ("tracks", "Liked Songs", Kind::Track, Strategy::StopAtCursor, Nesting::Flat),
            ("albums", "Saved Albums", Kind::Album, Strategy::StopAtCursor, Nesting::Flat),
            ("artists", "Followed Artists", Kind::Artist, Strategy::Unordered, Nesting::Flat),
            ("playlists", "Playlists", Kind::Playlist, Strategy::Unordered, Nesting::Nested),
        ]
        .into_iter()
        .filter(|(id, ..)| history || *id != HISTORY)
        .map(|(id, title, kind, strategy, nesting)| LibraryInfo {
            id: id.into(),
            title: title.into(),
            kinds: vec![kind],
            strategy,
            nesting,
            lookup_batch: CONTAINS_MAX,
        })
        .collect();
        Ok(filter_libraries(all, self.libraries.as_deref()))
    }

    /// Saved tracks and albums come most recently saved first whatever the
    /// order asked (that is the only order Spotify has); the other listings
    /// in their own stable order.
    fn page(
        &self,
        library: &LibraryInfo,
        _kind: Kind,
        order: Order,
        position: Position<'_>,
        size: u32,
    ) -> Result<Page, SourceError> {
        if library.id == HISTORY {
            let since = match order {
                Order::NewestSince(since) => Some(since),
                _ => None,
            };
            return Ok(history::page_of(self.get(&history::path(since), history::WINDOW)?));
        }
        let size = size.clamp(1, crate::config::SPOTIFY_MAX_PAGE);
        let path = self.listing_path(library, position, size)?;
        let paging = if library.id == "artists" {
            self.get::<Following>(&path, size)?.artists.0.unwrap_or_default()
        } else {
            self.get::<Paging<Entry>>(&path, size)?
        };
        let page = page_of(paging, &library.id, self.image_width);
        match position {
            Position::Offset(start) if library.id != "artists" => {
                page.checked(start, size, &format!("{}{path}", self.api.base()))
            }
            // Cursor-paged: no offset to hold the page against.
            _ => Ok(page),
        }
    }

    /// A playlist's entries, from `/playlists/{id}/items` (which replaced
    /// `/tracks` in 2026). 403 for playlists the user neither owns nor
    /// collaborates on.
    fn children(&self, _library: &LibraryInfo, parent: &str, start: u64, size: u32) -> Result<Page, SourceError> {
        let size = size.clamp(1, crate::config::SPOTIFY_MAX_PAGE);
        let path = format!(
            "/playlists/{}/items?limit={size}&offset={start}&additional_types=track,episode",
            super::http::encode(parent)
        );
        children_of(self.get(&path, size)?, parent, start, self.image_width).checked(
            start,
            size,
            &format!("{}{path}", self.api.base()),
        )
    }

    fn changed(&self, library: &LibraryInfo, _since: i64, _start: u64, _size: u32) -> Result<Page, SourceError> {
        Err(no_changed_since(&self.describe(), library))
    }

    fn count_library(&self, library: &LibraryInfo, _saved_since: Option<i64>) -> Result<Option<u64>, SourceError> {
        Err(no_changed_since(&self.describe(), library))
    }

    fn count(&self, library: &LibraryInfo, kind: Kind) -> Result<Option<u64>, SourceError> {
        Ok(self.page(library, kind, Order::Stable, Position::Offset(0), 1)?.total)
    }

    /// `/me/library/contains?uris=…` (at most 40 URIs per request): one
    /// true or false per URI, in order: saved (tracks, albums), followed
    /// (artists, and playlists, which includes the user's own: deleting a
    /// playlist on Spotify is unfollowing it). The answer has no details,
    /// so a present item keeps its stored copy.
    fn lookup(
        &self,
        _library: &LibraryInfo,
        kind: Kind,
        ids: &[String],
        _anchor: Option<&str>,
    ) -> Result<Vec<Present>, SourceError> {
        let kind_name = match kind {
            Kind::Track | Kind::Album | Kind::Artist | Kind::Playlist => kind.name(),
            other => {
                return Err(SourceError::new(
                    ErrorKind::Rejected,
                    format!("spotify cannot check whether a {other} is in the library"),
                ));
            }
        };
        let mut present = Vec::new();
        let chunk = usize::try_from(CONTAINS_MAX).unwrap_or(1);
        for batch in ids.chunks(chunk) {
            let uris: Vec<String> =
                batch.iter().map(|id| super::http::encode(&format!("spotify:{kind_name}:{id}"))).collect();
            let path = format!("/me/library/contains?uris={}", uris.join(","));
            let answer: Vec<Flag> = self.get(&path, CONTAINS_MAX)?;
            let flags: Option<Vec<bool>> = answer.into_iter().map(|flag| flag.0).collect();
            let flags = match flags {
                Some(flags) if flags.len() == batch.len() => flags,
                _ => {
                    return Err(SourceError::new(
                        ErrorKind::Unavailable,
                        format!(
                            "{}{path}: not one true or false per URI asked ({} asked); asking again",
                            self.api.base(),
                            batch.len()
                        ),
                    ));
                }
            };
            present
                .extend(batch.iter().zip(flags).filter(|(_, saved)| *saved).map(|(id, _)| Present::Kept(id.clone())));
        }
        Ok(present)
    }

    fn requests(&self) -> u64 {
        self.api.requests()
    }

    /// From every API answer's `Date`: what the saved tracks' and albums'
    /// incremental cursor (their `added_at`) is clamped to; `mediasync
    /// check` shows how far it is from this machine's.
    fn server_time(&self) -> Option<i64> {
        self.api.server_time()
    }

    fn observe_waits(&self, _observer: WaitObserver) {}
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The time left until `epoch` seconds, none when past.
fn millis_until(epoch: i64) -> Duration {
    let left = epoch.saturating_mul(1000).saturating_sub(now_ms());
    Duration::from_millis(u64::try_from(left).unwrap_or(0))
}

fn clock_time(epoch: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_opt(epoch, 0)
        .single()
        .map(|time| time.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| epoch.to_string())
}

/// The quoted `message` of an error answer, at most 200 characters.
fn error_message(reply: Reply) -> String {
    serde_json::from_slice::<ApiError>(&reply.error_body())
        .ok()
        .and_then(|body| body.error.0)
        .and_then(|error| {
            error.message.as_str().map(|message| format!("\"{}\"", message.chars().take(200).collect::<String>()))
        })
        .unwrap_or_default()
}
