//! Jellyfin (10.8 to 12) and Emby (4.8) as a `Source`: one module, since
//! Emby is Jellyfin's ancestor and both speak the same API; `Flavor` holds
//! the few differences. Authenticates with the `Authorization: MediaBrowser`
//! header (the only one Jellyfin 12 accepts by default), lists the user's
//! views and their items through the user-scoped routes every version has,
//! finds changes with the save-time filter (`Strategy::ChangedSince`), and
//! looks unseen items up with `Ids=` on the same listing. See the
//! Jellyfin/Emby part of `docs/servers.md`.

use super::http::{Http, body_cap, encode};
use super::lenient::{Entries, First, Flag, Int, Object, Text};
use super::{
    BadItem, ErrorKind, Order, Page, Position, Present, Source, SourceError, Stop, WaitObserver, filter_libraries,
    no_children, unasked,
};
use crate::config::{JellyfinConfig, ServerConfig};
use crate::model::{Item, Kind, LibraryInfo, Nesting, Strategy};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::config::Flavor;

/// Only the fields that end up in an `Item`: asking for more makes every
/// page heavier for nothing.
const FIELDS: &str = "Etag,DateCreated,SortName,ProviderIds,Path,ParentId";

/// Ids asked about per lookup: 100 Jellyfin ids (32 hex digits) make a
/// query of about 3.4 KB, well inside the 8 KB request line Kestrel takes.
const LOOKUP_BATCH: u32 = 100;

/// A `QueryResult`: `Items` and, for listings, `TotalRecordCount`.
#[derive(Default, Deserialize)]
#[serde(default)]
struct QueryResult<T> {
    #[serde(rename = "Items")]
    items: Entries<T>,
    #[serde(rename = "TotalRecordCount")]
    total: Int,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct User {
    #[serde(rename = "Id")]
    id: Text,
    #[serde(rename = "Name")]
    name: Text,
    #[serde(rename = "Policy")]
    policy: Object<Policy>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Policy {
    #[serde(rename = "IsAdministrator")]
    is_administrator: Flag,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct View {
    #[serde(rename = "Id")]
    id: Text,
    #[serde(rename = "Name")]
    name: Text,
    #[serde(rename = "CollectionType")]
    collection_type: Text,
}

/// The fields of an `Items` entry that are stored; others are skipped
/// unread.
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Entry {
    id: Text,
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

pub struct Jellyfin {
    name: String,
    flavor: Flavor,
    http: Http,
    authorization: String,
    user: Option<String>,
    libraries: Option<Vec<String>>,
    /// The user whose views are synced, resolved on first use.
    user_id: Mutex<Option<String>>,
    /// Library id → collection type, from the last views listing: which item
    /// types a library's kinds stand for.
    collection_types: Mutex<HashMap<String, String>>,
    /// Set when the user-scoped routes answered 404: Jellyfin 10.9+
    /// documents only `/UserViews?userId=` and `/Items?userId=` (the notes
    /// say the old routes stay; a server without them is still served).
    query_routes: AtomicBool,
}

impl Jellyfin {
    /// `server` gives the name and library selection, `jellyfin` the rest;
    /// `stop` interrupts its requests.
    pub fn new(server: &ServerConfig, jellyfin: &JellyfinConfig, timeout: Duration, stop: &Arc<Stop>) -> Jellyfin {
        let authorization = authorization(&server.name, Some(&jellyfin.token));
        Jellyfin {
            name: server.name.clone(),
            flavor: jellyfin.flavor,
            http: Http::new(&jellyfin.url, timeout, stop),
            authorization,
            user: jellyfin.user.clone(),
            libraries: server.libraries.clone(),
            user_id: Mutex::new(None),
            collection_types: Mutex::new(HashMap::new()),
            query_routes: AtomicBool::new(false),
        }
    }

    fn product(&self) -> &'static str {
        match self.flavor {
            Flavor::Jellyfin => "Jellyfin",
            Flavor::Emby => "Emby",
        }
    }

    /// GETs an answer listing `entries` entries at most.
    fn get<T: DeserializeOwned>(&self, path_and_query: &str, entries: u32) -> Result<T, SourceError> {
        let headers = [("Accept", "application/json"), ("Authorization", self.authorization.as_str())];
        let reply = self.http.get(path_and_query, &headers)?;
        reply.json(body_cap(entries), &format!("{} JSON", self.product()))
    }

    /// The configured user's id, or the first administrator's.
    fn user_id(&self) -> Result<String, SourceError> {
        let mut cached = self.user_id.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(id) = cached.as_ref() {
            return Ok(id.clone());
        }
        // Jellyfin lists users at /Users; Emby 4.8 documents /Users/Query (a
        // QueryResult) instead. Each flavor asks its own route first and
        // the other one if that does not exist.
        let (first, second) = match self.flavor {
            Flavor::Jellyfin => (UserRoute::List, UserRoute::Query),
            Flavor::Emby => (UserRoute::Query, UserRoute::List),
        };
        let users = match self.users(first) {
            Err(err) if err.kind == ErrorKind::Rejected => self.users(second)?,
            other => other?,
        };
        let users: Vec<User> = users.into_iter().flatten().collect();
        let name = |user: &User| user.name.as_str().map(str::to_string);
        let found = match &self.user {
            Some(wanted) => users.iter().find(|user| name(user).is_some_and(|name| name.eq_ignore_ascii_case(wanted))),
            None => users
                .iter()
                .find(|user| user.policy.0.as_ref().and_then(|policy| policy.is_administrator.0) == Some(true)),
        };
        let Some(id) = found.and_then(|user| user.id.as_str().map(str::to_string)) else {
            let names: Vec<String> = users.iter().filter_map(name).collect();
            let message = match &self.user {
                Some(wanted) => format!(
                    "the server has no user named \"{wanted}\" (it lists: {}); fix `user` in [[server]] \"{}\"",
                    names.join(", "),
                    self.name
                ),
                None => format!(
                    "the server lists no administrator to sync as; set `user` in [[server]] \"{}\" to one of: {}",
                    self.name,
                    names.join(", ")
                ),
            };
            return Err(SourceError::new(ErrorKind::Rejected, message));
        };
        *cached = Some(id.clone());
        Ok(id)
    }

    /// The users, from Jellyfin's `/Users` (a list) or Emby's
    /// `/Users/Query` (a `QueryResult`).
    fn users(&self, route: UserRoute) -> Result<Vec<Option<User>>, SourceError> {
        Ok(match route {
            UserRoute::List => self.get::<Entries<User>>("/Users", 0)?.0,
            UserRoute::Query => self.get::<QueryResult<User>>("/Users/Query", 0)?.items.0,
        })
    }

    fn item_type(&self, library: &LibraryInfo, kind: Kind) -> &'static str {
        let types = self.collection_types.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        item_type(types.get(&library.id).map(String::as_str), kind)
    }

    /// The items of one kind of a library, from `start`; `ids` (already
    /// encoded, comma-separated, or empty) keeps only those items.
    /// Parameter names are PascalCase: Emby's spelling, which Jellyfin binds
    /// too (case-insensitively).
    #[allow(clippy::too_many_arguments)] // the listing's parameters, each one a query parameter
    fn items_path(
        &self,
        user_id: &str,
        library: &LibraryInfo,
        kind: Kind,
        order: Order,
        start: u64,
        size: u32,
        ids: &str,
    ) -> String {
        let route = if self.query_routes.load(Ordering::Relaxed) {
            format!("/Items?UserId={}&", encode(user_id))
        } else {
            format!("/Users/{}/Items?", encode(user_id))
        };
        let mut path = format!(
            "{route}ParentId={}&Recursive=true&IncludeItemTypes={}&StartIndex={start}&Limit={size}",
            encode(&library.id),
            self.item_type(library, kind),
        );
        if !ids.is_empty() {
            path.push_str(&format!("&Ids={ids}"));
        }
        if size == 0 {
            // A count: no fields, no sort, no user data to compute.
            path.push_str("&EnableUserData=false");
        } else {
            // Oldest addition first, so items added during a walk land after
            // the pages already walked.
            path.push_str(&format!(
                "&Fields={}&SortBy={}&SortOrder=Ascending&EnableUserData=false",
                encode(FIELDS),
                encode("DateCreated,SortName")
            ));
        }
        if let Order::ChangedSince(since) = order {
            let since = encode(&format_date(since));
            path.push_str(&format!("&MinDateLastSaved={since}"));
            // Jellyfin 10.8 and 10.10 bind the wrong SQL parameter for
            // MinDateLastSaved alone (no rows, or HTTP 500); the ForUser twin
            // with the same value fills it. On Emby the twin filters on
            // user-data changes and would hide metadata edits: not sent.
            if self.flavor == Flavor::Jellyfin {
                path.push_str(&format!("&MinDateLastSavedForUser={since}"));
            }
        }
        path
    }
}

impl Source for Jellyfin {
    fn describe(&self) -> String {
        match self.flavor {
            Flavor::Jellyfin => format!("jellyfin server \"{}\"", self.name),
            Flavor::Emby => format!("emby server \"{}\"", self.name),
        }
    }

    fn libraries(&self) -> Result<Vec<LibraryInfo>, SourceError> {
        let user_id = self.user_id()?;
        let user = encode(&user_id);
        let views: QueryResult<View> = match self.get(&format!("/Users/{user}/Views"), 0) {
            Err(err) if err.kind == ErrorKind::Rejected && self.flavor == Flavor::Jellyfin => {
                let views = self.get(&format!("/UserViews?UserId={user}"), 0)?;
                self.query_routes.store(true, Ordering::Relaxed);
                views
            }
            other => other?,
        };
        let mut libraries = Vec::new();
        let mut types = HashMap::new();
        for view in views.items.0.into_iter().flatten() {
            let Some(id) = view.id.as_str().map(str::to_string) else {
                continue;
            };
            let collection_type = view.collection_type.as_str().unwrap_or_default();
            let kinds = match collection_type {
                "movies" | "musicvideos" | "homevideos" => vec![Kind::Movie],
                "tvshows" => vec![Kind::Show, Kind::Season, Kind::Episode],
                "music" => vec![Kind::Artist, Kind::Album, Kind::Track],
                "boxsets" => vec![Kind::Playlist],
                _ => continue, // books, photos, playlists, livetv, mixed folders
            };
            let title = view.name.as_str().map_or_else(|| id.clone(), str::to_string);
            types.insert(id.clone(), collection_type.to_string());
            // Items carry no change time, but the listing filters by save time.
            libraries.push(LibraryInfo {
                id,
                title,
                kinds,
                strategy: Strategy::ChangedSince,
                nesting: Nesting::Flat,
                lookup_batch: LOOKUP_BATCH,
            });
        }
        *self.collection_types.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = types;
        Ok(filter_libraries(libraries, self.libraries.as_deref()))
    }

    fn page(
        &self,
        library: &LibraryInfo,
        kind: Kind,
        order: Order,
        position: Position<'_>,
        size: u32,
    ) -> Result<Page, SourceError> {
        let start = position.offset(self)?;
        let user_id = self.user_id()?;
        let path = self.items_path(&user_id, library, kind, order, start, size, "");
        let answer = self.get(&path, size)?;
        page_of(answer, kind, accepted_types(self.item_type(library, kind))).checked(
            start,
            size,
            &format!("{}{path}", self.http.base()),
        )
    }

    fn children(&self, library: &LibraryInfo, parent: &str, _start: u64, _size: u32) -> Result<Page, SourceError> {
        Err(no_children(&self.describe(), library, parent))
    }

    fn count(&self, library: &LibraryInfo, kind: Kind) -> Result<Option<u64>, SourceError> {
        Ok(self.page(library, kind, Order::Stable, Position::Offset(0), 0)?.total)
    }

    /// The kind's listing with `Ids=`: the server keeps only those ids among
    /// the library's items of that type (with `Recursive` and a library as
    /// `ParentId`, an item moved to another library is not among them).
    fn lookup(
        &self,
        library: &LibraryInfo,
        kind: Kind,
        ids: &[String],
        _anchor: Option<&str>,
    ) -> Result<Vec<Present>, SourceError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let user_id = self.user_id()?;
        let encoded: Vec<String> = ids.iter().map(|id| encode(id)).collect();
        let size = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        let path = self.items_path(&user_id, library, kind, Order::Stable, 0, size, &encoded.join(","));
        let answer: QueryResult<Entry> = self.get(&path, size)?;
        let at = format!("{}{path}", self.http.base());
        let returned = u64::try_from(answer.items.0.len()).unwrap_or(u64::MAX);
        if answer.total.count().is_some_and(|total| total > returned) {
            return Err(SourceError::new(
                ErrorKind::Unavailable,
                format!("{at}: the answer holds {returned} items but counts more; asking again"),
            ));
        }
        let accepted = accepted_types(self.item_type(library, kind));
        let mut present = Vec::new();
        for entry in answer.items.0.into_iter().flatten() {
            let Some(id) = entry.id.as_str().map(str::to_string) else {
                continue;
            };
            if let Some(err) = unasked(&at, ids, None, &id) {
                return Err(err);
            }
            present.push(Present::read(parse_item(Some(entry), kind, accepted), id, &self.describe()));
        }
        Ok(present)
    }

    fn requests(&self) -> u64 {
        self.http.requests()
    }

    fn server_time(&self) -> Option<i64> {
        self.http.server_time()
    }

    fn observe_waits(&self, _observer: WaitObserver) {}
}

/// The `Authorization: MediaBrowser …` value every request (and the
/// notification socket's upgrade) carries: the client, a device id stable
/// per configured server (a sign-in replaces the token of the same device
/// rather than piling up sessions), and the token when there is one.
pub fn authorization(server: &str, token: Option<&str>) -> String {
    let mut value = format!(
        "MediaBrowser Client=\"mediasync\", Device=\"mediasync\", DeviceId=\"mediasync-{server}\", Version=\"{}\"",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(token) = token {
        value.push_str(&format!(", Token=\"{token}\""));
    }
    value
}

/// The server item type a kind stands for in a view of this collection type.
/// Music videos and home videos are single films, so they map to movies; a
/// collection (box set) is a named list of items, so it maps to a playlist.
fn item_type(collection_type: Option<&str>, kind: Kind) -> &'static str {
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
    }
}

fn accepted_types(item_type: &'static str) -> &'static [&'static str] {
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
        _ => &["BoxSet"],
    }
}

/// Reads a listing answer (`/Users/{id}/Items`) of `kind` from `body`, as
/// `page` does, keeping entries of the `accepted` types: the parser the
/// property tests feed.
pub fn read_page(body: impl std::io::Read, kind: Kind, accepted: &[&str]) -> Result<Page, serde_json::Error> {
    Ok(page_of(serde_json::from_reader(body)?, kind, accepted))
}

fn page_of(answer: QueryResult<Entry>, kind: Kind, accepted: &[&str]) -> Page {
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
    Ok(item)
}

/// Which route lists the users.
#[derive(Clone, Copy)]
enum UserRoute {
    /// Jellyfin's `/Users`, a list.
    List,
    /// Emby's `/Users/Query`, a `QueryResult`.
    Query,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(value: serde_json::Value) -> Option<Entry> {
        Some(serde_json::from_value(value).unwrap())
    }

    #[test]
    fn episode_fields_map() {
        let value = json!({
            "Name": "Pilot", "Id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "Type": "Episode",
            "SeriesId": "11112222333344445555666677778888", "SeasonId": "99990000aaaabbbbccccddddeeeeffff",
            "IndexNumber": 1, "ParentIndexNumber": 1, "ProductionYear": 2014, "RunTimeTicks": 25_900_000_000i64,
            "DateCreated": "2020-01-02T00:00:00.0000000Z", "Etag": "3f2a", "SortName": "pilot",
            "ImageTags": {"Primary": "c0ffee", "Thumb": "beef"}, "Path": "/tv/The 100/S01E01.mkv",
            "ProviderIds": {"Tvdb": "4812", "Imdb": "tt3231564"}, "UserData": {"PlayCount": 3}
        });
        let item = parse_item(entry(value), Kind::Episode, &["Episode"]).unwrap();
        assert_eq!(item.id, "0a1b2c3d4e5f60718293a4b5c6d7e8f9");
        assert_eq!(item.parent_id.as_deref(), Some("99990000aaaabbbbccccddddeeeeffff"));
        assert_eq!(item.added_at, Some(1_577_923_200));
        assert_eq!(item.updated_at, 1_577_923_200);
        assert_eq!(item.duration_ms, Some(2_590_000));
        assert_eq!(item.guid.as_deref(), Some("imdb://tt3231564"));
        assert_eq!(item.thumb.as_deref(), Some("/Items/0a1b2c3d4e5f60718293a4b5c6d7e8f9/Images/Primary?tag=c0ffee"));
        assert_eq!(item.marker.as_deref(), Some("3f2a"));
        assert_eq!(item.file.as_deref(), Some("/tv/The 100/S01E01.mkv"));
    }

    #[test]
    fn parents_fall_back_and_types_are_checked() {
        let album = json!({"Id": 5012, "Name": "Album", "Type": "MusicAlbum", "AlbumArtists": [{"Name": "A", "Id": "77"}], "ParentId": "9"});
        assert_eq!(parse_item(entry(album), Kind::Album, &["MusicAlbum"]).unwrap().parent_id.as_deref(), Some("77"));
        let orphan = json!({"Id": "5013", "Name": "Album", "Type": "MusicAlbum", "ParentId": "9"});
        assert_eq!(parse_item(entry(orphan), Kind::Album, &["MusicAlbum"]).unwrap().parent_id.as_deref(), Some("9"));
        let track = json!({"Id": "1", "Name": "T", "Type": "Audio", "AlbumId": "5012"});
        assert_eq!(parse_item(entry(track), Kind::Track, &["Audio"]).unwrap().parent_id.as_deref(), Some("5012"));
        let wrong = json!({"Id": "2", "Name": "x", "Type": "Folder"});
        assert_eq!(parse_item(entry(wrong), Kind::Movie, &["Movie"]).unwrap_err().id.as_deref(), Some("2"));
        assert_eq!(parse_item(entry(json!({"Name": "x"})), Kind::Movie, &["Movie"]).unwrap_err().id, None);
        let video = json!({"Id": "3", "Name": "Birthday", "Type": "Video"});
        assert_eq!(
            parse_item(entry(video), Kind::Movie, accepted_types(item_type(Some("homevideos"), Kind::Movie)))
                .unwrap()
                .title,
            "Birthday"
        );
    }

    #[test]
    fn dates_round_trip_in_the_servers_format() {
        assert_eq!(parse_date("2020-01-02T00:00:00.0000000Z"), Some(1_577_923_200));
        assert_eq!(parse_date("2020-01-02T00:00:00"), Some(1_577_923_200));
        assert_eq!(parse_date("2020-01-02T01:00:00.5+01:00"), Some(1_577_923_200));
        assert_eq!(format_date(1_577_923_200), "2020-01-02T00:00:00.0000000Z");
        assert_eq!(parse_date(&format_date(1_700_000_123)), Some(1_700_000_123));
        assert_eq!(parse_date("yesterday"), None);
    }
}
