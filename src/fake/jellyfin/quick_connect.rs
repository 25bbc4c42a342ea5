//! The fake Jellyfin's Quick Connect, as Jellyfin's `QuickConnectManager`
//! has it: `POST /QuickConnect/Initiate` (a GET before 10.9) from a client
//! whose `Authorization` names client, device, device id and version gives
//! a secret (64 hex digits) and a six-digit code, valid ten minutes; a
//! signed-in user's app authorises the code (`authorize`, standing in for
//! `POST /QuickConnect/Authorize`), which signs the requesting device in;
//! `GET /QuickConnect/Connect?secret=` says whether it is authorised;
//! `POST /Users/AuthenticateWithQuickConnect` with `{"Secret"}` answers the
//! sign-in once authorised and 404 before. Turned off: 401 "Quick connect
//! is disabled". Emby has none (404).

use super::JellyfinState;
use super::notify::{part, signed_in};
use super::serve::{Answer, json_answer, text};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// How long a request lives (Jellyfin's `Timeout`, in minutes there).
const LIFETIME: Duration = Duration::from_secs(600);

pub struct QuickConnect {
    /// The dashboard's "Enable Quick Connect" (on by default since 10.9).
    pub enabled: bool,
    requests: Vec<Request>,
    next: u64,
}

impl Default for QuickConnect {
    fn default() -> QuickConnect {
        QuickConnect { enabled: true, requests: Vec::new(), next: 1 }
    }
}

struct Request {
    secret: String,
    code: String,
    device: String,
    client: String,
    /// The user who authorised it.
    user: Option<String>,
    added: Instant,
}

impl QuickConnect {
    fn expire(&mut self) {
        self.requests.retain(|request| request.added.elapsed() < LIFETIME);
    }
}

/// Authorises a pending code for the user named, as the user's own app
/// does; false when no such code or user.
pub fn authorize(state: &mut JellyfinState, code: &str, user: &str) -> bool {
    let Some(user) = state.users.iter().find(|known| known.name == user).map(|user| user.id.clone()) else {
        return false;
    };
    let quick = &mut state.quick_connect;
    quick.expire();
    match quick.requests.iter_mut().find(|request| request.code == code && request.user.is_none()) {
        Some(request) => {
            request.user = Some(user);
            // Jellyfin keeps an authorised request a minute more at least.
            request.added = Instant::now();
            true
        }
        None => false,
    }
}

/// The answer to a Quick Connect request, or `None` for other paths (and
/// on Emby, which has none).
pub fn answer(
    state: &mut JellyfinState,
    post: bool,
    path: &str,
    params: &[(String, String)],
    authorization: Option<&str>,
    body: &str,
) -> Option<Answer> {
    let quick_path = path.starts_with("/QuickConnect/") || path == "/Users/AuthenticateWithQuickConnect";
    if !quick_path || state.behaviour.is_emby() {
        return None;
    }
    if !state.quick_connect.enabled {
        return Some(text(401, "Quick connect is disabled"));
    }
    state.quick_connect.expire();
    let before_10_9 = state.behaviour == super::Behaviour::Jellyfin10_8;
    Some(match (path, post) {
        ("/QuickConnect/Initiate", post) if post != before_10_9 => initiate(state, authorization),
        ("/QuickConnect/Initiate", _) => text(405, ""),
        ("/QuickConnect/Connect", false) => {
            let secret = params.iter().find(|(name, _)| name.eq_ignore_ascii_case("secret")).map(|(_, value)| value);
            match state.quick_connect.requests.iter().find(|request| Some(&request.secret) == secret) {
                Some(request) => json_answer(&result(request)),
                None => text(404, "Unknown secret"),
            }
        }
        ("/Users/AuthenticateWithQuickConnect", true) => {
            let request: Value = serde_json::from_str(body).unwrap_or_default();
            let secret = request["Secret"].as_str().unwrap_or_default();
            let authorised = state
                .quick_connect
                .requests
                .iter()
                .find(|request| request.secret == secret)
                .and_then(|request| Some((request.user.clone()?, request.device.clone())));
            let user = authorised.and_then(|(user, device)| {
                state.users.iter().find(|known| known.id == user).cloned().map(|user| (user, device))
            });
            match user {
                Some((user, device)) => signed_in(state, &user, &device),
                None => text(404, "Unable to find request"),
            }
        }
        _ => text(405, ""),
    })
}

fn initiate(state: &mut JellyfinState, authorization: Option<&str>) -> Answer {
    let field = |key: &str| authorization.and_then(|value| part(value, key)).filter(|value| !value.is_empty());
    let (Some(client), Some(_), Some(device), Some(_)) =
        (field("Client"), field("Device"), field("DeviceId"), field("Version"))
    else {
        return text(400, "Value cannot be null or empty.");
    };
    let quick = &mut state.quick_connect;
    let number = quick.next;
    quick.next += 1;
    let request = Request {
        secret: format!("{:016X}{:048X}", 0x5ec7e7_u64.wrapping_mul(number), number),
        code: (100_000 + number * 7_919 % 900_000).to_string(),
        device: device.to_string(),
        client: client.to_string(),
        user: None,
        added: Instant::now(),
    };
    let answer = json_answer(&result(&request));
    quick.requests.push(request);
    answer
}

fn result(request: &Request) -> Value {
    json!({
        "Authenticated": request.user.is_some(),
        "Secret": request.secret,
        "Code": request.code,
        "DeviceId": request.device,
        "DeviceName": "mediasync",
        "AppName": request.client,
        "AppVersion": "0.1.0",
        "DateAdded": "2026-11-30T12:00:00.0000000Z",
    })
}
