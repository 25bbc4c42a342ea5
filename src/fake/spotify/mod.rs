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
//! reach the log. Images: every artist, album, show and playlist lists its
//! picture's URLs (`{url, width, height}`: three sizes, or for a playlist
//! one of null size whose query changes on every listing), served on the
//! same listener under `/image/` (the CDN's path) as small PNGs, with no
//! token asked.

mod accounts;
mod catalog;
mod control;
mod images;
mod listings;
mod serve;
mod shapes;

pub(crate) use catalog::spotify_id;
pub use images::image_bytes;

use super::churn::Changes;
pub use super::history::{SPOTIFY_WINDOW, SpotifyPlay};
pub use super::{Expected, Failure};
use super::{Fake, Faults, Recording};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub const CLIENT_ID: &str = "5f3c0ffee0ddba11fa1afe1ca11ab1e0";
pub const CLIENT_SECRET: &str = "fake-client-secret-9c1d7";
/// What a sync asks for, and what `issue_refresh_token` grants.
pub const SCOPES: &str =
    "user-library-read user-follow-read playlist-read-private playlist-read-collaborative user-read-recently-played";
/// What accounts connected before mediasync read the history were granted.
pub const LIBRARY_SCOPES: &str = "user-library-read user-follow-read playlist-read-private playlist-read-collaborative";
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
    /// The version of the artist's picture: a new picture is a new image
    /// id, so new URLs (`replace_artist_image`).
    pub image: u64,
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
    /// Every play, newest first; `/me/player/recently-played` lists the
    /// first `SPOTIFY_WINDOW`.
    pub plays: Vec<SpotifyPlay>,
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
    /// Requests for images (`/image/…`, the CDN's), and those of them that
    /// carried an `Authorization` header (a token sent off the API host).
    pub image_requests: u64,
    pub image_requests_with_credentials: u64,
    /// When set, the CDN answers every image request with this status (503:
    /// an outage; 403: expired URLs).
    pub image_failure: Option<u16>,
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
