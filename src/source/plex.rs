//! Plex Media Server as a `Source`. Speaks JSON (`Accept: application/json`),
//! sends the token in the `X-Plex-Token` header only, pages with
//! `X-Plex-Container-Start`/`-Size` and tolerates what real servers send:
//! extra fields, missing optional ones, ids as numbers or strings, short and
//! unpaged responses. Unseen items are looked up in batches at
//! `/library/metadata/{id},{id},…`. `docs/servers.md` lists the quirks.

use super::http::Http;
use super::{
    BadItem, Cause, ErrorKind, Order, Page, Position, Present, Source, SourceError, WaitObserver, filter_libraries,
    lenient, no_children, unasked,
};
use crate::config::{PlexConfig, ServerConfig};
use crate::model::{Item, Kind, LibraryInfo, Nesting, Strategy};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

pub struct Plex {
    name: String,
    http: Http,
    token: String,
    client_id: String,
    libraries: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "MediaContainer")]
    container: Container,
}

/// Ids asked about per lookup: 100 ids of a few digits keep the path short.
const LOOKUP_BATCH: u32 = 100;

#[derive(Deserialize)]
struct Container {
    #[serde(rename = "totalSize", default, deserialize_with = "lenient_u64")]
    total_size: Option<u64>,
    /// Set on the container when every item of the answer is in one
    /// section (each item carries its own too).
    #[serde(rename = "librarySectionID", default, deserialize_with = "lenient_string")]
    section: Option<String>,
    #[serde(rename = "Metadata", default)]
    metadata: Vec<Value>,
    #[serde(rename = "Directory", default)]
    directory: Vec<Value>,
}

impl Plex {
    /// `server` gives the name and library selection, `plex` the rest.
    pub fn new(server: &ServerConfig, plex: &PlexConfig, timeout: Duration) -> Plex {
        Plex {
            name: server.name.clone(),
            http: Http::new(&plex.url, timeout),
            token: plex.token.clone(),
            client_id: format!("mediasync-{}", server.name),
            libraries: server.libraries.clone(),
        }
    }

    fn get(&self, path_and_query: &str, paging: Option<(u64, u32)>) -> Result<Container, SourceError> {
        self.get_found(path_and_query, paging)?.ok_or_else(|| {
            SourceError::new(
                ErrorKind::Rejected,
                format!("{}{path_and_query}: the server answered 404 Not Found", self.http.base()),
            )
        })
    }

    /// As `get`; a 404 is `None` (what was asked for does not exist).
    fn get_found(&self, path_and_query: &str, paging: Option<(u64, u32)>) -> Result<Option<Container>, SourceError> {
        let start;
        let size;
        let mut headers = vec![
            ("Accept", "application/json"),
            ("X-Plex-Token", self.token.as_str()),
            ("X-Plex-Client-Identifier", self.client_id.as_str()),
            ("X-Plex-Product", "mediasync"),
            ("X-Plex-Version", env!("CARGO_PKG_VERSION")),
        ];
        if let Some((container_start, container_size)) = paging {
            start = container_start.to_string();
            size = container_size.to_string();
            headers.push(("X-Plex-Container-Start", start.as_str()));
            headers.push(("X-Plex-Container-Size", size.as_str()));
        }
        let Some(body) = self.http.get_found(path_and_query, &headers)? else {
            return Ok(None);
        };
        serde_json::from_slice::<Envelope>(&body).map(|envelope| Some(envelope.container)).map_err(|err| {
            SourceError::new(
                ErrorKind::Unavailable,
                format!(
                    "{}{path_and_query}: the answer is not Plex JSON ({err}); the response may have been cut off",
                    self.http.base()
                ),
            )
            .caused_by(Cause::Json(err))
        })
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
        let container = self.get("/library/sections", None)?;
        let mut libraries = Vec::new();
        for directory in &container.directory {
            let Some(id) = lenient::string(directory.get("key")) else {
                continue;
            };
            let kinds = match directory.get("type").and_then(Value::as_str) {
                Some("movie") => vec![Kind::Movie],
                Some("show") => vec![Kind::Show, Kind::Season, Kind::Episode],
                Some("artist") => vec![Kind::Artist, Kind::Album, Kind::Track],
                _ => continue, // photo libraries and anything newer
            };
            let title = lenient::string(directory.get("title")).unwrap_or_else(|| id.clone());
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
        let container = self.get(&path, Some((start, size)))?;
        Page {
            items: container.metadata.iter().map(|value| parse_item(value, kind)).collect(),
            total: container.total_size,
            next: Default::default(),
        }
        .checked(start, size, &format!("{}{path}", self.http.base()))
    }

    fn children(&self, library: &LibraryInfo, parent: &str, _start: u64, _size: u32) -> Result<Page, SourceError> {
        Err(no_children(&self.describe(), library, parent))
    }

    fn count(&self, library: &LibraryInfo, kind: Kind) -> Result<Option<u64>, SourceError> {
        let path = Plex::listing_path(library, kind, Order::NewestChanged, 0, 0);
        Ok(self.get(&path, Some((0, 0)))?.total_size)
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
            return self.present(library, kind, ids, anchor, &container);
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
                present.extend(self.present(library, kind, std::slice::from_ref(id), None, &container)?);
            }
        }
        Ok(present)
    }

    fn requests(&self) -> u64 {
        self.http.requests()
    }

    /// From every answer's `Date`: what the incremental cursor is clamped to.
    fn server_time(&self) -> Option<i64> {
        self.http.server_time()
    }

    fn observe_waits(&self, _observer: WaitObserver) {}
}

impl Plex {
    /// `/library/metadata/{ids}`, all in one page; `None` on 404.
    fn metadata(&self, ids: &[&str]) -> Result<Option<Container>, SourceError> {
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
        container: &Container,
    ) -> Result<Vec<Present>, SourceError> {
        let at = format!("{}/library/metadata", self.http.base());
        let returned = u64::try_from(container.metadata.len()).unwrap_or(u64::MAX);
        if container.total_size.is_some_and(|total| total > returned) {
            return Err(SourceError::new(
                ErrorKind::Unavailable,
                format!(
                    "{at}: the answer holds {returned} of {} items; asking again",
                    container.total_size.unwrap_or(0)
                ),
            ));
        }
        let mut present = Vec::new();
        for value in &container.metadata {
            let Some(id) = lenient::string(value.get("ratingKey")) else {
                continue;
            };
            if let Some(err) = unasked(&at, ids, anchor, &id) {
                return Err(err);
            }
            if anchor == Some(id.as_str()) {
                continue;
            }
            let section = lenient::string(value.get("librarySectionID")).or_else(|| container.section.clone());
            if section.is_some_and(|section| section != library.id) {
                continue; // moved to another library
            }
            present.push(match parse_item(value, kind) {
                Ok(item) => Present::Item(Box::new(item)),
                Err(bad) => {
                    log::warn!("{}: kept {id} as stored: {}", self.describe(), bad.reason);
                    Present::Kept(id)
                }
            });
        }
        Ok(present)
    }
}

/// Turns one `Metadata` entry into an item of the listed kind. An entry
/// without an id is unusable; one with an id but missing essentials is
/// reported with its id so the stored copy is kept.
pub fn parse_item(value: &Value, listed: Kind) -> Result<Item, BadItem> {
    let id = lenient::string(value.get("ratingKey"))
        .ok_or_else(|| BadItem { id: None, reason: "entry has no ratingKey".into() })?;
    let bad = |reason: String| BadItem { id: Some(id.clone()), reason };
    if let Some(kind_name) = value.get("type").and_then(Value::as_str) {
        if kind_name != listed.name() {
            return Err(bad(format!("listed as {listed} but has type \"{kind_name}\"")));
        }
    }
    let title = lenient::string(value.get("title")).ok_or_else(|| bad("entry has no title".into()))?;
    let added_at = lenient::i64(value.get("addedAt"));
    let updated_at = lenient::i64(value.get("updatedAt")).or(added_at).unwrap_or(0);
    let parent_id = match listed {
        Kind::Season | Kind::Episode | Kind::Album | Kind::Track => lenient::string(value.get("parentRatingKey")),
        _ => None,
    };
    let file = value
        .get("Media")
        .and_then(|media| media.get(0))
        .and_then(|media| media.get("Part"))
        .and_then(|parts| parts.get(0))
        .and_then(|part| lenient::string(part.get("file")));
    let mut item = Item::new(id, listed, title, updated_at);
    item.sort_title = lenient::string(value.get("titleSort"));
    item.parent_id = parent_id;
    item.added_at = added_at;
    item.year = lenient::i64(value.get("year")).and_then(|year| i32::try_from(year).ok());
    item.index = lenient::i64(value.get("index"));
    item.parent_index = lenient::i64(value.get("parentIndex"));
    item.guid = lenient::string(value.get("guid"));
    item.duration_ms = lenient::i64(value.get("duration"));
    item.thumb = lenient::string(value.get("thumb"));
    item.file = file;
    Ok(item)
}

fn lenient_u64<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let value = Option::<Value>::deserialize(deserializer)?;
    Ok(lenient::u64(value.as_ref()))
}

fn lenient_string<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value = Option::<Value>::deserialize(deserializer)?;
    Ok(lenient::string(value.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/plex").join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        serde_json::from_str(&text).unwrap()
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
            let envelope: Envelope = serde_json::from_value(sample(file)).unwrap();
            assert!(!envelope.container.metadata.is_empty(), "{file}");
            for value in &envelope.container.metadata {
                let item = parse_item(value, kind).unwrap_or_else(|bad| panic!("{file}: {bad:?}"));
                assert!(!item.title.is_empty());
                assert!(item.updated_at > 1_500_000_000, "{file}");
                let has_parent = matches!(kind, Kind::Season | Kind::Episode | Kind::Album | Kind::Track);
                assert_eq!(item.parent_id.is_some(), has_parent, "{file}");
            }
        }
    }

    #[test]
    fn episode_fields_map() {
        let envelope: Envelope = serde_json::from_value(sample("tv_episodes.json")).unwrap();
        let item = parse_item(&envelope.container.metadata[0], Kind::Episode).unwrap();
        assert_eq!(item.id, "90");
        assert_eq!(item.parent_id.as_deref(), Some("89"));
        assert_eq!(item.title, "Pilot");
        assert_eq!(item.index, Some(1));
        assert_eq!(item.file.as_deref(), Some("/data/TV-Shows/The 100/The.100.S01E01.mkv"));
    }

    #[test]
    fn numeric_ids_and_missing_fields() {
        let value = serde_json::json!({"ratingKey": 42, "title": "x", "updatedAt": "17"});
        let item = parse_item(&value, Kind::Movie).unwrap();
        assert_eq!(item.id, "42");
        assert_eq!(item.updated_at, 17);
        let no_id = serde_json::json!({"title": "x"});
        assert_eq!(parse_item(&no_id, Kind::Movie).unwrap_err().id, None);
        let no_title = serde_json::json!({"ratingKey": "7"});
        assert_eq!(parse_item(&no_title, Kind::Movie).unwrap_err().id.as_deref(), Some("7"));
    }
}
