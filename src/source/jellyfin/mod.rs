//! Jellyfin (10.8 to 12) and Emby (4.8) as a `Source`: one module, since
//! Emby is Jellyfin's ancestor and both speak the same API; `Flavor` holds
//! the few differences. Authenticates with the `Authorization: MediaBrowser`
//! header (the only one Jellyfin 12 accepts by default), lists the user's
//! views and their items through the user-scoped routes every version has,
//! finds changes with the save-time filter (`Strategy::ChangedSince`), and
//! looks unseen items up with `Ids=` on the same listing. See the
//! Jellyfin/Emby part of `docs/servers.md`.

mod entry;

use super::http::{Http, body_cap, encode};
use super::lenient::{Entries, Flag, Object, Text};
use super::{
    ErrorKind, Order, Page, Position, Present, Source, SourceError, Stop, WaitObserver, filter_libraries, no_children,
    unasked,
};
use crate::config::{JellyfinConfig, ServerConfig};
use crate::model::{Kind, LibraryInfo, Nesting, Strategy};
pub use entry::{Entry, format_date, parse_date, parse_item, read_page};
use entry::{QueryResult, accepted_types, item_type, page_of};
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

/// Which route lists the users.
#[derive(Clone, Copy)]
enum UserRoute {
    /// Jellyfin's `/Users`, a list.
    List,
    /// Emby's `/Users/Query`, a `QueryResult`.
    Query,
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

    /// The server types of every kind of the library, comma-separated: one
    /// listing across kinds (`IncludeItemTypes` is a list on every version).
    fn library_types(&self, library: &LibraryInfo) -> String {
        let types: Vec<&str> = library.kinds.iter().map(|kind| self.item_type(library, *kind)).collect();
        types.join(",")
    }

    /// The kind of the library an entry of a listing across kinds stands
    /// for, by its `Type`; the first kind when the type is none of them
    /// (then `parse_item` reports the entry as unreadable, naming its type).
    fn kind_of(&self, library: &LibraryInfo, entry: Option<&Entry>) -> Kind {
        let listed = entry.and_then(|entry| entry.item_type());
        let found =
            library.kinds.iter().find(|kind| listed.is_some_and(|name| self.item_type(library, **kind) == name));
        found.or(library.kinds.first()).copied().unwrap_or(Kind::Movie)
    }

    /// The items of `types` (comma-separated server types) in a library,
    /// from `start`; `ids` (already encoded, comma-separated, or empty)
    /// keeps only those items, `saved_since` only those saved since then.
    /// Parameter names are PascalCase: Emby's spelling, which Jellyfin binds
    /// too (case-insensitively).
    #[allow(clippy::too_many_arguments)] // the listing's parameters, each one a query parameter
    fn items_path(
        &self,
        user_id: &str,
        library: &LibraryInfo,
        types: &str,
        saved_since: Option<i64>,
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
            encode(types),
        );
        if !ids.is_empty() {
            path.push_str(&format!("&Ids={ids}"));
        }
        if size == 0 {
            // A count: no fields, no sort, no user data to compute.
            path.push_str("&EnableUserData=false");
        } else {
            // Oldest addition first, so items added during a walk land after
            // the pages already walked; the user's played state with each.
            path.push_str(&format!(
                "&Fields={}&SortBy={}&SortOrder=Ascending&EnableUserData=true",
                encode(FIELDS),
                encode("DateCreated,SortName")
            ));
        }
        if let Some(since) = saved_since {
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

    /// One page (or, `size` 0, the count) of a listing of `types`.
    fn listing(
        &self,
        library: &LibraryInfo,
        types: &str,
        saved_since: Option<i64>,
        start: u64,
        size: u32,
    ) -> Result<(QueryResult<Entry>, String), SourceError> {
        let user_id = self.user_id()?;
        let path = self.items_path(&user_id, library, types, saved_since, start, size, "");
        let answer = self.get(&path, size)?;
        Ok((answer, format!("{}{path}", self.http.base())))
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
        let saved_since = match order {
            Order::ChangedSince(since) => Some(since),
            Order::Stable | Order::NewestChanged | Order::NewestSince(_) => None,
        };
        let item_type = self.item_type(library, kind);
        let (answer, at) = self.listing(library, item_type, saved_since, start, size)?;
        page_of(answer, kind, accepted_types(item_type)).checked(start, size, &at)
    }

    fn children(&self, library: &LibraryInfo, parent: &str, _start: u64, _size: u32) -> Result<Page, SourceError> {
        Err(no_children(&self.describe(), library, parent))
    }

    fn count(&self, library: &LibraryInfo, kind: Kind) -> Result<Option<u64>, SourceError> {
        Ok(self.page(library, kind, Order::Stable, Position::Offset(0), 0)?.total)
    }

    /// `IncludeItemTypes` naming every kind's type, with the save-time
    /// filter: each entry is read as the kind its `Type` stands for.
    fn changed(&self, library: &LibraryInfo, since: i64, start: u64, size: u32) -> Result<Page, SourceError> {
        let (answer, at) = self.listing(library, &self.library_types(library), Some(since), start, size)?;
        let items = answer
            .items
            .0
            .into_iter()
            .map(|entry| {
                let kind = self.kind_of(library, entry.as_ref());
                parse_item(entry, kind, accepted_types(self.item_type(library, kind)))
            })
            .collect();
        Page { items, total: answer.total.count(), next: Default::default() }.checked(start, size, &at)
    }

    fn count_library(&self, library: &LibraryInfo, saved_since: Option<i64>) -> Result<Option<u64>, SourceError> {
        let (answer, _) = self.listing(library, &self.library_types(library), saved_since, 0, 0)?;
        Ok(answer.total.count())
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
        let path = self.items_path(&user_id, library, self.item_type(library, kind), None, 0, size, &encoded.join(","));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PlayState;
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
            "ProviderIds": {"Tvdb": "4812", "Imdb": "tt3231564"}, "UserData": {"PlayCount": 3, "LastPlayedDate": "2021-03-04T05:06:07.1234567Z", "IsFavorite": false}
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
        // `Played` missing: three plays say it was played.
        let state = PlayState { played: true, play_count: 3, last_played_at: Some(1_614_834_367) };
        assert_eq!(item.play_state, Some(state));
    }

    #[test]
    fn user_data_reads_leniently() {
        let read = |user_data: serde_json::Value| {
            let value = json!({"Name": "Film", "Id": "f1", "Type": "Movie", "UserData": user_data});
            parse_item(entry(value), Kind::Movie, &["Movie"]).unwrap().play_state
        };
        let unplayed = PlayState { played: false, play_count: 0, last_played_at: None };
        assert_eq!(read(json!({"Played": false, "PlayCount": 0})), Some(unplayed));
        assert_eq!(read(json!({"Played": "yes", "PlayCount": -4, "LastPlayedDate": "never"})), Some(unplayed));
        let marked = PlayState { played: true, play_count: 0, last_played_at: None };
        assert_eq!(read(json!({"Played": true})), Some(marked), "marked played without a play");
        assert_eq!(read(json!(null)), None);
        assert_eq!(read(json!([1])), None);
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
