//! The status server: the page, the JSON API, metrics and the controls,
//! over the small HTTP server in `http`. This file routes requests, guards
//! the controls and turns their refusals into HTTP statuses; `api`, `page`
//! and `metrics` build the answers from the application (`app::App`).

pub mod api;
pub mod http;
pub mod metrics;
pub mod page;
pub mod spotify;

use crate::app::{App, ControlError, constant_time_eq};
use http::{Request, Response};
use std::sync::Arc;

/// Starts serving on `listener` (already bound; tests bind port 0).
pub fn start(app: Arc<App>, listener: std::net::TcpListener) -> std::io::Result<http::Server> {
    start_with(app, listener, http::Limits::default())
}

pub fn start_with(
    app: Arc<App>,
    listener: std::net::TcpListener,
    limits: http::Limits,
) -> std::io::Result<http::Server> {
    http::Server::start(listener, limits, Box::new(move |request| route(&app, request)))
}

fn route(app: &Arc<App>, request: &Request) -> Response {
    let path = request.path.as_str();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let get = |handler: &dyn Fn() -> Response| match request.method.as_str() {
        "GET" => handler(),
        _ => not_allowed("GET"),
    };
    match segments.as_slice() {
        [""] => get(&|| page::render(app)),
        ["healthz"] => get(&|| Response::new(200, "text/plain; charset=utf-8", "ok\n")),
        ["metrics"] => get(&|| metrics::render(app)),
        ["api", "status"] => get(&|| api::status(app)),
        ["api", "items"] => get(&|| api::items(app, request)),
        ["api", "changes"] => get(&|| api::changes(app, request)),
        ["api", "export"] => get(&|| api::export(app, request)),
        ["spotify", "callback"] => get(&|| spotify::callback(app, request)),
        ["api", "spotify", "callback"] => {
            if request.method != "POST" {
                return not_allowed("POST");
            }
            if let Err(refused) = authorize(app, request) {
                return refused;
            }
            spotify::pasted(app, request)
        }
        ["api", "servers", name, "connect"] => {
            if request.method != "POST" {
                return not_allowed("POST");
            }
            if let Err(refused) = authorize(app, request) {
                return refused;
            }
            spotify::connect(app, name)
        }
        ["api", "servers", name, "quick-connect"] => {
            if request.method != "POST" {
                return not_allowed("POST");
            }
            if let Err(refused) = authorize(app, request) {
                return refused;
            }
            quick_connect(app, name)
        }
        ["api", "servers", name, action] if matches!(*action, "sync" | "pause" | "resume" | "reset") => {
            if request.method != "POST" {
                return not_allowed("POST");
            }
            if let Err(refused) = authorize(app, request) {
                return refused;
            }
            control(app, name, action, request.param("full").is_some_and(|full| full == "1" || full == "true"))
        }
        _ => Response::error(404, "no such page; see / for the status page and /api/status for the API"),
    }
}

fn not_allowed(allowed: &'static str) -> Response {
    Response::error(405, &format!("method not allowed; use {allowed}")).with_header("Allow", allowed)
}

/// Controls need `Authorization: Bearer <[status] admin_token>`; with no
/// token configured they are accepted from loopback only. A browser request
/// from another site (an `Origin` that is not this server) is refused, so a
/// web page cannot press the buttons through a visitor's browser.
fn authorize(app: &App, request: &Request) -> Result<(), Response> {
    if let Some(origin) = request.header("origin") {
        let host = request.header("host").unwrap_or_default();
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if origin_host != host {
            return Err(Response::error(403, "cross-site control requests are refused"));
        }
    }
    match &app.config.status.admin_token {
        Some(token) => {
            let given = request.header("authorization").and_then(|value| value.strip_prefix("Bearer ")).unwrap_or("");
            if constant_time_eq(given.trim().as_bytes(), token.as_bytes()) {
                Ok(())
            } else {
                Err(Response::error(401, "this control needs Authorization: Bearer <[status] admin_token>")
                    .with_header("WWW-Authenticate", "Bearer realm=\"mediasync\""))
            }
        }
        // `to_canonical`: on a dual-stack [::] listener, IPv4 loopback
        // arrives as ::ffff:127.0.0.1.
        None if request.peer.ip().to_canonical().is_loopback() => Ok(()),
        None => Err(Response::error(
            403,
            "controls are accepted from this machine only; set [status] admin_token to use them over the network",
        )),
    }
}

fn control(app: &App, name: &str, action: &str, full: bool) -> Response {
    let result = match action {
        "sync" => app.request_sync(name, full).map(|()| format!("sync of {name} requested")),
        "pause" => app.pause(name).map(|()| format!("{name} paused")),
        "resume" => app.resume(name).map(|()| format!("{name} resumed")),
        _ => app.reset(name).map(|libraries| format!("{name} reset ({libraries} libraries); the next run is full")),
    };
    match result {
        Ok(message) => Response::json(202, &serde_json::json!({ "ok": true, "message": message })),
        Err(err) => Response::error(control_status(&err), &err.to_string()),
    }
}

/// Starts Jellyfin's Quick Connect for the notification socket: answers the
/// code the user enters in a signed-in Jellyfin app.
fn quick_connect(app: &App, name: &str) -> Response {
    use crate::app::quick_connect::QuickConnectError;
    match app.start_quick_connect(name) {
        Ok(code) => Response::json(
            200,
            &serde_json::json!({ "ok": true, "code": code, "message": format!(
                "enter {code} in Quick Connect of a Jellyfin app signed in as the user to follow (Settings, Quick Connect) within 10 minutes") }),
        ),
        Err(err) => {
            let status = match err {
                QuickConnectError::UnknownServer(_) => 404,
                QuickConnectError::NotAvailable(..) | QuickConnectError::Connected(_) => 409,
                QuickConnectError::Server(_) => 502,
            };
            Response::error(status, &err.to_string())
        }
    }
}

/// The HTTP status of a refused control.
fn control_status(err: &ControlError) -> u16 {
    match err {
        ControlError::UnknownServer(_) => 404,
        ControlError::Paused(_) | ControlError::Syncing(_) => 409,
        ControlError::Store(_) => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon(admin_token: Option<&str>) -> (Arc<App>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let status = admin_token.map(|token| format!("[status]\nadmin_token = \"{token}\"\n")).unwrap_or_default();
        let text = format!(
            "[store]\npath = \"{}\"\n[[server]]\nname = \"home\"\nkind = \"plex\"\nurl = \"http://127.0.0.1:9\"\ntoken = \"t\"\n{status}",
            dir.path().join("s.redb").display()
        );
        let config = crate::config::parse(&text, &dir.path().join("c.toml")).unwrap();
        let store = crate::store::Store::open(&config.store.path, 1 << 20).unwrap();
        (Arc::new(App::new(config, store)), dir)
    }

    #[test]
    fn without_a_token_controls_from_another_machine_are_refused() {
        let (daemon, _dir) = daemon(None);
        let lan: std::net::SocketAddr = "192.168.1.50:40000".parse().unwrap();
        let answer = route(&daemon, &Request::new("POST", "/api/servers/home/pause", &[], lan));
        assert_eq!(answer.status, 403);
        assert!(!daemon.store.control("home").unwrap().paused);
        // Reading stays open to the LAN.
        assert_eq!(route(&daemon, &Request::new("GET", "/healthz", &[], lan)).status, 200);
        let local: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(route(&daemon, &Request::new("POST", "/api/servers/home/pause", &[], local)).status, 202);
        assert!(daemon.store.control("home").unwrap().paused);
        let ipv6_local: std::net::SocketAddr = "[::1]:40000".parse().unwrap();
        assert_eq!(route(&daemon, &Request::new("POST", "/api/servers/home/resume", &[], ipv6_local)).status, 202);
        let mapped: std::net::SocketAddr = "[::ffff:127.0.0.1]:40000".parse().unwrap();
        assert_eq!(route(&daemon, &Request::new("POST", "/api/servers/home/pause", &[], mapped)).status, 202);
        let mapped_lan: std::net::SocketAddr = "[::ffff:192.168.1.50]:40000".parse().unwrap();
        assert_eq!(route(&daemon, &Request::new("POST", "/api/servers/home/resume", &[], mapped_lan)).status, 403);
    }

    #[test]
    fn with_a_token_any_machine_may_control_with_it() {
        let (daemon, _dir) = daemon(Some("lan-admin-token-42"));
        let lan: std::net::SocketAddr = "192.168.1.50:40000".parse().unwrap();
        let headers =
            [("Authorization", "Bearer lan-admin-token-42"), ("Host", "pi:8787"), ("Origin", "http://pi:8787")];
        assert_eq!(route(&daemon, &Request::new("POST", "/api/servers/home/pause", &headers, lan)).status, 202);
        let cross_site =
            [("Authorization", "Bearer lan-admin-token-42"), ("Host", "pi:8787"), ("Origin", "http://evil")];
        assert_eq!(route(&daemon, &Request::new("POST", "/api/servers/home/resume", &cross_site, lan)).status, 403);
        assert!(daemon.store.control("home").unwrap().paused);
    }
}
