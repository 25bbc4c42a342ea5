//! The plays the simulated servers keep, and their history answers as the
//! real APIs define them (`docs/servers.md`). Spotify's
//! `/me/player/recently-played`: the last 50 plays only, newest first,
//! `after`/`before` in milliseconds (exclusive, not both), cursors and a
//! `before=` `next` link even when nothing older is left, `limit` 1 to 50.
//! Plex's `/status/sessions/history/all`: every play, kept when its item is
//! deleted, sorted by `viewedAt`, paged like the library listings. Each
//! fake remembers which plays it answered (`served`): those are the plays
//! an exact mirror holds.

use super::Expected;
use super::spotify::FakeTrack;
use crate::model::{Kind, play_id};
use serde_json::{Value, json};

/// Spotify lists a user's last 50 plays and nothing older.
pub const SPOTIFY_WINDOW: usize = 50;

/// A play on Spotify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpotifyPlay {
    /// Epoch milliseconds, as `played_at` carries them.
    pub played_at_ms: i64,
    pub track: FakeTrack,
    /// The playlist or album it was played from, as `(type, id)`.
    pub context: Option<(&'static str, String)>,
    /// Listed by an answer at least once.
    pub served: bool,
}

impl SpotifyPlay {
    /// The row a mirror holds for this play: id `{ms, 13 digits}:{track}`.
    pub fn expected(&self) -> Expected {
        Expected {
            library: "history".into(),
            id: play_id(self.played_at_ms, &self.track.id),
            kind: Kind::Play,
            title: self.track.name.clone(),
            parent_id: Some(self.track.id.clone()),
            updated_at: self.played_at_ms.div_euclid(1000),
        }
    }
}

/// A refused request: the status and the message of Spotify's error body.
pub type Refusal = (u16, &'static str);

/// `GET /me/player/recently-played`: `plays` newest first (the window and
/// older ones); those listed are marked served. `track` renders a track.
pub fn recently_played(
    plays: &mut [SpotifyPlay],
    params: &[(String, String)],
    base: &str,
    track: impl Fn(&FakeTrack) -> Value,
) -> Result<Value, Refusal> {
    let param = |name: &str| params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let limit = match param("limit") {
        None => 20,
        Some(text) => {
            text.parse().ok().filter(|limit| (1..=SPOTIFY_WINDOW).contains(limit)).ok_or((400, "Invalid limit"))?
        }
    };
    let cursor = |name: &str| param(name).map(|text| text.parse::<i64>().map_err(|_| (400, "Invalid cursor")));
    let (after, before) = (cursor("after").transpose()?, cursor("before").transpose()?);
    if after.is_some() && before.is_some() {
        return Err((400, "Only one of after and before may be specified"));
    }
    let listed: Vec<&mut SpotifyPlay> = plays
        .iter_mut()
        .take(SPOTIFY_WINDOW)
        .filter(|play| after.is_none_or(|after| play.played_at_ms > after))
        .filter(|play| before.is_none_or(|before| play.played_at_ms < before))
        .take(limit)
        .collect();
    let query = params.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join("&");
    let href = format!("{base}/me/player/recently-played?{query}");
    let newest = listed.first().map(|play| play.played_at_ms.to_string());
    let oldest = listed.last().map(|play| play.played_at_ms.to_string());
    let items: Vec<Value> = listed
        .into_iter()
        .map(|play| {
            play.served = true;
            let context = play.context.as_ref().map(|(kind, id)| {
                json!({"type": kind, "uri": format!("spotify:{kind}:{id}"), "href": format!("{base}/{kind}s/{id}"),
                    "external_urls": {"spotify": format!("https://open.spotify.com/{kind}/{id}")}})
            });
            json!({"track": track(&play.track), "played_at": timestamp_ms(play.played_at_ms), "context": context})
        })
        .collect();
    Ok(json!({
        "items": items,
        // As on the real API: a `before=` link to the next page even when
        // nothing older is listed; no cursors on an empty answer.
        "next": oldest.as_ref().map(|oldest| format!("{base}/me/player/recently-played?before={oldest}&limit={limit}")),
        "cursors": newest.map(|newest| json!({"after": newest, "before": oldest})),
        "limit": limit,
        "href": href,
    }))
}

/// `2024-05-01T10:00:00.589Z`, as `played_at` is written.
fn timestamp_ms(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A play on Plex, as its history row records it: the titles are copied
/// when it is played, so the row outlives its item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlexPlay {
    pub history_id: u64,
    pub viewed_at: i64,
    pub rating_key: String,
    pub kind: Kind,
    pub title: String,
    pub parent_title: Option<String>,
    pub grandparent_title: Option<String>,
    pub section: String,
    pub account_id: u64,
    pub device_id: u64,
    /// Listed by an answer at least once.
    pub served: bool,
}

impl PlexPlay {
    /// The row a mirror holds for this play: id `{viewedAt in ms, 13 digits}:{history id}`.
    pub fn expected(&self) -> Expected {
        Expected {
            library: "history".into(),
            id: play_id(self.viewed_at * 1000, &self.history_id.to_string()),
            kind: Kind::Play,
            title: self.title.clone(),
            parent_id: Some(self.rating_key.clone()),
            updated_at: self.viewed_at,
        }
    }
}

/// `GET /status/sessions/history/all`'s `MediaContainer`: `plays` (oldest
/// first) sorted as `sort=` asks (`viewedAt`, `id`; by id when absent),
/// filtered by `accountID=` and `librarySectionID=`, paged by `start` and
/// `size` (`totalSize` on paged requests only, at most `max_page` rows);
/// the rows listed are marked served. Returns the container and the rows.
pub fn plex_history(
    plays: &mut [PlexPlay],
    params: &[(String, String)],
    start: Option<u64>,
    size: Option<u64>,
    max_page: Option<u64>,
) -> (Value, usize) {
    let param = |name: &str| params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let account = param("accountID").and_then(|value| value.parse::<u64>().ok());
    let section = param("librarySectionID").map(str::to_string);
    let (field, descending) = match param("sort").map(|sort| sort.split_once(':').unwrap_or((sort, "asc"))) {
        Some((field, direction)) => (field.to_string(), direction == "desc"),
        None => ("id".to_string(), false),
    };
    let mut rows: Vec<&mut PlexPlay> = plays
        .iter_mut()
        .filter(|play| account.is_none_or(|account| play.account_id == account))
        .filter(|play| section.as_ref().is_none_or(|section| &play.section == section))
        .collect();
    rows.sort_by(|a, b| {
        let order = match field.as_str() {
            "viewedAt" => a.viewed_at.cmp(&b.viewed_at).then(a.history_id.cmp(&b.history_id)),
            _ => a.history_id.cmp(&b.history_id),
        };
        if descending { order.reverse() } else { order }
    });
    let total = rows.len();
    let mut container = serde_json::Map::new();
    let page: Vec<&mut PlexPlay> = match (start, size) {
        (None, None) => rows,
        (start, size) => {
            let start = start.unwrap_or(0) as usize;
            let size = size.unwrap_or(50).min(max_page.unwrap_or(u64::MAX)) as usize;
            container.insert("offset".into(), json!(start));
            container.insert("totalSize".into(), json!(total));
            rows.into_iter().skip(start).take(size).collect()
        }
    };
    container.insert("size".into(), json!(page.len()));
    let returned = page.len();
    let metadata: Vec<Value> = page
        .into_iter()
        .map(|play| {
            play.served = true;
            let mut row = json!({
                "historyKey": format!("/status/sessions/history/{}", play.history_id),
                "key": format!("/library/metadata/{}", play.rating_key),
                "ratingKey": play.rating_key,
                "librarySectionID": play.section,
                "title": play.title,
                "type": play.kind.name(),
                "thumb": format!("/library/metadata/{}/thumb/{}", play.rating_key, play.viewed_at),
                "originallyAvailableAt": "2014-03-19",
                "viewedAt": play.viewed_at,
                "accountID": play.account_id,
                "deviceID": play.device_id,
            });
            if let Some(parent) = &play.parent_title {
                row["parentTitle"] = json!(parent);
            }
            if let Some(grandparent) = &play.grandparent_title {
                row["grandparentTitle"] = json!(grandparent);
            }
            row
        })
        .collect();
    if !metadata.is_empty() {
        container.insert("Metadata".into(), Value::Array(metadata));
    }
    (Value::Object(container), returned)
}
