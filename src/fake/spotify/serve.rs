//! A fake Spotify's front door: every request is answered, logged with its
//! secrets redacted, held to the rate limits and quota, given its injected
//! failure, checked for a Bearer token, and routed.

use super::shapes::{object, track_json};
use super::{Failure, Logged, SpotifyState};
use crate::fake::churn::Changing;
use crate::fake::{date_header, header, history, query};
use serde_json::{Value, json};
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The query as logged: values of token-like parameters replaced.
pub(super) fn redact(query: &str) -> String {
    const SECRET: [&str; 6] = ["access_token", "refresh_token", "code", "code_verifier", "client_secret", "token"];
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if SECRET.contains(&query::decode(name).as_str()) => format!("{name}=REDACTED"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) content_type: &'static str,
    pub(super) body: Vec<u8>,
    pub(super) headers: Vec<(&'static str, String)>,
}

pub(super) fn json_answer(status: u16, value: &Value) -> Answer {
    Answer {
        status,
        content_type: "application/json; charset=utf-8",
        body: serde_json::to_vec(value).expect("JSON values serialize"),
        headers: Vec::new(),
    }
}

/// The Web API's error body.
pub(super) fn api_error(status: u16, message: &str) -> Answer {
    json_answer(status, &json!({"error": {"status": status, "message": message}}))
}

/// The accounts service's (OAuth) error body.
pub(super) fn oauth_error(status: u16, error: &str, description: &str) -> Answer {
    json_answer(status, &json!({"error": error, "error_description": description}))
}

pub(super) fn html(status: u16, text: &str) -> Answer {
    let body = format!("<!DOCTYPE html><html><head><title>Error</title></head><body><h1>{text}</h1></body></html>");
    Answer { status, content_type: "text/html; charset=utf-8", body: body.into_bytes(), headers: Vec::new() }
}

pub(super) fn unauthorized(message: &str) -> Answer {
    let mut answer = api_error(401, message);
    let challenge = format!("Bearer realm=\"spotify\", error=\"invalid_token\", error_description=\"{message}\"");
    answer.headers.push(("WWW-Authenticate", challenge));
    answer
}

pub(super) fn redirect(location: String) -> Answer {
    Answer {
        status: 302,
        content_type: "text/html; charset=utf-8",
        body: Vec::new(),
        headers: vec![("Location", location)],
    }
}

pub(super) fn handle(shared: &Mutex<SpotifyState>, mut request: tiny_http::Request) {
    let delay = shared.lock().map(|state| state.delay).unwrap_or_default();
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let mut body = String::new();
    if *request.method() == tiny_http::Method::Post {
        let _ = request.as_reader().take(64 << 10).read_to_string(&mut body);
    }
    let (answer, failure, clock) = {
        let mut state = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let answer = state.answer(&request, &body);
        (answer, state.injected.take(), state.clock)
    };
    let mut headers = vec![("Content-Type".to_string(), answer.content_type.to_string()), date_header(clock)];
    headers.extend(answer.headers.into_iter().map(|(name, value)| (name.to_string(), value)));
    crate::fake::hostile::send(request, answer.status, headers, answer.body, failure.as_ref());
}

pub(super) type Params = [(String, String)];

pub(super) fn param<'p>(params: &'p Params, name: &str) -> Option<&'p str> {
    params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

pub(super) fn has_scope(scope: &str, wanted: &str) -> bool {
    scope.split(' ').any(|granted| granted == wanted)
}

impl SpotifyState {
    pub(super) fn answer(&mut self, request: &tiny_http::Request, body: &str) -> Answer {
        let method = request.method().as_str().to_string();
        let (path, params) = query::split(request.url());
        let logged_query = redact(request.url().split_once('?').map_or("", |(_, query)| query));
        let (number, early, answer) = if let Some(answer) = self.image(request, &path) {
            (0, false, answer)
        } else if path == "/v1" || path.starts_with("/v1/") {
            self.requests += 1;
            // The library changes between a client's requests, never during one.
            let churns = path.starts_with("/v1/me/") || path.ends_with("/items");
            self.before_answer(self.requests, churns);
            let now = Instant::now();
            let early = self.not_before.is_some_and(|not_before| now < not_before);
            self.violations += u64::from(early);
            (self.requests, early, self.api(request, &method, &path, &params, now))
        } else {
            (0, false, self.accounts(request, &method, &path, &params, body))
        };
        self.log.push(Logged { number, method, path, query: logged_query, status: answer.status, early });
        answer
    }

    /// The CDN's answer for `/image/…` (no token asked, none expected),
    /// `None` for another path.
    fn image(&mut self, request: &tiny_http::Request, path: &str) -> Option<Answer> {
        if !path.starts_with("/image/") {
            return None;
        }
        self.image_requests += 1;
        self.image_requests_with_credentials += u64::from(header(request, "Authorization").is_some());
        let answer = match super::image_bytes(path) {
            Some(_) if self.image_failure.is_some() => {
                let status = self.image_failure.unwrap_or(503);
                Answer { status, content_type: "text/html", body: b"<html>error</html>".to_vec(), headers: Vec::new() }
            }
            Some(body) => Answer {
                status: 200,
                content_type: "image/png",
                body,
                headers: vec![("Cache-Control", "public, max-age=31536000".to_string())],
            },
            None => {
                Answer { status: 404, content_type: "text/plain", body: b"Not Found".to_vec(), headers: Vec::new() }
            }
        };
        Some(answer)
    }

    /// A 429 whose `Retry-After` the next request must respect.
    pub(super) fn too_many(&mut self, now: Instant, seconds: u64, quota: bool) -> Answer {
        self.not_before = Some(now + Duration::from_secs(seconds));
        let mut answer = if quota {
            json_answer(
                429,
                &json!({"error": {"status": 429, "message": "API rate limit exceeded", "reason": "QUOTA_EXCEEDED"}}),
            )
        } else {
            api_error(429, "API rate limit exceeded")
        };
        answer.headers.push(("Retry-After", seconds.to_string()));
        answer
    }

    pub(super) fn api(
        &mut self,
        request: &tiny_http::Request,
        method: &str,
        path: &str,
        params: &Params,
        now: Instant,
    ) -> Answer {
        let failure = self.faults.take(self.requests, path);
        self.injected.clone_from(&failure);
        match failure {
            Some(Failure::Status(status)) => {
                let message = match status {
                    400 => "Bad request",
                    401 => "The access token expired",
                    403 => "Forbidden",
                    404 => "Resource not found",
                    502 => "Bad gateway.",
                    503 => "Service unavailable",
                    _ => "Server error.",
                };
                return if status == 401 { unauthorized(message) } else { api_error(status, message) };
            }
            Some(Failure::RateLimited(seconds)) => return self.too_many(now, seconds, false),
            Some(Failure::Garbage) => {
                return Answer {
                    status: 200,
                    content_type: "application/json; charset=utf-8",
                    body: b"\x00\x13garbage{{{<html>not json".to_vec(),
                    headers: Vec::new(),
                };
            }
            _ => {}
        }
        if self.quota.is_some_and(|quota| self.quota_used >= quota) {
            return self.too_many(now, self.quota_reset_secs, true);
        }
        if let Some((most, window)) = self.rate_limit {
            let window = Duration::from_secs(window);
            while self.window.front().is_some_and(|sent| now.duration_since(*sent) >= window) {
                self.window.pop_front();
            }
            if self.window.len() >= most as usize {
                let free_at = self.window.front().map_or(now + window, |oldest| *oldest + window);
                let wait = free_at.saturating_duration_since(now);
                let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
                return self.too_many(now, seconds, false);
            }
            self.window.push_back(now);
        }
        let mut answer = match self.bearer(request, now) {
            Ok(scope) => {
                let host = header(request, "Host").unwrap_or("127.0.0.1").to_string();
                self.route(method, path, params, &scope, &format!("http://{host}/v1"))
            }
            Err(answer) => answer,
        };
        if answer.status == 200 {
            self.quota_used += 1;
        }
        if failure == Some(Failure::Emptied) {
            let emptied = serde_json::from_slice::<Value>(&answer.body).ok().map(|mut value| {
                let paging = if value.get("artists").is_some() { &mut value["artists"] } else { &mut value };
                if let Some(items) = paging.get_mut("items") {
                    *items = json!([]);
                }
                value
            });
            if let Some(value) = emptied {
                answer.body = serde_json::to_vec(&value).expect("JSON values serialize");
            }
        }
        if failure == Some(Failure::Truncated) {
            answer.body.truncate(answer.body.len() / 2);
        }
        answer
    }

    /// The scope of the request's access token.
    pub(super) fn bearer(&self, request: &tiny_http::Request, now: Instant) -> Result<String, Answer> {
        let Some(value) = header(request, "Authorization") else {
            return Err(unauthorized("No token provided"));
        };
        let Some(token) = value.strip_prefix("Bearer ") else {
            return Err(api_error(400, "Only valid bearer authentication supported"));
        };
        match self.access_tokens.get(token.trim()) {
            None => Err(unauthorized("Invalid access token")),
            Some(grant) if grant.expires <= now => Err(unauthorized("The access token expired")),
            Some(grant) => Ok(grant.scope.clone()),
        }
    }

    pub(super) fn route(&mut self, method: &str, path: &str, params: &Params, scope: &str, base: &str) -> Answer {
        let route = path.trim_start_matches("/v1").trim_end_matches('/');
        if method != "GET" {
            return api_error(405, "Method not allowed");
        }
        let needs = |wanted: &str| (!has_scope(scope, wanted)).then(|| api_error(403, "Insufficient client scope"));
        let result = match route {
            "/me" => {
                let fields =
                    json!({"display_name": self.display_name, "followers": {"href": null, "total": 3}, "images": []});
                Ok(object("user", &self.user_id, base, fields))
            }
            "/me/tracks" => needs("user-library-read").map_or_else(|| self.saved_tracks_page(params, base), Err),
            "/me/albums" => needs("user-library-read").map_or_else(|| self.saved_albums_page(params, base), Err),
            "/me/following" => needs("user-follow-read").map_or_else(|| self.following(params, base), Err),
            "/me/playlists" => needs("playlist-read-private").map_or_else(|| self.playlists_page(params, base), Err),
            "/me/player/recently-played" => needs("user-read-recently-played").map_or_else(
                || {
                    history::recently_played(&mut self.plays, params, base, |track| track_json(track, base))
                        .map_err(|(status, message)| api_error(status, message))
                },
                Err,
            ),
            "/me/library/contains" => needs("user-library-read").map_or_else(|| self.contains(params), Err),
            _ => match route.strip_prefix("/playlists/").and_then(|rest| rest.split_once('/')) {
                Some((id, what @ ("items" | "tracks"))) => match needs("playlist-read-private") {
                    Some(refused) => Err(refused),
                    None => self.entries_page(id, what, params, scope, base),
                },
                _ => Err(api_error(404, "Service not found")),
            },
        };
        result.map_or_else(|refused| refused, |value| json_answer(200, &value))
    }
}
