//! The fake Jellyfin/Emby server's sign-in and notification socket, as the
//! real servers have them: `/Users/AuthenticateByName` gives a user's
//! access token (one per device: a new sign-in replaces the device's old
//! token); the socket is `/socket` (token in the `Authorization` header)
//! or Emby's `/embywebsocket` (token in the `api_key` query); changes are
//! gathered and sent as one `LibraryChanged` once no change came for the
//! server's `LibraryUpdateDuration` (30 s by default), and only to sockets
//! of a signed-in user: a socket opened with the API key gets none.
//! `ForceKeepAlive` on connect; a socket silent past the period is dropped.

use super::super::front::Head;
use super::super::query;
use super::super::sockets::{KeepAlive, Sockets, refuse};
use super::JellyfinState;
use super::serve::{Answer, json_answer, mediabrowser_token, text};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Whose session a socket is: a user's id, or `None` for the API key.
pub type Subscriber = Option<String>;

pub struct Notifier {
    pub sockets: Arc<Sockets<Subscriber>>,
    /// The server's `LibraryUpdateDuration`.
    pub library_update: Duration,
    /// The keep-alive period announced with `ForceKeepAlive`.
    pub keep_alive: Duration,
    /// Access tokens of sign-ins: (token, user id, device id).
    tokens: Vec<(String, String, String)>,
    added: BTreeSet<String>,
    updated: BTreeSet<String>,
    removed: BTreeSet<String>,
    folders_added: BTreeSet<String>,
    folders_removed: BTreeSet<String>,
    due: Option<Instant>,
    next_token: u64,
}

impl Default for Notifier {
    fn default() -> Notifier {
        Notifier {
            sockets: Sockets::new(),
            library_update: Duration::from_secs(30),
            keep_alive: Duration::from_secs(60),
            tokens: Vec::new(),
            added: BTreeSet::new(),
            updated: BTreeSet::new(),
            removed: BTreeSet::new(),
            folders_added: BTreeSet::new(),
            folders_removed: BTreeSet::new(),
            due: None,
            next_token: 1,
        }
    }
}

/// What changed, for the next `LibraryChanged`.
pub enum Noted<'a> {
    Added { id: &'a str, folder: &'a str },
    Updated(&'a str),
    Removed { id: &'a str, folder: &'a str },
}

impl Notifier {
    /// The access tokens given by sign-ins.
    pub fn tokens(&self) -> Vec<String> {
        self.tokens.iter().map(|(token, _, _)| token.clone()).collect()
    }

    /// The user a token was given to.
    pub fn user_of(&self, token: &str) -> Option<&str> {
        self.tokens.iter().find(|(known, _, _)| known == token).map(|(_, user, _)| user.as_str())
    }

    pub fn note(&mut self, change: Noted<'_>) {
        match change {
            Noted::Added { id, folder } => {
                self.added.insert(id.to_string());
                self.folders_added.insert(folder.to_string());
            }
            Noted::Updated(id) => {
                self.updated.insert(id.to_string());
            }
            Noted::Removed { id, folder } => {
                self.removed.insert(id.to_string());
                self.folders_removed.insert(folder.to_string());
            }
        }
        // Each change restarts the server's timer, as Jellyfin's does.
        self.due = Instant::now().checked_add(self.library_update);
    }

    /// Sends the gathered changes when their time has come.
    fn flush(&mut self, views: &[String]) {
        if self.due.is_none_or(|due| Instant::now() < due) {
            return;
        }
        self.due = None;
        let list = |set: &mut BTreeSet<String>| std::mem::take(set).into_iter().collect::<Vec<_>>();
        let updated: Vec<String> = list(&mut self.updated).into_iter().filter(|id| !self.added.contains(id)).collect();
        let folders_added = list(&mut self.folders_added);
        let folders_removed = list(&mut self.folders_removed);
        // Any folder change names every library of the user.
        let collections =
            if folders_added.is_empty() && folders_removed.is_empty() { Vec::new() } else { views.to_vec() };
        let data = json!({
            "FoldersAddedTo": folders_added,
            "FoldersRemovedFrom": folders_removed,
            "ItemsAdded": list(&mut self.added),
            "ItemsRemoved": list(&mut self.removed),
            "ItemsUpdated": updated,
            "CollectionFolders": collections,
            "IsEmpty": false,
        });
        let message =
            json!({"MessageType": "LibraryChanged", "MessageId": "5a1c0c8e9b1d4b3f8d0e6f7a8b9c0d1e", "Data": data});
        self.sockets.broadcast(&message.to_string(), Option::is_some);
    }
}

/// Flushes the fake's pending changes until the fake is dropped.
pub fn start_timer(state: Weak<Mutex<JellyfinState>>) {
    std::thread::spawn(move || {
        while let Some(state) = state.upgrade() {
            {
                let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let views: Vec<String> = state.views.iter().map(|view| view.id.clone()).collect();
                state.notifier.flush(&views);
            }
            drop(state);
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

/// `POST /Users/AuthenticateByName` with `{"Username", "Pw"}`.
pub fn authenticate(state: &mut JellyfinState, authorization: Option<&str>, body: &str) -> Answer {
    let request: Value = serde_json::from_str(body).unwrap_or_default();
    let name = request["Username"].as_str().unwrap_or_default();
    let password = request["Pw"].as_str().unwrap_or_default();
    let Some(user) = state.users.iter().find(|user| user.name.eq_ignore_ascii_case(name) && user.password == password)
    else {
        return text(401, "Error processing request.");
    };
    let user = user.clone();
    let device = authorization.and_then(|value| part(value, "DeviceId")).unwrap_or_default().to_string();
    signed_in(state, &user, &device)
}

/// An `AuthenticationResult`: a new access token of `user` for `device`,
/// replacing the device's old one.
pub fn signed_in(state: &mut JellyfinState, user: &super::FakeUser, device: &str) -> Answer {
    let notifier = &mut state.notifier;
    let token = format!("{:032x}", 0xacce55_u64.wrapping_mul(1_000_003).wrapping_add(notifier.next_token));
    notifier.next_token += 1;
    notifier.tokens.retain(|(_, _, known)| *known != device);
    notifier.tokens.push((token.clone(), user.id.clone(), device.to_string()));
    json_answer(&json!({
        "User": {"Name": user.name, "ServerId": "f00dfeedf00dfeedf00dfeedf00dfeed", "Id": user.id, "HasPassword": true,
                 "Policy": {"IsAdministrator": user.admin}},
        "SessionInfo": {"Id": "0123456789abcdef0123456789abcdef", "UserId": user.id, "UserName": user.name,
                        "Client": "mediasync", "DeviceName": "mediasync", "IsActive": true},
        "AccessToken": token,
        "ServerId": "f00dfeedf00dfeedf00dfeedf00dfeed",
    }))
}

/// A `key="value"` part of a `MediaBrowser` authorization header.
pub fn part<'a>(value: &'a str, key: &str) -> Option<&'a str> {
    value.split(',').find_map(|part| {
        let (name, value) = part.trim().split_once('=')?;
        name.trim()
            .trim_start_matches("MediaBrowser ")
            .eq_ignore_ascii_case(key)
            .then(|| value.trim().trim_matches('"'))
    })
}

/// A websocket upgrade: `/socket` (Jellyfin) or `/embywebsocket` (Emby).
pub fn upgrade(shared: &Mutex<JellyfinState>, stream: std::net::TcpStream, head: Head) {
    let (path, params) = query::split(&head.target);
    let (sockets, subscriber, keep_alive) = {
        let state = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.notifier.sockets.count_upgrade();
        let emby = state.behaviour.is_emby();
        if path != if emby { "/embywebsocket" } else { "/socket" } {
            drop(state);
            return refuse(stream, 404, "Not Found");
        }
        // Emby finds a socket's session from the query alone; Jellyfin
        // authenticates the upgrade like any request.
        let query_token = params.iter().find(|(name, _)| name == "api_key").map(|(_, value)| value.as_str());
        let token = if emby { query_token } else { head.header("Authorization").and_then(mediabrowser_token) };
        let subscriber = match token {
            Some(token) if token == state.api_key => Some(None),
            Some(token) => state.notifier.user_of(token).map(|user| Some(user.to_string())),
            None => None,
        };
        let keep_alive = (!emby).then_some(KeepAlive { period: state.notifier.keep_alive });
        (Arc::clone(&state.notifier.sockets), subscriber, keep_alive)
    };
    match subscriber {
        _ if sockets.refusing() => refuse(stream, 503, "Service Unavailable"),
        None => refuse(stream, 401, "Unauthorized"),
        Some(subscriber) => sockets.serve(stream, subscriber, keep_alive),
    }
}
