//! A fake Jellyfin's front door: every request is counted, logged, given
//! its injected failure, checked for a token in the header or parameter the
//! behaviour accepts, and routed, user-scoped or by `userId`.

use super::listings::{items_json, users_json, views_json};
use super::{Behaviour, Failure, JellyfinState, Logged, notify, quick_connect};
use crate::fake::churn::Changing;
use crate::fake::{date_header, header, query};
use serde_json::{Value, json};
use std::sync::Mutex;

pub(super) struct Answer {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    retry_after: Option<u64>,
}

pub(super) fn text(status: u16, message: &str) -> Answer {
    Answer { status, content_type: "text/plain; charset=utf-8", body: message.as_bytes().to_vec(), retry_after: None }
}

pub(super) fn json_answer(value: &Value) -> Answer {
    Answer {
        status: 200,
        content_type: "application/json; charset=utf-8",
        body: serde_json::to_vec(value).expect("JSON values serialize"),
        retry_after: None,
    }
}

/// The `Token="…"` of a `MediaBrowser` authorization header.
pub(super) fn mediabrowser_token(value: &str) -> Option<&str> {
    let rest = value.trim().strip_prefix("MediaBrowser").or_else(|| value.trim().strip_prefix("Emby"))?;
    rest.split(',').find_map(|part| {
        let (name, value) = part.trim().split_once('=')?;
        name.trim().eq_ignore_ascii_case("Token").then(|| value.trim().trim_matches('"'))
    })
}

pub(super) fn handle(state: &Mutex<JellyfinState>, mut request: tiny_http::Request) {
    let delay = state.lock().map(|state| state.delay).unwrap_or_default();
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    if let Some((status, mut headers, body, failure)) = super::images::answer(state, &request) {
        headers.push(date_header(state.lock().map_or(0, |state| state.clock)));
        crate::fake::hostile::send(request, status, headers, body, failure.as_ref());
        return;
    }
    let mut body = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::Read::take(request.as_reader(), 64 << 10), &mut body);
    let mut failure = None;
    let (answer, clock) = answer(state, &request, &body, &mut failure);
    let mut headers = vec![("Content-Type".to_string(), answer.content_type.to_string()), date_header(clock)];
    if let Some(seconds) = answer.retry_after {
        headers.push(("Retry-After".to_string(), seconds.to_string()));
    }
    crate::fake::hostile::send(request, answer.status, headers, answer.body, failure.as_ref());
}

/// The answer to `request` and the clock; `injected` gets the failure
/// injected for it.
pub(super) fn answer(
    shared: &Mutex<JellyfinState>,
    request: &tiny_http::Request,
    body: &str,
    injected: &mut Option<Failure>,
) -> (Answer, i64) {
    let mut state = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    state.requests += 1;
    let number = state.requests;
    let (path, params) = query::split(request.url());
    state.log.push(Logged { number, path: path.clone(), query: params.clone(), status: 200, returned: 0 });
    let post = request.method() == &tiny_http::Method::Post;
    let authorization = header(request, "Authorization");
    // The library changes between a client's requests, never during one.
    let churns = path.to_ascii_lowercase().ends_with("/items");
    state.before_answer(number, churns);
    let answer = if path == "/Users/AuthenticateByName" && post {
        notify::authenticate(&mut state, authorization, body)
    } else if let Some(answer) = quick_connect::answer(&mut state, post, &path, &params, authorization, body) {
        answer
    } else {
        respond(&mut state, request, number, &path, &params, injected)
    };
    if let Some(entry) = state.log.last_mut() {
        entry.status = answer.status;
    }
    (answer, state.clock)
}

pub(super) fn respond(
    state: &mut JellyfinState,
    request: &tiny_http::Request,
    number: u64,
    path: &str,
    params: &[(String, String)],
    injected: &mut Option<Failure>,
) -> Answer {
    let failure = state.faults.take(number, path);
    injected.clone_from(&failure);
    match &failure {
        Some(Failure::Status(code)) => return text(*code, "Error processing request."),
        Some(Failure::RateLimited(seconds)) => {
            let mut answer = text(429, "Too Many Requests");
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
    let behaviour = state.behaviour;
    // Jellyfin binds query names case-insensitively; Emby only as spelled
    // in its spec (PascalCase).
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| if behaviour.is_emby() { key == name } else { key.eq_ignore_ascii_case(name) })
            .map(|(_, value)| value.as_str())
    };
    let legacy_allowed = behaviour != Behaviour::Jellyfin12;
    let token = header(request, "Authorization")
        .and_then(mediabrowser_token)
        .or_else(|| header(request, "X-Emby-Authorization").filter(|_| legacy_allowed).and_then(mediabrowser_token))
        .or_else(|| header(request, "X-Emby-Token").filter(|_| legacy_allowed))
        .or_else(|| {
            { params.iter().find(|(key, _)| key.eq_ignore_ascii_case("api_key")).map(|(_, value)| value.as_str()) }
                .filter(|_| legacy_allowed)
        });
    if path == "/System/Info/Public" {
        return json_answer(&json!({
            "LocalAddress": "http://127.0.0.1:8096",
            "ServerName": "fake",
            "Version": behaviour.version(),
            "ProductName": if behaviour.is_emby() { "Emby Server" } else { "Jellyfin Server" },
            "Id": "f00dfeedf00dfeedf00dfeedf00dfeed",
        }));
    }
    let signed_in = token.is_some_and(|token| state.notifier.user_of(token).is_some());
    if token != Some(state.api_key.as_str()) && !signed_in {
        return text(401, "Unauthorized");
    }
    // Emby 4.8 lists users at /Users/Query (a QueryResult), Jellyfin at
    // /Users (an array); neither has the other's route.
    let mut body = if path.eq_ignore_ascii_case("/Users") && !behaviour.is_emby() {
        users_json(state)
    } else if path == "/Users/Query" && behaviour.is_emby() {
        json!({"Items": users_json(state), "TotalRecordCount": state.users.len()})
    } else if let Some((user_id, route)) = user_route(state, path, &param) {
        if !state.users.iter().any(|user| user.id == user_id) {
            return text(404, "User not found");
        }
        if route.eq_ignore_ascii_case("Views") {
            views_json(state)
        } else if route.eq_ignore_ascii_case("Items") {
            match items_json(state, &param) {
                Ok((value, returned)) => {
                    if let Some(entry) = state.log.last_mut() {
                        entry.returned = returned;
                    }
                    value
                }
                Err(answer) => return answer,
            }
        } else {
            return text(404, "Not Found");
        }
    } else {
        return text(404, "Not Found");
    };
    if behaviour.is_emby() {
        if let Some(object) = body.as_object_mut() {
            object.remove("StartIndex");
        }
    }
    if failure == Some(Failure::Emptied) {
        if let Some(items) = body.get_mut("Items") {
            *items = json!([]);
        }
    }
    let mut answer = json_answer(&body);
    if failure == Some(Failure::Truncated) {
        answer.body.truncate(answer.body.len() / 2);
    }
    answer
}

/// The user and the route (`Views` or `Items`) of a request, through the
/// user-scoped path or, on Jellyfin 10.10 and up, `/UserViews?userId=` and
/// `/Items?userId=`.
pub(super) fn user_route<'a>(
    state: &JellyfinState,
    path: &'a str,
    param: &dyn Fn(&str) -> Option<&'a str>,
) -> Option<(&'a str, &'static str)> {
    let route = |name: &str| {
        if name.eq_ignore_ascii_case("Views") {
            "Views"
        } else if name.eq_ignore_ascii_case("Items") {
            "Items"
        } else {
            ""
        }
    };
    if let Some(rest) = path.strip_prefix("/Users/") {
        let (user_id, name) = rest.split_once('/')?;
        return Some((user_id, route(name))).filter(|_| state.user_routes);
    }
    let query_routes = !matches!(state.behaviour, Behaviour::Jellyfin10_8 | Behaviour::Emby);
    let name = match path {
        _ if !query_routes => return None,
        _ if path.eq_ignore_ascii_case("/UserViews") => "Views",
        _ if path.eq_ignore_ascii_case("/Items") => "Items",
        _ => return None,
    };
    Some((param("UserId")?, name))
}
