//! `GET /api/items/{server}/{library}/{id}/artwork`: an item's mirrored
//! image, from the artwork directory only (never the media server), with an
//! `ETag` naming item and marker and `Cache-Control: no-cache`, so a client
//! revalidates every time and a 304 costs nothing; serving it marks it
//! recently used for the budget's eviction order.

use super::http::{Request, Response};
use crate::app::App;
use crate::artwork::files;
use hyper::header::{self, HeaderValue};

/// Where a change feed follower gets an item's artwork, and its tag: a
/// new tag says the artwork changed (`/api/changes`).
pub fn reference(server: &str, library_id: &str, id: &str, thumb: &str) -> serde_json::Value {
    serde_json::json!({
        "url": url(server, library_id, id),
        "etag": format!("\"{}\"", files::stem(library_id, id, thumb)),
    })
}

/// The artwork route of an item, each segment percent-encoded.
pub fn url(server: &str, library_id: &str, id: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let segment = |text: &str| utf8_percent_encode(text, NON_ALPHANUMERIC).to_string();
    format!("/api/items/{}/{}/{}/artwork", segment(server), segment(library_id), segment(id))
}

pub fn serve(app: &App, request: &Request, server: &str, library_id: &str, id: &str) -> Response {
    let config = app.config();
    let Some(artwork) = &config.artwork else {
        return Response::error(404, "the artwork mirror is off; set enabled = true in [artwork] of the config");
    };
    let number = match app.store.find_library(server, library_id) {
        Ok(Some(number)) => number,
        Ok(None) => return Response::error(404, &format!("no library {library_id} of server {server} is stored")),
        Err(err) => return Response::error(500, &format!("the store could not be read ({err}); see the service log")),
    };
    let thumb = match app.store.item(number, id) {
        Ok(Some(stored)) => stored.item.thumb,
        Ok(None) => return Response::error(404, &format!("no item {id} in library {library_id} of {server}")),
        Err(err) => return Response::error(500, &format!("the store could not be read ({err}); see the service log")),
    };
    let Some(thumb) = thumb else {
        return Response::error(404, &format!("item {id} has no artwork on {server}"));
    };
    let stem = files::stem(library_id, id, &thumb);
    let dir = files::server_dir(&artwork.dir, server);
    let Some((path, extension)) = files::find(&dir, &stem) else {
        return Response::error(
            404,
            &format!("the artwork of item {id} is not mirrored yet; it follows the next sync"),
        );
    };
    let etag = format!("\"{stem}\"");
    let Ok(etag_value) = HeaderValue::from_str(&etag) else {
        return Response::error(500, "the artwork's tag could not be made");
    };
    let matches = request
        .header(header::IF_NONE_MATCH)
        .is_some_and(|value| value.split(',').any(|tag| tag.trim().trim_start_matches("W/") == etag));
    files::touch(&path);
    let answer = if matches {
        Response::new(304, files::content_type(extension), Vec::new())
    } else {
        match std::fs::read(&path) {
            Ok(bytes) => Response::new(200, files::content_type(extension), bytes),
            Err(err) => {
                return Response::error(
                    500,
                    &format!("the artwork of item {id} could not be read ({err}); see the service log"),
                );
            }
        }
    };
    answer.with_value(header::ETAG, etag_value).with_header(header::CACHE_CONTROL, "no-cache")
}
