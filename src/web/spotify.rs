//! "Connect Spotify": the authorisation code flow run from the status page.
//! `POST /api/servers/{name}/connect` (a guarded control) starts a flow and
//! answers the Spotify address to open; Spotify sends the browser back to
//! `GET /spotify/callback?code=…&state=…`, which exchanges the code and
//! stores the tokens in the store's session. When the browser is not on the
//! box and the callback address (127.0.0.1) cannot load, the user pastes
//! that address into the page, which posts it to `POST /api/spotify/callback`.
//! A flow is identified by its random, single-use `state`, which expires
//! after ten minutes; apps without a secret use PKCE. No token, code or
//! verifier is ever logged or shown.

use super::http::{Request, Response, parse_pairs};
use crate::config::ServerConfig;
use crate::daemon::Daemon;
use crate::source::spotify::auth::{self, Accounts};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FLOW_LIFETIME: Duration = Duration::from_secs(600);
const MAX_FLOWS: usize = 16;

struct Flow {
    state: String,
    server: String,
    verifier: Option<String>,
    redirect_uri: String,
    started: Instant,
}

/// The flows started and not yet finished (in memory: a restart cancels
/// them, and the user presses the button again).
#[derive(Default)]
pub struct Flows(Mutex<Vec<Flow>>);

impl Flows {
    fn take(&self, state: &str) -> Option<Flow> {
        let mut flows = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        flows.retain(|flow| flow.started.elapsed() < FLOW_LIFETIME);
        let position =
            flows.iter().position(|flow| super::constant_time_eq(flow.state.as_bytes(), state.as_bytes()))?;
        Some(flows.remove(position))
    }

    fn add(&self, flow: Flow) {
        let mut flows = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        flows.retain(|flow| flow.started.elapsed() < FLOW_LIFETIME);
        if flows.len() >= MAX_FLOWS {
            flows.remove(0);
        }
        flows.push(flow);
    }
}

/// Where Spotify sends the browser back: the configured `redirect_uri`, or
/// this status server's callback on 127.0.0.1 (Spotify accepts plain HTTP
/// only for loopback addresses).
pub fn redirect_uri(daemon: &Daemon, server: &ServerConfig) -> String {
    if let Some(uri) = server.spotify().and_then(|app| app.redirect_uri.clone()) {
        return uri;
    }
    format!("http://127.0.0.1:{}/spotify/callback", daemon.config.status.listen.port())
}

/// Starts a flow for `name`: answers `{"url": …}` to send the browser to.
pub fn connect(daemon: &Daemon, name: &str) -> Response {
    let Some(server) = daemon.config.servers.iter().find(|server| server.name == name) else {
        return Response::error(404, &format!("no server named \"{name}\" in the config; see GET /api/status"));
    };
    let Some(app) = server.spotify() else {
        return Response::error(409, &format!("server \"{name}\" is not a Spotify server; only those connect here"));
    };
    let (state, verifier) = match (auth::random_token(24), auth::random_token(48)) {
        (Ok(state), Ok(verifier)) => (state, verifier),
        (Err(err), _) | (_, Err(err)) => return Response::error(500, &err),
    };
    let verifier = app.client_secret.is_none().then_some(verifier);
    let redirect_uri = redirect_uri(daemon, server);
    let challenge = verifier.as_deref().map(auth::challenge);
    let url = auth::authorize_url(app, &redirect_uri, &state, challenge.as_deref());
    daemon.spotify_flows.add(Flow {
        state,
        server: name.to_string(),
        verifier,
        redirect_uri: redirect_uri.clone(),
        started: Instant::now(),
    });
    log::info!("{name}: Spotify authorisation started (callback {redirect_uri})");
    Response::json(
        200,
        &serde_json::json!({ "ok": true, "url": url, "redirect_uri": redirect_uri,
            "message": format!("opening Spotify; it sends you back to {redirect_uri}") }),
    )
}

/// `GET /spotify/callback`: the browser back from Spotify.
pub fn callback(daemon: &Daemon, request: &Request) -> Response {
    html_result(finish(daemon, &request.query))
}

/// `POST /api/spotify/callback` (guarded): the callback address pasted into
/// the page, as the form field `url`.
pub fn pasted(daemon: &Daemon, request: &Request) -> Response {
    let form = String::from_utf8_lossy(&request.body).into_owned();
    let pasted = parse_pairs(&form)
        .and_then(|pairs| pairs.into_iter().find(|(key, _)| key == "url").map(|(_, value)| value))
        .unwrap_or_default();
    let query = pasted.split_once('?').map_or("", |(_, query)| query);
    let Some(params) = parse_pairs(query.split('#').next().unwrap_or_default()) else {
        return Response::error(400, "the pasted address is not a valid URL; copy it whole from the address bar");
    };
    match finish(daemon, &params) {
        Ok(message) => Response::json(200, &serde_json::json!({ "ok": true, "message": message })),
        Err((status, message)) => Response::error(status, &message),
    }
}

/// Checks the state, exchanges the code and saves the tokens.
fn finish(daemon: &Daemon, params: &[(String, String)]) -> Result<String, (u16, String)> {
    let param = |name: &str| params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let state =
        param("state").ok_or((400, "the address has no `state`; start again with \"Connect Spotify\"".to_string()))?;
    let flow = daemon.spotify_flows.take(state).ok_or((
        400,
        "this authorisation is unknown, used or older than ten minutes; start again with \"Connect Spotify\""
            .to_string(),
    ))?;
    if let Some(error) = param("error") {
        let error: String = error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
        return Err((400, format!("Spotify did not authorise mediasync ({error}); nothing changed")));
    }
    let code =
        param("code").ok_or((400, "the address has no `code`; start again with \"Connect Spotify\"".to_string()))?;
    let server = daemon
        .config
        .servers
        .iter()
        .find(|server| server.name == flow.server)
        .ok_or((404, format!("server \"{}\" is no longer configured", flow.server)))?;
    let app = server.spotify().ok_or((409, "not a Spotify server".to_string()))?;
    let accounts = Accounts::new(app, daemon.config.sync.timeout);
    let tokens = accounts
        .exchange(code, &flow.redirect_uri, flow.verifier.as_deref())
        .map_err(|(err, _)| (502, format!("Spotify did not accept the authorisation: {err}")))?;
    let Some(refresh_token) = tokens.refresh_token else {
        return Err((502, "Spotify answered without a refresh token; try again".to_string()));
    };
    let now = crate::sync::now_epoch();
    let expires_at = now + tokens.expires_in.unwrap_or(3600);
    daemon
        .store
        .update_session(&flow.server, |session| {
            session.refresh_token = Some(refresh_token);
            session.access_token = Some(tokens.access_token);
            session.access_expires_at = Some(expires_at);
            session.scope = tokens.scope;
            session.connected_at = Some(now);
            session.reauthorize = None;
        })
        .map_err(|err| (500, format!("could not save the authorisation: {err}")))?;
    log::info!("{}: Spotify account connected", flow.server);
    let _ = daemon.request_sync(&flow.server, false);
    Ok(format!("Spotify connected for \"{}\"; its first sync starts now", flow.server))
}

fn html_result(result: Result<String, (u16, String)>) -> Response {
    let (status, title, message) = match result {
        Ok(message) => (200, "Connected", message),
        Err((status, message)) => (status, "Not connected", message),
    };
    let body = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\"><title>mediasync: {title}</title></head>\
<body style=\"font:15px system-ui,sans-serif;padding:12px\"><h1>{title}</h1><p>{}</p><p><a href=/>Back to the status page</a></p></body></html>",
        super::page::escape(&message)
    );
    Response::new(status, "text/html; charset=utf-8", body)
}
