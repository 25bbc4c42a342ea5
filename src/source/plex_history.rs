//! Plex's watch history as a library of plays: `/status/sessions/history/all`
//! sorted by `viewedAt` newest first and paged like the library listings.
//! With the server owner's token it lists every account's plays, and keeps
//! them when their item is deleted. A play becomes an item of kind `Play`
//! whose id is its time and its `historyKey`'s number, so ids sort by time.

use super::lenient::{Int, Text};
use super::plex::{Envelope, Listing};
use super::{BadItem, Next, Page};
use crate::model::{Item, Kind, Play, play_id};
use serde::Deserialize;

/// The path of a page of plays, newest first. Paging travels as headers and
/// again as query parameters, as for the library listings; no `viewedAt`
/// filter is sent (not every version is known to honour it), so the walk
/// stops at the cursor by itself.
pub fn path(start: u64, size: u32) -> String {
    format!(
        "/status/sessions/history/all?sort=viewedAt%3Adesc&X-Plex-Container-Start={start}&X-Plex-Container-Size={size}"
    )
}

/// A `PlaybackHistoryMetadata` entry, the fields stored.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Entry {
    #[serde(rename = "historyKey")]
    history_key: Text,
    #[serde(rename = "ratingKey")]
    rating_key: Text,
    #[serde(rename = "type")]
    kind: Text,
    title: Text,
    #[serde(rename = "parentTitle")]
    parent_title: Text,
    #[serde(rename = "grandparentTitle")]
    grandparent_title: Text,
    index: Int,
    #[serde(rename = "parentIndex")]
    parent_index: Int,
    thumb: Text,
    #[serde(rename = "viewedAt")]
    viewed_at: Int,
    #[serde(rename = "accountID")]
    account_id: Text,
    #[serde(rename = "deviceID")]
    device_id: Text,
    #[serde(rename = "librarySectionID")]
    library_section_id: Text,
}

/// Reads a history answer (the `MediaContainer` envelope) from `body`, as
/// the source does: the parser the property tests feed.
pub fn read_page(body: impl std::io::Read) -> Result<Page, serde_json::Error> {
    let envelope: Envelope<Listing<Entry>> = serde_json::from_reader(body)?;
    Ok(page_of(envelope.container))
}

pub(super) fn page_of(listing: Listing<Entry>) -> Page {
    Page {
        items: listing.metadata.0.into_iter().map(play).collect(),
        total: listing.total_size.count(),
        next: Next::Offset,
    }
}

/// One play. Without its `historyKey` and `viewedAt` it cannot be told
/// apart or placed: refused. The played item's fields are kept as far as
/// they read; a play whose item was deleted has no `ratingKey`.
fn play(entry: Option<Entry>) -> Result<Item, BadItem> {
    let unusable = |reason: &str| BadItem { id: None, reason: reason.to_string() };
    let entry = entry.ok_or_else(|| unusable("entry is not an object"))?;
    let history_key = entry.history_key.read("historyKey").map_err(|reason| unusable(&reason))?;
    // `/status/sessions/history/{id}`: the id is what follows the last '/'.
    let history_id = history_key
        .as_deref()
        .map(|key| key.rsplit('/').next().unwrap_or(key))
        .filter(|id| !id.is_empty())
        .ok_or_else(|| unusable("entry has no historyKey"))?;
    let viewed_at = entry.viewed_at.get().ok_or_else(|| unusable("entry has no viewedAt"))?;
    let text = |field: Text, name: &str| field.read(name).ok().flatten();
    let played = entry.kind.as_str().and_then(Kind::from_name);
    let grandparent = text(entry.grandparent_title, "grandparentTitle");
    let mut item = Item::new(
        play_id(viewed_at.saturating_mul(1000), history_id),
        Kind::Play,
        text(entry.title, "title").unwrap_or_default(),
        viewed_at,
    );
    item.parent_id = text(entry.rating_key, "ratingKey");
    item.index = entry.index.get();
    item.parent_index = entry.parent_index.get();
    item.thumb = text(entry.thumb, "thumb");
    item.play = Some(Play {
        played,
        artists: grandparent.clone().filter(|_| played == Some(Kind::Track)),
        album: text(entry.parent_title, "parentTitle").filter(|_| played == Some(Kind::Track)),
        show: grandparent.filter(|_| played == Some(Kind::Episode)),
        account: text(entry.account_id, "accountID"),
        device: text(entry.device_id, "deviceID"),
        library: text(entry.library_section_id, "librarySectionID"),
        ..Play::default()
    });
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plays_map_to_items_ordered_by_time() {
        let body = br#"{"MediaContainer": {"size": 3, "totalSize": 40, "offset": 0, "Metadata": [
            {"historyKey": "/status/sessions/history/1207", "key": "/library/metadata/90", "ratingKey": "90",
             "librarySectionID": "2", "title": "Pilot", "grandparentTitle": "The 100", "parentTitle": "Season 1",
             "type": "episode", "index": 1, "parentIndex": 1, "viewedAt": 1700000100, "accountID": 1, "deviceID": 5},
            {"historyKey": "/status/sessions/history/1206", "title": "Gone", "type": "movie",
             "viewedAt": 1700000000, "accountID": 3, "deviceID": 2},
            {"ratingKey": "7", "title": "No key", "viewedAt": 1}
        ]}}"#;
        let page = read_page(&body[..]).unwrap();
        assert_eq!(page.total, Some(40));
        let episode = page.items[0].as_ref().unwrap();
        assert_eq!(episode.id, "1700000100000:1207");
        assert_eq!(
            (episode.kind, episode.updated_at, episode.parent_id.as_deref()),
            (Kind::Play, 1_700_000_100, Some("90"))
        );
        let play = episode.play.as_ref().unwrap();
        assert_eq!(
            (play.played, play.show.as_deref(), play.artists.as_deref()),
            (Some(Kind::Episode), Some("The 100"), None)
        );
        assert_eq!(
            (play.account.as_deref(), play.device.as_deref(), play.library.as_deref()),
            (Some("1"), Some("5"), Some("2"))
        );
        let deleted = page.items[1].as_ref().unwrap();
        assert_eq!((deleted.id.as_str(), deleted.parent_id.as_deref()), ("1700000000000:1206", None));
        assert!(page.items[2].is_err(), "a play without its historyKey is refused");
    }
}
