//! Plex Media Server as a `Source`. Speaks JSON (`Accept: application/json`),
//! sends the token in the `X-Plex-Token` header only, pages with
//! `X-Plex-Container-Start`/`-Size` and tolerates what real servers send:
//! extra fields, missing optional ones, ids as numbers or strings, short and
//! unpaged responses. Unseen items are looked up in batches at
//! `/library/metadata/{id},{id},…`. `docs/servers.md` lists the quirks.

use super::http::{Http, body_cap};
use super::lenient::{Entries, First, Int, Text};
use super::plex_history;
use super::{
    BadItem, ErrorKind, Order, Page, Position, Present, Source, SourceError, Stop, WaitObserver, filter_libraries,
    no_changed_since, no_children, unasked,
};
use crate::config::{PlexConfig, ServerConfig};
use crate::model::{HISTORY, Item, Kind, LibraryInfo, Nesting, Strategy};
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
pub(super) struct Envelope<C> {
    #[serde(rename = "MediaContainer")]
    pub(super) container: C,
}

/// Ids asked about per lookup: 100 ids of a few digits keep the path short.
const LOOKUP_BATCH: u32 = 100;

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

/// A listing page (of library items, or of plays): the entries and, on
/// paged requests, the total.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Listing<E = Entry> {
    #[serde(rename = "totalSize")]
    pub(super) total_size: Int,
    #[serde(rename = "Metadata")]
    pub(super) metadata: Entries<E>,
}

/// A `/library/metadata/{id},{id},…` answer: the entries and, when they
/// are all in one, their section.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Metadata {
    #[serde(rename = "totalSize")]
    total_size: Int,
    #[serde(rename = "librarySectionID")]
    section: Text,
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
    /// Present in `/library/metadata` answers: the section the item is in.
    #[serde(rename = "librarySectionID")]
    section: Text,
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
        self.get_found(path_and_query, paging)?.ok_or_else(|| {
            SourceError::new(
                ErrorKind::Rejected,
                format!("{}{path_and_query}: the server answered 404 Not Found", self.http.base()),
            )
        })
    }

    /// As `get`; a 404 is `None` (what was asked for does not exist).
    fn get_found<C: DeserializeOwned>(
        &self,
        path_and_query: &str,
        paging: Option<(u64, u32)>,
    ) -> Result<Option<C>, SourceError> {
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
        let Some(reply) = self.http.get_found(path_and_query, &headers)? else {
            return Ok(None);
        };
        let envelope: Envelope<C> = reply.json(body_cap(entries), "Plex JSON")?;
        Ok(Some(envelope.container))
    }

    fn listing_path(library: &LibraryInfo, kind: Kind, order: Order, start: u64, size: u32) -> String {
        let sort = match order {
            Order::Stable => "addedAt:asc",
            // Plex's strategy is StopAtCursor; the engine never asks it for a
            // filtered listing, and a sorted one is the safe answer if it did.
            Order::NewestChanged | Order::ChangedSince(_) | Order::NewestSince(_) => "updatedAt:desc",
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
            libraries.push(LibraryInfo {
                id,
                title,
                kinds,
                strategy: Strategy::StopAtCursor,
                nesting: Nesting::Flat,
                lookup_batch: LOOKUP_BATCH,
            });
        }
        libraries.push(LibraryInfo {
            id: HISTORY.into(),
            title: "Watch History".into(),
            kinds: vec![Kind::Play],
            strategy: Strategy::AppendOnly,
            nesting: Nesting::Flat,
            // Never used: a history is never swept, so nothing is looked up.
            lookup_batch: LOOKUP_BATCH,
        });
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
        if library.id == HISTORY {
            return Ok(plex_history::page_of(self.get(&plex_history::path(start, size), Some((start, size)))?));
        }
        let path = Plex::listing_path(library, kind, order, start, size);
        page_of(self.get(&path, Some((start, size)))?, kind).checked(
            start,
            size,
            &format!("{}{path}", self.http.base()),
        )
    }

    fn children(&self, library: &LibraryInfo, parent: &str, _start: u64, _size: u32) -> Result<Page, SourceError> {
        Err(no_children(&self.describe(), library, parent))
    }

    fn changed(&self, library: &LibraryInfo, _since: i64, _start: u64, _size: u32) -> Result<Page, SourceError> {
        Err(no_changed_since(&self.describe(), library))
    }

    fn count_library(&self, library: &LibraryInfo, _saved_since: Option<i64>) -> Result<Option<u64>, SourceError> {
        Err(no_changed_since(&self.describe(), library))
    }

    fn count(&self, library: &LibraryInfo, kind: Kind) -> Result<Option<u64>, SourceError> {
        if library.id == HISTORY {
            return Ok(self.page(library, kind, Order::NewestChanged, Position::Offset(0), 0)?.total);
        }
        let path = Plex::listing_path(library, kind, Order::NewestChanged, 0, 0);
        let listing: Listing = self.get(&path, Some((0, 0)))?;
        Ok(listing.total_size.count())
    }

    /// `/library/metadata/{id},{id},…` with the anchor among the ids, so the
    /// answer is never "none of them" (404). PMS answers the items that
    /// exist; an item whose `librarySectionID` is another section's moved
    /// there and is gone from this library. A 404 in spite of the anchor
    /// would mean the server refuses a batch as soon as one id is missing:
    /// then each id is asked alone, where 404 is the proof.
    fn lookup(
        &self,
        library: &LibraryInfo,
        kind: Kind,
        ids: &[String],
        anchor: Option<&str>,
    ) -> Result<Vec<Present>, SourceError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let asked: Vec<&str> = ids.iter().map(String::as_str).chain(anchor).collect();
        if let Some(container) = self.metadata(&asked)? {
            return self.present(library, kind, ids, anchor, container);
        }
        if asked.len() == 1 {
            return Ok(Vec::new());
        }
        log::warn!(
            "{}: /library/metadata answered 404 for a batch of {} ids; asking for each alone",
            self.describe(),
            asked.len()
        );
        let mut present = Vec::new();
        for id in ids {
            if let Some(container) = self.metadata(&[id.as_str()])? {
                present.extend(self.present(library, kind, std::slice::from_ref(id), None, container)?);
            }
        }
        Ok(present)
    }

    fn requests(&self) -> u64 {
        self.http.requests()
    }

    /// From every answer's `Date`: what the incremental cursor is clamped
    /// to; `mediasync check` shows how far it is from this machine's.
    fn server_time(&self) -> Option<i64> {
        self.http.server_time()
    }

    fn observe_waits(&self, _observer: WaitObserver) {}
}

impl Plex {
    /// `/library/metadata/{ids}`, all in one page; `None` on 404.
    fn metadata(&self, ids: &[&str]) -> Result<Option<Metadata>, SourceError> {
        let keys: Vec<String> = ids.iter().map(|id| super::http::encode(id)).collect();
        let size = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        let path =
            format!("/library/metadata/{}?X-Plex-Container-Start=0&X-Plex-Container-Size={size}", keys.join(","));
        self.get_found(&path, Some((0, size)))
    }

    /// The candidates a metadata answer holds in this library.
    fn present(
        &self,
        library: &LibraryInfo,
        kind: Kind,
        ids: &[String],
        anchor: Option<&str>,
        answer: Metadata,
    ) -> Result<Vec<Present>, SourceError> {
        let at = format!("{}/library/metadata", self.http.base());
        let returned = u64::try_from(answer.metadata.0.len()).unwrap_or(u64::MAX);
        if let Some(total) = answer.total_size.count().filter(|total| *total > returned) {
            return Err(SourceError::new(
                ErrorKind::Unavailable,
                format!("{at}: the answer holds {returned} of {total} items; asking again"),
            ));
        }
        let mut present = Vec::new();
        for entry in answer.metadata.0.into_iter().flatten() {
            let Some(id) = entry.rating_key.as_str().map(str::to_string) else {
                continue;
            };
            if let Some(err) = unasked(&at, ids, anchor, &id) {
                return Err(err);
            }
            if anchor == Some(id.as_str()) {
                continue;
            }
            let section = entry.section.as_str().or(answer.section.as_str());
            if section.is_some_and(|section| section != library.id) {
                continue; // moved to another library
            }
            present.push(Present::read(parse_item(Some(entry), kind), id, &self.describe()));
        }
        Ok(present)
    }
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
