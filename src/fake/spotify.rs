//! A fake Spotify Web API (`/v1/...`) and accounts service (`/authorize`,
//! `/api/token`) on one listener, so a client's `api_url` is `{url}/v1` and
//! its `accounts_url` is `{url}`. Like the real services it wants a Bearer
//! token (401 with `WWW-Authenticate` when missing, unknown or expired) and
//! the right scopes (403 "Insufficient client scope"), caps `limit` at 50
//! (100 on the deprecated `/playlists/{id}/tracks`), pages saved tracks,
//! albums and playlists by offset with full-URL `next`/`previous`, pages
//! followed artists by an `after` cursor in id order, answers 403 for the
//! items of playlists the user neither owns nor collaborates on, sends
//! playlist images whose URLs change on every listing (real ones are
//! temporary), episodes in the legacy track shape (with wrong `episode` and
//! `track` flags) unless `additional_types=episode`, local files with null
//! ids, null items for unavailable tracks, and null `added_at` in very old
//! playlists. Generated saves come in bursts sharing one `added_at` second.
//! Rate limits: a rolling window and a daily quota, both 429 with
//! `Retry-After`; a request sent before the last `Retry-After` ran out is
//! logged `early` (a violation). Accounts: the authorization code flow (PKCE
//! or client secret, single-use codes, `localhost` redirect URIs refused
//! since November 2025), refresh tokens that rotate, are revoked (the
//! 6-month expiry) or stay, and access tokens that expire. Tokens never
//! reach the log.

use super::churn::{Changes, Changing};
pub use super::{Expected, Failure};
use super::{Fake, Faults, Recording, date_header, header, query};
use crate::model::Kind;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const CLIENT_ID: &str = "5f3c0ffee0ddba11fa1afe1ca11ab1e0";
pub const CLIENT_SECRET: &str = "fake-client-secret-9c1d7";
/// What a sync asks for, and what `issue_refresh_token` grants.
pub const SCOPES: &str = "user-library-read user-follow-read playlist-read-private playlist-read-collaborative";
const BASE_TIME: i64 = 1_700_000_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    /// The API request number (1-based, as `fail_at` counts); 0 for
    /// accounts requests, which are not API requests.
    pub number: u64,
    pub method: String,
    pub path: String,
    /// The raw query, with token-like parameters redacted.
    pub query: String,
    pub status: u16,
    /// Sent before the last `Retry-After` given had run out.
    pub early: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeArtist {
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeAlbum {
    pub id: String,
    pub name: String,
    pub artists: Vec<FakeArtist>,
    /// `YYYY-MM-DD` (precision `day`).
    pub release_date: String,
    pub total_tracks: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeTrack {
    pub id: String,
    pub name: String,
    pub album: FakeAlbum,
    pub artists: Vec<FakeArtist>,
    pub duration_ms: u64,
    pub track_number: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeEpisode {
    pub id: String,
    pub name: String,
    pub show_id: String,
    pub show_name: String,
    pub duration_ms: u64,
    pub release_date: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlaylistItem {
    Track(FakeTrack),
    Episode(FakeEpisode),
    /// A local file: `is_local`, null ids, a `spotify:local:` URI.
    Local {
        name: String,
        artist: String,
        album: String,
        duration_ms: u64,
    },
    /// A track no longer available: the entry's item is null.
    Unavailable,
}

impl PlaylistItem {
    pub fn name(&self) -> &str {
        match self {
            PlaylistItem::Track(track) => &track.name,
            PlaylistItem::Episode(episode) => &episode.name,
            PlaylistItem::Local { name, .. } => name,
            PlaylistItem::Unavailable => "",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaylistEntry {
    /// Epoch seconds; None in very old playlists (sent as null).
    pub added_at: Option<i64>,
    pub added_by: Option<String>,
    pub item: PlaylistItem,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakePlaylist {
    pub id: String,
    pub name: String,
    pub description: String,
    /// The owner's user id: the user may read the entries only if this is
    /// the user or the playlist is collaborative.
    pub owner: String,
    pub collaborative: bool,
    pub public: bool,
    pub snapshot_id: String,
    pub entries: Vec<PlaylistEntry>,
    version: u64,
}

/// A saved track or album and when it was saved (epoch seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved<T> {
    pub added_at: i64,
    pub item: T,
}

#[derive(Default)]
pub struct SpotifyState {
    pub user_id: String,
    pub display_name: String,
    pub client_id: String,
    /// None: a PKCE-only client (no secret to check).
    pub client_secret: Option<String>,
    /// Newest first: index 0 is the most recently saved.
    pub saved_tracks: Vec<Saved<FakeTrack>>,
    /// Newest first.
    pub saved_albums: Vec<Saved<FakeAlbum>>,
    /// Any order: the API sorts them by id.
    pub followed_artists: Vec<FakeArtist>,
    /// In the order `/me/playlists` lists them.
    pub playlists: Vec<FakePlaylist>,
    /// Epoch seconds; every mutation advances it by 1 s and happens "now".
    pub clock: i64,
    pub log: Vec<Logged>,
    /// At most this many API requests per rolling window of seconds.
    pub rate_limit: Option<(u32, u64)>,
    /// After this many successful API requests, 429 until `reset_quota`.
    pub quota: Option<u64>,
    pub quota_reset_secs: u64,
    pub token_lifetime_secs: u64,
    /// Whether a refresh answers a new refresh token (the old one dies).
    pub rotate_refresh_tokens: bool,
    /// The user clicks "Cancel" on the consent page.
    pub deny_authorization: bool,
    /// When set, the token endpoint answers this status (an outage).
    pub token_failure: Option<u16>,
    pub delay: Duration,
    requests: u64,
    token_requests: u64,
    violations: u64,
    quota_used: u64,
    window: VecDeque<Instant>,
    not_before: Option<Instant>,
    access_tokens: HashMap<String, Grant>,
    /// Valid refresh tokens and their scopes, oldest first.
    refresh_tokens: Vec<(String, String)>,
    revoked: Vec<String>,
    codes: HashMap<String, Code>,
    serial: u64,
    seed: u64,
    listings: u64,
    faults: Faults,
    pub(crate) changes: Changes<SpotifyState>,
    /// The failure injected for the request being answered, for `handle`.
    injected: Option<Failure>,
}

struct Grant {
    expires: Instant,
    scope: String,
}

struct Code {
    redirect_uri: String,
    challenge: Option<String>,
    scope: String,
}

/// A fake Spotify; `Fake`'s methods control it, these mutate the library.
pub type FakeSpotify = Fake<SpotifyState>;

impl Recording for SpotifyState {
    type Entry = Logged;
    /// API requests only: token requests are counted by `token_requests`.
    fn requests(&self) -> u64 {
        self.requests
    }
    fn log_mut(&mut self) -> &mut Vec<Logged> {
        &mut self.log
    }
    fn faults_mut(&mut self) -> &mut Faults {
        &mut self.faults
    }
}

impl Fake<SpotifyState> {
    /// Starts an empty library on 127.0.0.1 with an OS-chosen port.
    pub fn start() -> Result<FakeSpotify, String> {
        FakeSpotify::start_on("127.0.0.1:0")
    }

    pub fn start_on(address: &str) -> Result<FakeSpotify, String> {
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let state = SpotifyState {
            user_id: "listener1".into(),
            display_name: "Listener One".into(),
            client_id: CLIENT_ID.into(),
            client_secret: Some(CLIENT_SECRET.into()),
            clock: BASE_TIME,
            quota_reset_secs: 86_400,
            token_lifetime_secs: 3600,
            seed: seed as u64,
            ..SpotifyState::default()
        };
        Fake::serve(address, state, handle)
    }

    pub fn api_url(&self) -> String {
        format!("{}/v1", self.url())
    }

    pub fn accounts_url(&self) -> String {
        self.url().to_string()
    }

    pub fn token_requests(&self) -> u64 {
        self.state().token_requests
    }

    /// API requests sent before the last `Retry-After` had run out.
    pub fn violations(&self) -> u64 {
        self.state().violations
    }

    /// A refresh token granting `SCOPES`, as if the user had authorized.
    pub fn issue_refresh_token(&self) -> String {
        let mut state = self.state();
        let token = state.secret("AQ");
        state.refresh_tokens.push((token.clone(), SCOPES.to_string()));
        token
    }

    /// An access token granting `SCOPES`, valid for `token_lifetime_secs`.
    pub fn issue_access_token(&self) -> String {
        self.state().issue_access(SCOPES)
    }

    /// The newest valid refresh token.
    pub fn refresh_token(&self) -> Option<String> {
        self.state().refresh_tokens.last().map(|(token, _)| token.clone())
    }

    /// Every access token issued so far now answers "The access token expired".
    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        for grant in self.state().access_tokens.values_mut() {
            grant.expires = now;
        }
    }

    /// Every refresh token dies, as 6 months after the user's authorization.
    pub fn revoke_refresh_tokens(&self) {
        let mut state = self.state();
        let tokens: Vec<String> = state.refresh_tokens.drain(..).map(|(token, _)| token).collect();
        state.revoked.extend(tokens);
    }

    /// The quota is back (the day has passed): requests are served again,
    /// and one sent now is not early.
    pub fn reset_quota(&self) {
        let mut state = self.state();
        state.quota_used = 0;
        state.not_before = None;
    }

    /// Deterministic content: a catalog of artists, albums and tracks;
    /// `tracks` saved tracks, `albums` saved albums, `artists` followed
    /// artists, and `playlists` playlists of `entries_per_playlist` entries.
    /// Playlist `p` is the user's unless `p % 4 == 2` (someone else's, not
    /// collaborative: forbidden) or `p % 4 == 3` (someone else's,
    /// collaborative); `p % 5 == 4` is very old (null `added_at`). Entries
    /// mix tracks with episodes, local files, unavailable tracks and a
    /// repeated track.
    pub fn generate(
        &self,
        tracks: usize,
        albums: usize,
        artists: usize,
        playlists: usize,
        entries_per_playlist: usize,
    ) {
        let mut state = self.state();
        let artist_catalog: Vec<FakeArtist> = (0..artists.max(1)).map(|_| state.new_artist(None)).collect();
        let album_catalog: Vec<FakeAlbum> = (0..albums.max(1))
            .map(|number| {
                let artist = artist_catalog[number % artist_catalog.len()].clone();
                state.new_album(None, vec![artist])
            })
            .collect();
        let track_catalog: Vec<FakeTrack> = (0..tracks.max(entries_per_playlist).max(1))
            .map(|number| state.new_track(None, album_catalog[number % album_catalog.len()].clone()))
            .collect();
        let base = state.clock - 1000;
        for (number, track) in track_catalog.iter().take(tracks).enumerate() {
            let added_at = base - (number / 2) as i64 * 3607;
            state.saved_tracks.push(Saved { added_at, item: track.clone() });
        }
        for (number, album) in album_catalog.iter().take(albums).enumerate() {
            let added_at = base - (number / 2) as i64 * 86_399;
            state.saved_albums.push(Saved { added_at, item: album.clone() });
        }
        state.followed_artists.extend(artist_catalog.into_iter().take(artists));
        for number in 0..playlists {
            let owner = match number % 4 {
                2 => "spotify".to_string(),
                3 => "friend2".to_string(),
                _ => state.user_id.clone(),
            };
            let old = number % 5 == 4;
            let mut entries = Vec::new();
            for position in 0..entries_per_playlist {
                let item = match position {
                    p if p % 17 == 16 => PlaylistItem::Unavailable,
                    p if p % 13 == 12 => PlaylistItem::Local {
                        name: format!("Home Demo {p}"),
                        artist: "The Garage".into(),
                        album: "Demos".into(),
                        duration_ms: 180_000 + p as u64 * 1000,
                    },
                    p if p % 10 == 9 => PlaylistItem::Episode(state.new_episode()),
                    p if p % 11 == 10 => {
                        entries.first().map_or(PlaylistItem::Unavailable, |first: &PlaylistEntry| first.item.clone())
                    }
                    p => PlaylistItem::Track(track_catalog[(number * 7 + p) % track_catalog.len()].clone()),
                };
                let added_at = base - number as i64 * 86_400 - (entries_per_playlist - position) as i64 * 60;
                let added_by = if number % 4 == 3 && position % 2 == 1 { state.user_id.clone() } else { owner.clone() };
                entries.push(PlaylistEntry {
                    added_at: (!old).then_some(added_at),
                    added_by: (!old).then_some(added_by),
                    item,
                });
            }
            let playlist = state.new_playlist(&format!("Playlist {number}"), &owner, number % 4 == 3, entries);
            state.playlists.push(playlist);
        }
    }

    /// Saves a new track (on a new single by a new artist) now; returns its id.
    pub fn save_track(&self, name: &str) -> String {
        self.state().save_new_track(name)
    }

    pub fn unsave_track(&self, id: &str) {
        self.state().unsave_track_id(id);
    }

    /// Saves a new album (by a new artist) now; returns its id.
    pub fn save_album(&self, name: &str) -> String {
        self.state().save_new_album(name)
    }

    pub fn unsave_album(&self, id: &str) {
        self.state().unsave_album_id(id);
    }

    pub fn follow_artist(&self, name: &str) -> String {
        self.state().follow_new_artist(name)
    }

    pub fn unfollow_artist(&self, id: &str) {
        self.state().unfollow_artist_id(id);
    }

    /// Creates (or follows) a playlist of `entries` new tracks added now; it
    /// lists first, as on Spotify. Returns its id.
    pub fn add_playlist(&self, name: &str, owner: &str, collaborative: bool, entries: usize) -> String {
        self.state().create_playlist(name, owner, collaborative, entries)
    }

    pub fn remove_playlist(&self, id: &str) {
        self.state().delete_playlist(id);
    }

    /// Inserts a new track at `position` (clamped to the end); returns its id.
    pub fn playlist_insert(&self, id: &str, position: usize, track_name: &str) -> String {
        self.state().insert_entry(id, position, track_name)
    }

    pub fn playlist_remove(&self, id: &str, position: usize) {
        self.state().remove_entry(id, position);
    }

    pub fn rename_playlist(&self, id: &str, name: &str) {
        self.state().rename(id, name);
    }

    pub fn snapshot_id(&self, id: &str) -> Option<String> {
        self.state().playlists.iter().find(|playlist| playlist.id == id).map(|playlist| playlist.snapshot_id.clone())
    }

    /// What an exact mirror holds, sorted: libraries `tracks`, `albums`,
    /// `artists` and `playlists` (playlists, then the entries of those the
    /// user may read, id `{playlist}/{position:06}`).
    pub fn expected(&self) -> Vec<Expected> {
        let state = self.state();
        let row =
            |library: &str, id: &str, kind: Kind, title: &str, parent_id: Option<&str>, updated_at: i64| Expected {
                library: library.to_string(),
                id: id.to_string(),
                kind,
                title: title.to_string(),
                parent_id: parent_id.map(str::to_string),
                updated_at,
            };
        let mut rows = Vec::new();
        for saved in &state.saved_tracks {
            let track = &saved.item;
            rows.push(row("tracks", &track.id, Kind::Track, &track.name, Some(&track.album.id), saved.added_at));
        }
        for saved in &state.saved_albums {
            let album = &saved.item;
            let artist = album.artists.first().map(|artist| artist.id.as_str());
            rows.push(row("albums", &album.id, Kind::Album, &album.name, artist, saved.added_at));
        }
        for artist in &state.followed_artists {
            rows.push(row("artists", &artist.id, Kind::Artist, &artist.name, None, 0));
        }
        for playlist in &state.playlists {
            rows.push(row("playlists", &playlist.id, Kind::Playlist, &playlist.name, Some(&playlist.owner), 0));
            if !state.readable(playlist) {
                continue;
            }
            for (position, entry) in playlist.entries.iter().enumerate() {
                let kind = if matches!(entry.item, PlaylistItem::Episode(_)) { Kind::Episode } else { Kind::Track };
                let id = format!("{}/{position:06}", playlist.id);
                let updated_at = entry.added_at.unwrap_or(0);
                rows.push(row("playlists", &id, kind, entry.item.name(), Some(&playlist.id), updated_at));
            }
        }
        rows.sort();
        rows
    }
}

impl SpotifyState {
    pub(crate) fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.clock
    }

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    fn readable(&self, playlist: &FakePlaylist) -> bool {
        playlist.owner == self.user_id || playlist.collaborative
    }

    pub(crate) fn new_artist(&mut self, name: Option<&str>) -> FakeArtist {
        let serial = self.next_serial();
        FakeArtist {
            id: spotify_id('a', serial),
            name: name.map_or_else(|| format!("Artist {serial}"), str::to_string),
        }
    }

    pub(crate) fn new_album(&mut self, name: Option<&str>, artists: Vec<FakeArtist>) -> FakeAlbum {
        let serial = self.next_serial();
        FakeAlbum {
            id: spotify_id('b', serial),
            name: name.map_or_else(|| format!("Album {serial}"), str::to_string),
            artists,
            release_date: format!("{}-{:02}-{:02}", 1970 + serial % 55, 1 + serial % 12, 1 + serial % 28),
            total_tracks: 1 + (serial % 12) as u32,
        }
    }

    pub(crate) fn new_track(&mut self, name: Option<&str>, album: FakeAlbum) -> FakeTrack {
        let serial = self.next_serial();
        FakeTrack {
            id: spotify_id('t', serial),
            name: name.map_or_else(|| format!("Track {serial}"), str::to_string),
            artists: album.artists.clone(),
            track_number: 1 + (serial % u64::from(album.total_tracks)) as u32,
            album,
            duration_ms: 120_000 + serial * 1777 % 240_000,
        }
    }

    fn new_episode(&mut self) -> FakeEpisode {
        let serial = self.next_serial();
        FakeEpisode {
            id: spotify_id('e', serial),
            name: format!("Episode {serial}"),
            show_id: spotify_id('s', serial % 3),
            show_name: format!("Podcast {}", serial % 3),
            duration_ms: 1_800_000 + serial * 7919 % 1_800_000,
            release_date: format!("20{:02}-{:02}-{:02}", 10 + serial % 15, 1 + serial % 12, 1 + serial % 28),
        }
    }

    pub(crate) fn new_playlist(
        &mut self,
        name: &str,
        owner: &str,
        collaborative: bool,
        entries: Vec<PlaylistEntry>,
    ) -> FakePlaylist {
        let serial = self.next_serial();
        let id = spotify_id('p', serial);
        FakePlaylist {
            snapshot_id: snapshot(&id, 1),
            id,
            name: name.to_string(),
            description: format!("Made for testing ({serial})"),
            owner: owner.to_string(),
            collaborative,
            public: !collaborative && serial % 2 == 0,
            entries,
            version: 1,
        }
    }

    pub(crate) fn edit_playlist(&mut self, id: &str, edit: impl FnOnce(&mut FakePlaylist)) {
        let playlist = self.playlists.iter_mut().find(|playlist| playlist.id == id).expect("no such playlist");
        edit(playlist);
        playlist.version += 1;
        playlist.snapshot_id = snapshot(&playlist.id, playlist.version);
    }

    /// A random-looking secret (token or code), unique per fake and call.
    fn secret(&mut self, prefix: &str) -> String {
        let serial = self.next_serial();
        let material = format!("{}:{serial}", self.seed);
        let digest = ring::digest::digest(&ring::digest::SHA256, material.as_bytes());
        format!("{prefix}{}", URL_SAFE_NO_PAD.encode(digest.as_ref()))
    }

    fn issue_access(&mut self, scope: &str) -> String {
        let token = self.secret("BQ");
        let expires = Instant::now() + Duration::from_secs(self.token_lifetime_secs);
        self.access_tokens.insert(token.clone(), Grant { expires, scope: scope.to_string() });
        token
    }
}

/// A 22-character base62 id: a kind letter and digits scrambled from the
/// serial, so id order (the followed-artists order) is not creation order.
pub(crate) fn spotify_id(kind: char, serial: u64) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let digits = |mut value: u64, count: usize| -> String {
        let mut out = vec![b'0'; count];
        for slot in out.iter_mut().rev() {
            *slot = DIGITS[(value % 62) as usize];
            value /= 62;
        }
        String::from_utf8(out).expect("ASCII")
    };
    let unique = serial.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let scramble = serial.wrapping_mul(0xD6E8_FEB8_6659_FD93).rotate_left(17) % 839_299_365_868_340_224; // 62^10
    format!("{kind}{}{}", digits(scramble, 10), digits(unique, 11))
}

/// Like real snapshot ids: base64 of "version,hash".
fn snapshot(id: &str, version: u64) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{id}/{version}").as_bytes());
    let hash: String = digest.as_ref()[..16].iter().map(|byte| format!("{byte:02x}")).collect();
    STANDARD.encode(format!("{version},{hash}"))
}

fn hex_of(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref()[..14].iter().map(|byte| format!("{byte:02x}")).collect()
}

fn timestamp(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0).unwrap_or_default().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Percent-encodes a query component.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The query as logged: values of token-like parameters replaced.
fn redact(query: &str) -> String {
    const SECRET: [&str; 6] = ["access_token", "refresh_token", "code", "code_verifier", "client_secret", "token"];
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if SECRET.contains(&query::decode(name).as_str()) => format!("{name}=REDACTED"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

struct Answer {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

fn json_answer(status: u16, value: &Value) -> Answer {
    Answer {
        status,
        content_type: "application/json; charset=utf-8",
        body: serde_json::to_vec(value).expect("JSON values serialize"),
        headers: Vec::new(),
    }
}

/// The Web API's error body.
fn api_error(status: u16, message: &str) -> Answer {
    json_answer(status, &json!({"error": {"status": status, "message": message}}))
}

/// The accounts service's (OAuth) error body.
fn oauth_error(status: u16, error: &str, description: &str) -> Answer {
    json_answer(status, &json!({"error": error, "error_description": description}))
}

fn html(status: u16, text: &str) -> Answer {
    let body = format!("<!DOCTYPE html><html><head><title>Error</title></head><body><h1>{text}</h1></body></html>");
    Answer { status, content_type: "text/html; charset=utf-8", body: body.into_bytes(), headers: Vec::new() }
}

fn unauthorized(message: &str) -> Answer {
    let mut answer = api_error(401, message);
    let challenge = format!("Bearer realm=\"spotify\", error=\"invalid_token\", error_description=\"{message}\"");
    answer.headers.push(("WWW-Authenticate", challenge));
    answer
}

fn redirect(location: String) -> Answer {
    Answer {
        status: 302,
        content_type: "text/html; charset=utf-8",
        body: Vec::new(),
        headers: vec![("Location", location)],
    }
}

fn handle(shared: &Mutex<SpotifyState>, mut request: tiny_http::Request) {
    let delay = shared.lock().map(|state| state.delay).unwrap_or_default();
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let mut body = String::new();
    if *request.method() == tiny_http::Method::Post {
        let _ = request.as_reader().take(64 << 10).read_to_string(&mut body);
    }
    let (answer, failure, clock) = {
        let mut state = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let answer = state.answer(&request, &body);
        (answer, state.injected.take(), state.clock)
    };
    let mut headers = vec![("Content-Type".to_string(), answer.content_type.to_string()), date_header(clock)];
    headers.extend(answer.headers.into_iter().map(|(name, value)| (name.to_string(), value)));
    super::hostile::send(request, answer.status, headers, answer.body, failure.as_ref());
}

type Params = [(String, String)];

fn param<'p>(params: &'p Params, name: &str) -> Option<&'p str> {
    params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

fn has_scope(scope: &str, wanted: &str) -> bool {
    scope.split(' ').any(|granted| granted == wanted)
}

impl SpotifyState {
    fn answer(&mut self, request: &tiny_http::Request, body: &str) -> Answer {
        let method = request.method().as_str().to_string();
        let (path, params) = query::split(request.url());
        let logged_query = redact(request.url().split_once('?').map_or("", |(_, query)| query));
        let (number, early, answer) = if path == "/v1" || path.starts_with("/v1/") {
            self.requests += 1;
            // The library changes between a client's requests, never during one.
            let churns = path.starts_with("/v1/me/") || path.ends_with("/items");
            self.before_answer(self.requests, churns);
            let now = Instant::now();
            let early = self.not_before.is_some_and(|not_before| now < not_before);
            self.violations += u64::from(early);
            (self.requests, early, self.api(request, &method, &path, &params, now))
        } else {
            (0, false, self.accounts(request, &method, &path, &params, body))
        };
        self.log.push(Logged { number, method, path, query: logged_query, status: answer.status, early });
        answer
    }

    /// A 429 whose `Retry-After` the next request must respect.
    fn too_many(&mut self, now: Instant, seconds: u64, quota: bool) -> Answer {
        self.not_before = Some(now + Duration::from_secs(seconds));
        let mut answer = if quota {
            json_answer(
                429,
                &json!({"error": {"status": 429, "message": "API rate limit exceeded", "reason": "QUOTA_EXCEEDED"}}),
            )
        } else {
            api_error(429, "API rate limit exceeded")
        };
        answer.headers.push(("Retry-After", seconds.to_string()));
        answer
    }

    fn api(&mut self, request: &tiny_http::Request, method: &str, path: &str, params: &Params, now: Instant) -> Answer {
        let failure = self.faults.take(self.requests, path);
        self.injected.clone_from(&failure);
        match failure {
            Some(Failure::Status(status)) => {
                let message = match status {
                    400 => "Bad request",
                    401 => "The access token expired",
                    403 => "Forbidden",
                    404 => "Resource not found",
                    502 => "Bad gateway.",
                    503 => "Service unavailable",
                    _ => "Server error.",
                };
                return if status == 401 { unauthorized(message) } else { api_error(status, message) };
            }
            Some(Failure::RateLimited(seconds)) => return self.too_many(now, seconds, false),
            Some(Failure::Garbage) => {
                return Answer {
                    status: 200,
                    content_type: "application/json; charset=utf-8",
                    body: b"\x00\x13garbage{{{<html>not json".to_vec(),
                    headers: Vec::new(),
                };
            }
            _ => {}
        }
        if self.quota.is_some_and(|quota| self.quota_used >= quota) {
            return self.too_many(now, self.quota_reset_secs, true);
        }
        if let Some((most, window)) = self.rate_limit {
            let window = Duration::from_secs(window);
            while self.window.front().is_some_and(|sent| now.duration_since(*sent) >= window) {
                self.window.pop_front();
            }
            if self.window.len() >= most as usize {
                let free_at = self.window.front().map_or(now + window, |oldest| *oldest + window);
                let wait = free_at.saturating_duration_since(now);
                let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
                return self.too_many(now, seconds, false);
            }
            self.window.push_back(now);
        }
        let mut answer = match self.bearer(request, now) {
            Ok(scope) => {
                let host = header(request, "Host").unwrap_or("127.0.0.1").to_string();
                self.route(method, path, params, &scope, &format!("http://{host}/v1"))
            }
            Err(answer) => answer,
        };
        if answer.status == 200 {
            self.quota_used += 1;
        }
        if failure == Some(Failure::Emptied) {
            let emptied = serde_json::from_slice::<Value>(&answer.body).ok().map(|mut value| {
                let paging = if value.get("artists").is_some() { &mut value["artists"] } else { &mut value };
                if let Some(items) = paging.get_mut("items") {
                    *items = json!([]);
                }
                value
            });
            if let Some(value) = emptied {
                answer.body = serde_json::to_vec(&value).expect("JSON values serialize");
            }
        }
        if failure == Some(Failure::Truncated) {
            answer.body.truncate(answer.body.len() / 2);
        }
        answer
    }

    /// The scope of the request's access token.
    fn bearer(&self, request: &tiny_http::Request, now: Instant) -> Result<String, Answer> {
        let Some(value) = header(request, "Authorization") else {
            return Err(unauthorized("No token provided"));
        };
        let Some(token) = value.strip_prefix("Bearer ") else {
            return Err(api_error(400, "Only valid bearer authentication supported"));
        };
        match self.access_tokens.get(token.trim()) {
            None => Err(unauthorized("Invalid access token")),
            Some(grant) if grant.expires <= now => Err(unauthorized("The access token expired")),
            Some(grant) => Ok(grant.scope.clone()),
        }
    }

    fn route(&mut self, method: &str, path: &str, params: &Params, scope: &str, base: &str) -> Answer {
        let route = path.trim_start_matches("/v1").trim_end_matches('/');
        if method != "GET" {
            return api_error(405, "Method not allowed");
        }
        let needs = |wanted: &str| (!has_scope(scope, wanted)).then(|| api_error(403, "Insufficient client scope"));
        let result = match route {
            "/me" => {
                let fields =
                    json!({"display_name": self.display_name, "followers": {"href": null, "total": 3}, "images": []});
                Ok(object("user", &self.user_id, base, fields))
            }
            "/me/tracks" => needs("user-library-read").map_or_else(|| self.saved_tracks_page(params, base), Err),
            "/me/albums" => needs("user-library-read").map_or_else(|| self.saved_albums_page(params, base), Err),
            "/me/following" => needs("user-follow-read").map_or_else(|| self.following(params, base), Err),
            "/me/playlists" => needs("playlist-read-private").map_or_else(|| self.playlists_page(params, base), Err),
            "/me/library/contains" => needs("user-library-read").map_or_else(|| self.contains(params), Err),
            _ => match route.strip_prefix("/playlists/").and_then(|rest| rest.split_once('/')) {
                Some((id, what @ ("items" | "tracks"))) => match needs("playlist-read-private") {
                    Some(refused) => Err(refused),
                    None => self.entries_page(id, what, params, scope, base),
                },
                _ => Err(api_error(404, "Service not found")),
            },
        };
        result.map_or_else(|refused| refused, |value| json_answer(200, &value))
    }

    /// `/me/library/contains?uris=`: one boolean per URI, in order; at most
    /// 40 URIs, each `spotify:{type}:{id}`, else 400. A playlist is in the
    /// library when the user follows it, which the owner does until deleting
    /// (unfollowing) it.
    fn contains(&self, params: &Params) -> Result<Value, Answer> {
        let uris: Vec<&str> = param(params, "uris").unwrap_or("").split(',').filter(|uri| !uri.is_empty()).collect();
        if uris.is_empty() {
            return Err(api_error(400, "Missing required parameter: uris"));
        }
        if uris.len() > 40 {
            return Err(api_error(400, "Too many ids requested"));
        }
        let mut flags = Vec::with_capacity(uris.len());
        for uri in uris {
            let saved = match uri.strip_prefix("spotify:").and_then(|rest| rest.split_once(':')) {
                Some(("track", id)) => self.saved_tracks.iter().any(|saved| saved.item.id == id),
                Some(("album", id)) => self.saved_albums.iter().any(|saved| saved.item.id == id),
                Some(("artist", id)) => self.followed_artists.iter().any(|artist| artist.id == id),
                Some(("playlist", id)) => self.playlists.iter().any(|playlist| playlist.id == id),
                Some(("episode" | "show" | "audiobook" | "user", _)) => false,
                _ => return Err(api_error(400, &format!("Invalid URI: {uri}"))),
            };
            flags.push(Value::Bool(saved));
        }
        Ok(Value::Array(flags))
    }

    fn saved_tracks_page(&self, params: &Params, base: &str) -> Result<Value, Answer> {
        let (offset, limit) = paging(params, 50)?;
        let items = self.saved_tracks.iter().skip(offset).take(limit);
        let items =
            items.map(|saved| json!({"added_at": timestamp(saved.added_at), "track": track_json(&saved.item, base)}));
        Ok(page(&format!("{base}/me/tracks"), items.collect(), offset, limit, self.saved_tracks.len()))
    }

    fn saved_albums_page(&self, params: &Params, base: &str) -> Result<Value, Answer> {
        let (offset, limit) = paging(params, 50)?;
        let items = self.saved_albums.iter().skip(offset).take(limit);
        let items = items
            .map(|saved| json!({"added_at": timestamp(saved.added_at), "album": album_json(&saved.item, base, true)}));
        Ok(page(&format!("{base}/me/albums"), items.collect(), offset, limit, self.saved_albums.len()))
    }

    fn following(&self, params: &Params, base: &str) -> Result<Value, Answer> {
        if param(params, "type") != Some("artist") {
            return Err(api_error(400, "Missing or bad type"));
        }
        let limit = limit(params, 50)?;
        let after = param(params, "after").unwrap_or("");
        let mut artists: Vec<&FakeArtist> = self.followed_artists.iter().collect();
        artists.sort_by(|a, b| a.id.cmp(&b.id));
        let rest: Vec<&FakeArtist> = artists.iter().copied().filter(|artist| artist.id.as_str() > after).collect();
        let chunk = &rest[..rest.len().min(limit)];
        let more = rest.len() > chunk.len();
        let last = chunk.last().filter(|_| more).map(|artist| artist.id.clone());
        let href = match param(params, "after") {
            Some(after) => format!("{base}/me/following?type=artist&after={after}&limit={limit}"),
            None => format!("{base}/me/following?type=artist&limit={limit}"),
        };
        Ok(json!({"artists": {
            "href": href,
            "items": chunk.iter().map(|artist| artist_json(artist, base, true)).collect::<Vec<_>>(),
            "limit": limit,
            "next": last.as_ref().map(|last| format!("{base}/me/following?type=artist&after={last}&limit={limit}")),
            "cursors": {"after": last},
            "total": artists.len(),
        }}))
    }

    fn playlists_page(&mut self, params: &Params, base: &str) -> Result<Value, Answer> {
        let (offset, limit) = paging(params, 50)?;
        self.listings += 1;
        let listing = self.listings;
        let items = self.playlists.iter().skip(offset).take(limit).map(|playlist| {
            let owner = &playlist.owner;
            let href = format!("{base}/playlists/{}", playlist.id);
            // Real image URLs are temporary: they differ on every listing.
            let images: Vec<Value> = if playlist.entries.is_empty() {
                Vec::new()
            } else {
                let image = hex_of(&playlist.id);
                let url = format!("https://image-cdn-ak.spotifycdn.com/image/ab67706c0000da84{image}?t={listing}");
                vec![json!({"height": null, "url": url, "width": null})]
            };
            let display_name = if *owner == self.user_id { self.display_name.clone() } else { owner.to_uppercase() };
            let fields = json!({"collaborative": playlist.collaborative, "description": playlist.description,
                "images": images, "items": {"href": format!("{href}/items"), "total": playlist.entries.len()},
                "name": playlist.name, "owner": object("user", owner, base, json!({"display_name": display_name})),
                "primary_color": null, "public": playlist.public, "snapshot_id": playlist.snapshot_id,
                "tracks": {"href": format!("{href}/tracks"), "total": playlist.entries.len()}});
            object("playlist", &playlist.id, base, fields)
        });
        let items = items.collect();
        Ok(page(&format!("{base}/me/playlists"), items, offset, limit, self.playlists.len()))
    }

    fn entries_page(&self, id: &str, what: &str, params: &Params, scope: &str, base: &str) -> Result<Value, Answer> {
        let Some(playlist) = self.playlists.iter().find(|playlist| playlist.id == id) else {
            return Err(api_error(404, "Resource not found"));
        };
        if !self.readable(playlist) {
            return Err(api_error(403, "Forbidden"));
        }
        if playlist.owner != self.user_id && !has_scope(scope, "playlist-read-collaborative") {
            return Err(api_error(403, "Insufficient client scope"));
        }
        let (offset, limit) = paging(params, if what == "items" { 50 } else { 100 })?;
        let episodes =
            param(params, "additional_types").is_some_and(|types| types.split(',').any(|kind| kind == "episode"));
        let items = playlist.entries.iter().skip(offset).take(limit).map(|entry| {
            let item = match &entry.item {
                PlaylistItem::Track(track) => track_json(track, base),
                PlaylistItem::Episode(episode) => episode_json(episode, base, episodes),
                PlaylistItem::Local { name, artist, album, duration_ms } => {
                    local_json(name, artist, album, *duration_ms)
                }
                PlaylistItem::Unavailable => Value::Null,
            };
            let added_by = entry.added_by.as_ref().map(|user| object("user", user, base, json!({})));
            json!({
                "added_at": entry.added_at.map(timestamp),
                "added_by": added_by,
                "is_local": matches!(entry.item, PlaylistItem::Local { .. }),
                "primary_color": null,
                "item": item,
                "track": item,
                "video_thumbnail": {"url": null},
            })
        });
        let href = format!("{base}/playlists/{id}/{what}");
        Ok(page(&href, items.collect(), offset, limit, playlist.entries.len()))
    }
}

/// `offset` and `limit`, or the 400 Spotify sends.
fn paging(params: &Params, most: usize) -> Result<(usize, usize), Answer> {
    let offset = match param(params, "offset") {
        None => 0,
        Some(text) => text.parse().map_err(|_| api_error(400, "Invalid offset"))?,
    };
    Ok((offset, limit(params, most)?))
}

/// `limit`: 1..=`most`, default 20.
fn limit(params: &Params, most: usize) -> Result<usize, Answer> {
    match param(params, "limit") {
        None => Ok(20),
        Some(text) => {
            text.parse().ok().filter(|limit| (1..=most).contains(limit)).ok_or_else(|| api_error(400, "Invalid limit"))
        }
    }
}

fn page(href: &str, items: Vec<Value>, offset: usize, limit: usize, total: usize) -> Value {
    let at = |offset: usize| format!("{href}?offset={offset}&limit={limit}");
    json!({
        "href": at(offset),
        "items": items,
        "limit": limit,
        "next": (offset + limit < total).then(|| at(offset + limit)),
        "offset": offset,
        "previous": (offset > 0).then(|| at(offset.saturating_sub(limit))),
        "total": total,
    })
}

const MARKETS: [&str; 6] = ["AD", "AT", "BE", "DE", "GB", "US"];

/// Stable image URLs in three sizes, like the CDN's.
fn images(prefix: &str, id: &str) -> Value {
    let image = hex_of(id);
    let image = |size: u32, kind: &str| json!({"height": size, "url": format!("https://i.scdn.co/image/{prefix}{kind}{image}"), "width": size});
    json!([image(640, "b273"), image(300, "1e02"), image(64, "4851")])
}

/// An object with an id: its fields plus the href, uri and links all carry.
fn object(kind: &str, id: &str, base: &str, mut fields: Value) -> Value {
    let links = json!({"external_urls": {"spotify": format!("https://open.spotify.com/{kind}/{id}")},
        "href": format!("{base}/{kind}s/{id}"), "id": id, "type": kind, "uri": format!("spotify:{kind}:{id}")});
    if let (Value::Object(map), Value::Object(links)) = (&mut fields, links) {
        map.extend(links);
    }
    fields
}

fn artist_json(artist: &FakeArtist, base: &str, full: bool) -> Value {
    let popularity = artist.id.bytes().map(u64::from).sum::<u64>() % 100;
    let fields = if full {
        json!({"followers": {"href": null, "total": popularity * 1013}, "genres": ["indie rock"],
            "images": images("ab676161000", &artist.id), "name": artist.name, "popularity": popularity})
    } else {
        json!({"name": artist.name})
    };
    object("artist", &artist.id, base, fields)
}

fn album_json(album: &FakeAlbum, base: &str, full: bool) -> Value {
    let artists: Vec<Value> = album.artists.iter().map(|artist| artist_json(artist, base, false)).collect();
    let mut fields = json!({
        "album_type": if album.total_tracks < 4 { "single" } else { "album" }, "artists": artists,
        "available_markets": MARKETS, "images": images("ab67616d0000", &album.id), "is_playable": true,
        "name": album.name, "release_date": album.release_date, "release_date_precision": "day",
        "total_tracks": album.total_tracks});
    if full {
        // The album's own tracks: ids derived from the album's, so listings are stable.
        let tracks: Vec<Value> = (1..=album.total_tracks)
            .map(|number| {
                let id = format!("t{}", &hex_of(&format!("{}/{number}", album.id))[..21]);
                let fields = json!({"artists": artists, "available_markets": MARKETS, "disc_number": 1,
                    "duration_ms": 150_000 + number * 9_001, "explicit": false, "is_local": false,
                    "name": format!("{} {number}", album.name), "preview_url": null, "track_number": number});
                object("track", &id, base, fields)
            })
            .collect();
        let href = format!("{base}/albums/{}/tracks", album.id);
        fields["tracks"] = page(&href, tracks, 0, 50, album.total_tracks as usize);
        fields["copyrights"] = json!([{"text": format!("{} Fake Records", &album.release_date[..4]), "type": "C"}]);
        fields["external_ids"] = json!({"upc": format!("00{}", &hex_of(&album.id)[..10])});
        fields["genres"] = json!([]);
        fields["label"] = json!("Fake Records");
        fields["popularity"] = json!(album.total_tracks * 7);
    }
    object("album", &album.id, base, fields)
}

fn track_json(track: &FakeTrack, base: &str) -> Value {
    let artists: Vec<Value> = track.artists.iter().map(|artist| artist_json(artist, base, false)).collect();
    let fields = json!({
        "album": album_json(&track.album, base, false), "artists": artists, "available_markets": MARKETS,
        "disc_number": 1, "duration_ms": track.duration_ms, "explicit": track.duration_ms % 7 == 0,
        "external_ids": {"isrc": format!("QZ{}", &hex_of(&track.id)[..10].to_uppercase())}, "is_local": false,
        "is_playable": true, "name": track.name, "popularity": track.duration_ms % 100, "preview_url": null,
        "track_number": track.track_number});
    object("track", &track.id, base, fields)
}

/// An EpisodeObject when the client asked for episodes
/// (`additional_types=episode`), else the legacy track shape, whose
/// `episode`/`track` flags are wrong as on the real API: only `type` and
/// `uri` tell.
fn episode_json(episode: &FakeEpisode, base: &str, as_episode: bool) -> Value {
    let show_fields = json!({
        "available_markets": MARKETS, "copyrights": [], "description": format!("{}: a podcast", episode.show_name),
        "explicit": false, "html_description": format!("<p>{}: a podcast</p>", episode.show_name),
        "images": images("ab6765630000", &episode.show_id), "is_externally_hosted": false, "languages": ["en"],
        "media_type": "audio", "name": episode.show_name, "publisher": "Fake Pods", "total_episodes": 120});
    let show = object("show", &episode.show_id, base, show_fields);
    let fields = if as_episode {
        json!({"audio_preview_url": null, "description": format!("In {}, we talk.", episode.name),
            "duration_ms": episode.duration_ms, "explicit": false,
            "html_description": format!("<p>In {}, we talk.</p>", episode.name), "images": show["images"],
            "is_externally_hosted": false, "is_playable": true, "language": "en", "languages": ["en"],
            "name": episode.name, "release_date": episode.release_date, "release_date_precision": "day",
            "show": show})
    } else {
        let artist = object("show", &episode.show_id, base, json!({"name": episode.show_name}));
        let album = json!({"album_type": "show", "artists": [artist], "available_markets": MARKETS,
            "images": show["images"], "name": episode.show_name, "release_date": episode.release_date,
            "release_date_precision": "day", "total_tracks": 1});
        json!({"album": object("show", &episode.show_id, base, album), "artists": [artist],
            "available_markets": MARKETS, "disc_number": 0, "duration_ms": episode.duration_ms, "episode": false,
            "explicit": false, "external_ids": {"spotify": format!("https://open.spotify.com/episode/{}", episode.id)},
            "is_local": false, "name": episode.name, "popularity": 0, "preview_url": null, "track": true,
            "track_number": 0})
    };
    object("episode", &episode.id, base, fields)
}

/// A local file: no ids, no links, a `spotify:local:` URI.
fn local_json(name: &str, artist: &str, album: &str, duration_ms: u64) -> Value {
    let uri = format!("spotify:local:{}:{}:{}:{}", encode(artist), encode(album), encode(name), duration_ms / 1000);
    json!({
        "album": {"album_type": null, "artists": [], "available_markets": [], "external_urls": {}, "href": null,
            "id": null, "images": [], "name": album, "release_date": null, "release_date_precision": null,
            "type": "album", "uri": null},
        "artists": [{"external_urls": {}, "href": null, "id": null, "name": artist, "type": "artist", "uri": null}],
        "available_markets": [], "disc_number": 0, "duration_ms": duration_ms, "explicit": false, "external_ids": {},
        "external_urls": {}, "href": null, "id": null, "is_local": true, "name": name, "popularity": 0,
        "preview_url": null, "track_number": 0, "type": "track", "uri": uri,
    })
}

impl SpotifyState {
    fn accounts(
        &mut self,
        request: &tiny_http::Request,
        method: &str,
        path: &str,
        params: &Params,
        body: &str,
    ) -> Answer {
        match (method, path) {
            ("GET", "/authorize") => self.authorize(params),
            ("POST", "/api/token") => {
                self.token_requests += 1;
                self.token(request, body)
            }
            (_, "/authorize" | "/api/token") => html(405, "Method Not Allowed"),
            _ => html(404, "Not Found"),
        }
    }

    /// The consent page, approved (or denied) at once by the user.
    fn authorize(&mut self, params: &Params) -> Answer {
        if param(params, "client_id") != Some(self.client_id.as_str()) {
            return html(400, "INVALID_CLIENT: Invalid client");
        }
        let Some(redirect_uri) = param(params, "redirect_uri") else {
            return html(400, "INVALID_CLIENT: Invalid redirect URI");
        };
        // Since November 2025: https, or http only to a loopback IP literal.
        let loopback = ["http://127.0.0.1", "http://[::1]"].iter().any(|prefix| {
            redirect_uri.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
        });
        if !(redirect_uri.starts_with("https://") || loopback) {
            return html(400, "INVALID_CLIENT: Insecure redirect URI");
        }
        let separator = if redirect_uri.contains('?') { '&' } else { '?' };
        let state = param(params, "state").map(|state| format!("&state={}", encode(state))).unwrap_or_default();
        let back = |outcome: String| redirect(format!("{redirect_uri}{separator}{outcome}{state}"));
        if param(params, "response_type") != Some("code") {
            return back("error=unsupported_response_type".into());
        }
        let challenge = param(params, "code_challenge").map(str::to_string);
        if challenge.is_some() && param(params, "code_challenge_method") != Some("S256") {
            return back("error=invalid_request&error_description=code_challenge_method%20must%20be%20S256".into());
        }
        if challenge.is_none() && self.client_secret.is_none() {
            return back("error=invalid_request&error_description=code_challenge%20required".into());
        }
        if self.deny_authorization {
            return back("error=access_denied".into());
        }
        let code = self.secret("AQ");
        let scope = param(params, "scope").unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" ");
        self.codes.insert(code.clone(), Code { redirect_uri: redirect_uri.to_string(), challenge, scope });
        back(format!("code={}", encode(&code)))
    }

    fn token(&mut self, request: &tiny_http::Request, body: &str) -> Answer {
        if let Some(status) = self.token_failure {
            return oauth_error(status, "server_error", "Service unavailable");
        }
        let (_, form) = query::split(&format!("?{body}"));
        let field = |name: &str| param(&form, name).map(str::to_string);
        let (client_id, secret) = match header(request, "Authorization") {
            Some(value) => {
                let decoded = value.strip_prefix("Basic ").and_then(|encoded| STANDARD.decode(encoded.trim()).ok());
                let decoded = decoded.and_then(|bytes| String::from_utf8(bytes).ok());
                match decoded.as_deref().and_then(|text| text.split_once(':')) {
                    Some((id, secret)) => (Some(id.to_string()), Some(secret.to_string())),
                    None => return oauth_error(400, "invalid_client", "Invalid client"),
                }
            }
            None => (field("client_id"), field("client_secret")),
        };
        if client_id.as_deref() != Some(self.client_id.as_str()) {
            return oauth_error(400, "invalid_client", "Invalid client");
        }
        if secret.is_some() && secret != self.client_secret {
            return oauth_error(401, "invalid_client", "Invalid client secret");
        }
        let public = secret.is_none();
        let lifetime = self.token_lifetime_secs;
        match field("grant_type").as_deref() {
            Some("authorization_code") => {
                let Some(code) = field("code").and_then(|code| self.codes.remove(&code)) else {
                    return oauth_error(400, "invalid_grant", "Invalid authorization code");
                };
                if field("redirect_uri").as_deref() != Some(code.redirect_uri.as_str()) {
                    return oauth_error(400, "invalid_grant", "Invalid redirect URI");
                }
                if public || code.challenge.is_some() {
                    let Some(verifier) = field("code_verifier") else {
                        return oauth_error(400, "invalid_request", "code_verifier required");
                    };
                    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
                    if code.challenge.as_deref() != Some(URL_SAFE_NO_PAD.encode(digest.as_ref()).as_str()) {
                        return oauth_error(400, "invalid_grant", "code_verifier was incorrect");
                    }
                }
                let access_token = self.issue_access(&code.scope);
                let refresh_token = self.secret("AQ");
                self.refresh_tokens.push((refresh_token.clone(), code.scope.clone()));
                json_answer(
                    200,
                    &json!({"access_token": access_token, "token_type": "Bearer", "scope": code.scope,
                        "expires_in": lifetime, "refresh_token": refresh_token}),
                )
            }
            Some("refresh_token") => {
                let Some(presented) = field("refresh_token") else {
                    return oauth_error(400, "invalid_request", "refresh_token must be supplied");
                };
                if self.revoked.contains(&presented) {
                    return oauth_error(400, "invalid_grant", "Refresh token revoked");
                }
                let Some(index) = self.refresh_tokens.iter().position(|(token, _)| *token == presented) else {
                    return oauth_error(400, "invalid_grant", "Invalid refresh token");
                };
                let scope = self.refresh_tokens[index].1.clone();
                let access_token = self.issue_access(&scope);
                let mut answer = json!({"access_token": access_token, "token_type": "Bearer", "scope": scope, "expires_in": lifetime});
                if self.rotate_refresh_tokens {
                    self.refresh_tokens.remove(index);
                    let rotated = self.secret("AQ");
                    self.refresh_tokens.push((rotated.clone(), scope));
                    answer["refresh_token"] = json!(rotated);
                }
                json_answer(200, &answer)
            }
            None => oauth_error(400, "unsupported_grant_type", "grant_type parameter is missing"),
            Some(_) => oauth_error(400, "unsupported_grant_type", "grant_type parameter is invalid"),
        }
    }
}
