//! The JSON API: the status document (`app::status`), the catalog paged by
//! a stable cursor, a server's plays newest first, and the change feed (the
//! export stream is `export`).

use super::http::{Request, Response};
use crate::app::App;
use crate::model::{HISTORY, Kind, play_id_from};
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const DEFAULT_ITEMS: usize = 100;
pub const MAX_ITEMS: usize = 1_000;
pub const DEFAULT_CHANGES: usize = 500;
pub const MAX_CHANGES: usize = 5_000;
pub const DEFAULT_PLAYS: usize = 50;
pub const MAX_PLAYS: usize = 1_000;

fn store_failure(err: impl std::fmt::Display) -> Response {
    Response::error(500, &format!("reading the store failed: {err}"))
}

/// `GET /api/status`: the application's status document.
pub fn status(app: &App) -> Response {
    match app.status() {
        Ok(document) => match document.to_json() {
            Ok(value) => Response::json(200, &value),
            Err(err) => Response::error(500, &format!("the status document did not serialize: {err}")),
        },
        Err(err) => store_failure(err),
    }
}

fn limit_param(request: &Request, default: usize, max: usize) -> Result<usize, Response> {
    match request.param("limit") {
        None => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if (1..=max).contains(&limit) => Ok(limit),
            _ => Err(Response::error(400, &format!("limit={text}: give a number from 1 to {max}"))),
        },
    }
}

/// `GET /api/items?server=&library=&kind=&after=&limit=`: one page of a
/// library's items in id order; pass the answer's `next` as `after` to get
/// the following page. `next` is null on the last page.
pub fn items(app: &App, request: &Request) -> Response {
    let (Some(server), Some(library_id)) = (request.param("server"), request.param("library")) else {
        return Response::error(400, "give server= and library= (their names and ids are in /api/status)");
    };
    let limit = match limit_param(request, DEFAULT_ITEMS, MAX_ITEMS) {
        Ok(limit) => limit,
        Err(response) => return response,
    };
    let kind = match request.param("kind") {
        None | Some("") => None,
        Some(name) => match Kind::from_name(name) {
            Some(kind) => Some(kind),
            None => {
                return Response::error(
                    400,
                    &format!(
                        "kind={name} is not a kind (movie, show, season, episode, artist, album, track, playlist, play)"
                    ),
                );
            }
        },
    };
    let number = match app.store.find_library(server, library_id) {
        Ok(Some(number)) => number,
        Ok(None) => return Response::error(404, &format!("no library {library_id} of server {server} is stored")),
        Err(err) => return store_failure(err),
    };
    let after = request.param("after").filter(|after| !after.is_empty());
    match app.store.items_page(number, kind, after, limit) {
        Ok((items, more)) => {
            let next = if more { items.last().map(|stored| stored.item.id.clone()) } else { None };
            let items: Vec<Value> =
                items.iter().map(|stored| crate::export::line(server, library_id, stored)).collect();
            Response::json(200, &json!({ "items": items, "next": next }))
        }
        Err(err) => store_failure(err),
    }
}

/// `GET /api/history?server=&since=&before=&limit=`: one page of a
/// server's plays, newest first, those played at or after `since` (epoch
/// seconds or RFC 3339) only; pass the answer's `next` as `before` to get
/// the following page. `next` is null on the last page.
pub fn history(app: &App, request: &Request) -> Response {
    let Some(server) = request.param("server").filter(|server| !server.is_empty()) else {
        let config = app.config();
        let servers: Vec<&str> = config.servers.iter().map(|server| server.name.as_str()).collect();
        return Response::error(400, &format!("give server= (configured: {})", servers.join(", ")));
    };
    if app.config().server(server).is_none() {
        return Response::error(404, &format!("no server named \"{server}\" in the config"));
    }
    let limit = match limit_param(request, DEFAULT_PLAYS, MAX_PLAYS) {
        Ok(limit) => limit,
        Err(response) => return response,
    };
    let since = match request.param("since").filter(|since| !since.is_empty()) {
        None => None,
        Some(text) => match text
            .parse::<i64>()
            .ok()
            .or_else(|| chrono::DateTime::parse_from_rfc3339(text).ok().map(|time| time.timestamp()))
        {
            Some(since) => Some(play_id_from(since)),
            None => {
                return Response::error(
                    400,
                    &format!("since={text}: give epoch seconds or an RFC 3339 time such as 2026-01-02T10:00:00Z"),
                );
            }
        },
    };
    let number = match app.store.find_library(server, HISTORY) {
        Ok(Some(number)) => number,
        Ok(None) => {
            return Response::error(
                404,
                &format!("no history of server {server} is stored (Plex and Spotify servers have one once synced)"),
            );
        }
        Err(err) => return store_failure(err),
    };
    let before = request.param("before").filter(|before| !before.is_empty());
    match app.store.items_backwards(number, since.as_deref(), before, limit) {
        Ok((plays, more)) => {
            let next = if more { plays.last().map(|stored| stored.item.id.clone()) } else { None };
            let plays: Vec<Value> = plays.iter().map(|stored| crate::export::line(server, HISTORY, stored)).collect();
            Response::json(200, &json!({ "server": server, "plays": plays, "next": next }))
        }
        Err(err) => store_failure(err),
    }
}

/// `GET /api/changes?since=SEQ&limit=`: changes after `since`, oldest
/// first. Upserts carry the item as stored now; deletes only its id. A
/// follower stores `next` and asks again with it as `since`. A `since`
/// older than the deletions the feed keeps is answered 410 Gone: the
/// follower may have missed a deletion, and must read the catalog again.
pub fn changes(app: &App, request: &Request) -> Response {
    let since = match request.param("since") {
        None => 0,
        Some(text) => match text.parse::<u64>() {
            Ok(since) => since,
            Err(_) => {
                return Response::error(400, &format!("since={text}: give a change sequence number (0 for the start)"));
            }
        },
    };
    match history_gone(app, since) {
        Ok(None) => {}
        Ok(Some(gone)) => return gone,
        Err(err) => return store_failure(err),
    }
    let limit = match limit_param(request, DEFAULT_CHANGES, MAX_CHANGES) {
        Ok(limit) => limit,
        Err(response) => return response,
    };
    let result = (|| {
        let libraries: BTreeMap<u32, (String, String)> = app
            .store
            .libraries()?
            .into_iter()
            .map(|(number, state)| (number, (state.server, state.library_id)))
            .collect();
        let changes = app.store.changes(since, limit)?;
        let more = changes.len() == limit;
        let next = changes.last().map_or(since, |change| change.seq);
        let mut out = Vec::with_capacity(changes.len());
        let mirrored = app.config().artwork.is_some();
        for change in changes {
            let (server, library_id) = libraries.get(&change.library).cloned().unwrap_or_default();
            let stored = if change.deleted { None } else { app.store.item(change.library, &change.id)? };
            let item = stored.as_ref().map_or(Value::Null, |stored| crate::export::line(&server, &library_id, stored));
            let thumb = stored.as_ref().and_then(|stored| stored.item.thumb.as_deref()).filter(|_| mirrored);
            let artwork =
                thumb.map_or(Value::Null, |thumb| super::artwork::reference(&server, &library_id, &change.id, thumb));
            out.push(json!({
                "seq": change.seq,
                "op": if change.deleted { "delete" } else { "upsert" },
                "server": server,
                "library": library_id,
                "id": change.id,
                "item": item,
                "artwork": artwork,
            }));
        }
        Ok::<_, crate::store::StoreError>(json!({ "changes": out, "next": next, "more": more }))
    })();
    match result {
        Ok(document) => Response::json(200, &document),
        Err(err) => store_failure(err),
    }
}

/// The 410 for a follower at `since` when deletions after it were compacted
/// away. From 0 the feed still rebuilds the catalog (every stored item has
/// its latest change in it; a deletion matters only to whoever held the
/// item).
fn history_gone(app: &App, since: u64) -> Result<Option<Response>, crate::store::StoreError> {
    let compacted_through = app.store.compacted_through()?;
    if since == 0 || since >= compacted_through {
        return Ok(None);
    }
    let head = app.store.head()?;
    let message = format!(
        "since={since} is older than the change history kept (deletions up to {compacted_through} were dropped, see [store] max_tombstones and max_tombstone_age), so deletions may be missing: read the whole catalog again from /api/items (every library, following next) or /api/export, then follow /api/changes?since={head}"
    );
    Ok(Some(Response::json(
        410,
        &json!({ "error": message, "status": 410, "compacted_through": compacted_through, "head": head }),
    )))
}
