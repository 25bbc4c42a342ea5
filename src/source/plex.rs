//! Plex Media Server as a `Source`. Speaks JSON (`Accept: application/json`),
//! sends the token in the `X-Plex-Token` header only, pages with
//! `X-Plex-Container-Start`/`-Size` and tolerates what real servers send:
//! extra fields, missing optional ones, ids as numbers or strings, short and
//! unpaged responses. `docs/servers.md` lists the server's quirks.

use super::http::Http;
use super::{
    BadItem, Cause, ErrorKind, Order, Page, Position, Source, SourceError, WaitObserver, filter_libraries, lenient,
    no_children,
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

#[derive(Deserialize)]
struct Container {
    #[serde(rename = "totalSize", default, deserialize_with = "lenient_u64")]
    total_size: Option<u64>,
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
        let response = self.http.get(path_and_query, &headers)?;
        serde_json::from_slice::<Envelope>(&response.body).map(|envelope| envelope.container).map_err(|err| {
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
        let container = self.get(&path, Some((start, size)))?;
        Ok(Page {
            items: container.metadata.iter().map(|value| parse_item(value, kind)).collect(),
            total: container.total_size,
            next: Default::default(),
        })
    }

    fn children(&self, library: &LibraryInfo, parent: &str, _start: u64, _size: u32) -> Result<Page, SourceError> {
        Err(no_children(&self.describe(), library, parent))
    }

    fn count(&self, library: &LibraryInfo, kind: Kind) -> Result<Option<u64>, SourceError> {
        let path = Plex::listing_path(library, kind, Order::NewestChanged, 0, 0);
        Ok(self.get(&path, Some((0, 0)))?.total_size)
    }

    fn requests(&self) -> u64 {
        self.http.requests()
    }

    /// Plex items carry their own change time; the server's clock is not
    /// needed.
    fn server_time(&self) -> Option<i64> {
        None
    }

    fn observe_waits(&self, _observer: WaitObserver) {}
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
