//! A fake Jellyfin/Emby's image route, `/Items/{id}/Images/Primary?tag=&maxWidth=`,
//! answered without a token (the real route is anonymous) with each
//! version's caching headers (docs/servers.md): Jellyfin 10.8 to 10.11 and
//! Emby send `Last-Modified`, `Cache-Control: public, max-age=31536000`
//! (a tagged request) and answer `If-Modified-Since` with 304 only when the
//! image is no newer than it and that date is over the cache duration old
//! (their ImageController's rule); Jellyfin 12 sends an `ETag` and answers
//! a matching `If-None-Match` with 304.

use super::{Behaviour, Failure, JellyfinState, Logged};
use crate::fake::png::{poster, scaled};
use crate::fake::{header, query};
use crate::model::content_hash;
use std::sync::Mutex;

/// A tagged image may be cached this long (seconds): a year.
const CACHE_SECONDS: i64 = 31_536_000;

/// What the route answers: status, headers, body, and the failure injected.
pub(super) type Image = (u16, Vec<(String, String)>, Vec<u8>, Option<Failure>);

/// The image route's answer, or `None` for another path.
pub(super) fn answer(shared: &Mutex<JellyfinState>, request: &tiny_http::Request) -> Option<Image> {
    let (path, params) = query::split(request.url());
    let lower = path.to_ascii_lowercase();
    let id = lower.strip_prefix("/items/")?.strip_suffix("/images/primary")?.to_string();
    let mut state = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    state.requests += 1;
    let number = state.requests;
    state.log.push(Logged { number, path: path.clone(), query: params.clone(), status: 200, returned: 0 });
    let failure = state.faults.take(number, &path);
    let text = |status: u16| (status, vec![("Content-Type".into(), "text/plain".into())], Vec::new(), failure.clone());
    let answer = match &failure {
        Some(Failure::Status(code)) => text(*code),
        Some(Failure::RateLimited(_)) => text(429),
        _ => image(&state, request, &id, &params, failure.clone()),
    };
    if let Some(entry) = state.log.last_mut() {
        entry.status = answer.0;
    }
    Some(answer)
}

fn image(
    state: &JellyfinState,
    request: &tiny_http::Request,
    id: &str,
    params: &[(String, String)],
    failure: Option<Failure>,
) -> Image {
    let Some(item) = state
        .find(id)
        .or_else(|| state.views.iter().flat_map(|view| &view.items).find(|item| item.id.eq_ignore_ascii_case(id)))
    else {
        return (404, vec![("Content-Type".into(), "text/plain".into())], Vec::new(), failure);
    };
    let param =
        |name: &str| params.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str());
    let max_width = param("maxWidth").and_then(|value| value.parse::<u32>().ok()).unwrap_or(300);
    let tagged = param("tag").is_some();
    let mut headers = vec![("Content-Type".to_string(), "image/png".to_string()), ("Vary".into(), "Accept".into())];
    let seed = format!("{}:{}", item.id, item.image_at);
    let not_modified = if state.behaviour == Behaviour::Jellyfin12 {
        let etag = format!("\"{:016x}\"", content_hash(format!("{seed}:{max_width}").as_bytes()));
        let matches =
            header(request, "If-None-Match").is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag));
        headers.push(("ETag".into(), etag));
        headers.push(("Cache-Control".into(), "public, max-age=31536000".into()));
        matches
    } else {
        headers
            .push(("Cache-Control".into(), if tagged { "public, max-age=31536000".into() } else { "public".into() }));
        headers.push(("Last-Modified".into(), http_date(item.image_at)));
        let since = header(request, "If-Modified-Since").and_then(|value| httpdate::parse_http_date(value).ok());
        let since =
            since.and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok()).map(|age| age.as_secs() as i64);
        since.is_some_and(|since| item.image_at <= since && tagged && since + CACHE_SECONDS < state.clock)
    };
    if not_modified {
        return (304, headers, Vec::new(), failure);
    }
    let (width, height) = scaled(max_width);
    let mut body = poster(&seed, width, height);
    if failure == Some(Failure::Truncated) {
        body.truncate(body.len() / 2);
    }
    (200, headers, body, failure)
}

fn http_date(epoch: i64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch.max(0).unsigned_abs()))
}
