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
}

impl Kind {
    pub const ALL: [Kind; 8] =
        [Kind::Movie, Kind::Show, Kind::Season, Kind::Episode, Kind::Artist, Kind::Album, Kind::Track, Kind::Playlist];

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
