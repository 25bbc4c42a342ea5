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

/// Items per read transaction (a few hundred KiB of JSON).
const PAGE_ITEMS: usize = 500;

pub fn start(app: &Arc<App>, request: &Request) -> Response {
    let server = request.param("server").map(str::to_string);
    if let Some(name) = &server {
        if !app.config.servers.iter().any(|server| &server.name == name) {
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
