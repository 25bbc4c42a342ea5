//! Spotify as a `Source`: the user's saved tracks, saved albums, followed
//! artists and playlists (with their entries), in that order, as four
//! libraries. Tokens and rate-limit pauses live in the store's `Session`
//! (see `auth`), so a restart neither loses the account nor asks the API
//! before a `Retry-After` it was given has passed. See
//! `docs/servers.md` for the API's quirks.

pub mod auth;

use super::http::Http;
use super::{
    BadItem, Cause, ErrorKind, Next, Order, Page, Position, Present, Source, SourceError, WaitObserver,
    filter_libraries, lenient,
};
use crate::config::{ServerConfig, SpotifyConfig};
use crate::model::{Item, Kind, LibraryInfo, Nesting, Strategy};
use crate::store::{Session, Store};
use auth::{Accounts, Refusal};
use serde_json::Value;
use std::sync::Mutex;
use std::time::Duration;

/// An access token is refreshed when it has less than this left.
const REFRESH_MARGIN_SECS: i64 = 60;
/// The wait when a 429 carries no `Retry-After`: Spotify's rolling window.
const DEFAULT_RETRY_AFTER_SECS: u64 = 30;
/// The most URIs `/me/library/contains` takes in one request.
const CONTAINS_MAX: u32 = 40;

pub struct Spotify<'a> {
    name: String,
    api: Http,
    accounts: Accounts<'a>,
    store: &'a Store,
    libraries: Option<Vec<String>>,
    /// The session as last read or written: every change is written through.
    session: Mutex<Session>,
}

impl<'a> Spotify<'a> {
    /// `server` gives the name and library selection, `app` the rest.
    pub fn new(server: &ServerConfig, app: &'a SpotifyConfig, timeout: Duration, store: &'a Store) -> Spotify<'a> {
        let session = store.session(&server.name).unwrap_or_else(|err| {
            log::error!("spotify \"{}\": cannot read the saved session ({err}); treating it as empty", server.name);
            Session::default()
        });
        Spotify {
            name: server.name.clone(),
            api: Http::new(&app.api_url, timeout),
            accounts: Accounts::new(app, timeout),
            store,
            libraries: server.libraries.clone(),
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
        let now_ms = now_ms();
        let until_ms = until.saturating_mul(1000);
        if now_ms >= until_ms {
            return Ok(());
        }
        let reason = session.not_before_reason.clone().unwrap_or_else(|| "rate limit".into());
        Err(SourceError::new(
            ErrorKind::RateLimited(Duration::from_millis((until_ms - now_ms) as u64)),
            format!("Spotify's {reason}: waiting until {} (progress is saved)", clock_time(until)),
        ))
    }

    /// Records a 429: nothing more is sent before `Retry-After` has passed,
    /// even after a restart. A wait longer than an hour is a spent quota.
    fn rate_limited(&self, retry_after: Option<u64>, at: &str) -> SourceError {
        let wait = retry_after.unwrap_or(DEFAULT_RETRY_AFTER_SECS);
        // Whole seconds from the next second up: never before the server's
        // own deadline, whatever the rounding.
        let until = now_ms().div_euclid(1000) + 1 + wait as i64;
        let reason = if wait > 3600 { "daily quota" } else { "rate limit" };
        if let Err(err) = self.update(|session| {
            session.not_before = Some(until);
            session.not_before_reason = Some(reason.to_string());
        }) {
            log::error!("{err}");
        }
        let remaining = Duration::from_millis((until * 1000 - now_ms()).max(0) as u64);
        SourceError::new(
            ErrorKind::RateLimited(remaining),
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
            if expires_at - REFRESH_MARGIN_SECS > now_ms() / 1000 {
                return Ok(token);
            }
        }
        let refresh_token = refresh_token.expect("checked by not_connected");
        match self.accounts.refresh(&refresh_token) {
            Ok(tokens) => {
                let expires_at = now_ms() / 1000 + tokens.expires_in.unwrap_or(3600);
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

    /// GETs an API path and returns its JSON. A 401 refreshes the token and
    /// asks once more.
    fn get(&self, path: &str) -> Result<Value, SourceError> {
        let mut refreshed = false;
        loop {
            self.gate()?;
            let token = self.access_token()?;
            let bearer = format!("Bearer {token}");
            let raw =
                self.api.send(path, &[("Authorization", bearer.as_str()), ("Accept", "application/json")], None)?;
            let at = format!("{}{path}", self.api.base());
            let message = || error_message(&raw.body);
            return match raw.status {
                200..=299 => serde_json::from_slice(&raw.body).map_err(|err| {
                    SourceError::new(
                        ErrorKind::Unavailable,
                        format!("{at}: the answer is not JSON ({err}); the response may have been cut off"),
                    )
                    .caused_by(Cause::Json(err))
                }),
                401 if !refreshed => {
                    refreshed = true;
                    self.forget_access_token()?;
                    continue;
                }
                401 => Err(SourceError::new(
                    ErrorKind::Unauthorized,
                    format!(
                        "{at}: Spotify refused a fresh access token (HTTP 401 {}); connect the account again on the status page",
                        message()
                    ),
                )),
                403 => Err(SourceError::new(
                    ErrorKind::Rejected,
                    format!(
                        "{at}: forbidden (HTTP 403 {}): Spotify lets an app read only playlists the user owns or collaborates on, and only with the scopes granted when connecting",
                        message()
                    ),
                )),
                429 => Err(self.rate_limited(raw.retry_after, &at)),
                408 | 500..=599 => Err(SourceError::new(
                    ErrorKind::Unavailable,
                    format!("{at}: server error (HTTP {} {}); will retry", raw.status, message()),
                )),
                status => Err(SourceError::new(ErrorKind::Rejected, format!("{at}: HTTP {status} {}", message()))),
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
        // playlists have no change marker a listing could stop at.
        let all = [
            ("tracks", "Liked Songs", Kind::Track, Strategy::StopAtCursor, Nesting::Flat),
            ("albums", "Saved Albums", Kind::Album, Strategy::StopAtCursor, Nesting::Flat),
            ("artists", "Followed Artists", Kind::Artist, Strategy::Unordered, Nesting::Flat),
            ("playlists", "Playlists", Kind::Playlist, Strategy::Unordered, Nesting::Nested),
        ]
        .into_iter()
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
        _order: Order,
        position: Position<'_>,
        size: u32,
    ) -> Result<Page, SourceError> {
        let size = size.clamp(1, crate::config::SPOTIFY_MAX_PAGE);
        let path = self.listing_path(library, position, size)?;
        let answer = self.get(&path)?;
        let paging = if library.id == "artists" { answer.get("artists").unwrap_or(&Value::Null) } else { &answer };
        let entries = paging.get("items").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let items = entries
            .iter()
            .map(|entry| match library.id.as_str() {
                "tracks" => saved(entry, "track", Kind::Track),
                "albums" => saved(entry, "album", Kind::Album),
                "artists" => artist(entry),
                _ => playlist(entry),
            })
            .collect();
        let next = match (paging.get("next").and_then(Value::as_str), library.id.as_str()) {
            (None, _) => Next::End,
            (Some(_), "artists") => match paging.pointer("/cursors/after").and_then(Value::as_str) {
                Some(cursor) => Next::After(cursor.to_string()),
                None => Next::End,
            },
            (Some(_), _) => Next::Offset,
        };
        let page = Page { items, total: lenient::u64(paging.get("total")), next };
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
        let answer = self.get(&path)?;
        let entries = answer.get("items").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let items =
            entries.iter().enumerate().map(|(n, entry)| playlist_entry(entry, parent, start + n as u64)).collect();
        let next = if answer.get("next").and_then(Value::as_str).is_some() { Next::Offset } else { Next::End };
        Page { items, total: lenient::u64(answer.get("total")), next }.checked(
            start,
            size,
            &format!("{}{path}", self.api.base()),
        )
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
            let answer = self.get(&path)?;
            let flags: Option<Vec<bool>> =
                answer.as_array().map(|flags| flags.iter().filter_map(Value::as_bool).collect());
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
    /// incremental cursor (their `added_at`) is clamped to.
    fn server_time(&self) -> Option<i64> {
        self.api.server_time()
    }

    fn observe_waits(&self, _observer: WaitObserver) {}
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

fn clock_time(epoch: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_opt(epoch, 0)
        .single()
        .map(|time| time.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| epoch.to_string())
}

/// The `message` of Spotify's `{"error":{"status":…,"message":…}}`.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| value.pointer("/error/message").and_then(Value::as_str).map(str::to_string))
        .map(|message| format!("\"{}\"", message.chars().take(200).collect::<String>()))
        .unwrap_or_default()
}

/// RFC 3339 (`2024-05-01T10:00:00Z`) to epoch seconds.
fn timestamp(value: Option<&Value>) -> Option<i64> {
    let text = value?.as_str()?;
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|time| time.timestamp())
}

fn year(release_date: Option<&Value>) -> Option<i32> {
    release_date?.as_str()?.get(..4)?.parse().ok()
}

/// A saved track or album: `{added_at, track|album}`.
fn saved(entry: &Value, field: &str, kind: Kind) -> Result<Item, BadItem> {
    let object = entry.get(field).filter(|object| object.is_object());
    let id = object.and_then(|object| lenient::string(object.get("id")));
    let bad = |reason: &str| BadItem { id: id.clone(), reason: reason.to_string() };
    let object = object.ok_or_else(|| bad(&format!("no {field} object (no longer available)")))?;
    let id = id.clone().ok_or_else(|| bad("no id"))?;
    let added_at = timestamp(entry.get("added_at")).ok_or_else(|| bad("no readable added_at"))?;
    let mut item = Item::new(id, kind, lenient::string(object.get("name")).unwrap_or_default(), added_at);
    item.added_at = Some(added_at);
    item.guid = lenient::string(object.get("uri"));
    match kind {
        Kind::Track => {
            item.parent_id = object.pointer("/album/id").and_then(|id| lenient::string(Some(id)));
            item.year = year(object.pointer("/album/release_date"));
            item.index = lenient::i64(object.get("track_number"));
            item.parent_index = lenient::i64(object.get("disc_number"));
            item.duration_ms = lenient::i64(object.get("duration_ms"));
        }
        _ => {
            item.parent_id = object.pointer("/artists/0/id").and_then(|id| lenient::string(Some(id)));
            item.year = year(object.get("release_date"));
        }
    }
    Ok(item)
}

fn artist(entry: &Value) -> Result<Item, BadItem> {
    let id = lenient::string(entry.get("id")).ok_or_else(|| BadItem { id: None, reason: "no id".into() })?;
    let mut item = Item::new(id, Kind::Artist, lenient::string(entry.get("name")).unwrap_or_default(), 0);
    item.guid = lenient::string(entry.get("uri"));
    Ok(item)
}

/// A playlist: `snapshot_id` is its version, kept as the marker. The image
/// URLs are left out: they are temporary and change on every listing.
fn playlist(entry: &Value) -> Result<Item, BadItem> {
    let id = lenient::string(entry.get("id")).ok_or_else(|| BadItem { id: None, reason: "no id".into() })?;
    let snapshot = lenient::string(entry.get("snapshot_id"))
        .ok_or_else(|| BadItem { id: Some(id.clone()), reason: "no snapshot_id".into() })?;
    let mut item = Item::new(id, Kind::Playlist, lenient::string(entry.get("name")).unwrap_or_default(), 0);
    item.parent_id = entry.pointer("/owner/id").and_then(|id| lenient::string(Some(id)));
    item.guid = lenient::string(entry.get("uri"));
    item.marker = Some(snapshot);
    Ok(item)
}

/// A playlist entry at `position`: its id is the playlist's, '/', and the
/// zero-padded position, so entries sort in playlist order and the same
/// track may appear twice.
fn playlist_entry(entry: &Value, playlist: &str, position: u64) -> Result<Item, BadItem> {
    // `item` since 2026; `track` before.
    let object = entry
        .get("item")
        .filter(|value| value.is_object())
        .or_else(|| entry.get("track").filter(|value| value.is_object()));
    let kind = match object.and_then(|object| object.get("type")).and_then(Value::as_str) {
        Some("episode") => Kind::Episode,
        _ => Kind::Track,
    };
    let added_at = timestamp(entry.get("added_at"));
    let title = object.and_then(|object| lenient::string(object.get("name"))).unwrap_or_default();
    let mut item = Item::new(format!("{playlist}/{position:06}"), kind, title, added_at.unwrap_or(0));
    item.parent_id = Some(playlist.to_string());
    item.index = Some(position as i64);
    item.added_at = added_at;
    if let Some(object) = object {
        item.guid = lenient::string(object.get("uri"));
        item.duration_ms = lenient::i64(object.get("duration_ms"));
    }
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn saved_track_maps_added_at_and_album() {
        let entry = json!({"added_at": "2024-05-01T10:00:00Z", "track": {"id": "t1", "name": "Song", "uri": "spotify:track:t1",
            "album": {"id": "a1", "release_date": "1999-01-01"}, "track_number": 3, "disc_number": 1, "duration_ms": 1000}});
        let item = saved(&entry, "track", Kind::Track).unwrap();
        assert_eq!((item.id.as_str(), item.updated_at, item.parent_id.as_deref()), ("t1", 1_714_557_600, Some("a1")));
        assert_eq!(item.year, Some(1999));
        let gone = saved(&json!({"added_at": "2024-05-01T10:00:00Z", "track": null}), "track", Kind::Track);
        assert!(gone.is_err());
    }

    #[test]
    fn playlist_entries_keep_position_and_read_both_spellings() {
        let entry = json!({"added_at": null, "track": {"type": "episode", "name": "Ep", "uri": "spotify:episode:e"}});
        let item = playlist_entry(&entry, "p1", 7).unwrap();
        assert_eq!(
            (item.id.as_str(), item.kind, item.index, item.updated_at),
            ("p1/000007", Kind::Episode, Some(7), 0)
        );
        let entry = json!({"added_at": "2024-05-01T10:00:00Z", "item": null, "track": null});
        let item = playlist_entry(&entry, "p1", 0).unwrap();
        assert_eq!((item.title.as_str(), item.kind, item.guid), ("", Kind::Track, None));
    }
}
