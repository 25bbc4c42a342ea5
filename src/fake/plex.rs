//! A fake Plex Media Server. Like the real one it answers XML unless JSON is
//! asked for, answers 401 (as text/html) without the right token, pages with
//! `X-Plex-Container-Start`/`-Size` (headers or query), reports `totalSize`
//! only on paged requests, sorts by `updatedAt`/`addedAt`/`titleSort`,
//! silently ignores the `addedAt>>=` filter (PMS 1.43+), serves items
//! shaped like the responses in `tests/data/plex` (`docs/servers.md`),
//! answers `/library/metadata/{id},{id},…` with the items that exist (404
//! when none does), and stamps every answer with a `Date` from its clock.
//! Tests mutate its library and inject failures at chosen request numbers.
//! Its notification socket (`/:/websockets/notifications`, token in the
//! `X-Plex-Token` header or query) pushes a `timeline` entry per state an
//! item goes through when it is added (0 to 5), edited or moved (5) or
//! deleted (9), and `activity` notifications of section scans (`scan`).

use super::churn::{Changes, Changing};
use super::front::Head;
use super::sockets::{Sockets, refuse};
use super::{Fake, Faults, Recording, date_header, header, query};
use crate::model::Kind;
use serde_json::{Map, Value, json};
use std::sync::Mutex;
use std::time::Duration;

pub use super::Failure;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    pub number: u64,
    pub path: String,
    pub item_type: Option<u8>,
    pub start: Option<u64>,
    pub size: Option<u64>,
    pub returned: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionKind {
    Movie,
    Show,
    Artist,
    Photo,
}

impl SectionKind {
    fn name(self) -> &'static str {
        match self {
            SectionKind::Movie => "movie",
            SectionKind::Show => "show",
            SectionKind::Artist => "artist",
            SectionKind::Photo => "photo",
        }
    }
}

#[derive(Clone, Debug)]
pub struct FakeItem {
    pub rating_key: String,
    pub kind: Kind,
    pub title: String,
    pub title_sort: Option<String>,
    pub parent: Option<String>,
    pub grandparent: Option<String>,
    pub index: Option<i64>,
    pub parent_index: Option<i64>,
    pub year: Option<i32>,
    pub added_at: i64,
    pub updated_at: i64,
    pub art_at: i64,
    pub duration: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct FakeSection {
    pub key: String,
    pub kind: SectionKind,
    pub title: String,
    pub items: Vec<FakeItem>,
}

pub use super::Expected;

pub struct PlexState {
    pub token: String,
    pub sections: Vec<FakeSection>,
    /// The server's clock, epoch seconds: every mutation happens "now".
    pub clock: i64,
    pub log: Vec<Logged>,
    /// Cap on items per page: real servers may return fewer than asked.
    pub max_page: Option<u64>,
    /// Whether `sort=` is honoured (some proxies and old servers do not).
    pub honour_sort: bool,
    /// Latency added to every request.
    pub delay: Duration,
    /// The open notification sockets.
    pub sockets: std::sync::Arc<Sockets<()>>,
    requests: u64,
    next_key: u64,
    faults: Faults,
    pub(crate) changes: Changes<PlexState>,
}

/// A fake server; `Fake`'s methods control it, these mutate its library.
pub type FakePlex = Fake<PlexState>;

impl Recording for PlexState {
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

const BASE_TIME: i64 = 1_600_000_000;

impl Fake<PlexState> {
    /// Starts an empty server on 127.0.0.1 with an OS-chosen port.
    pub fn start(token: &str) -> FakePlex {
        FakePlex::start_on("127.0.0.1:0", token).expect("binding 127.0.0.1:0 works")
    }

    pub fn start_on(address: &str, token: &str) -> Result<FakePlex, String> {
        let state = PlexState {
            token: token.to_string(),
            sections: Vec::new(),
            clock: BASE_TIME,
            log: Vec::new(),
            max_page: None,
            honour_sort: true,
            delay: Duration::ZERO,
            sockets: Sockets::new(),
            requests: 0,
            next_key: 100,
            faults: Faults::default(),
            changes: Changes::default(),
        };
        Fake::serve_with_sockets(address, state, handle, upgrade)
    }

    pub fn add_section(&self, title: &str, kind: SectionKind) -> String {
        let mut state = self.state();
        let key = (state.sections.len() + 1).to_string();
        state.sections.push(FakeSection { key: key.clone(), kind, title: title.to_string(), items: Vec::new() });
        key
    }

    /// Adds a movie section of `count` movies.
    pub fn add_movies(&self, title: &str, count: usize) -> String {
        let key = self.add_section(title, SectionKind::Movie);
        let mut state = self.state();
        for number in 0..count {
            state.generated(&key, Kind::Movie, None, number);
        }
        key
    }

    /// Adds a show section: `shows` shows of `seasons` seasons of `episodes` episodes.
    pub fn add_shows(&self, title: &str, shows: usize, seasons: usize, episodes: usize) -> String {
        let key = self.add_section(title, SectionKind::Show);
        let mut state = self.state();
        for show in 0..shows {
            let show_key = state.generated(&key, Kind::Show, None, show);
            for season in 0..seasons {
                let season_key = state.generated(&key, Kind::Season, Some(&show_key), season);
                for episode in 0..episodes {
                    state.generated(&key, Kind::Episode, Some(&season_key), episode);
                }
            }
        }
        key
    }

    /// Adds a music section: artists with albums with tracks.
    pub fn add_music(&self, title: &str, artists: usize, albums: usize, tracks: usize) -> String {
        let key = self.add_section(title, SectionKind::Artist);
        let mut state = self.state();
        for artist in 0..artists {
            let artist_key = state.generated(&key, Kind::Artist, None, artist);
            for album in 0..albums {
                let album_key = state.generated(&key, Kind::Album, Some(&artist_key), album);
                for track in 0..tracks {
                    state.generated(&key, Kind::Track, Some(&album_key), track);
                }
            }
        }
        key
    }

    /// A mixed library of about `items` items: 40% movies, 40% TV, 20% music.
    pub fn add_library_of(&self, items: usize) {
        let movies = (items * 2 / 5).max(1);
        self.add_movies("Movies", movies);
        // One show = 1 + 2 seasons + 2*10 episodes = 23 items.
        self.add_shows("TV Shows", (items * 2 / 5 / 23).max(1), 2, 10);
        // One artist = 1 + 2 albums + 2*9 tracks = 21 items.
        self.add_music("Music", (items / 5 / 21).max(1), 2, 9);
        self.add_section("Photos", SectionKind::Photo);
    }

    /// Adds an item now (new `addedAt` and `updatedAt`), returning its key.
    pub fn add_item(&self, section: &str, kind: Kind, title: &str, parent: Option<&str>) -> String {
        self.state().add(section, kind, title, parent)
    }

    /// Renames an item now, as a metadata edit does.
    pub fn edit_title(&self, rating_key: &str, title: &str) {
        self.state().edit(rating_key, title);
    }

    /// Replaces an item's poster: the thumb URL and `updatedAt` change.
    pub fn replace_art(&self, rating_key: &str) {
        self.state().touch_art(rating_key);
    }

    /// Deletes an item and, as PMS does, everything below it.
    pub fn delete(&self, rating_key: &str) {
        self.state().remove(rating_key);
    }

    /// Deletes every item of a kind in a section (a drive went missing).
    pub fn delete_all(&self, section: &str, kind: Kind) {
        let keys: Vec<String> = self
            .state()
            .sections
            .iter()
            .filter(|candidate| candidate.key == section)
            .flat_map(|section| section.items.iter())
            .filter(|item| item.kind == kind)
            .map(|item| item.rating_key.clone())
            .collect();
        for key in keys {
            self.delete(&key);
        }
    }

    /// Rating keys of a section's items of one kind, in insertion order.
    pub fn keys(&self, section: &str, kind: Kind) -> Vec<String> {
        self.state()
            .sections
            .iter()
            .filter(|candidate| candidate.key == section)
            .flat_map(|section| section.items.iter())
            .filter(|item| item.kind == kind)
            .map(|item| item.rating_key.clone())
            .collect()
    }

    /// What an exact mirror holds (photo sections are not synced).
    pub fn expected(&self) -> Vec<Expected> {
        let state = self.state();
        let mut rows: Vec<Expected> = state
            .sections
            .iter()
            .filter(|section| section.kind != SectionKind::Photo)
            .flat_map(|section| {
                section.items.iter().map(|item| Expected {
                    library: section.key.clone(),
                    id: item.rating_key.clone(),
                    kind: item.kind,
                    title: item.title.clone(),
                    parent_id: item.parent.clone(),
                    updated_at: item.updated_at,
                })
            })
            .collect();
        rows.sort();
        rows
    }

    /// A section scan, as PMS announces it: `library.update.section`
    /// started, then the changes `scan` makes (their timeline entries),
    /// then ended.
    pub fn scan<T>(&self, section: &str, scan: impl FnOnce(&FakePlex) -> T) -> T {
        self.state().notify_scan(section, "started");
        let result = scan(self);
        self.state().notify_scan(section, "ended");
        result
    }

    /// The notification sockets (test controls: drop, refuse, count).
    pub fn sockets(&self) -> std::sync::Arc<Sockets<()>> {
        std::sync::Arc::clone(&self.state().sockets)
    }

    pub fn item_count(&self) -> usize {
        self.state()
            .sections
            .iter()
            .filter(|section| section.kind != SectionKind::Photo)
            .map(|section| section.items.len())
            .sum()
    }
}

/// `state` of a deleted item.
pub(crate) const DELETED: u8 = 9;

impl PlexState {
    /// Pushes a timeline entry for an item in `item_state` (PMS's numbers:
    /// 0 created … 5 processed, 9 deleted) to every socket, as one message.
    pub(crate) fn notify(&self, rating_key: &str, item_state: u8) {
        let found = self.sections.iter().find_map(|section| {
            section.items.iter().find(|item| item.rating_key == rating_key).map(|item| (section, item))
        });
        let Some((section, item)) = found else {
            return;
        };
        let mut entry = json!({
            "identifier": "com.plexapp.plugins.library",
            "sectionID": section.key,
            "itemID": item.rating_key,
            "type": item.kind.code(),
            "title": item.title,
            "state": item_state,
            "updatedAt": item.updated_at,
        });
        let metadata_state = match item_state {
            0..=4 => Some("created"),
            DELETED => Some("deleted"),
            _ => None,
        };
        if let (Some(metadata_state), Some(entry)) = (metadata_state, entry.as_object_mut()) {
            entry.insert("metadataState".into(), json!(metadata_state));
        }
        let message = json!({"NotificationContainer": {"type": "timeline", "size": 1, "TimelineEntry": [entry]}});
        self.sockets.broadcast(&message.to_string(), |_| true);
    }

    fn notify_scan(&self, section: &str, event: &str) {
        let title = self.sections.iter().find(|candidate| candidate.key == section).map_or("", |found| &found.title);
        let message = json!({"NotificationContainer": {"type": "activity", "size": 1, "ActivityNotification": [{
            "event": event,
            "uuid": format!("00000000-0000-4000-8000-{section:0>12}"),
            "Activity": {
                "uuid": format!("00000000-0000-4000-8000-{section:0>12}"),
                "type": "library.update.section",
                "cancellable": false,
                "userID": 1,
                "title": format!("Scanning {title}"),
                "subtitle": "",
                "progress": if event == "ended" { 100 } else { 0 },
                "Context": {"librarySectionID": section},
            },
        }]}});
        self.sockets.broadcast(&message.to_string(), |_| true);
    }

    pub(crate) fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.clock
    }

    pub(crate) fn take_key(&mut self) -> String {
        self.next_key += 1;
        self.next_key.to_string()
    }

    pub(crate) fn find(&self, rating_key: &str) -> Option<&FakeItem> {
        self.sections.iter().flat_map(|section| section.items.iter()).find(|item| item.rating_key == rating_key)
    }

    pub(crate) fn find_mut(&mut self, rating_key: &str) -> Option<&mut FakeItem> {
        self.sections.iter_mut().flat_map(|section| section.items.iter_mut()).find(|item| item.rating_key == rating_key)
    }

    /// A generated item. Items are added in bursts of a few per second, as a
    /// library scan does, so many share `addedAt`/`updatedAt` values.
    fn generated(&mut self, section: &str, kind: Kind, parent: Option<&str>, number: usize) -> String {
        let key = self.take_key();
        let serial = self.next_key as i64;
        let added_at = BASE_TIME - 30_000_000 + serial / 3 * 7;
        let updated_at = added_at + (serial % 5) * 3_600;
        let grandparent = parent.and_then(|parent| self.find(parent).and_then(|item| item.parent.clone()));
        let title = match kind {
            Kind::Movie => format!("Movie {serial}"),
            Kind::Show => format!("Show {serial}"),
            Kind::Season => format!("Season {}", number + 1),
            Kind::Episode => format!("Episode {serial}"),
            Kind::Artist => format!("Artist {serial}"),
            Kind::Album => format!("Album {serial}"),
            _ => format!("Track {serial}"),
        };
        let item = FakeItem {
            rating_key: key.clone(),
            kind,
            title_sort: (serial % 4 == 0).then(|| format!("{title}, The")),
            title,
            parent: parent.map(str::to_string),
            grandparent,
            index: Some(number as i64 + 1),
            parent_index: parent.map(|_| 1),
            year: Some(1990 + (serial % 35) as i32),
            added_at,
            updated_at,
            art_at: updated_at,
            duration: matches!(kind, Kind::Movie | Kind::Episode | Kind::Track).then_some(60_000 + serial * 13),
        };
        self.sections
            .iter_mut()
            .find(|candidate| candidate.key == section)
            .expect("generated: no such section")
            .items
            .push(item);
        key
    }
}

struct Answer {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    retry_after: Option<u64>,
}

fn html(status: u16, text: &str) -> Answer {
    Answer {
        status,
        content_type: "text/html",
        body: format!("<html><head><title>{text}</title></head><body><h1>{status} {text}</h1></body></html>")
            .into_bytes(),
        retry_after: None,
    }
}

fn handle(state: &Mutex<PlexState>, request: tiny_http::Request) {
    let delay = state.lock().map(|state| state.delay).unwrap_or_default();
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let mut failure = None;
    let answer = answer(state, &request, &mut failure);
    let clock = state.lock().map_or(BASE_TIME, |state| state.clock);
    let mut headers = vec![("Content-Type".to_string(), answer.content_type.to_string()), date_header(clock)];
    if let Some(seconds) = answer.retry_after {
        headers.push(("Retry-After".to_string(), seconds.to_string()));
    }
    super::hostile::send(request, answer.status, headers, answer.body, failure.as_ref());
}

/// A websocket upgrade: `/:/websockets/notifications` with the token, as
/// PMS takes it (header, or the query's `X-Plex-Token`).
fn upgrade(shared: &Mutex<PlexState>, stream: std::net::TcpStream, head: Head) {
    let (sockets, authorized) = {
        let state = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.sockets.count_upgrade();
        let (_, params) = query::split(&head.target);
        let token = head
            .header("X-Plex-Token")
            .map(str::to_string)
            .or_else(|| params.into_iter().find(|(name, _)| name == "X-Plex-Token").map(|(_, value)| value));
        (std::sync::Arc::clone(&state.sockets), token.as_deref() == Some(state.token.as_str()))
    };
    let (path, _) = query::split(&head.target);
    if sockets.refusing() {
        refuse(stream, 503, "Service Unavailable");
    } else if path != "/:/websockets/notifications" && path != "/:/websocket/notifications" {
        refuse(stream, 404, "Not Found");
    } else if !authorized {
        refuse(stream, 401, "Unauthorized");
    } else {
        sockets.serve(stream, (), None);
    }
}

/// The answer to `request`; `injected` gets the failure injected for it.
fn answer(shared: &Mutex<PlexState>, request: &tiny_http::Request, injected: &mut Option<Failure>) -> Answer {
    let mut state = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    state.requests += 1;
    let number = state.requests;
    let (path, params) = query::split(request.url());
    let param = |name: &str| params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let paging =
        |name: &str| header(request, name).or_else(|| param(name)).and_then(|value| value.trim().parse::<u64>().ok());
    let start = paging("X-Plex-Container-Start");
    let size = paging("X-Plex-Container-Size");
    let item_type = param("type").and_then(|value| value.parse::<u8>().ok());
    state.log.push(Logged { number, path: path.clone(), item_type, start, size, returned: 0 });
    // The library changes between a client's requests, never during one.
    let churns = path.ends_with("/all") || path.starts_with("/library/metadata/");
    state.before_answer(number, churns);
    let failure = state.faults.take(number, &path);
    injected.clone_from(&failure);
    match &failure {
        Some(Failure::Status(code)) => return html(*code, "Internal Server Error"),
        Some(Failure::RateLimited(seconds)) => {
            let mut answer = html(429, "Too Many Requests");
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
    let token = header(request, "X-Plex-Token").or_else(|| param("X-Plex-Token"));
    if token != Some(state.token.as_str()) {
        return html(401, "Unauthorized");
    }
    let json = header(request, "Accept").is_some_and(|accept| accept.contains("application/json"));
    let container = if path == "/library/sections" || path == "/library/sections/" {
        sections_container(&state)
    } else if let Some(key) = path.strip_prefix("/library/sections/").and_then(|rest| rest.strip_suffix("/all")) {
        let Some(section) = state.sections.iter().find(|section| section.key == key) else {
            return html(404, "Not Found");
        };
        let (container, returned) = listing(&state, section, item_type, &params, start, size);
        if let Some(entry) = state.log.last_mut() {
            entry.returned = returned;
        }
        container
    } else if let Some(keys) = path.strip_prefix("/library/metadata/").filter(|keys| !keys.contains('/')) {
        let Some(container) = metadata(&state, keys, start, size) else {
            return html(404, "Not Found");
        };
        container
    } else {
        return html(404, "Not Found");
    };
    let mut container = container;
    if failure == Some(Failure::Emptied) {
        if let Some(fields) = container.as_object_mut() {
            fields.remove("Metadata");
            fields.insert("size".into(), json!(0));
        }
    }
    let envelope = json!({ "MediaContainer": container });
    let mut body = if json {
        serde_json::to_vec(&envelope).expect("JSON values serialize")
    } else {
        to_xml(&envelope).into_bytes()
    };
    if failure == Some(Failure::Truncated) {
        body.truncate(body.len() / 2);
    }
    Answer {
        status: 200,
        content_type: if json { "application/json" } else { "text/xml;charset=utf-8" },
        body,
        retry_after: None,
    }
}

fn sections_container(state: &PlexState) -> Value {
    let directories: Vec<Value> = state
        .sections
        .iter()
        .map(|section| {
            let changed = section.items.iter().map(|item| item.updated_at).max().unwrap_or(BASE_TIME);
            json!({
                "allowSync": true,
                "art": format!("/:/resources/{}-fanart.jpg", section.kind.name()),
                "composite": format!("/library/sections/{}/composite/{changed}", section.key),
                "filters": true,
                "refreshing": false,
                "thumb": format!("/:/resources/{}.png", section.kind.name()),
                "key": section.key,
                "type": section.kind.name(),
                "title": section.title,
                "agent": "tv.plex.agents.none",
                "scanner": "Plex Scanner",
                "language": "en-US",
                "uuid": format!("00000000-0000-4000-8000-{:012}", section.key.parse::<u64>().unwrap_or(0)),
                "updatedAt": changed,
                "createdAt": BASE_TIME - 40_000_000,
                "scannedAt": changed,
                "content": true,
                "directory": true,
                "contentChangedAt": changed,
                "hidden": 0,
                "Location": [{"id": section.key.parse::<u64>().unwrap_or(0), "path": format!("/data/{}", section.title)}]
            })
        })
        .collect();
    json!({
        "size": directories.len(),
        "allowSync": false,
        "title1": "Plex Library",
        "Directory": directories,
    })
}

fn default_type(kind: SectionKind) -> u8 {
    match kind {
        SectionKind::Movie => 1,
        SectionKind::Show => 2,
        SectionKind::Artist => 8,
        SectionKind::Photo => 13,
    }
}

fn listing(
    state: &PlexState,
    section: &FakeSection,
    item_type: Option<u8>,
    params: &[(String, String)],
    start: Option<u64>,
    size: Option<u64>,
) -> (Value, usize) {
    let wanted = item_type.unwrap_or_else(|| default_type(section.kind));
    let mut items: Vec<&FakeItem> = section.items.iter().filter(|item| item.kind.code() == wanted).collect();
    // Filters: `updatedAt>>=` is honoured; `addedAt>>=` is silently ignored,
    // as PMS 1.43+ does.
    for (name, value) in params {
        if let (Some(field), Ok(value)) = (name.strip_suffix(">>"), value.parse::<i64>()) {
            if field == "updatedAt" {
                items.retain(|item| item.updated_at >= value);
            }
        }
    }
    if state.honour_sort {
        let sort = params.iter().find(|(name, _)| name == "sort").map_or("titleSort", |(_, value)| value.as_str());
        let (field, descending) = match sort.split_once(':') {
            Some((field, direction)) => (field, direction == "desc"),
            None => (sort, false),
        };
        let key_number = |item: &FakeItem| item.rating_key.parse::<u64>().unwrap_or(0);
        items.sort_by(|a, b| {
            let order = match field {
                "updatedAt" => a.updated_at.cmp(&b.updated_at),
                "addedAt" => a.added_at.cmp(&b.added_at),
                _ => sort_title(a).cmp(&sort_title(b)),
            };
            let order = if descending { order.reverse() } else { order };
            order.then_with(|| key_number(a).cmp(&key_number(b)))
        });
    }
    let total = items.len();
    let section_number = section.key.parse::<u64>().unwrap_or(0);
    let mut container = Map::new();
    container.insert("allowSync".into(), json!(true));
    container.insert("art".into(), json!(format!("/:/resources/{}-fanart.jpg", section.kind.name())));
    container.insert("identifier".into(), json!("com.plexapp.plugins.library"));
    container.insert("librarySectionID".into(), json!(section_number));
    container.insert("librarySectionTitle".into(), json!(section.title));
    container.insert("librarySectionUUID".into(), json!(format!("00000000-0000-4000-8000-{section_number:012}")));
    container.insert("mediaTagPrefix".into(), json!("/system/bundle/media/flags/"));
    container.insert("mediaTagVersion".into(), json!(1_634_922_197));
    container.insert("title1".into(), json!(section.title));
    container.insert("viewGroup".into(), json!(Kind::from_code(wanted).map_or("photo", |kind| kind.name())));
    container.insert("viewMode".into(), json!(65592));
    let page: Vec<&FakeItem> = match (start, size) {
        (None, None) => items,
        (start, size) => {
            let start = start.unwrap_or(0) as usize;
            let mut size = size.unwrap_or(50) as usize;
            if let Some(cap) = state.max_page {
                size = size.min(cap as usize);
            }
            container.insert("offset".into(), json!(start));
            container.insert("totalSize".into(), json!(total));
            items.into_iter().skip(start).take(size).collect()
        }
    };
    container.insert("size".into(), json!(page.len()));
    let returned = page.len();
    if !page.is_empty() {
        let metadata: Vec<Value> = page.into_iter().map(|item| item_json(section, item)).collect();
        container.insert("Metadata".into(), Value::Array(metadata));
    }
    (Value::Object(container), returned)
}

/// `/library/metadata/{keys}`: the items of those rating keys that exist,
/// in the order asked, wherever they are; `None` (404) when none does. An
/// item carries its own `librarySectionID`; the container carries one only
/// when every item shares it.
fn metadata(state: &PlexState, keys: &str, start: Option<u64>, size: Option<u64>) -> Option<Value> {
    let found: Vec<(&FakeSection, &FakeItem)> = keys
        .split(',')
        .filter_map(|key| {
            state.sections.iter().find_map(|section| {
                section.items.iter().find(|item| item.rating_key == key).map(|item| (section, item))
            })
        })
        .collect();
    if found.is_empty() {
        return None;
    }
    let total = found.len();
    let mut container = Map::new();
    container.insert("identifier".into(), json!("com.plexapp.plugins.library"));
    container.insert("mediaTagPrefix".into(), json!("/system/bundle/media/flags/"));
    container.insert("mediaTagVersion".into(), json!(1_634_922_197));
    let section = found.first().map(|(section, _)| section.key.clone());
    if found.iter().all(|(other, _)| Some(&other.key) == section.as_ref()) {
        container.insert("librarySectionID".into(), json!(section.and_then(|key| key.parse::<u64>().ok())));
    }
    let page: Vec<(&FakeSection, &FakeItem)> = match (start, size) {
        (None, None) => found,
        (start, size) => {
            let start = start.unwrap_or(0) as usize;
            let size = size.unwrap_or(50) as usize;
            container.insert("offset".into(), json!(start));
            container.insert("totalSize".into(), json!(total));
            found.into_iter().skip(start).take(size).collect()
        }
    };
    container.insert("size".into(), json!(page.len()));
    let metadata: Vec<Value> = page.into_iter().map(|(section, item)| item_json(section, item)).collect();
    container.insert("Metadata".into(), Value::Array(metadata));
    Some(Value::Object(container))
}

fn sort_title(item: &FakeItem) -> String {
    item.title_sort.clone().unwrap_or_else(|| item.title.clone()).to_lowercase()
}

/// An item shaped like the recorded PMS responses: the fields mediasync
/// reads plus the many it ignores.
fn item_json(section: &FakeSection, item: &FakeItem) -> Value {
    let key = &item.rating_key;
    let mut value = Map::new();
    value.insert("ratingKey".into(), json!(key));
    let children = matches!(item.kind, Kind::Show | Kind::Season | Kind::Artist | Kind::Album);
    value.insert(
        "key".into(),
        json!(if children { format!("/library/metadata/{key}/children") } else { format!("/library/metadata/{key}") }),
    );
    let guid = match item.kind {
        Kind::Movie => format!("plex://movie/5d7768{key:0>18}"),
        Kind::Show => format!("com.plexapp.agents.thetvdb://{key}?lang=en"),
        Kind::Season | Kind::Episode => format!(
            "com.plexapp.agents.thetvdb://{}/{key}?lang=en",
            item.grandparent.as_deref().or(item.parent.as_deref()).unwrap_or("0")
        ),
        Kind::Track => format!("local://{key}"),
        _ => format!("com.plexapp.agents.lastfm://{}?lang=en", item.title.replace(' ', "%20")),
    };
    value.insert("guid".into(), json!(guid));
    value.insert("type".into(), json!(item.kind.name()));
    value.insert("title".into(), json!(item.title));
    if let Some(title_sort) = &item.title_sort {
        value.insert("titleSort".into(), json!(title_sort));
    }
    value.insert("librarySectionTitle".into(), json!(section.title));
    value.insert("librarySectionID".into(), json!(section.key.parse::<u64>().unwrap_or(0)));
    value.insert("summary".into(), json!(format!("A generated {} for testing.", item.kind)));
    if let Some(parent) = &item.parent {
        value.insert("parentRatingKey".into(), json!(parent));
        value.insert("parentKey".into(), json!(format!("/library/metadata/{parent}")));
        value.insert("parentThumb".into(), json!(format!("/library/metadata/{parent}/thumb/{}", item.art_at)));
    }
    if let Some(grandparent) = &item.grandparent {
        value.insert("grandparentRatingKey".into(), json!(grandparent));
        value.insert("grandparentKey".into(), json!(format!("/library/metadata/{grandparent}")));
    }
    if let Some(index) = item.index {
        value.insert("index".into(), json!(index));
    }
    if let Some(parent_index) = item.parent_index {
        value.insert("parentIndex".into(), json!(parent_index));
    }
    if let Some(year) = item.year {
        value.insert("year".into(), json!(year));
    }
    value.insert("thumb".into(), json!(format!("/library/metadata/{key}/thumb/{}", item.art_at)));
    value.insert("art".into(), json!(format!("/library/metadata/{key}/art/{}", item.art_at)));
    value.insert("addedAt".into(), json!(item.added_at));
    value.insert("updatedAt".into(), json!(item.updated_at));
    if matches!(item.kind, Kind::Show | Kind::Season | Kind::Artist | Kind::Album) {
        value.insert("leafCount".into(), json!(0));
        value.insert("viewedLeafCount".into(), json!(0));
        value.insert("childCount".into(), json!(1));
    }
    if let Some(duration) = item.duration {
        value.insert("duration".into(), json!(duration));
        let (container, folder) = if item.kind == Kind::Track { ("flac", "Music") } else { ("mkv", "Media") };
        value.insert(
            "Media".into(),
            json!([{
                "id": key.parse::<u64>().unwrap_or(0),
                "duration": duration,
                "bitrate": 21178,
                "container": container,
                "Part": [{
                    "id": key.parse::<u64>().unwrap_or(0),
                    "key": format!("/library/parts/{key}/1579478991/file.{container}"),
                    "duration": duration,
                    "file": format!("/data/{folder}/{}.{container}", item.title),
                    "size": 13_400_382,
                    "container": container
                }]
            }]),
        );
    }
    value.insert("Genre".into(), json!([{"tag": "Drama"}, {"tag": "Comedy"}]));
    Value::Object(value)
}

/// Renders the JSON shape as PMS's XML: objects become elements named by
/// their kind, scalars attributes.
fn to_xml(envelope: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    if let Some(container) = envelope.get("MediaContainer") {
        write_element(&mut out, "MediaContainer", container);
    }
    out
}

fn write_element(out: &mut String, name: &str, value: &Value) {
    out.push('<');
    out.push_str(name);
    let mut children = Vec::new();
    if let Value::Object(map) = value {
        for (key, field) in map {
            match field {
                Value::Array(entries) => children.push((key.as_str(), entries)),
                Value::Object(_) => {}
                Value::String(text) => attribute(out, key, text),
                other => attribute(out, key, &other.to_string()),
            }
        }
    }
    if children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for (key, entries) in children {
        for entry in entries {
            let element = match (key, entry.get("type").and_then(Value::as_str)) {
                ("Metadata", Some("movie" | "episode")) => "Video",
                ("Metadata", Some("track")) => "Track",
                ("Metadata", _) => "Directory",
                (other, _) => other,
            };
            write_element(out, element, entry);
        }
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn attribute(out: &mut String, key: &str, text: &str) {
    out.push(' ');
    out.push_str(key);
    out.push_str("=\"");
    out.push_str(&crate::web::page::escape(text));
    out.push('"');
}
