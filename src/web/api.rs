//! The JSON API: the status document with the daemon's live fields, the
//! catalog paged by a stable cursor, the change feed, and the export stream
//! `mediasync export` uses while the daemon holds the store.

use super::http::{Body, Request, Response};
use crate::daemon::{Daemon, schedule};
use crate::model::Kind;
use crate::store::records::{LibraryState, Pass};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const DEFAULT_ITEMS: usize = 100;
pub const MAX_ITEMS: usize = 1_000;
pub const DEFAULT_CHANGES: usize = 500;
pub const MAX_CHANGES: usize = 5_000;

fn store_failure(err: impl std::fmt::Display) -> Response {
    Response::error(500, &format!("reading the store failed: {err}"))
}

/// `mediasync status`'s document plus, per server, the daemon's live state
/// (syncing, queued, paused, next run, schedule) and, per library being
/// synced, its progress and estimated time left.
pub fn status_document(daemon: &Daemon) -> Result<Value, crate::store::StoreError> {
    let mut document = crate::status::document(&daemon.config, &daemon.store)?;
    let libraries: BTreeMap<(String, String), LibraryState> = daemon
        .store
        .libraries()?
        .into_iter()
        .map(|(_, state)| ((state.server.clone(), state.library_id.clone()), state))
        .collect();
    let now = crate::sync::now_epoch();
    if let Some(servers) = document.get_mut("servers").and_then(Value::as_array_mut) {
        for server in servers {
            let name = server["name"].as_str().unwrap_or_default().to_string();
            let live = daemon.live(&name).unwrap_or_default();
            let control = daemon.store.control(&name)?;
            let account_wait = server["account"]["waiting_until"].as_i64();
            let state = if control.paused {
                "paused"
            } else if server["account"]["reauthorize"].is_string()
                || server["account"]["connected"].as_bool() == Some(false)
            {
                "disconnected"
            } else if (live.syncing && live.waiting_until.is_some_and(|until| until > now))
                || (!live.syncing && account_wait.is_some())
            {
                "waiting"
            } else if live.syncing {
                "syncing"
            } else if live.queued {
                "queued"
            } else if server["last_error"].is_string() {
                "failed"
            } else {
                "idle"
            };
            server["state"] = json!(state);
            server["paused"] = json!(control.paused);
            server["schedule"] = json!(schedule::for_server(&daemon.config, &name).to_string());
            server["live"] = serde_json::to_value(&live).unwrap_or(Value::Null);
            if let Some(entries) = server.get_mut("libraries").and_then(Value::as_array_mut) {
                for library in entries {
                    let id = library["id"].as_str().unwrap_or_default().to_string();
                    let Some(stored) = libraries.get(&(name.clone(), id)) else { continue };
                    if stored.checkpoint.is_none() {
                        continue;
                    }
                    if live.syncing {
                        library["state"] = json!("syncing");
                        library["progress"] = progress(stored, now, live.run_started_at);
                    } else {
                        // Between attempts (a rate-limit or quota wait, an
                        // outage): how far it got, and the pace so far.
                        library["progress"] = progress(stored, now, None);
                    }
                }
            }
        }
    }
    document["daemon"] = json!({
        "started_at": daemon.started_at,
        "now": now,
        "max_concurrent_syncs": daemon.config.daemon.max_concurrent_syncs,
    });
    Ok(document)
}

/// How far a running pass got: items walked of the server's total, and an
/// estimate of the time left from the pace so far. Incremental passes stop
/// at the first unchanged item, so they have no total to show.
pub fn progress(state: &LibraryState, now: i64, attempt_started_at: Option<i64>) -> Value {
    let Some(checkpoint) = &state.checkpoint else { return Value::Null };
    let kind_total = |kind: &Kind| checkpoint.totals.get(kind).copied().unwrap_or_else(|| state.count(*kind));
    let index = checkpoint.kind_index as usize;
    let done: u64 = checkpoint.kinds.iter().take(index).map(kind_total).sum::<u64>() + checkpoint.start;
    let total: u64 = checkpoint.kinds.iter().map(kind_total).sum();
    let kind = checkpoint.kinds.get(index).map(|kind| kind.name());
    if checkpoint.pass == Pass::Incremental || total == 0 {
        return json!({ "pass": checkpoint.pass, "kind": kind, "done": done, "total": null, "percent": null, "eta_seconds": null });
    }
    let done = done.min(total);
    // A resumed run (a first Spotify sync may take days under its limits)
    // counts the time of its earlier attempts plus this one's.
    let elapsed = if checkpoint.resumed {
        checkpoint.elapsed_ms as f64 / 1000.0 + attempt_started_at.map_or(0, |at| (now - at).max(0)) as f64
    } else {
        (now - checkpoint.started_at).max(0) as f64
    };
    let eta = (done > 0 && elapsed > 0.0).then(|| (elapsed * (total - done) as f64 / done as f64).round() as u64);
    json!({
        "pass": checkpoint.pass,
        "kind": kind,
        "done": done,
        "total": total,
        "percent": (done as f64 * 1000.0 / total as f64).round() / 10.0,
        "eta_seconds": eta,
    })
}

pub fn status(daemon: &Daemon) -> Response {
    match status_document(daemon) {
        Ok(document) => Response::json(200, &document),
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
pub fn items(daemon: &Daemon, request: &Request) -> Response {
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
                        "kind={name} is not a kind (movie, show, season, episode, artist, album, track, playlist)"
                    ),
                );
            }
        },
    };
    let number = match daemon.store.find_library(server, library_id) {
        Ok(Some(number)) => number,
        Ok(None) => return Response::error(404, &format!("no library {library_id} of server {server} is stored")),
        Err(err) => return store_failure(err),
    };
    let after = request.param("after").filter(|after| !after.is_empty());
    match daemon.store.items_page(number, kind, after, limit) {
        Ok((items, more)) => {
            let next = if more { items.last().map(|stored| stored.item.id.clone()) } else { None };
            let items: Vec<Value> =
                items.iter().map(|stored| crate::export::line(server, library_id, stored)).collect();
            Response::json(200, &json!({ "items": items, "next": next }))
        }
        Err(err) => store_failure(err),
    }
}

/// `GET /api/changes?since=SEQ&limit=`: changes after `since`, oldest
/// first. Upserts carry the item as stored now; deletes only its id. A
/// follower stores `next` and asks again with it as `since`.
pub fn changes(daemon: &Daemon, request: &Request) -> Response {
    let since = match request.param("since") {
        None => 0,
        Some(text) => match text.parse::<u64>() {
            Ok(since) => since,
            Err(_) => {
                return Response::error(400, &format!("since={text}: give a change sequence number (0 for the start)"));
            }
        },
    };
    let limit = match limit_param(request, DEFAULT_CHANGES, MAX_CHANGES) {
        Ok(limit) => limit,
        Err(response) => return response,
    };
    let result = (|| {
        let libraries: BTreeMap<u32, (String, String)> = daemon
            .store
            .libraries()?
            .into_iter()
            .map(|(number, state)| (number, (state.server, state.library_id)))
            .collect();
        let changes = daemon.store.changes(since, limit)?;
        let more = changes.len() == limit;
        let next = changes.last().map_or(since, |change| change.seq);
        let mut out = Vec::with_capacity(changes.len());
        for change in changes {
            let (server, library_id) = libraries.get(&change.library).cloned().unwrap_or_default();
            let item = if change.deleted {
                Value::Null
            } else {
                daemon
                    .store
                    .item(change.library, &change.id)?
                    .map_or(Value::Null, |stored| crate::export::line(&server, &library_id, &stored))
            };
            out.push(json!({
                "seq": change.seq,
                "op": if change.deleted { "delete" } else { "upsert" },
                "server": server,
                "library": library_id,
                "id": change.id,
                "item": item,
            }));
        }
        Ok::<_, crate::store::StoreError>(json!({ "changes": out, "next": next, "more": more }))
    })();
    match result {
        Ok(document) => Response::json(200, &document),
        Err(err) => store_failure(err),
    }
}

/// `GET /api/export[?server=]`: the `mediasync export` JSON Lines, streamed.
pub fn export(daemon: &Arc<Daemon>, request: &Request) -> Response {
    let server = request.param("server").map(str::to_string);
    if let Some(name) = &server {
        if !daemon.config.servers.iter().any(|server| &server.name == name) {
            return Response::error(404, &format!("no server named \"{name}\" in the config"));
        }
    }
    let daemon = Arc::clone(daemon);
    Response {
        status: 200,
        content_type: "application/x-ndjson",
        headers: Vec::new(),
        body: Body::Stream(Box::new(move |out| {
            crate::export::write(&daemon.store, server.as_deref(), out).map(|_| ()).map_err(std::io::Error::other)
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::{Checkpoint, Counters};

    fn state_with(pass: Pass, kind_index: u32, start: u64, resumed: bool) -> LibraryState {
        let mut state = LibraryState::default();
        state.counts.insert(Kind::Episode, 500);
        state.checkpoint = Some(Checkpoint {
            started_as: pass,
            pass,
            generation: 1,
            kinds: vec![Kind::Show, Kind::Season, Kind::Episode],
            kind_index,
            start,
            cursors: BTreeMap::new(),
            totals: [(Kind::Show, 10), (Kind::Season, 40)].into_iter().collect(),
            unstored: BTreeMap::new(),
            full_passes: 0,
            sweep_approved: false,
            order_broken: false,
            forced: false,
            run: 1,
            started_at: 1_000,
            server_started_at: None,
            resumed,
            after: None,
            children: None,
            counters: Counters::default(),
            elapsed_ms: 0,
        });
        state
    }

    #[test]
    fn progress_counts_finished_kinds_and_estimates_the_rest() {
        // Shows and seasons done (50), 100 episodes of an estimated 500.
        let progress = progress(&state_with(Pass::Full, 2, 100, false), 1_030, None);
        assert_eq!(progress["done"], 150);
        assert_eq!(progress["total"], 550);
        assert_eq!(progress["kind"], "episode");
        assert_eq!(progress["percent"], 27.3);
        // 150 items in 30 s: 400 more take 80 s.
        assert_eq!(progress["eta_seconds"], 80);
    }

    #[test]
    fn progress_has_no_total_for_incremental_passes_and_a_resumed_eta_counts_every_attempt() {
        let incremental = progress(&state_with(Pass::Incremental, 1, 5, false), 1_030, None);
        assert!(incremental["total"].is_null() && incremental["eta_seconds"].is_null());
        assert_eq!(incremental["done"], 15);
        let resumed = progress(&state_with(Pass::Full, 2, 100, true), 1_030, None);
        assert!(resumed["eta_seconds"].is_null(), "a resumed run's pace is unknown without its attempt's start");
        // Resumed 30 s ago with no earlier time recorded: the same pace as above.
        let resumed = progress(&state_with(Pass::Full, 2, 100, true), 1_030, Some(1_000));
        assert_eq!(resumed["eta_seconds"], 80);
        assert_eq!(progress(&LibraryState::default(), 0, None), Value::Null);
    }
}
