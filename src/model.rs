//! The catalog's vocabulary: what an item is, whatever server it came from.
//! Sources map their own shapes into `Item`, the engine hands it on and the
//! store persists it (and tells a changed one from an unchanged one), so
//! this file is the contract between all three.

use serde::{Deserialize, Serialize};

/// What an item is. The numeric code is persisted (one byte in item records),
/// so existing codes must never change meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Movie,
    Show,
    Season,
    Episode,
    Artist,
    Album,
    Track,
    Playlist,
    /// One play of a track, episode or film: an entry of a listening or
    /// watching history (`Strategy::AppendOnly`).
    Play,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Movie,
        Kind::Show,
        Kind::Season,
        Kind::Episode,
        Kind::Artist,
        Kind::Album,
        Kind::Track,
        Kind::Playlist,
        Kind::Play,
    ];

    pub fn code(self) -> u8 {
        match self {
            Kind::Movie => 1,
            Kind::Show => 2,
            Kind::Season => 3,
            Kind::Episode => 4,
            Kind::Artist => 8,
            Kind::Album => 9,
            Kind::Track => 10,
            Kind::Playlist => 15,
            Kind::Play => 32,
        }
    }

    pub fn from_code(code: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Movie => "movie",
            Kind::Show => "show",
            Kind::Season => "season",
            Kind::Episode => "episode",
            Kind::Artist => "artist",
            Kind::Album => "album",
            Kind::Track => "track",
            Kind::Playlist => "playlist",
            Kind::Play => "play",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One catalog entry. Every field except `id` and `kind` is content: a
/// change to any of them is a change to the item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    pub kind: Kind,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_title: Option<String>,
    pub parent_id: Option<String>,
    /// The server's own change time, epoch seconds. Incremental cursors are
    /// taken from this, never from the local clock.
    pub updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_index: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// Artwork reference; for Plex it embeds the art's change time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A source-specific change marker (Jellyfin's `Etag`, Spotify's
    /// `snapshot_id`), folded into the hash like any other field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
    /// A play's own facts (items of kind `Play`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub play: Option<Play>,
    /// The synced user's played state of the item, where the server keeps
    /// one per user (Jellyfin and Emby `UserData`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub play_state: Option<PlayState>,
}

/// What a play records besides the item's common fields (its `title` is
/// what was played, `parent_id` the played item's id on the server,
/// `updated_at` when it was played, server epoch seconds).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Play {
    /// What was played (track, episode, movie), when the server says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub played: Option<Kind>,
    /// A track's artists, comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artists: Option<String>,
    /// A track's album.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub album: Option<String>,
    /// An episode's show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show: Option<String>,
    /// Where it was played from (Spotify: the playlist, album or artist URI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Who played it and on what (Plex: `accountID`, `deviceID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The server's library holding the played item (Plex: `librarySectionID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
}

/// The id of a server's history library (Plex's watch history, Spotify's
/// recently played tracks): section and view ids never take this form.
pub const HISTORY: &str = "history";

/// A play's id: when it was played, in epoch milliseconds written with 13
/// digits, then ':' and what tells plays of the same moment apart (the
/// track, the server's history entry). Ids sort by time, so the store
/// lists a history newest first by reading its keys backwards.
pub fn play_id(millis: i64, suffix: &str) -> String {
    format!("{:013}:{suffix}", millis.max(0))
}

/// The lowest id a play at or after `seconds` (epoch) can have.
pub fn play_id_from(seconds: i64) -> String {
    format!("{:013}", seconds.max(0).saturating_mul(1000))
}

/// A user's played state of an item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayState {
    pub played: bool,
    pub play_count: u64,
    /// Server epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_played_at: Option<i64>,
}

impl Item {
    /// A minimal item; sources fill in the optional fields they have.
    pub fn new(id: impl Into<String>, kind: Kind, title: impl Into<String>, updated_at: i64) -> Item {
        Item {
            id: id.into(),
            kind,
            title: title.into(),
            sort_title: None,
            parent_id: None,
            updated_at,
            added_at: None,
            year: None,
            index: None,
            parent_index: None,
            guid: None,
            duration_ms: None,
            thumb: None,
            file: None,
            marker: None,
            play: None,
            play_state: None,
        }
    }

    /// The item as JSON: what `content_hash` hashes (the export's `hash`).
    #[allow(clippy::expect_used, reason = "an Item has string keys and plain values: serializing it cannot fail")]
    pub fn body_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an Item always serializes")
    }
}

/// FNV-1a, 64 bit. Persisted hashes must not change between builds or
/// architectures, which rules out `std`'s `DefaultHasher`; change detection
/// needs no cryptographic strength.
pub fn content_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A library (Plex section, Jellyfin view, Spotify collection) as the source
/// describes it: the kinds of item it holds in the order they are synced
/// (parents before children), and how the engine walks it. What differs
/// between a source's libraries lives here, not in the `Source` trait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibraryInfo {
    pub id: String,
    pub title: String,
    pub kinds: Vec<Kind>,
    /// How incremental passes find what changed.
    pub strategy: Strategy,
    /// Whether its items have children listed per parent.
    pub nesting: Nesting,
    /// The most ids one `Source::lookup` asks the server about (one
    /// request each): 100 on Plex and Jellyfin/Emby, whose URLs carry the
    /// ids, 40 on Spotify, whose check endpoint takes no more.
    pub lookup_batch: u32,
}

/// How a library's incremental passes find what changed.
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
    /// A history (plays, `Kind::Play`): the listing comes newest first and
    /// may drop old entries (Spotify keeps only the last 50 plays). Every
    /// run walks `Order::NewestSince` and stops at the first item older
    /// than the newest stored one; nothing is ever swept or deleted, and
    /// counts are never compared with the server's.
    AppendOnly,
}

/// Whether a library's items have children listed per parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nesting {
    /// Every item comes from the library's own listing.
    Flat,
    /// Every item has children listed per parent (a Spotify playlist's
    /// entries, from `Source::children`). The engine stores a parent only
    /// once its children are fetched, and fetches them only for parents that
    /// are new or changed. A child's id is its parent's id, '/', and a suffix
    /// that sorts in listing order.
    Nested,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_codes_round_trip_and_are_unique() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_code(kind.code()), Some(kind));
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(Kind::from_code(0), None);
    }

    #[test]
    fn hash_is_fnv1a_and_sensitive_to_content() {
        // Reference values of FNV-1a 64: a persisted hash must never drift.
        assert_eq!(content_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(content_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        let mut item = Item::new("1", Kind::Movie, "Heat", 100);
        let before = content_hash(&item.body_json());
        item.title = "Heat (1995)".into();
        assert_ne!(before, content_hash(&item.body_json()));
    }
}
