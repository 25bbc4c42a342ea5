//! The shapes of Spotify Web API listings that are read (offset and
//! cursor pages, every entry shape down to the fields stored) and how an
//! entry becomes an `Item`: saved tracks and albums, followed artists,
//! playlists and their entries. Split from the source so each file holds
//! one job.

use super::super::lenient::{Entries, First, Int, Object, Text};
use super::super::{BadItem, Next, Page};
use super::image::{Image, closest};
use crate::config::DEFAULT_ARTWORK_WIDTH;
use crate::model::{Item, Kind};
use serde::Deserialize;

/// A page of an offset-paged listing (`/me/tracks`, `/me/playlists`, …),
/// and of the followed artists under `artists` (with `cursors`).
#[derive(Deserialize)]
#[serde(default, bound = "T: Deserialize<'de>")]
pub(super) struct Paging<T> {
    items: Entries<T>,
    total: Int,
    next: Text,
    cursors: Object<Cursors>,
}

impl<T> Default for Paging<T> {
    fn default() -> Paging<T> {
        Paging { items: Entries::default(), total: Int::default(), next: Text::default(), cursors: Object::default() }
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Cursors {
    after: Text,
}

/// `/me/following?type=artist`: the page nests under `artists`.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Following {
    pub(super) artists: Object<Paging<Entry>>,
}

/// Any listing entry, with the fields stored of each shape: a saved track
/// or album (`{added_at, track|album}`), an artist, a playlist, or a
/// playlist's entry (`{added_at, item|track}`).
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct Entry {
    id: Text,
    name: Text,
    uri: Text,
    snapshot_id: Text,
    owner: Object<Reference>,
    added_at: Text,
    track: Object<Playable>,
    album: Object<Playable>,
    item: Object<Playable>,
    images: Entries<Image>,
}

/// A track, album or episode object.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Playable {
    id: Text,
    name: Text,
    uri: Text,
    #[serde(rename = "type")]
    kind: Text,
    album: Object<AlbumReference>,
    artists: First<Reference>,
    release_date: Text,
    track_number: Int,
    disc_number: Int,
    duration_ms: Int,
    images: Entries<Image>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Reference {
    id: Text,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct AlbumReference {
    id: Text,
    release_date: Text,
    images: Entries<Image>,
}

/// Reads a listing page of library `library` (`tracks`, `albums`,
/// `artists`, `playlists`) from `body`, as `page` does: the parser the
/// property tests feed. Image markers are read for the default width.
pub fn read_page(body: impl std::io::Read, library: &str) -> Result<Page, serde_json::Error> {
    let paging = if library == "artists" {
        serde_json::from_reader::<_, Following>(body)?.artists.0.unwrap_or_default()
    } else {
        serde_json::from_reader(body)?
    };
    Ok(page_of(paging, library, DEFAULT_ARTWORK_WIDTH))
}

/// Reads a page of a playlist's entries, `start` entries in, as `children`
/// does.
pub fn read_children(body: impl std::io::Read, playlist: &str, start: u64) -> Result<Page, serde_json::Error> {
    Ok(children_of(serde_json::from_reader(body)?, playlist, start, DEFAULT_ARTWORK_WIDTH))
}

/// A listing page; `width` picks each item's image marker (`image::closest`).
pub(super) fn page_of(paging: Paging<Entry>, library: &str, width: u32) -> Page {
    let items = paging
        .items
        .0
        .into_iter()
        .map(|entry| {
            let entry = entry.ok_or_else(|| BadItem { id: None, reason: "entry is not an object".into() })?;
            match library {
                "tracks" => saved(entry.added_at, entry.track, Kind::Track, width),
                "albums" => saved(entry.added_at, entry.album, Kind::Album, width),
                "artists" => artist(entry, width),
                _ => playlist(entry, width),
            }
        })
        .collect();
    let next = match (paging.next.as_str(), library) {
        (None, _) => Next::End,
        (Some(_), "artists") => match paging.cursors.0.and_then(|cursors| cursors.after.read("after").ok().flatten()) {
            Some(cursor) => Next::After(cursor),
            None => Next::End,
        },
        (Some(_), _) => Next::Offset,
    };
    Page { items, total: paging.total.count(), next }
}

pub(super) fn children_of(paging: Paging<Entry>, playlist: &str, start: u64, width: u32) -> Page {
    let items = paging
        .items
        .0
        .into_iter()
        .zip(0u64..)
        .map(|(entry, n)| playlist_entry(entry.unwrap_or_default(), playlist, start.saturating_add(n), width))
        .collect();
    let next = if paging.next.as_str().is_some() { Next::Offset } else { Next::End };
    Page { items, total: paging.total.count(), next }
}

/// RFC 3339 (`2024-05-01T10:00:00Z`) to epoch seconds.
fn timestamp(text: &Text) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text.as_str()?).ok().map(|time| time.timestamp())
}

fn year(release_date: &Text) -> Option<i32> {
    release_date.as_str()?.get(..4)?.parse().ok()
}

/// A saved track or album: `{added_at, track|album}`. A track's image is
/// its album's.
fn saved(added_at: Text, object: Object<Playable>, kind: Kind, width: u32) -> Result<Item, BadItem> {
    let field = if kind == Kind::Track { "track" } else { "album" };
    let Some(object) = object.0 else {
        return Err(BadItem { id: None, reason: format!("no {field} object (no longer available)") });
    };
    let unusable = |reason: String| BadItem { id: None, reason };
    let id = object.id.read("id").map_err(unusable)?.ok_or_else(|| unusable("no id".into()))?;
    let bad = |reason: String| BadItem { id: Some(id.clone()), reason };
    let added_at = timestamp(&added_at).ok_or_else(|| bad("no readable added_at".into()))?;
    let title = object.name.read("name").map_err(bad)?.unwrap_or_default();
    let mut item = Item::new(id.clone(), kind, title, added_at);
    item.added_at = Some(added_at);
    item.guid = object.uri.read("uri").map_err(bad)?;
    match kind {
        Kind::Track => {
            let album = object.album.0.unwrap_or_default();
            item.parent_id = album.id.read("album.id").map_err(bad)?;
            item.year = year(&album.release_date);
            item.thumb = closest(album.images, width);
            item.index = object.track_number.get();
            item.parent_index = object.disc_number.get();
            item.duration_ms = object.duration_ms.get();
        }
        _ => {
            let artist = object.artists.0.unwrap_or_default();
            item.parent_id = artist.id.read("artists.id").map_err(bad)?;
            item.year = year(&object.release_date);
            item.thumb = closest(object.images, width);
        }
    }
    Ok(item)
}

fn artist(entry: Entry, width: u32) -> Result<Item, BadItem> {
    let unusable = |reason: String| BadItem { id: None, reason };
    let id = entry.id.read("id").map_err(unusable)?.ok_or_else(|| unusable("no id".into()))?;
    let bad = |reason: String| BadItem { id: Some(id.clone()), reason };
    let title = entry.name.read("name").map_err(bad)?.unwrap_or_default();
    let mut item = Item::new(id.clone(), Kind::Artist, title, 0);
    item.guid = entry.uri.read("uri").map_err(bad)?;
    item.thumb = closest(entry.images, width);
    Ok(item)
}

/// A playlist: `snapshot_id` is its version, kept as the marker. Its image
/// URLs are temporary and change between listings: the image marker is the
/// URL without its query (`image::closest`).
fn playlist(entry: Entry, width: u32) -> Result<Item, BadItem> {
    let unusable = |reason: String| BadItem { id: None, reason };
    let id = entry.id.read("id").map_err(unusable)?.ok_or_else(|| unusable("no id".into()))?;
    let bad = |reason: String| BadItem { id: Some(id.clone()), reason };
    let snapshot = entry.snapshot_id.read("snapshot_id").map_err(bad)?.ok_or_else(|| bad("no snapshot_id".into()))?;
    let title = entry.name.read("name").map_err(bad)?.unwrap_or_default();
    let mut item = Item::new(id.clone(), Kind::Playlist, title, 0);
    item.parent_id = entry.owner.0.unwrap_or_default().id.read("owner.id").map_err(bad)?;
    item.guid = entry.uri.read("uri").map_err(bad)?;
    item.marker = Some(snapshot);
    item.thumb = closest(entry.images, width);
    Ok(item)
}

/// A playlist entry at `position`: its id is the playlist's, '/', and the
/// zero-padded position, so entries sort in playlist order and the same
/// track may appear twice. An entry is always stored: what cannot be read
/// of it (a field too long, a wrong type) is left out. Its image is its
/// album's (a track, a legacy-shaped episode) or its own (an episode).
fn playlist_entry(entry: Entry, playlist: &str, position: u64, width: u32) -> Result<Item, BadItem> {
    // `item` since 2026; `track` before.
    let object = entry.item.0.or(entry.track.0);
    let kind = match object.as_ref().and_then(|object| object.kind.as_str()) {
        Some("episode") => Kind::Episode,
        _ => Kind::Track,
    };
    let added_at = timestamp(&entry.added_at);
    let object = object.unwrap_or_default();
    let title = object.name.read("name").ok().flatten().unwrap_or_default();
    let mut item = Item::new(format!("{playlist}/{position:06}"), kind, title, added_at.unwrap_or(0));
    item.parent_id = Some(playlist.to_string());
    item.index = Some(i64::try_from(position).unwrap_or(i64::MAX));
    item.added_at = added_at;
    item.guid = object.uri.read("uri").ok().flatten();
    item.duration_ms = object.duration_ms.get();
    let album_images = object.album.0.map(|album| album.images).unwrap_or_default();
    item.thumb = closest(album_images, width).or_else(|| closest(object.images, width));
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(value: serde_json::Value) -> Entry {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn saved_track_maps_added_at_and_album() {
        let saved_track = entry(
            json!({"added_at": "2024-05-01T10:00:00Z", "track": {"id": "t1", "name": "Song", "uri": "spotify:track:t1",
            "album": {"id": "a1", "release_date": "1999-01-01"}, "track_number": 3, "disc_number": 1, "duration_ms": 1000}}),
        );
        let item = saved(saved_track.added_at, saved_track.track, Kind::Track, 300).unwrap();
        assert_eq!((item.id.as_str(), item.updated_at, item.parent_id.as_deref()), ("t1", 1_714_557_600, Some("a1")));
        assert_eq!(item.year, Some(1999));
        let gone = entry(json!({"added_at": "2024-05-01T10:00:00Z", "track": null}));
        assert!(saved(gone.added_at, gone.track, Kind::Track, 300).is_err());
    }

    #[test]
    fn playlist_entries_keep_position_and_read_both_spellings() {
        let episode =
            entry(json!({"added_at": null, "track": {"type": "episode", "name": "Ep", "uri": "spotify:episode:e"}}));
        let item = playlist_entry(episode, "p1", 7, 300).unwrap();
        assert_eq!(
            (item.id.as_str(), item.kind, item.index, item.updated_at),
            ("p1/000007", Kind::Episode, Some(7), 0)
        );
        let gone = entry(json!({"added_at": "2024-05-01T10:00:00Z", "item": null, "track": null}));
        let item = playlist_entry(gone, "p1", 0, 300).unwrap();
        assert_eq!((item.title.as_str(), item.kind, item.guid), ("", Kind::Track, None));
    }

    #[test]
    fn image_markers_are_the_album_s_for_tracks_and_the_own_for_the_rest() {
        let sized = |name: &str| {
            json!([{"url": format!("https://i.scdn.co/image/{name}-640"), "width": 640, "height": 640},
                {"url": format!("https://i.scdn.co/image/{name}-300"), "width": 300, "height": 300}])
        };
        let marker = |item: Item| item.thumb;
        let track = entry(json!({"added_at": "2024-05-01T10:00:00Z", "item": {"type": "track", "id": "t1",
            "album": {"id": "a1", "images": sized("album")}}}));
        assert_eq!(
            marker(playlist_entry(track, "p", 0, 300).unwrap()).as_deref(),
            Some("https://i.scdn.co/image/album-300")
        );
        let episode = entry(json!({"item": {"type": "episode", "id": "e1", "images": sized("show")}}));
        assert_eq!(
            marker(playlist_entry(episode, "p", 1, 600).unwrap()).as_deref(),
            Some("https://i.scdn.co/image/show-640")
        );
        let legacy = entry(json!({"track": {"type": "episode", "album": {"images": sized("legacy")}}}));
        assert_eq!(
            marker(playlist_entry(legacy, "p", 2, 300).unwrap()).as_deref(),
            Some("https://i.scdn.co/image/legacy-300")
        );
        let local = entry(json!({"item": {"type": "track", "id": null, "album": {"id": null, "images": []}}}));
        assert_eq!(marker(playlist_entry(local, "p", 3, 300).unwrap()), None);
        let album = entry(json!({"added_at": "2024-05-01T10:00:00Z", "album": {"id": "a1", "images": sized("album")}}));
        let album = saved(album.added_at, album.album, Kind::Album, 640).unwrap();
        assert_eq!(album.thumb.as_deref(), Some("https://i.scdn.co/image/album-640"));
        let artist_entry = entry(json!({"id": "r1", "images": sized("artist")}));
        assert_eq!(marker(artist(artist_entry, 300).unwrap()).as_deref(), Some("https://i.scdn.co/image/artist-300"));
        let cover = json!([{"url": "https://mosaic.scdn.co/640/x?t=1", "width": null, "height": null}]);
        let list = entry(json!({"id": "l1", "snapshot_id": "s", "images": cover}));
        assert_eq!(marker(playlist(list, 300).unwrap()).as_deref(), Some("https://mosaic.scdn.co/640/x"));
    }

    #[test]
    fn followed_artists_continue_after_the_cursor() {
        let body = br#"{"artists": {"items": [{"id": "a1", "name": "A"}, 3], "next": "https://x/next", "total": 2, "cursors": {"after": "a1"}}}"#;
        let page = read_page(&body[..], "artists").unwrap();
        assert_eq!((page.items.len(), page.total, page.next), (2, Some(2), Next::After("a1".into())));
        assert!(page.items[1].is_err(), "an entry that is not an object is reported");
    }
}
