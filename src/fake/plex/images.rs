//! A fake Plex's photo transcoder, `/photo/:/transcode?width=&height=&url=`:
//! the token in the header (or query), the poster of the item `url` names
//! (`/library/metadata/{key}/thumb/{epoch}`), resized. Like PMS it sends no
//! `ETag` or `Last-Modified` (no evidence it does: docs/servers.md), so a
//! client cannot revalidate and must rely on the thumb's epoch.

use super::{Failure, Logged, PlexState};
use crate::fake::png::{poster, scaled};
use crate::fake::{header, query};
use std::sync::Mutex;

/// What the route answers: status, headers, body, and the failure injected.
pub(super) type Image = (u16, Vec<(String, String)>, Vec<u8>, Option<Failure>);

/// The transcoder's answer, or `None` for another path.
pub(super) fn answer(shared: &Mutex<PlexState>, request: &tiny_http::Request) -> Option<Image> {
    let (path, params) = query::split(request.url());
    if path != "/photo/:/transcode" {
        return None;
    }
    let mut state = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    state.requests += 1;
    let number = state.requests;
    state.log.push(Logged { number, path: path.clone(), item_type: None, start: None, size: None, returned: 0 });
    let failure = state.faults.take(number, &path);
    let text = |status: u16| (status, vec![("Content-Type".into(), "text/html".into())], Vec::new(), failure.clone());
    match &failure {
        Some(Failure::Status(code)) => return Some(text(*code)),
        Some(Failure::RateLimited(_)) => return Some(text(429)),
        _ => {}
    }
    let param = |name: &str| params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let token = header(request, "X-Plex-Token").or_else(|| param("X-Plex-Token"));
    if token != Some(state.token.as_str()) {
        return Some(text(401));
    }
    let width = param("width").and_then(|value| value.parse::<u32>().ok()).unwrap_or(300);
    let key =
        param("url").and_then(|url| url.strip_prefix("/library/metadata/")).and_then(|rest| rest.split('/').next());
    let Some(item) = key.and_then(|key| state.find(key)) else {
        return Some(text(404));
    };
    let (width, height) = scaled(width);
    let mut body = poster(&format!("{}:{}", item.rating_key, item.art_at), width, height);
    if failure == Some(Failure::Truncated) {
        body.truncate(body.len() / 2);
    }
    Some((200, vec![("Content-Type".into(), "image/png".into())], body, failure))
}
