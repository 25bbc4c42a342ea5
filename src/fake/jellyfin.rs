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

mod notify;
mod quick_connect;

pub use super::Expected;
pub use super::Failure;
use super::churn::{Changes, Changing};
use super::{Fake, Faults, Recording, date_header, header, query};
use crate::model::{Kind, content_hash};
pub(crate) use notify::Noted;
pub use notify::Notifier;
use serde_json::{Map, Value, json};
use std::sync::Mutex;
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
    pub play_count: u64,
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

impl Fake<JellyfinState> {
    /// Starts an empty server on 127.0.0.1 with an OS-chosen port.
    pub fn start(behaviour: Behaviour, api_key: &str) -> FakeJellyfin {
        let mut state = JellyfinState {
            behaviour,
            api_key: api_key.to_string(),
            users: Vec::new(),
            views: Vec::new(),
            clock: BASE_TIME,
            log: Vec::new(),
            max_page: None,
            filter_fault: None,
            user_routes: true,
            delay: Duration::ZERO,
            notifier: Notifier::default(),
            quick_connect: quick_connect::QuickConnect::default(),
            requests: 0,
            next_serial: 1,
            faults: Faults::default(),
            changes: Changes::default(),
        };
        // The first user is not an administrator: "the first administrator"
        // must be looked for, not assumed.
        for (name, admin) in [("guest", false), ("admin", true), ("alice", true)] {
            let id = state.take_id();
            state.users.push(FakeUser { id, name: name.to_string(), admin, password: format!("{name}-password") });
        }
        let fake =
            Fake::serve_with_sockets("127.0.0.1:0", state, handle, notify::upgrade).expect("binding 127.0.0.1:0 works");
        notify::start_timer(std::sync::Arc::downgrade(&fake.state));
        fake
    }

    /// Adds a view (library) of a collection type, returning its id.
    pub fn add_view(&self, name: &str, collection_type: &'static str) -> String {
        let mut state = self.state();
        let id = state.take_id();
        state.views.push(FakeView { id: id.clone(), name: name.to_string(), collection_type, items: Vec::new() });
        id
    }

    pub fn add_movies(&self, name: &str, count: usize) -> String {
        let view = self.add_view(name, "movies");
        let mut state = self.state();
        for number in 0..count {
            state.generated(&view, "Movie", None, number);
        }
        view
    }

    /// `shows` series of `seasons` seasons of `episodes` episodes.
    pub fn add_shows(&self, name: &str, shows: usize, seasons: usize, episodes: usize) -> String {
        let view = self.add_view(name, "tvshows");
        let mut state = self.state();
        for show in 0..shows {
            let series = state.generated(&view, "Series", None, show);
            for season in 0..seasons {
                let season_id = state.generated(&view, "Season", Some(&series), season);
                for episode in 0..episodes {
                    state.generated(&view, "Episode", Some(&season_id), episode);
                }
            }
        }
        view
    }

    /// Artists with albums with tracks.
    pub fn add_music(&self, name: &str, artists: usize, albums: usize, tracks: usize) -> String {
        let view = self.add_view(name, "music");
        let mut state = self.state();
        for artist in 0..artists {
            let artist_id = state.generated(&view, "MusicArtist", None, artist);
            for album in 0..albums {
                let album_id = state.generated(&view, "MusicAlbum", Some(&artist_id), album);
                for track in 0..tracks {
                    state.generated(&view, "Audio", Some(&album_id), track);
                }
            }
        }
        view
    }

    /// A flat view of one item type: music videos (`MusicVideo`), home
    /// videos (`Video`), collections (`BoxSet`), photos (`Photo`).
    pub fn add_flat(&self, name: &str, collection_type: &'static str, count: usize) -> String {
        let view = self.add_view(name, collection_type);
        let item_type = flat_type(collection_type);
        let mut state = self.state();
        for number in 0..count {
            state.generated(&view, item_type, None, number);
        }
        view
    }

    /// A mixed library of about `items` items: 40% movies, 40% TV, 20%
    /// music, a few home videos, music videos and collections, plus views a
    /// client must skip.
    pub fn add_library_of(&self, items: usize) {
        self.add_movies("Movies", (items * 2 / 5).max(1));
        // One series = 1 + 2 seasons + 2*10 episodes = 23 items.
        self.add_shows("Shows", (items * 2 / 5 / 23).max(1), 2, 10);
        // One artist = 1 + 2 albums + 2*9 tracks = 21 items.
        self.add_music("Music", (items / 5 / 21).max(1), 2, 9);
        self.add_flat("Home Videos", "homevideos", 7);
        self.add_flat("Music Videos", "musicvideos", 5);
        self.add_flat("Collections", "boxsets", 3);
        self.add_flat("Photos", "photos", 20);
        self.add_view("Playlists", "playlists");
    }

    /// Adds an item now, of the type `kind` stands for in the view.
    pub fn add_item(&self, view: &str, kind: Kind, name: &str, parent: Option<&str>) -> String {
        self.state().add(view, kind, name, parent, None)
    }

    /// Renames an item now, as a metadata edit does.
    pub fn edit_title(&self, id: &str, name: &str) {
        self.state().change(id, |item, now| {
            item.name = name.to_string();
            item.saved = now;
        });
    }

    /// Edits metadata a client does not store (the overview): only the save
    /// time, hence the `Etag`, changes.
    pub fn edit_overview(&self, id: &str) {
        self.state().change(id, |item, now| {
            item.overview = format!("Rewritten at {now}.");
            item.saved = now;
        });
    }

    /// Replaces the primary image: `ImageTags.Primary` and the save time change.
    pub fn replace_image(&self, id: &str) {
        self.state().change(id, |item, now| {
            item.image_at = now;
            item.saved = now;
        });
    }

    /// Plays an item: user data changes, the item is not saved.
    pub fn play(&self, id: &str) {
        self.state().change(id, |item, now| {
            item.play_count += 1;
            item.user_data_at = now;
        });
    }

    /// Authorises a Quick Connect code as the named user's app does; false
    /// when no such pending code or user.
    pub fn authorize_quick_connect(&self, code: &str, user: &str) -> bool {
        quick_connect::authorize(&mut self.state(), code, user)
    }

    /// The notification sockets (test controls: drop, refuse, count).
    pub fn sockets(&self) -> std::sync::Arc<super::sockets::Sockets<notify::Subscriber>> {
        std::sync::Arc::clone(&self.state().notifier.sockets)
    }

    /// Deletes an item and everything below it, as the servers do.
    pub fn delete(&self, id: &str) {
        self.state().remove(id);
    }

    /// Ids of a view's items of one kind, in insertion order.
    pub fn ids(&self, view: &str, kind: Kind) -> Vec<String> {
        let state = self.state();
        let Some(view) = state.views.iter().find(|candidate| candidate.id == view) else {
            return Vec::new();
        };
        let item_type = type_for(view.collection_type, kind);
        view.items.iter().filter(|item| item.item_type == item_type).map(|item| item.id.clone()).collect()
    }

    /// The id of the first view with this name.
    pub fn view_id(&self, name: &str) -> String {
        self.state().views.iter().find(|view| view.name == name).map(|view| view.id.clone()).expect("no such view")
    }

    pub fn item_count(&self) -> usize {
        self.expected().len()
    }

    /// What an exact mirror holds: the synced views' items, mapped the way
    /// the client maps them.
    pub fn expected(&self) -> Vec<Expected> {
        let state = self.state();
        let mut rows: Vec<Expected> = state
            .views
            .iter()
            .filter(|view| SYNCED.contains(&view.collection_type))
            .flat_map(|view| {
                view.items.iter().map(|item| Expected {
                    library: view.id.clone(),
                    id: item.id.clone(),
                    kind: kind_of(item.item_type),
                    title: item.name.clone(),
                    parent_id: item.parent.clone(),
                    updated_at: item.created,
                })
            })
            .collect();
        rows.sort();
        rows
    }
}

impl JellyfinState {
    pub(crate) fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.clock
    }

    pub(crate) fn take_serial(&mut self) -> u64 {
        let serial = self.next_serial;
        self.next_serial += 1;
        serial
    }

    /// Jellyfin ids are GUIDs written as 32 hex digits; Emby's look numeric.
    pub(crate) fn take_id(&mut self) -> String {
        let serial = self.take_serial();
        if self.behaviour.is_emby() {
            return (100_000 + serial).to_string();
        }
        let scrambled = u128::from(serial).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
        format!("{scrambled:032x}")
    }

    fn generated(&mut self, view: &str, item_type: &'static str, parent: Option<&str>, number: usize) -> String {
        let id = self.take_id();
        let serial = self.take_serial();
        let created = GENERATED_AT + serial as i64 * 7;
        let name = match item_type {
            "Season" => format!("Season {}", number + 1),
            "Episode" => format!("Episode {}", number + 1),
            other => format!("{other} {serial}"),
        };
        let item = FakeItem {
            id: id.clone(),
            item_type,
            name,
            parent: parent.map(str::to_string),
            index: parent.map(|_| number as i64 + 1),
            parent_index: (item_type == "Episode").then_some(1),
            year: Some(1990 + (serial % 35) as i32),
            created,
            saved: created + 3,
            image_at: created,
            user_data_at: created,
            play_count: 0,
            overview: String::new(),
            serial,
        };
        self.views.iter_mut().find(|candidate| candidate.id == view).expect("no such view").items.push(item);
        id
    }

    fn find(&self, id: &str) -> Option<&FakeItem> {
        self.views.iter().flat_map(|view| view.items.iter()).find(|item| item.id == id)
    }
}

fn flat_type(collection_type: &str) -> &'static str {
    match collection_type {
        "musicvideos" => "MusicVideo",
        "homevideos" => "Video",
        "boxsets" => "BoxSet",
        "photos" => "Photo",
        _ => "Movie",
    }
}

pub(crate) fn type_for(collection_type: &str, kind: Kind) -> &'static str {
    match kind {
        Kind::Movie | Kind::Playlist => flat_type(collection_type),
        Kind::Show => "Series",
        Kind::Season => "Season",
        Kind::Episode => "Episode",
        Kind::Artist => "MusicArtist",
        Kind::Album => "MusicAlbum",
        Kind::Track => "Audio",
    }
}

fn kind_of(item_type: &str) -> Kind {
    match item_type {
        "Series" => Kind::Show,
        "Season" => Kind::Season,
        "Episode" => Kind::Episode,
        "MusicArtist" => Kind::Artist,
        "MusicAlbum" => Kind::Album,
        "Audio" => Kind::Track,
        "BoxSet" => Kind::Playlist,
        _ => Kind::Movie,
    }
}

struct Answer {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    retry_after: Option<u64>,
}

fn text(status: u16, message: &str) -> Answer {
    Answer { status, content_type: "text/plain; charset=utf-8", body: message.as_bytes().to_vec(), retry_after: None }
}

fn json_answer(value: &Value) -> Answer {
    Answer {
        status: 200,
        content_type: "application/json; charset=utf-8",
        body: serde_json::to_vec(value).expect("JSON values serialize"),
        retry_after: None,
    }
}

/// The `Token="…"` of a `MediaBrowser` authorization header.
fn mediabrowser_token(value: &str) -> Option<&str> {
    let rest = value.trim().strip_prefix("MediaBrowser").or_else(|| value.trim().strip_prefix("Emby"))?;
    rest.split(',').find_map(|part| {
        let (name, value) = part.trim().split_once('=')?;
        name.trim().eq_ignore_ascii_case("Token").then(|| value.trim().trim_matches('"'))
    })
}

fn handle(state: &Mutex<JellyfinState>, mut request: tiny_http::Request) {
    let delay = state.lock().map(|state| state.delay).unwrap_or_default();
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let mut body = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::Read::take(request.as_reader(), 64 << 10), &mut body);
    let mut failure = None;
    let (answer, clock) = answer(state, &request, &body, &mut failure);
    let mut headers = vec![("Content-Type".to_string(), answer.content_type.to_string()), date_header(clock)];
    if let Some(seconds) = answer.retry_after {
        headers.push(("Retry-After".to_string(), seconds.to_string()));
    }
    super::hostile::send(request, answer.status, headers, answer.body, failure.as_ref());
}

/// The answer to `request` and the clock; `injected` gets the failure
/// injected for it.
fn answer(
    shared: &Mutex<JellyfinState>,
    request: &tiny_http::Request,
    body: &str,
    injected: &mut Option<Failure>,
) -> (Answer, i64) {
    let mut state = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    state.requests += 1;
    let number = state.requests;
    let (path, params) = query::split(request.url());
    state.log.push(Logged { number, path: path.clone(), query: params.clone(), status: 200, returned: 0 });
    let post = request.method() == &tiny_http::Method::Post;
    let authorization = header(request, "Authorization");
    // The library changes between a client's requests, never during one.
    let churns = path.to_ascii_lowercase().ends_with("/items");
    state.before_answer(number, churns);
    let answer = if path == "/Users/AuthenticateByName" && post {
        notify::authenticate(&mut state, authorization, body)
    } else if let Some(answer) = quick_connect::answer(&mut state, post, &path, &params, authorization, body) {
        answer
    } else {
        respond(&mut state, request, number, &path, &params, injected)
    };
    if let Some(entry) = state.log.last_mut() {
        entry.status = answer.status;
    }
    (answer, state.clock)
}

fn respond(
    state: &mut JellyfinState,
    request: &tiny_http::Request,
    number: u64,
    path: &str,
    params: &[(String, String)],
    injected: &mut Option<Failure>,
) -> Answer {
    let failure = state.faults.take(number, path);
    injected.clone_from(&failure);
    match &failure {
        Some(Failure::Status(code)) => return text(*code, "Error processing request."),
        Some(Failure::RateLimited(seconds)) => {
            let mut answer = text(429, "Too Many Requests");
            answer.retry_after = Some(*seconds);
            return answer;
        }
        Some(Failure::Garbage) => {
            return Answer {
                status: 200,
                content_type: "application/json",
                body: b"\x00\x13garbage{{{<html>not json".to_vec(),
                retry_after: None,
            };
        }
        _ => {}
    }
    let behaviour = state.behaviour;
    // Jellyfin binds query names case-insensitively; Emby only as spelled
    // in its spec (PascalCase).
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| if behaviour.is_emby() { key == name } else { key.eq_ignore_ascii_case(name) })
            .map(|(_, value)| value.as_str())
    };
    let legacy_allowed = behaviour != Behaviour::Jellyfin12;
    let token = header(request, "Authorization")
        .and_then(mediabrowser_token)
        .or_else(|| header(request, "X-Emby-Authorization").filter(|_| legacy_allowed).and_then(mediabrowser_token))
        .or_else(|| header(request, "X-Emby-Token").filter(|_| legacy_allowed))
        .or_else(|| {
            { params.iter().find(|(key, _)| key.eq_ignore_ascii_case("api_key")).map(|(_, value)| value.as_str()) }
                .filter(|_| legacy_allowed)
        });
    if path == "/System/Info/Public" {
        return json_answer(&json!({
            "LocalAddress": "http://127.0.0.1:8096",
            "ServerName": "fake",
            "Version": behaviour.version(),
            "ProductName": if behaviour.is_emby() { "Emby Server" } else { "Jellyfin Server" },
            "Id": "f00dfeedf00dfeedf00dfeedf00dfeed",
        }));
    }
    let signed_in = token.is_some_and(|token| state.notifier.user_of(token).is_some());
    if token != Some(state.api_key.as_str()) && !signed_in {
        return text(401, "Unauthorized");
    }
    // Emby 4.8 lists users at /Users/Query (a QueryResult), Jellyfin at
    // /Users (an array); neither has the other's route.
    let mut body = if path.eq_ignore_ascii_case("/Users") && !behaviour.is_emby() {
        users_json(state)
    } else if path == "/Users/Query" && behaviour.is_emby() {
        json!({"Items": users_json(state), "TotalRecordCount": state.users.len()})
    } else if let Some((user_id, route)) = user_route(state, path, &param) {
        if !state.users.iter().any(|user| user.id == user_id) {
            return text(404, "User not found");
        }
        if route.eq_ignore_ascii_case("Views") {
            views_json(state)
        } else if route.eq_ignore_ascii_case("Items") {
            match items_json(state, &param) {
                Ok((value, returned)) => {
                    if let Some(entry) = state.log.last_mut() {
                        entry.returned = returned;
                    }
                    value
                }
                Err(answer) => return answer,
            }
        } else {
            return text(404, "Not Found");
        }
    } else {
        return text(404, "Not Found");
    };
    if behaviour.is_emby() {
        if let Some(object) = body.as_object_mut() {
            object.remove("StartIndex");
        }
    }
    if failure == Some(Failure::Emptied) {
        if let Some(items) = body.get_mut("Items") {
            *items = json!([]);
        }
    }
    let mut answer = json_answer(&body);
    if failure == Some(Failure::Truncated) {
        answer.body.truncate(answer.body.len() / 2);
    }
    answer
}

/// The user and the route (`Views` or `Items`) of a request, through the
/// user-scoped path or, on Jellyfin 10.10 and up, `/UserViews?userId=` and
/// `/Items?userId=`.
fn user_route<'a>(
    state: &JellyfinState,
    path: &'a str,
    param: &dyn Fn(&str) -> Option<&'a str>,
) -> Option<(&'a str, &'static str)> {
    let route = |name: &str| {
        if name.eq_ignore_ascii_case("Views") {
            "Views"
        } else if name.eq_ignore_ascii_case("Items") {
            "Items"
        } else {
            ""
        }
    };
    if let Some(rest) = path.strip_prefix("/Users/") {
        let (user_id, name) = rest.split_once('/')?;
        return Some((user_id, route(name))).filter(|_| state.user_routes);
    }
    let query_routes = !matches!(state.behaviour, Behaviour::Jellyfin10_8 | Behaviour::Emby);
    let name = match path {
        _ if !query_routes => return None,
        _ if path.eq_ignore_ascii_case("/UserViews") => "Views",
        _ if path.eq_ignore_ascii_case("/Items") => "Items",
        _ => return None,
    };
    Some((param("UserId")?, name))
}

fn users_json(state: &JellyfinState) -> Value {
    let users: Vec<Value> = state
        .users
        .iter()
        .map(|user| {
            json!({
                "Name": user.name,
                "ServerId": "f00dfeedf00dfeedf00dfeedf00dfeed",
                "Id": user.id,
                "HasPassword": true,
                "HasConfiguredPassword": true,
                "EnableAutoLogin": false,
                "LastLoginDate": "2023-11-14T22:13:20.0000000Z",
                "Configuration": {"PlayDefaultAudioTrack": true, "HidePlayedInLatest": true},
                "Policy": {"IsAdministrator": user.admin, "IsHidden": false, "IsDisabled": false, "EnableAllFolders": true},
            })
        })
        .collect();
    Value::Array(users)
}

fn views_json(state: &JellyfinState) -> Value {
    let items: Vec<Value> = state
        .views
        .iter()
        .map(|view| {
            json!({
                "Name": view.name,
                "ServerId": "f00dfeedf00dfeedf00dfeedf00dfeed",
                "Id": view.id,
                "Etag": format!("{:016x}", content_hash(view.id.as_bytes())),
                "DateCreated": iso_date(GENERATED_AT),
                "IsFolder": true,
                "Type": "CollectionFolder",
                "CollectionType": view.collection_type,
                "ImageTags": {"Primary": format!("{:016x}", content_hash(view.name.as_bytes()))},
                "LocationType": "FileSystem",
            })
        })
        .collect();
    json!({"Items": items, "TotalRecordCount": state.views.len(), "StartIndex": 0})
}

fn iso_date(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S.0000000Z").to_string()
}

/// ISO 8601 as ASP.NET binds it: with or without fraction and zone (no zone
/// meaning UTC here). Parsed here rather than borrowed from the client, so a
/// client bug in date handling cannot be mirrored by the fake.
fn parse_date(text: &str) -> Option<i64> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(time.timestamp());
    }
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map(|date| date.and_time(chrono::NaiveTime::MIN))
        });
    naive.ok().map(|time| time.and_utc().timestamp())
}

/// `/Users/{id}/Items`: filtering, sorting, paging, and the date-filter
/// behaviour of each version.
fn items_json<'p>(state: &JellyfinState, param: &dyn Fn(&str) -> Option<&'p str>) -> Result<(Value, usize), Answer> {
    let behaviour = state.behaviour;
    let recursive = param("Recursive").is_some_and(|value| value.eq_ignore_ascii_case("true"));
    let types: Vec<&str> = param("IncludeItemTypes")
        .map(|value| value.split(',').map(str::trim).filter(|name| !name.is_empty()).collect())
        .unwrap_or_default();
    let mut items: Vec<&FakeItem> = match param("ParentId") {
        Some(parent) => match state.views.iter().find(|view| view.id == parent) {
            Some(view) => view.items.iter().filter(|item| recursive || item.parent.is_none()).collect(),
            None if state.find(parent).is_some() => state
                .views
                .iter()
                .flat_map(|view| view.items.iter())
                .filter(|item| item.parent.as_deref() == Some(parent))
                .collect(),
            None => return Err(text(400, "Error processing request.")),
        },
        None => state.views.iter().flat_map(|view| view.items.iter()).collect(),
    };
    if !types.is_empty() {
        items.retain(|item| types.iter().any(|name| name.eq_ignore_ascii_case(item.item_type)));
    }
    // `Ids` narrows the query (the library and types still apply). Jellyfin
    // binds it as GUIDs: anything else is a 400; Emby's ids are plain text.
    if let Some(ids) = param("Ids") {
        let ids: Vec<&str> = ids.split(',').map(str::trim).filter(|id| !id.is_empty()).collect();
        let guid = |id: &&str| id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit());
        if !behaviour.is_emby() && !ids.iter().all(guid) {
            return Err(text(400, "Error processing request."));
        }
        items.retain(|item| ids.contains(&item.id.as_str()));
    }
    let date = |name: &str| -> Result<Option<i64>, Answer> {
        match param(name) {
            None => Ok(None),
            Some(value) => parse_date(value).map(Some).ok_or_else(|| text(400, "Error processing request.")),
        }
    };
    let saved_since = date("MinDateLastSaved")?;
    let user_since = date("MinDateLastSavedForUser")?;
    let filtered = saved_since.is_some() || user_since.is_some();
    match state.filter_fault {
        Some(FilterFault::Ignored) => {}
        Some(FilterFault::Fails) if filtered => return Err(text(500, "Error processing request.")),
        Some(FilterFault::Empties) if filtered => items.clear(),
        _ => match (behaviour, saved_since, user_since) {
            (Behaviour::Jellyfin10_8, Some(_), None) => items.clear(),
            (Behaviour::Jellyfin10_10, Some(_), None) => {
                return Err(text(500, "Error processing request."));
            }
            // 10.8 and 10.10 bind the ForUser value to both clauses.
            (Behaviour::Jellyfin10_8 | Behaviour::Jellyfin10_10, _, Some(since)) => {
                items.retain(|item| item.saved >= since);
            }
            (Behaviour::Emby, saved, user) => {
                items.retain(|item| {
                    saved.is_none_or(|since| item.saved >= since) && user.is_none_or(|since| item.user_data_at >= since)
                });
            }
            (_, saved, user) => {
                items.retain(|item| {
                    saved.is_none_or(|since| item.saved >= since) && user.is_none_or(|since| item.saved >= since)
                });
            }
        },
    }
    let sort_by: Vec<String> =
        param("SortBy").unwrap_or("SortName").split(',').map(|name| name.trim().to_ascii_lowercase()).collect();
    let descending = param("SortOrder").is_some_and(|order| order.eq_ignore_ascii_case("Descending"));
    items.sort_by(|a, b| {
        let mut order = std::cmp::Ordering::Equal;
        for field in &sort_by {
            order = order.then_with(|| match field.as_str() {
                "datecreated" => a.created.cmp(&b.created),
                "name" | "sortname" => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
                _ => std::cmp::Ordering::Equal,
            });
        }
        let order = if descending { order.reverse() } else { order };
        order.then_with(|| a.serial.cmp(&b.serial))
    });
    let total = items.len();
    let start = param("StartIndex").and_then(|value| value.parse::<usize>().ok()).unwrap_or(0);
    let limit = param("Limit").and_then(|value| value.parse::<usize>().ok());
    let mut size = limit.unwrap_or(usize::MAX);
    if let Some(cap) = state.max_page {
        size = size.min(cap as usize);
    }
    let page: Vec<&FakeItem> = items.into_iter().skip(start).take(size).collect();
    // Without a limit the server counts only what it returned.
    let total = if limit.is_none() { page.len() } else { total };
    let fields: Vec<String> = param("Fields")
        .map(|value| value.split(',').map(|name| name.trim().to_ascii_lowercase()).collect())
        .unwrap_or_default();
    let user_data = !param("EnableUserData").is_some_and(|value| value.eq_ignore_ascii_case("false"));
    let returned = page.len();
    let items: Vec<Value> = page.into_iter().map(|item| item_json(state, item, &fields, user_data)).collect();
    Ok((json!({"Items": items, "TotalRecordCount": total, "StartIndex": start}), returned))
}

/// An item the way the servers send it: always-present fields, the
/// requested optional ones, and fields the client ignores.
fn item_json(state: &JellyfinState, item: &FakeItem, fields: &[String], user_data: bool) -> Value {
    let wants = |name: &str| fields.iter().any(|field| field == name);
    let mut value = Map::new();
    value.insert("Name".into(), json!(item.name));
    value.insert("ServerId".into(), json!("f00dfeedf00dfeedf00dfeedf00dfeed"));
    value.insert("Id".into(), json!(item.id));
    if wants("etag") {
        let saved = item.saved.to_be_bytes();
        value.insert(
            "Etag".into(),
            json!(format!("{:016x}{:016x}", content_hash(&saved), content_hash(&item.saved.to_le_bytes()))),
        );
    }
    if wants("datecreated") {
        value.insert("DateCreated".into(), json!(iso_date(item.created)));
    }
    if wants("sortname") {
        value.insert("SortName".into(), json!(item.name.to_lowercase()));
    }
    if wants("path") {
        value.insert("Path".into(), json!(format!("/media/{}/{}.mkv", item.item_type, item.name)));
    }
    if wants("overview") {
        value.insert("Overview".into(), json!(item.overview));
    }
    if wants("providerids") {
        let ids = match item.item_type {
            "Movie" => json!({"Tmdb": item.serial.to_string(), "Imdb": format!("tt{:07}", item.serial)}),
            "Series" | "Episode" => json!({"Tvdb": item.serial.to_string()}),
            "MusicAlbum" => json!({"MusicBrainzAlbum": format!("00000000-0000-4000-8000-{:012}", item.serial)}),
            _ => json!({}),
        };
        value.insert("ProviderIds".into(), ids);
    }
    if wants("parentid") {
        let parent = item.parent.clone().or_else(|| {
            state
                .views
                .iter()
                .find(|view| view.items.iter().any(|other| other.id == item.id))
                .map(|view| view.id.clone())
        });
        value.insert("ParentId".into(), json!(parent));
    }
    if let Some(year) = item.year {
        value.insert("ProductionYear".into(), json!(year));
    }
    if let Some(index) = item.index {
        value.insert("IndexNumber".into(), json!(index));
    }
    if let Some(parent_index) = item.parent_index {
        value.insert("ParentIndexNumber".into(), json!(parent_index));
    }
    let folder = matches!(item.item_type, "Series" | "Season" | "MusicArtist" | "MusicAlbum" | "BoxSet");
    value.insert("IsFolder".into(), json!(folder));
    value.insert("Type".into(), json!(item.item_type));
    if !folder {
        value.insert("RunTimeTicks".into(), json!(600_000_000i64 + item.serial as i64 * 10_000));
    }
    let parent = item.parent.as_deref().and_then(|parent| state.find(parent));
    match (item.item_type, parent) {
        ("Season", Some(series)) => {
            value.insert("SeriesId".into(), json!(series.id));
            value.insert("SeriesName".into(), json!(series.name));
        }
        ("Episode", Some(season)) => {
            value.insert("SeasonId".into(), json!(season.id));
            value.insert("SeasonName".into(), json!(season.name));
            if let Some(series) = season.parent.as_deref().and_then(|id| state.find(id)) {
                value.insert("SeriesId".into(), json!(series.id));
                value.insert("SeriesName".into(), json!(series.name));
            }
        }
        ("MusicAlbum", Some(artist)) => {
            value.insert("AlbumArtist".into(), json!(artist.name));
            value.insert("AlbumArtists".into(), json!([{"Name": artist.name, "Id": artist.id}]));
        }
        ("Audio", Some(album)) => {
            value.insert("AlbumId".into(), json!(album.id));
            value.insert("Album".into(), json!(album.name));
        }
        _ => {}
    }
    if user_data {
        value.insert(
            "UserData".into(),
            json!({"PlaybackPositionTicks": 0, "PlayCount": item.play_count, "IsFavorite": false, "Played": item.play_count > 0, "Key": item.id}),
        );
    }
    let image = format!("{:016x}", content_hash(format!("{}:{}", item.id, item.image_at).as_bytes()));
    value.insert("ImageTags".into(), json!({"Primary": image}));
    value.insert("BackdropImageTags".into(), json!([]));
    value.insert("LocationType".into(), json!("FileSystem"));
    value.insert("MediaType".into(), json!(if item.item_type == "Audio" { "Audio" } else { "Video" }));
    Value::Object(value)
}
