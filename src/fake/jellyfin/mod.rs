//! A fake Jellyfin or Emby server, with the version behaviours that matter
//! to a syncing client (`Behaviour`): the `MinDateLastSaved` bug of 10.8
//! (alone: no rows) and 10.10 (alone: HTTP 500), Jellyfin 12 refusing the
//! legacy `X-Emby-Token` header and `api_key` parameter, and Emby's
//! PascalCase-only parameters, `/Users/Query` instead of `/Users`,
//! numeric-looking ids and user-data meaning of `MinDateLastSavedForUser`. Like the real servers it answers PascalCase
//! JSON, pages with `StartIndex`/`Limit`, counts with `Limit=0`, sends `Etag`
//! only when `Fields` names it, narrows a listing to `Ids` (within its
//! library and types), tracks each item's save time (bumped by metadata and
//! image edits, not by playback) and stamps every answer with a `Date` from
//! a clock the test controls. Tests mutate the library and
//! inject failures at chosen request numbers.

mod catalog;
mod control;
mod images;
mod listings;
mod notify;
mod quick_connect;
mod serve;

pub use super::Expected;
pub use super::Failure;
use super::churn::Changes;
use super::{Fake, Faults, Recording};
pub(crate) use catalog::type_for;
pub(crate) use notify::Noted;
pub use notify::Notifier;
use std::time::Duration;

/// Which server, and which version of it, the fake plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// `MinDateLastSaved` alone binds the wrong parameter: no rows.
    Jellyfin10_8,
    /// `MinDateLastSaved` alone binds the wrong parameter: HTTP 500.
    Jellyfin10_10,
    /// The filter bug is fixed.
    Jellyfin10_11,
    /// Fixed, and only the `Authorization: MediaBrowser` header authenticates.
    Jellyfin12,
    /// Emby 4.8: PascalCase parameters only, users at `/Users/Query`, no
    /// `StartIndex` in answers, numeric-looking ids,
    /// `MinDateLastSavedForUser` filters on user data.
    Emby,
}

impl Behaviour {
    pub const ALL: [Behaviour; 5] = [
        Behaviour::Jellyfin10_8,
        Behaviour::Jellyfin10_10,
        Behaviour::Jellyfin10_11,
        Behaviour::Jellyfin12,
        Behaviour::Emby,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Jellyfin10_8 => "jellyfin 10.8",
            Behaviour::Jellyfin10_10 => "jellyfin 10.10",
            Behaviour::Jellyfin10_11 => "jellyfin 10.11",
            Behaviour::Jellyfin12 => "jellyfin 12",
            Behaviour::Emby => "emby 4.8",
        }
    }

    pub fn is_emby(self) -> bool {
        self == Behaviour::Emby
    }

    fn version(self) -> &'static str {
        match self {
            Behaviour::Jellyfin10_8 => "10.8.13",
            Behaviour::Jellyfin10_10 => "10.10.7",
            Behaviour::Jellyfin10_11 => "10.11.0",
            Behaviour::Jellyfin12 => "12.0.0",
            Behaviour::Emby => "4.8.11.0",
        }
    }
}

/// A server (or proxy) that mishandles the save-time filter in a way no
/// known version does, for testing the client's fallback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterFault {
    /// The filter parameters are ignored: every item comes back.
    Ignored,
    /// Any request with a filter parameter answers HTTP 500.
    Fails,
    /// Any request with a filter parameter answers no rows.
    Empties,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    pub number: u64,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub status: u16,
    pub returned: usize,
}

impl Logged {
    /// A query parameter, by its exact name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

#[derive(Clone, Debug)]
pub struct FakeItem {
    pub id: String,
    /// The server's type: `Movie`, `Series`, `Season`, `Episode`,
    /// `MusicArtist`, `MusicAlbum`, `Audio`, `MusicVideo`, `Video`, `BoxSet`.
    pub item_type: &'static str,
    pub name: String,
    /// Series of a season, season of an episode, artist of an album, album
    /// of a track.
    pub parent: Option<String>,
    pub index: Option<i64>,
    pub parent_index: Option<i64>,
    pub year: Option<i32>,
    pub created: i64,
    /// DateLastSaved: never sent, but filtered on and hashed into `Etag`.
    pub saved: i64,
    pub image_at: i64,
    /// When the user's data (play count, favourite) last changed.
    pub user_data_at: i64,
    /// The user's play count; played when above 0 (a mark raises it too).
    pub play_count: u64,
    /// The user's `LastPlayedDate`: set by a playback, kept by a mark
    /// played when there is one, cleared by a mark unplayed.
    pub last_played: Option<i64>,
    pub overview: String,
    pub(crate) serial: u64,
}

#[derive(Clone, Debug)]
pub struct FakeView {
    pub id: String,
    pub name: String,
    /// Lowercase, as the servers send it: `movies`, `tvshows`, `music`, ...
    pub collection_type: &'static str,
    pub items: Vec<FakeItem>,
}

#[derive(Clone, Debug)]
pub struct FakeUser {
    pub id: String,
    pub name: String,
    pub admin: bool,
    /// `{name}-password`.
    pub password: String,
}

pub struct JellyfinState {
    pub behaviour: Behaviour,
    pub api_key: String,
    pub users: Vec<FakeUser>,
    pub views: Vec<FakeView>,
    /// The server's clock, epoch seconds: every mutation happens "now", and
    /// every answer carries it in its `Date` header.
    pub clock: i64,
    pub log: Vec<Logged>,
    /// Cap on items per page: real servers may return fewer than asked.
    pub max_page: Option<u64>,
    pub filter_fault: Option<FilterFault>,
    /// Whether the user-scoped routes (`/Users/{id}/Views`, `/Users/{id}/Items`)
    /// answer. Jellyfin 10.9+ documents only `/UserViews?userId=` and
    /// `/Items?userId=` (which this fake serves for Jellyfin 10.10 and up);
    /// the notes say the old routes stay, so they are on by default.
    pub user_routes: bool,
    pub delay: Duration,
    /// Sign-ins and the notification socket.
    pub notifier: Notifier,
    pub quick_connect: quick_connect::QuickConnect,
    requests: u64,
    next_serial: u64,
    faults: Faults,
    pub(crate) changes: Changes<JellyfinState>,
}

/// A fake server; `Fake`'s methods control it, these mutate its library.
pub type FakeJellyfin = Fake<JellyfinState>;

impl Recording for JellyfinState {
    type Entry = Logged;
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

const BASE_TIME: i64 = 1_700_000_000;
/// Generated items were created and saved long before the fake's clock starts.
const GENERATED_AT: i64 = BASE_TIME - 20_000_000;

/// The collection types a client syncs; the others (photos, books,
/// playlists, ...) exist on real servers and must be skipped.
const SYNCED: [&str; 6] = ["movies", "tvshows", "music", "musicvideos", "homevideos", "boxsets"];
