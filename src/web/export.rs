//! `GET /api/export[?server=]`: `mediasync export`'s JSON Lines, streamed to
//! a client of any speed without holding anything for it. Items are read a
//! page at a time, each page in its own read transaction on a blocking
//! thread, and the next page is read only once the client has taken the
//! last one: a slow reader pins no redb snapshot and no thread, only its
//! connection (bounded by the server's answer deadline). An item changed
//! during the export is exported as its page finds it.

use super::http::{Body, Request, Response};
use crate::app::App;
use crate::store::StoreError;
use crate::store::records::LibraryState;
use http_body_util::channel::{Channel, Sender};
use hyper::body::Bytes;
use std::sync::Arc;

/// Items per read transaction (about 40 KiB of JSON). A stalled client
/// holds at most three pages: one in hyper's buffer, one in the channel,
/// one read and waiting to be sent.
const PAGE_ITEMS: usize = 100;

pub fn start(app: &Arc<App>, request: &Request) -> Response {
    let server = request.param("server").map(str::to_string);
    if let Some(name) = &server {
        if app.config().server(name).is_none() {
            return Response::error(404, &format!("no server named \"{name}\" in the config"));
        }
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return Response::error(500, "the export needs the daemon's runtime");
    };
    let (sender, channel) = Channel::new(1);
    runtime.spawn(produce(Arc::clone(app), server, sender));
    Response { status: 200, content_type: "application/x-ndjson", headers: Vec::new(), body: Body::Stream(channel) }
}

async fn produce(app: Arc<App>, server: Option<String>, mut sender: Sender<Bytes, std::io::Error>) {
    let reader = Arc::clone(&app);
    let libraries = match tokio::task::spawn_blocking(move || reader.store.libraries()).await {
        Ok(Ok(libraries)) => libraries,
        Ok(Err(err)) => return sender.abort(std::io::Error::other(err)),
        Err(err) => return sender.abort(std::io::Error::other(err)),
    };
    for (number, state) in libraries {
        if server.as_ref().is_some_and(|server| *server != state.server) {
            continue;
        }
        let state = Arc::new(state);
        let mut after: Option<String> = None;
        loop {
            let (reader, state) = (Arc::clone(&app), Arc::clone(&state));
            let page = tokio::task::spawn_blocking(move || page(&reader, number, &state, after)).await;
            let (lines, next) = match page {
                Ok(Ok(page)) => page,
                Ok(Err(err)) => return sender.abort(std::io::Error::other(err)),
                Err(err) => return sender.abort(std::io::Error::other(err)),
            };
            if !lines.is_empty() && sender.send_data(lines).await.is_err() {
                // The client went away (or its deadline passed).
                return;
            }
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
}

/// The export lines of one page of a library's items after `after`, and
/// the cursor of the next page (none after the last).
fn page(
    app: &App,
    number: u32,
    state: &LibraryState,
    after: Option<String>,
) -> Result<(Bytes, Option<String>), StoreError> {
    let (items, more) = app.store.items_page(number, None, after.as_deref(), PAGE_ITEMS)?;
    let mut lines = Vec::with_capacity(items.len().saturating_mul(400));
    for stored in &items {
        let line = crate::export::line(&state.server, &state.library_id, stored);
        // A `Value` always serializes into a Vec.
        let _ = serde_json::to_writer(&mut lines, &line);
        lines.push(b'\n');
    }
    let next = if more { items.last().map(|stored| stored.item.id.clone()) } else { None };
    Ok((Bytes::from(lines), next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Item, Kind};
    use http_body_util::BodyExt;

    fn app_with(libraries: &[(&str, usize)]) -> (Arc<App>, tempfile::TempDir) {
        let (app, dir) = crate::web::tests::app();
        let store = &app.store;
        for (library, items) in libraries {
            let (number, _) = store.library("home", library, library).unwrap();
            store
                .write(|writer| {
                    let mut state = writer.state(number)?.unwrap_or_default();
                    for n in 0..*items {
                        let item = Item::new(format!("{n:05}"), Kind::Movie, format!("{library} {n}"), 1);
                        writer.upsert(number, &mut state, &item, false)?;
                    }
                    writer.put_state(number, &state)
                })
                .unwrap();
        }
        (app, dir)
    }

    fn lines(chunk: &Bytes) -> Vec<serde_json::Value> {
        chunk
            .split(|byte| *byte == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).unwrap())
            .collect()
    }

    /// While the client has taken one page, the export holds no read
    /// transaction: what is written meanwhile shows in the pages to come,
    /// and every item comes once, in order.
    #[test]
    fn a_paused_export_holds_no_snapshot() {
        let (app, _dir) = app_with(&[("1", 450), ("2", 450)]);
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        runtime.block_on(async {
            let (sender, mut channel) = Channel::new(1);
            tokio::spawn(produce(Arc::clone(&app), None, sender));
            let first = channel.frame().await.unwrap().unwrap().into_data().unwrap();
            assert_eq!(lines(&first).len(), PAGE_ITEMS);
            // The client reads nothing for a while; a sync renames an item
            // of the last library meanwhile.
            let number = app.store.find_library("home", "2").unwrap().unwrap();
            app.store
                .write(|writer| {
                    let mut state = writer.state(number)?.unwrap_or_default();
                    let item = Item::new("00440", Kind::Movie, "renamed during the export", 2);
                    writer.upsert(number, &mut state, &item, false)?;
                    writer.put_state(number, &state)
                })
                .unwrap();
            let mut exported = lines(&first);
            while let Some(frame) = channel.frame().await {
                exported.extend(lines(&frame.unwrap().into_data().unwrap()));
            }
            assert_eq!(exported.len(), 900);
            let keys: Vec<(String, String)> = exported
                .iter()
                .map(|line| (line["library"].as_str().unwrap().to_string(), line["id"].as_str().unwrap().to_string()))
                .collect();
            let mut sorted = keys.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(keys, sorted, "items repeated or out of order");
            let renamed = exported.iter().find(|line| line["library"] == "2" && line["id"] == "00440").unwrap();
            assert_eq!(renamed["title"], "renamed during the export");
        });
    }
}
