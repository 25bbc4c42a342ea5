//! A fake Plex's front door: every request is counted, logged, given its
//! injected failure, checked for the token and routed; the notification
//! socket's upgrades are checked the same way.

use super::listings::{listing, metadata, sections_container};
use super::xml::to_xml;
use super::{BASE_TIME, Failure, Logged, PlexState};
use crate::fake::churn::Changing;
use crate::fake::front::Head;
use crate::fake::sockets::refuse;
use crate::fake::{date_header, header, history, query};
use serde_json::json;
use std::sync::Mutex;

pub(super) struct Answer {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    retry_after: Option<u64>,
}

pub(super) fn html(status: u16, text: &str) -> Answer {
    Answer {
        status,
        content_type: "text/html",
        body: format!("<html><head><title>{text}</title></head><body><h1>{status} {text}</h1></body></html>")
            .into_bytes(),
        retry_after: None,
    }
}

pub(super) fn handle(state: &Mutex<PlexState>, request: tiny_http::Request) {
    let delay = state.lock().map(|state| state.delay).unwrap_or_default();
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    if let Some((status, mut headers, body, failure)) = super::images::answer(state, &request) {
        headers.push(date_header(state.lock().map_or(BASE_TIME, |state| state.clock)));
        crate::fake::hostile::send(request, status, headers, body, failure.as_ref());
        return;
    }
    let mut failure = None;
    let answer = answer(state, &request, &mut failure);
    let clock = state.lock().map_or(BASE_TIME, |state| state.clock);
    let mut headers = vec![("Content-Type".to_string(), answer.content_type.to_string()), date_header(clock)];
    if let Some(seconds) = answer.retry_after {
        headers.push(("Retry-After".to_string(), seconds.to_string()));
    }
    crate::fake::hostile::send(request, answer.status, headers, answer.body, failure.as_ref());
}

/// A websocket upgrade: `/:/websockets/notifications` with the token, as
/// PMS takes it (header, or the query's `X-Plex-Token`).
pub(super) fn upgrade(shared: &Mutex<PlexState>, stream: std::net::TcpStream, head: Head) {
    let (sockets, authorized) = {
        let state = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.sockets.count_upgrade();
        let (_, params) = query::split(&head.target);
        let token = head
            .header("X-Plex-Token")
            .map(str::to_string)
            .or_else(|| params.into_iter().find(|(name, _)| name == "X-Plex-Token").map(|(_, value)| value));
        (std::sync::Arc::clone(&state.sockets), token.as_deref() == Some(state.token.as_str()))
    };
    let (path, _) = query::split(&head.target);
    if sockets.refusing() {
        refuse(stream, 503, "Service Unavailable");
    } else if path != "/:/websockets/notifications" && path != "/:/websocket/notifications" {
        refuse(stream, 404, "Not Found");
    } else if !authorized {
        refuse(stream, 401, "Unauthorized");
    } else {
        sockets.serve(stream, (), None);
    }
}

/// The answer to `request`; `injected` gets the failure injected for it.
pub(super) fn answer(
    shared: &Mutex<PlexState>,
    request: &tiny_http::Request,
    injected: &mut Option<Failure>,
) -> Answer {
    let mut state = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    state.requests += 1;
    let number = state.requests;
    let (path, params) = query::split(request.url());
    let param = |name: &str| params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let paging =
        |name: &str| header(request, name).or_else(|| param(name)).and_then(|value| value.trim().parse::<u64>().ok());
    let start = paging("X-Plex-Container-Start");
    let size = paging("X-Plex-Container-Size");
    let item_type = param("type").and_then(|value| value.parse::<u8>().ok());
    state.log.push(Logged { number, path: path.clone(), item_type, start, size, returned: 0 });
    // The library changes between a client's requests, never during one.
    let churns = path.ends_with("/all") || path.starts_with("/library/metadata/");
    state.before_answer(number, churns);
    let failure = state.faults.take(number, &path);
    injected.clone_from(&failure);
    match &failure {
        Some(Failure::Status(code)) => return html(*code, "Internal Server Error"),
        Some(Failure::RateLimited(seconds)) => {
            let mut answer = html(429, "Too Many Requests");
            answer.retry_after = Some(*seconds);
            return answer;
        }
        Some(Failure::Garbage) => {
            return Answer {
                status: 200,
                content_type: "application/json",
                body: b"\x00\x13garbage{{{<html>not json".to_vec(),
                retry_after: None,
            };
        }
        _ => {}
    }
    let token = header(request, "X-Plex-Token").or_else(|| param("X-Plex-Token"));
    if token != Some(state.token.as_str()) {
        return html(401, "Unauthorized");
    }
    let json = header(request, "Accept").is_some_and(|accept| accept.contains("application/json"));
    let container = if path == "/library/sections" || path == "/library/sections/" {
        sections_container(&state)
    } else if path == "/status/sessions/history/all" {
        let arriving = state.plays_during_history_requests;
        state.play(arriving);
        let max_page = state.max_page;
        let (container, returned) = history::plex_history(&mut state.plays, &params, start, size, max_page);
        if let Some(entry) = state.log.last_mut() {
            entry.returned = returned;
        }
        container
    } else if let Some(key) = path.strip_prefix("/library/sections/").and_then(|rest| rest.strip_suffix("/all")) {
        let Some(section) = state.sections.iter().find(|section| section.key == key) else {
            return html(404, "Not Found");
        };
        let (container, returned) = listing(&state, section, item_type, &params, start, size);
        if let Some(entry) = state.log.last_mut() {
            entry.returned = returned;
        }
        container
    } else if let Some(keys) = path.strip_prefix("/library/metadata/").filter(|keys| !keys.contains('/')) {
        let Some(container) = metadata(&state, keys, start, size) else {
            return html(404, "Not Found");
        };
        container
    } else {
        return html(404, "Not Found");
    };
    let mut container = container;
    if failure == Some(Failure::Emptied) {
        if let Some(fields) = container.as_object_mut() {
            fields.remove("Metadata");
            fields.insert("size".into(), json!(0));
        }
    }
    let envelope = json!({ "MediaContainer": container });
    let mut body = if json {
        serde_json::to_vec(&envelope).expect("JSON values serialize")
    } else {
        to_xml(&envelope).into_bytes()
    };
    if failure == Some(Failure::Truncated) {
        body.truncate(body.len() / 2);
    }
    Answer {
        status: 200,
        content_type: if json { "application/json" } else { "text/xml;charset=utf-8" },
        body,
        retry_after: None,
    }
}
