//! Spotify's listening history: `/me/player/recently-played`, the user's
//! last 50 plays (no older play can be read), newest first, each a
//! `{track, played_at, context}`. One request holds the whole window, so a
//! poll is one request; `after=` (milliseconds) leaves the plays up to the
//! newest stored one out. A play becomes an item of kind `Play` whose id is
//! its time and the track's id, so ids sort by time.

use super::super::lenient::{Entries, Int, Object, Text};
use super::super::{BadItem, Next, Page};
use crate::model::{Item, Kind, Play, play_id};
use serde::Deserialize;

/// The plays Spotify keeps, and so the page every poll asks for.
pub const WINDOW: u32 = 50;

/// The path of a poll for the plays after `since` (server epoch seconds;
/// the first poll, with nothing stored, asks for the latest plays).
pub fn path(since: Option<i64>) -> String {
    match since.filter(|since| *since > 0) {
        Some(since) => format!("/me/player/recently-played?limit={WINDOW}&after={}", since.saturating_mul(1000)),
        None => format!("/me/player/recently-played?limit={WINDOW}"),
    }
}

/// A `CursorPagingPlayHistoryObject`: the cursors and `next` are not
/// followed (the one page holds every play still listed).
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Plays {
    items: Entries<Entry>,
}

/// A `PlayHistoryObject`.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Entry {
    track: Object<Track>,
    played_at: Text,
    context: Object<Context>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Track {
    id: Text,
    name: Text,
    uri: Text,
    #[serde(rename = "type")]
    kind: Text,
    duration_ms: Int,
    album: Object<Named>,
    artists: Entries<Named>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Named {
    name: Text,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Context {
    uri: Text,
}

/// Reads a recently-played answer from `body`: the parser `page` uses and
/// the property tests feed.
pub fn read_page(body: impl std::io::Read) -> Result<Page, serde_json::Error> {
    let plays: Plays = serde_json::from_reader(body)?;
    Ok(page_of(plays))
}

pub(super) fn page_of(plays: Plays) -> Page {
    let items = plays.items.0.into_iter().map(|entry| play(entry.unwrap_or_default())).collect();
    Page { items, total: None, next: Next::End }
}

/// One play. Without a readable `played_at` it has no place in the history
/// and is refused; a missing or unreadable track leaves only its fields
/// out (an unavailable track is still a play).
fn play(entry: Entry) -> Result<Item, BadItem> {
    let played_at = entry
        .played_at
        .as_str()
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
        .ok_or_else(|| BadItem { id: None, reason: "no readable played_at".into() })?;
    let track = entry.track.0.unwrap_or_default();
    let track_id = track.id.read("track.id").ok().flatten();
    let uri = track.uri.read("track.uri").ok().flatten();
    // A local file has no id: its URI stands in.
    let suffix = track_id.as_deref().or(uri.as_deref()).unwrap_or("-");
    let mut item = Item::new(
        play_id(played_at.timestamp_millis(), suffix),
        Kind::Play,
        track.name.read("track.name").ok().flatten().unwrap_or_default(),
        played_at.timestamp(),
    );
    item.parent_id = track_id;
    item.guid = uri;
    item.duration_ms = track.duration_ms.get();
    let artists: Vec<String> = track
        .artists
        .0
        .into_iter()
        .flatten()
        .filter_map(|artist| artist.name.read("artists.name").ok().flatten())
        .collect();
    item.play = Some(Play {
        played: Some(if track.kind.as_str() == Some("episode") { Kind::Episode } else { Kind::Track }),
        artists: (!artists.is_empty()).then(|| artists.join(", ")),
        album: track.album.0.and_then(|album| album.name.read("album.name").ok().flatten()),
        context: entry.context.0.and_then(|context| context.uri.read("context.uri").ok().flatten()),
        ..Play::default()
    });
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plays_map_to_items_ordered_by_time() {
        let body = br#"{"items": [
            {"track": {"id": "t2", "name": "Two", "uri": "spotify:track:t2", "type": "track", "duration_ms": 200000,
              "album": {"name": "Album"}, "artists": [{"name": "A"}, {"name": "B"}]},
             "played_at": "2024-05-01T10:04:00.589Z", "context": {"type": "playlist", "uri": "spotify:playlist:p1"}},
            {"track": {"id": null, "name": "Demo", "uri": "spotify:local:x:y:Demo:180"},
             "played_at": "2024-05-01T10:00:00Z", "context": null},
            {"track": {"id": "t3"}, "played_at": "yesterday"}
        ], "next": "https://api.spotify.com/v1/me/player/recently-played?before=1", "cursors": {"after": "1", "before": "1"}, "limit": 50}"#;
        let page = read_page(&body[..]).unwrap();
        assert_eq!(page.next, Next::End, "the one page holds every play still listed");
        let first = page.items[0].as_ref().unwrap();
        assert_eq!(first.id, "1714557840589:t2");
        assert_eq!((first.updated_at, first.parent_id.as_deref()), (1_714_557_840, Some("t2")));
        let play = first.play.as_ref().unwrap();
        assert_eq!(play.artists.as_deref(), Some("A, B"));
        assert_eq!(play.context.as_deref(), Some("spotify:playlist:p1"));
        let local = page.items[1].as_ref().unwrap();
        assert_eq!(local.id, "1714557600000:spotify:local:x:y:Demo:180");
        assert!(local.id < first.id, "ids sort by time");
        assert!(page.items[2].is_err(), "a play without its time is refused");
    }

    #[test]
    fn polls_ask_for_the_whole_window_after_the_newest_stored_play() {
        assert_eq!(path(None), "/me/player/recently-played?limit=50");
        assert_eq!(path(Some(i64::MIN)), "/me/player/recently-played?limit=50");
        assert_eq!(path(Some(1_714_557_840)), "/me/player/recently-played?limit=50&after=1714557840000");
    }
}
