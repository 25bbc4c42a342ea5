//! The shapes of Jellyfin/Emby answers that are read (`QueryResult`, an
//! `Items` entry down to the fields stored) and how an entry becomes an
//! `Item`: kinds from `Type`, the preferred external id, dates, the synced
//! user's played state. Split from the source so each file holds one job.

use super::super::http::encode;
use super::super::lenient::{Entries, First, Flag, Int, Object, Text};
use super::super::{BadItem, Page};
use crate::model::{Item, Kind, PlayState};
use serde::Deserialize;

/// A `QueryResult`: `Items` and, for listings, `TotalRecordCount`.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct QueryResult<T> {
    #[serde(rename = "Items")]
    pub(super) items: Entries<T>,
    #[serde(rename = "TotalRecordCount")]
    pub(super) total: Int,
}

/// The fields of an `Items` entry that are stored; others are skipped
/// unread.
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Entry {
    pub(super) id: Text,
    name: Text,
    #[serde(rename = "Type")]
    kind: Text,
    date_created: Text,
    series_id: Text,
    season_id: Text,
    parent_id: Text,
    album_id: Text,
    album_artists: First<Reference>,
    sort_name: Text,
    production_year: Int,
    index_number: Int,
    parent_index_number: Int,
    provider_ids: Provider,
    run_time_ticks: Int,
    image_tags: Object<ImageTags>,
    path: Text,
    etag: Text,
    user_data: Object<UserData>,
}

impl Entry {
    /// The server's `Type` of the entry, when it names one.
    pub(super) fn item_type(&self) -> Option<&str> {
        self.kind.as_str()
    }
}

/// The synced user's `UserData` of an item.
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct UserData {
    played: Flag,
    play_count: Int,
    last_played_date: Text,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Reference {
    #[serde(rename = "Id")]
    id: Text,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ImageTags {
    #[serde(rename = "Primary")]
    primary: Text,
}

/// The server item type a kind stands for in a view of this collection type.
/// Music videos and home videos are single films, so they map to movies; a
/// collection (box set) is a named list of items, so it maps to a playlist.
pub(super) fn item_type(collection_type: Option<&str>, kind: Kind) -> &'static str {
    match (collection_type, kind) {
        (Some("musicvideos"), Kind::Movie) => "MusicVideo",
        (Some("homevideos"), Kind::Movie) => "Video",
        (_, Kind::Movie) => "Movie",
        (_, Kind::Show) => "Series",
        (_, Kind::Season) => "Season",
        (_, Kind::Episode) => "Episode",
        (_, Kind::Artist) => "MusicArtist",
        (_, Kind::Album) => "MusicAlbum",
        (_, Kind::Track) => "Audio",
        (_, Kind::Playlist) => "BoxSet",
        // Neither server lists plays (no per-play history in their APIs):
        // no library holds this kind, and a type the server does not know
        // is refused rather than answered with other items.
        (_, Kind::Play) => "Play",
    }
}

pub(super) fn accepted_types(item_type: &'static str) -> &'static [&'static str] {
    match item_type {
        "Movie" => &["Movie"],
        "MusicVideo" => &["MusicVideo"],
        "Video" => &["Video"],
        "Series" => &["Series"],
        "Season" => &["Season"],
        "Episode" => &["Episode"],
        "MusicArtist" => &["MusicArtist"],
        "MusicAlbum" => &["MusicAlbum"],
        "Audio" => &["Audio"],
        "Play" => &[],
        _ => &["BoxSet"],
    }
}

/// Reads a listing answer (`/Users/{id}/Items`) of `kind` from `body`, as
/// `page` does, keeping entries of the `accepted` types: the parser the
/// property tests feed.
pub fn read_page(body: impl std::io::Read, kind: Kind, accepted: &[&str]) -> Result<Page, serde_json::Error> {
    Ok(page_of(serde_json::from_reader(body)?, kind, accepted))
}

pub(super) fn page_of(answer: QueryResult<Entry>, kind: Kind, accepted: &[&str]) -> Page {
    Page {
        items: answer.items.0.into_iter().map(|entry| parse_item(entry, kind, accepted)).collect(),
        total: answer.total.count(),
        next: Default::default(),
    }
}

/// Turns one entry of `Items` into an item of the listed kind. An entry
/// without an id is unusable; one with an id but missing essentials (or
/// with a field too long to keep) is reported with its id so the stored
/// copy is kept.
pub fn parse_item(entry: Option<Entry>, listed: Kind, accepted: &[&str]) -> Result<Item, BadItem> {
    let unusable = |reason: String| BadItem { id: None, reason };
    let entry = entry.ok_or_else(|| unusable("entry is not an object".into()))?;
    let id = entry.id.read("Id").map_err(unusable)?.ok_or_else(|| unusable("entry has no Id".into()))?;
    let bad = |reason: String| BadItem { id: Some(id.clone()), reason };
    if let Some(item_type) = entry.kind.as_str() {
        if !accepted.contains(&item_type) {
            return Err(bad(format!("listed as {listed} but has Type \"{item_type}\"")));
        }
    }
    let title = entry.name.read("Name").map_err(bad)?.ok_or_else(|| bad("entry has no Name".into()))?;
    let added_at = entry.date_created.as_str().and_then(parse_date);
    let series_id = entry.series_id.read("SeriesId").map_err(bad)?;
    let parent_id = entry.parent_id.read("ParentId").map_err(bad)?;
    let parent_id = match listed {
        Kind::Season => series_id.or(parent_id),
        Kind::Episode => entry.season_id.read("SeasonId").map_err(bad)?.or(series_id),
        Kind::Album => {
            let artist = entry.album_artists.0.map(|artist| artist.id);
            artist.map_or(Ok(None), |id| id.read("AlbumArtists.Id")).map_err(bad)?.or(parent_id)
        }
        Kind::Track => entry.album_id.read("AlbumId").map_err(bad)?.or(parent_id),
        _ => None,
    };
    // The server exposes no change time: the creation time stands in for
    // `updated_at`, and `Etag` (a hash of the save time) is the change marker.
    let mut item = Item::new(id.clone(), listed, title, added_at.unwrap_or(0));
    item.sort_title = entry.sort_name.read("SortName").map_err(bad)?;
    item.parent_id = parent_id;
    item.added_at = added_at;
    item.year = entry.production_year.get().and_then(|year| i32::try_from(year).ok());
    item.index = entry.index_number.get();
    item.parent_index = entry.parent_index_number.get();
    item.guid = entry.provider_ids.guid();
    item.duration_ms = entry.run_time_ticks.get().map(|ticks| ticks / 10_000);
    // A server-relative path, as Plex's thumb is; the tag changes with the
    // image, so an image change is a change of the item.
    let tag = entry.image_tags.0.map_or(Ok(None), |tags| tags.primary.read("ImageTags.Primary")).map_err(bad)?;
    item.thumb = tag.map(|tag| format!("/Items/{}/Images/Primary?tag={}", encode(&id), encode(&tag)));
    item.file = entry.path.read("Path").map_err(bad)?;
    item.marker = entry.etag.read("Etag").map_err(bad)?;
    item.play_state = entry.user_data.0.map(play_state);
    Ok(item)
}

/// The played state `UserData` holds; a count that is not a count reads as
/// 0, and `Played` missing as "played at least once".
fn play_state(user_data: UserData) -> PlayState {
    let play_count = user_data.play_count.count().unwrap_or(0);
    PlayState {
        played: user_data.played.0.unwrap_or(play_count > 0),
        play_count,
        last_played_at: user_data.last_played_date.as_str().and_then(parse_date),
    }
}

/// `ProviderIds` read down to the one external id kept, as
/// `provider://id`: the best-known provider first, so the choice does not
/// depend on the server's key order, and nothing else of the map is kept.
#[derive(Default)]
struct Provider(Option<(usize, String, String)>);

const PREFERRED_PROVIDERS: [&str; 6] =
    ["Imdb", "Tmdb", "Tvdb", "MusicBrainzAlbum", "MusicBrainzArtist", "MusicBrainzTrack"];

impl Provider {
    fn guid(self) -> Option<String> {
        self.0.map(|(_, name, id)| format!("{}://{id}", name.to_ascii_lowercase()))
    }
}

impl<'de> Deserialize<'de> for Provider {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Provider, D::Error> {
        Object::<ProviderMap>::deserialize(deserializer).map(|ids| ids.0.map_or_else(Provider::default, |ids| ids.0))
    }
}

/// The map itself; `Provider` reads anything else as no id.
struct ProviderMap(Provider);

impl<'de> Deserialize<'de> for ProviderMap {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ProviderMap, D::Error> {
        deserializer.deserialize_map(ProviderVisitor)
    }
}

struct ProviderVisitor;

impl<'de> serde::de::Visitor<'de> for ProviderVisitor {
    type Value = ProviderMap;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a map of provider ids")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<ProviderMap, A::Error> {
        let mut best: Option<(usize, String, String)> = None;
        while let Some((name, id)) = map.next_entry::<Text, Text>()? {
            let (Text::Present(name), Text::Present(id)) = (name, id) else {
                continue;
            };
            let rank = PREFERRED_PROVIDERS.iter().position(|preferred| *preferred == name);
            let rank = rank.unwrap_or(PREFERRED_PROVIDERS.len());
            if best.as_ref().is_none_or(|(best_rank, best_name, _)| (rank, &name) < (*best_rank, best_name)) {
                best = Some((rank, name, id));
            }
        }
        Ok(ProviderMap(Provider(best)))
    }
}

/// Parses `2020-01-02T00:00:00.0000000Z` (and the same without a zone,
/// which the servers mean as UTC) into epoch seconds.
pub fn parse_date(text: &str) -> Option<i64> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(time.timestamp());
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|time| time.and_utc().timestamp())
}

/// The filter value for a server time, in the servers' own format.
pub fn format_date(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S.0000000Z").to_string()
}
