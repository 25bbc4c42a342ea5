//! The status server: the page, the JSON API, metrics and the controls,
//! over hyper (`server`). This file routes requests after `access` has
//! checked the `Host` (every route) and the admin token (controls, the
//! export), and turns the controls' refusals into HTTP statuses; `api`,
//! `page` and `metrics` build the answers from the application (`app::App`).

pub mod access;
pub mod api;
pub(crate) mod artwork;
mod export;
pub mod http;
pub mod metrics;
pub mod page;
pub mod server;
pub mod spotify;
mod strip;

use crate::app::{App, ControlError, SyncRequest};
use crate::artwork::Recheck;
use access::Access;
use http::{Request, Response};
use hyper::{Method, header};
use std::sync::Arc;

/// Starts serving on `listener` (already bound; tests bind port 0) on the
/// runtime `runtime`.
pub fn start(
    app: Arc<App>,
    access: Access,
    listener: std::net::TcpListener,
    runtime: &tokio::runtime::Handle,
) -> std::io::Result<server::Server> {
    start_with(app, access, listener, server::Limits::default(), runtime)
}

pub fn start_with(
    app: Arc<App>,
    access: Access,
    listener: std::net::TcpListener,
    limits: server::Limits,
    runtime: &tokio::runtime::Handle,
) -> std::io::Result<server::Server> {
    server::Server::start(listener, limits, Arc::new(move |request| route(&app, &access, &request)), runtime)
}

fn route(app: &Arc<App>, access: &Access, request: &Request) -> Response {
    if let Err(refused) = access.check_host(request) {
        return refused;
    }
    let segments: Vec<&str> = request.segments.iter().map(String::as_str).collect();
    let only = |method: Method, handler: &dyn Fn() -> Response| {
        if request.method != method {
            return not_allowed(if method == Method::GET { "GET" } else { "POST" });
        }
        handler()
    };
    let admin = |method: Method, handler: &dyn Fn() -> Response| {
        only(method, &|| access.check_admin(request).map_or_else(|refused| refused, |()| handler()))
    };
    match segments.as_slice() {
        [""] => only(Method::GET, &|| page::render(app)),
        ["healthz"] => only(Method::GET, &|| Response::new(200, "text/plain; charset=utf-8", "ok\n")),
        ["metrics"] => only(Method::GET, &|| metrics::render(app)),
        ["api", "status"] => only(Method::GET, &|| api::status(app)),
        ["api", "items"] => only(Method::GET, &|| api::items(app, request)),
        ["api", "items", server, library, id, "artwork"] => {
            only(Method::GET, &|| artwork::serve(app, request, server, library, id))
        }
        ["api", "changes"] => only(Method::GET, &|| api::changes(app, request)),
        ["api", "history"] => only(Method::GET, &|| api::history(app, request)),
        ["api", "export"] => admin(Method::GET, &|| export::start(app, request)),
        ["spotify", "callback"] => only(Method::GET, &|| spotify::callback(app, request)),
        ["api", "spotify", "callback"] => admin(Method::POST, &|| spotify::pasted(app, request)),
        ["api", "servers", name, "connect"] => admin(Method::POST, &|| spotify::connect(app, name)),
        ["api", "servers", name, "quick-connect"] => admin(Method::POST, &|| quick_connect(app, name)),
        ["api", "servers", name, "check"] => admin(Method::POST, &|| check(app, name)),
        ["api", "servers", name, "artwork"] => {
            let recheck = request.param("recheck").is_some_and(|value| value == "1" || value == "true");
            admin(Method::POST, &|| check_artwork(app, name, recheck))
        }
        ["api", "servers", name, action @ ("sync" | "pause" | "resume" | "reset")] => {
            let flag = |name: &str| request.param(name).is_some_and(|value| value == "1" || value == "true");
            let sync = SyncRequest { full: flag("full"), force: flag("force") };
            admin(Method::POST, &|| control(app, name, action, sync))
        }
        _ => Response::error(404, "no such page; see / for the status page and /api/status for the API"),
    }
}

fn not_allowed(allowed: &'static str) -> Response {
    Response::error(405, &format!("method not allowed; use {allowed}")).with_header(header::ALLOW, allowed)
}

fn control(app: &App, name: &str, action: &str, request: SyncRequest) -> Response {
    let result = match action {
        "sync" if request.force => app
            .request_sync(name, request)
            .map(|()| format!("sync of {name} requested; it may delete what the guard refused to")),
        "sync" => app.request_sync(name, request).map(|()| format!("sync of {name} requested")),
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

/// `POST /api/servers/{name}/check`: checks the server now (as `mediasync
/// check`) and answers the `ServerCheck`, which the page shows too.
fn check(app: &App, name: &str) -> Response {
    match app.check(name) {
        Ok(check) => match serde_json::to_value(&check) {
            Ok(value) => Response::json(200, &value),
            Err(err) => Response::error(500, &format!("the check did not serialize: {err}")),
        },
        Err(err) => Response::error(control_status(&err), &err.to_string()),
    }
}

/// `POST /api/servers/{name}/artwork[?recheck=1]`: `mediasync check
/// --artwork` through the daemon; answers the `ArtworkCheck`.
fn check_artwork(app: &App, name: &str, recheck: bool) -> Response {
    use crate::app::artwork_check::ArtworkCheckError;
    let recheck = if recheck { Recheck::WithValidators } else { Recheck::Missing };
    match app.check_artwork(name, recheck) {
        Ok(check) => match serde_json::to_value(&check) {
            Ok(value) => Response::json(200, &value),
            Err(err) => Response::error(500, &format!("the artwork check did not serialize: {err}")),
        },
        Err(ArtworkCheckError::Off) => Response::error(409, &ArtworkCheckError::Off.to_string()),
        Err(ArtworkCheckError::Control(err)) => Response::error(control_status(&err), &err.to_string()),
        Err(err @ ArtworkCheckError::Artwork(_)) => Response::error(500, &err.to_string()),
    }
}

/// The HTTP status of a refused control.
fn control_status(err: &ControlError) -> u16 {
    match err {
        ControlError::UnknownServer(_) => 404,
        ControlError::Paused(_) | ControlError::Syncing(_) | ControlError::Busy(_) => 409,
        ControlError::Store(_) => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Bytes;
    use hyper::header::{HeaderMap, HeaderValue};
    use hyper::{Method, Uri};

    const TOKEN: &str = "lan-admin-token-42";

    /// An application with one Plex server, "home", and an empty store.
    pub(super) fn app() -> (Arc<App>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[store]\npath = \"{}\"\n[[server]]\nname = \"home\"\nkind = \"plex\"\nurl = \"http://127.0.0.1:9\"\ntoken = \"t\"\n",
            dir.path().join("s.redb").display()
        );
        let config = crate::config::parse(&text, &dir.path().join("c.toml")).unwrap();
        let store = crate::store::Store::open(&config.store.path, 1 << 20).unwrap();
        (Arc::new(App::new(config, store)), dir)
    }

    fn daemon() -> (Arc<App>, Access, tempfile::TempDir) {
        let (app, dir) = app();
        (app, Access::new(TOKEN.into(), Some("pi"), &[]), dir)
    }

    fn send(
        daemon: &(Arc<App>, Access, tempfile::TempDir),
        method: Method,
        target: &str,
        local: &str,
        headers: &[(&'static str, &str)],
    ) -> u16 {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        let uri: Uri = target.parse().unwrap();
        let request = Request::new(method, &uri, map, local.parse().unwrap(), Bytes::new())
            .unwrap_or_else(|_| panic!("{target} refused"));
        route(&daemon.0, &daemon.1, &request).status
    }

    #[test]
    fn loopback_without_the_token_controls_nothing() {
        let daemon = daemon();
        for local in ["127.0.0.1:8787", "[::1]:8787", "[::ffff:127.0.0.1]:8787", "192.168.1.5:8787"] {
            for host in ["localhost:8787", "127.0.0.1:8787", "pi:8787"] {
                let status = send(&daemon, Method::POST, "/api/servers/home/pause", local, &[("host", host)]);
                assert_eq!(status, 401, "{local} {host}");
                assert_eq!(send(&daemon, Method::GET, "/api/export", local, &[("host", host)]), 401, "{local} {host}");
            }
        }
        assert!(!daemon.0.store.control("home").unwrap().paused);
        // Reading stays open to the LAN.
        assert_eq!(send(&daemon, Method::GET, "/healthz", "192.168.1.5:8787", &[("host", "pi")]), 200);
    }

    #[test]
    fn with_the_token_any_machine_may_control_from_a_known_host() {
        let daemon = daemon();
        let bearer = format!("Bearer {TOKEN}");
        let lan = "192.168.1.5:8787";
        let headers = [("authorization", bearer.as_str()), ("host", "pi:8787"), ("origin", "http://pi:8787")];
        assert_eq!(send(&daemon, Method::POST, "/api/servers/home/pause", lan, &headers), 202);
        let cross_site = [("authorization", bearer.as_str()), ("host", "pi:8787"), ("origin", "http://evil")];
        assert_eq!(send(&daemon, Method::POST, "/api/servers/home/resume", lan, &cross_site), 403);
        let rebound = [("authorization", bearer.as_str()), ("host", "evil.example:8787")];
        assert_eq!(send(&daemon, Method::POST, "/api/servers/home/resume", lan, &rebound), 421);
        assert_eq!(send(&daemon, Method::GET, "/api/status", lan, &[("host", "evil.example")]), 421);
        assert!(daemon.0.store.control("home").unwrap().paused);
        // `%2F` stays inside the name: no server "home/pause" exists.
        assert_eq!(send(&daemon, Method::POST, "/api/servers/home%2Fpause/resume", lan, &headers), 404);
        assert_eq!(send(&daemon, Method::POST, "/api/servers/home/pause%2Fresume", lan, &headers), 404);
    }

    #[test]
    fn the_artwork_check_needs_the_token_and_the_mirror() {
        let daemon = daemon();
        let bearer = format!("Bearer {TOKEN}");
        let local = "127.0.0.1:8787";
        let target = "/api/servers/home/artwork?recheck=1";
        assert_eq!(send(&daemon, Method::POST, target, local, &[("host", "localhost")]), 401);
        let headers = [("authorization", bearer.as_str()), ("host", "localhost")];
        assert_eq!(send(&daemon, Method::GET, target, local, &headers), 405);
        // The app's config has no [artwork]: refused, not run.
        assert_eq!(send(&daemon, Method::POST, target, local, &headers), 409);
    }
}
