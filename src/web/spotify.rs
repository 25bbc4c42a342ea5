//! "Connect Spotify" over HTTP (the flows themselves are `app::spotify`).
//! `POST /api/servers/{name}/connect` (a guarded control) starts a flow and
//! answers the Spotify address to open; Spotify sends the browser back to
//! `GET /spotify/callback?code=…&state=…`, authenticated by the state alone
//! (a browser redirect carries no admin token). When the browser is not on
//! the box and the callback address (127.0.0.1) cannot load, the user pastes
//! that address into the page, which posts it to `POST /api/spotify/callback`.

use super::http::{Request, Response, parse_pairs};
use crate::app::App;
use crate::app::spotify::{Callback, FlowError};

/// The HTTP status of a flow that could not start or finish.
fn status_of(err: &FlowError) -> u16 {
    match err {
        FlowError::UnknownServer(_) | FlowError::ServerGone(_) => 404,
        FlowError::NotSpotify(_) | FlowError::NoLongerSpotify => 409,
        FlowError::Random(_) | FlowError::Save(_) => 500,
        FlowError::MissingState | FlowError::UnknownFlow | FlowError::Denied(_) | FlowError::MissingCode => 400,
        FlowError::Exchange(_) | FlowError::NoRefreshToken => 502,
    }
}

/// Starts a flow for `name`: answers `{"url": …}` to send the browser to.
pub fn connect(app: &App, name: &str) -> Response {
    match app.start_spotify_flow(name) {
        Ok(start) => Response::json(
            200,
            &serde_json::json!({ "ok": true, "url": start.url, "redirect_uri": start.redirect_uri,
                "message": format!("opening Spotify; it sends you back to {}", start.redirect_uri) }),
        ),
        Err(err) => Response::error(status_of(&err), &err.to_string()),
    }
}

/// `GET /spotify/callback`: the browser back from Spotify.
pub fn callback(app: &App, request: &Request) -> Response {
    html_result(finish(app, &request.query))
}

/// `POST /api/spotify/callback` (guarded): the callback address pasted into
/// the page, as the form field `url`.
pub fn pasted(app: &App, request: &Request) -> Response {
    let pasted = parse_pairs(&request.body).into_iter().find(|(key, _)| key == "url").map(|(_, value)| value);
    let address = pasted.as_deref().unwrap_or_default().split('#').next().unwrap_or_default().trim();
    let Ok(address) = address.parse::<hyper::Uri>() else {
        return Response::error(400, "the pasted address is not a valid URL; copy it whole from the address bar");
    };
    let params = parse_pairs(address.query().unwrap_or_default().as_bytes());
    match finish(app, &params) {
        Ok(message) => Response::json(200, &serde_json::json!({ "ok": true, "message": message })),
        Err(err) => Response::error(status_of(&err), &err.to_string()),
    }
}

/// Finishes the flow the callback's parameters name.
fn finish(app: &App, params: &[(String, String)]) -> Result<String, FlowError> {
    let param = |name: &str| params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let callback = Callback { state: param("state"), code: param("code"), error: param("error") };
    let server = app.finish_spotify_flow(&callback)?;
    Ok(format!("Spotify connected for \"{server}\"; its first sync starts now"))
}

fn html_result(result: Result<String, FlowError>) -> Response {
    let (status, title, message) = match result {
        Ok(message) => (200, "Connected", message),
        Err(err) => (status_of(&err), "Not connected", err.to_string()),
    };
    let body = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\"><title>mediasync: {title}</title></head>\
<body style=\"font:15px system-ui,sans-serif;padding:12px\"><h1>{title}</h1><p>{}</p><p><a href=/>Back to the status page</a></p></body></html>",
        super::page::escape(&message)
    );
    Response::new(status, "text/html; charset=utf-8", body).with_header(
        hyper::header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    )
}
