//! Plex Media Server as a `Source`. Speaks JSON (`Accept: application/json`),
//! sends the token in the `X-Plex-Token` header only, pages with
//! `X-Plex-Container-Start`/`-Size` and tolerates what real servers send:
//! extra fields, missing optional ones, ids as numbers or strings, short and
//! unpaged responses. `docs/servers.md` lists the server's quirks.

use super::http::{Http, body_cap};
use super::lenient::{Entries, First, Int, Text};
use super::{BadItem, Order, Page, Position, Source, SourceError, Stop, WaitObserver, filter_libraries, no_children};
use crate::config::{PlexConfig, ServerConfig};
use crate::model::{Item, Kind, LibraryInfo, Nesting, Strategy};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

pub struct Plex {
    name: String,
    http: Http,
    token: String,
    client_id: String,
    libraries: Option<Vec<String>>,
}

/// A PMS answer: everything lives in `MediaContainer`.
#[derive(Deserialize)]
struct Envelope<C> {
    #[serde(rename = "MediaContainer")]
    container: C,
}

/// `GET /library/sections`.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Sections {
    #[serde(rename = "Directory")]
    directory: Entries<Section>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Section {
    key: Text,
    #[serde(rename = "type")]
    kind: Text,
    title: Text,
}

/// A listing page: the entries and, on paged requests, the total.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Listing {
    #[serde(rename = "totalSize")]
    total_size: Int,
    #[serde(rename = "Metadata")]
    metadata: Entries<Entry>,
}

/// The fields of a `Metadata` entry that are stored; the many others are
/// skipped unread.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct Entry {
    #[serde(rename = "ratingKey")]
    rating_key: Text,
    #[serde(rename = "type")]
    kind: Text,
    title: Text,
    #[serde(rename = "titleSort")]
    title_sort: Text,
    #[serde(rename = "parentRatingKey")]
    parent_rating_key: Text,
    year: Int,
    index: Int,
    #[serde(rename = "parentIndex")]
    parent_index: Int,
    guid: Text,
    #[serde(rename = "addedAt")]
    added_at: Int,
    #[serde(rename = "updatedAt")]
    updated_at: Int,
    duration: Int,
    thumb: Text,
    #[serde(rename = "Media")]
    media: First<Media>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Media {
    #[serde(rename = "Part")]
    part: First<Part>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Part {
    file: Text,
}

impl Plex {
    /// `server` gives the name and library selection, `plex` the rest;
    /// `stop` interrupts its requests.
    pub fn new(server: &ServerConfig, plex: &PlexConfig, timeout: Duration, stop: &Arc<Stop>) -> Plex {
        Plex {
            name: server.name.clone(),
            http: Http::new(&plex.url, timeout, stop),
            token: plex.token.clone(),
            client_id: format!("mediasync-{}", server.name),
            libraries: server.libraries.clone(),
        }
    }

    /// GETs a PMS answer of `entries` entries at most (paged when `paging`
    /// is given: start and size).
    fn get<C: DeserializeOwned>(&self, path_and_query: &str, paging: Option<(u64, u32)>) -> Result<C, SourceError> {
        let start;
        let size;
        let mut headers = vec![
            ("Accept", "application/json"),
            ("X-Plex-Token", self.token.as_str()),
            ("X-Plex-Client-Identifier", self.client_id.as_str()),
            ("X-Plex-Product", "mediasync"),
            ("X-Plex-Version", env!("CARGO_PKG_VERSION")),
        ];
        let mut entries = 0;
        if let Some((container_start, container_size)) = paging {
            start = container_start.to_string();
            size = container_size.to_string();
            headers.push(("X-Plex-Container-Start", start.as_str()));
            headers.push(("X-Plex-Container-Size", size.as_str()));
            entries = container_size;
        }
        let reply = self.http.get(path_and_query, &headers)?;
        let envelope: Envelope<C> = reply.json(body_cap(entries), "Plex JSON")?;
        Ok(envelope.container)
    }

    fn listing_path(library: &LibraryInfo, kind: Kind, order: Order, start: u64, size: u32) -> String {
        let sort = match order {
            Order::Stable => "addedAt:asc",
            // Plex's strategy is StopAtCursor; the engine never asks it for a
            // filtered listing, and a sorted one is the safe answer if it did.
            Order::NewestChanged | Order::ChangedSince(_) => "updatedAt:desc",
        };
        // Paging travels as headers (as the notes prescribe) and again as
        // query parameters, which every PMS version reads; neither is secret.
        format!(
            "/library/sections/{}/all?type={}&sort={}&X-Plex-Container-Start={start}&X-Plex-Container-Size={size}",
            super::http::encode(&library.id),
            kind.code(),
            super::http::encode(sort),
        )
    }
}

impl Source for Plex {
    fn describe(&self) -> String {
        format!("plex server \"{}\"", self.name)
    }

    fn libraries(&self) -> Result<Vec<LibraryInfo>, SourceError> {
        let sections: Sections = self.get("/library/sections", None)?;
        let mut libraries = Vec::new();
        for section in sections.directory.0.into_iter().flatten() {
            let Some(id) = section.key.as_str().map(str::to_string) else {
                continue;
            };
            let kinds = match section.kind.as_str() {
                Some("movie") => vec![Kind::Movie],
                Some("show") => vec![Kind::Show, Kind::Season, Kind::Episode],
                Some("artist") => vec![Kind::Artist, Kind::Album, Kind::Track],
                _ => continue, // photo libraries and anything newer
            };
            let title = section.title.as_str().map_or_else(|| id.clone(), str::to_string);
            // Plex stamps every item with `updatedAt` and sorts by it.
            libraries.push(LibraryInfo { id, title, kinds, strategy: Strategy::StopAtCursor, nesting: Nesting::Flat });
        }
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
        let path = Plex::listing_path(library, kind, order, start, size);
        Ok(page_of(self.get(&path, Some((start, size)))?, kind))
    }

    fn children(&self, library: &LibraryInfo, parent: &str, _start: u64, _size: u32) -> Result<Page, SourceError> {
        Err(no_children(&self.describe(), library, parent))
    }

    fn count(&self, library: &LibraryInfo, kind: Kind) -> Result<Option<u64>, SourceError> {
        let path = Plex::listing_path(library, kind, Order::NewestChanged, 0, 0);
        let listing: Listing = self.get(&path, Some((0, 0)))?;
        Ok(listing.total_size.count())
    }

    fn requests(&self) -> u64 {
        self.http.requests()
    }

    /// Plex items carry their own change time, so syncs need no server
    /// clock; `mediasync check` shows how far it is from this machine's.
    fn server_time(&self) -> Option<i64> {
        self.http.server_time()
    }

    fn observe_waits(&self, _observer: WaitObserver) {}
}

/// Reads a listing answer (`/library/sections/{key}/all`) of `kind` from
/// `body`, as `page` does: the parser the property tests feed.
pub fn read_page(body: impl std::io::Read, kind: Kind) -> Result<Page, serde_json::Error> {
    let envelope: Envelope<Listing> = serde_json::from_reader(body)?;
    Ok(page_of(envelope.container, kind))
}

fn page_of(listing: Listing, kind: Kind) -> Page {
    Page {
        items: listing.metadata.0.into_iter().map(|entry| parse_item(entry, kind)).collect(),
        total: listing.total_size.count(),
        next: Default::default(),
    }
}

/// Turns one `Metadata` entry into an item of the listed kind. An entry
/// without an id is unusable; one with an id but missing essentials (or
/// with a field too long to keep) is reported with its id so the stored
/// copy is kept.
pub fn parse_item(entry: Option<Entry>, listed: Kind) -> Result<Item, BadItem> {
    let unusable = |reason: String| BadItem { id: None, reason };
    let entry = entry.ok_or_else(|| unusable("entry is not an object".into()))?;
    let id = entry.rating_key.read("ratingKey").map_err(unusable)?;
    let id = id.ok_or_else(|| unusable("entry has no ratingKey".into()))?;
    let bad = |reason: String| BadItem { id: Some(id.clone()), reason };
    if let Some(kind_name) = entry.kind.as_str() {
        if kind_name != listed.name() {
            return Err(bad(format!("listed as {listed} but has type \"{kind_name}\"")));
        }
    }
    let title = entry.title.read("title").map_err(bad)?.ok_or_else(|| bad("entry has no title".into()))?;
    let added_at = entry.added_at.get();
    let updated_at = entry.updated_at.get().or(added_at).unwrap_or(0);
    let parent_id = match listed {
        Kind::Season | Kind::Episode | Kind::Album | Kind::Track => {
            entry.parent_rating_key.read("parentRatingKey").map_err(bad)?
        }
        _ => None,
    };
    let file = entry.media.0.and_then(|media| media.part.0).map(|part| part.file);
    let mut item = Item::new(id.clone(), listed, title, updated_at);
    item.sort_title = entry.title_sort.read("titleSort").map_err(bad)?;
    item.parent_id = parent_id;
    item.added_at = added_at;
    item.year = entry.year.get().and_then(|year| i32::try_from(year).ok());
    item.index = entry.index.get();
    item.parent_index = entry.parent_index.get();
    item.guid = entry.guid.read("guid").map_err(bad)?;
    item.duration_ms = entry.duration.get();
    item.thumb = entry.thumb.read("thumb").map_err(bad)?;
    item.file = file.map_or(Ok(None), |file| file.read("file")).map_err(bad)?;
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, kind: Kind) -> Page {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/plex").join(name);
        let file = std::fs::File::open(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        read_page(std::io::BufReader::new(file), kind).unwrap()
    }

    fn entry(value: serde_json::Value) -> Option<Entry> {
        Some(serde_json::from_value(value).unwrap())
    }

    #[test]
    fn real_responses_parse() {
        for (file, kind) in [
            ("movie_library.json", Kind::Movie),
            ("tv_library.json", Kind::Show),
            ("tv_seasons.json", Kind::Season),
            ("tv_episodes.json", Kind::Episode),
            ("music_library.json", Kind::Artist),
            ("music_albums.json", Kind::Album),
            ("music_tracks.json", Kind::Track),
        ] {
            let page = sample(file, kind);
            assert!(!page.items.is_empty(), "{file}");
            for entry in page.items {
                let item = entry.unwrap_or_else(|bad| panic!("{file}: {bad:?}"));
                assert!(!item.title.is_empty());
                assert!(item.updated_at > 1_500_000_000, "{file}");
                let has_parent = matches!(kind, Kind::Season | Kind::Episode | Kind::Album | Kind::Track);
                assert_eq!(item.parent_id.is_some(), has_parent, "{file}");
            }
        }
    }

    #[test]
    fn episode_fields_map() {
        let page = sample("tv_episodes.json", Kind::Episode);
        let item = page.items.into_iter().next().unwrap().unwrap();
        assert_eq!(item.id, "90");
        assert_eq!(item.parent_id.as_deref(), Some("89"));
        assert_eq!(item.title, "Pilot");
        assert_eq!(item.index, Some(1));
        assert_eq!(item.file.as_deref(), Some("/data/TV-Shows/The 100/The.100.S01E01.mkv"));
    }

    #[test]
    fn numeric_ids_and_missing_fields() {
        let value = serde_json::json!({"ratingKey": 42, "title": "x", "updatedAt": "17"});
        let item = parse_item(entry(value), Kind::Movie).unwrap();
        assert_eq!(item.id, "42");
        assert_eq!(item.updated_at, 17);
        let no_id = serde_json::json!({"title": "x"});
        assert_eq!(parse_item(entry(no_id), Kind::Movie).unwrap_err().id, None);
        let no_title = serde_json::json!({"ratingKey": "7"});
        assert_eq!(parse_item(entry(no_title), Kind::Movie).unwrap_err().id.as_deref(), Some("7"));
        let long_title = serde_json::json!({"ratingKey": "8", "title": "t".repeat(10 << 20)});
        let refused = parse_item(entry(long_title), Kind::Movie).unwrap_err();
        assert_eq!(refused.id.as_deref(), Some("8"), "{refused:?}");
        assert_eq!(parse_item(None, Kind::Movie).unwrap_err().id, None);
    }
}
