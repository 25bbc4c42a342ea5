//! Jellyfin's `/socket` and Emby's `/embywebsocket`: `{MessageType, Data}`
//! messages. `LibraryChanged` (`ItemsAdded`, `ItemsUpdated`,
//! `ItemsRemoved`, `FoldersAddedTo`, …) is sent only to sessions of a
//! signed-in user, never to an API key's, so the socket authenticates with
//! the access token of a sign-in. `ForceKeepAlive` asks for a `KeepAlive`
//! message every half of its period; the server drops a socket that sends
//! none. `docs/servers.md` lists the shapes relied on.

use super::socket::Endpoint;
use super::{Change, Notice};
use crate::config::{Flavor, JellyfinConfig, ServerConfig};
use crate::source::lenient::{Int, Text};
use serde::Deserialize;
use std::time::Duration;

/// What a message asks of the listener.
#[derive(Debug, PartialEq, Eq)]
pub enum Said {
    Notice(Notice),
    /// Send `KEEP_ALIVE` this often from now on.
    KeepAlive(Duration),
    Nothing,
}

/// The message a client sends to stay connected.
pub const KEEP_ALIVE: &str = r#"{"MessageType":"KeepAlive"}"#;

/// The socket for a user's access token. Jellyfin reads the token from the
/// `Authorization` header of the upgrade (its only accepted place on 12);
/// Emby identifies a socket's session from `api_key` and `deviceId` in the
/// query, so there the token is in the url too (never in `shown`).
pub fn endpoint(server: &ServerConfig, jellyfin: &JellyfinConfig, access_token: &str) -> Endpoint {
    let base = super::websocket_base(&jellyfin.url);
    let device = format!("mediasync-{}", server.name);
    let authorization = crate::source::jellyfin::authorization(&server.name, Some(access_token));
    let headers = vec![("authorization", authorization)];
    match jellyfin.flavor {
        Flavor::Jellyfin => Endpoint { url: format!("{base}/socket"), shown: format!("{base}/socket"), headers },
        Flavor::Emby => Endpoint {
            url: format!(
                "{base}/embywebsocket?api_key={}&deviceId={}",
                crate::source::http::encode(access_token),
                crate::source::http::encode(&device)
            ),
            shown: format!("{base}/embywebsocket"),
            headers,
        },
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Message {
    #[serde(rename = "MessageType")]
    kind: Text,
    #[serde(rename = "Data")]
    data: serde_json::Value,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct LibraryUpdateInfo {
    items_added: Vec<Text>,
    items_updated: Vec<Text>,
    items_removed: Vec<Text>,
    folders_added_to: Vec<Text>,
    folders_removed_from: Vec<Text>,
}

pub fn read(text: &str) -> Said {
    let Ok(message) = serde_json::from_str::<Message>(text) else {
        return Said::Nothing;
    };
    match message.kind.as_str() {
        Some("LibraryChanged") => {
            let Ok(info) = serde_json::from_value::<LibraryUpdateInfo>(message.data) else {
                return Said::Nothing;
            };
            let ids = |list: Vec<Text>| list.into_iter().filter_map(|id| id.as_str().map(str::to_string));
            let mut notice = Notice::default();
            for (list, removed) in [(info.items_added, false), (info.items_updated, false), (info.items_removed, true)]
            {
                notice.changes.extend(ids(list).map(|id| Change { library: None, kind: None, id, removed }));
            }
            notice.folders.extend(ids(info.folders_added_to).chain(ids(info.folders_removed_from)));
            if notice.is_empty() { Said::Nothing } else { Said::Notice(notice) }
        }
        Some("ForceKeepAlive") => {
            // The period the server drops a silent socket after; clients
            // answer every half of it. Jellyfin says 60.
            let period = serde_json::from_value::<Int>(message.data).ok().and_then(Int::count).unwrap_or(60);
            Said::KeepAlive(Duration::from_secs(period.clamp(2, 3600) / 2))
        }
        _ => Said::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn library_changes_as_the_servers_send_them() {
        let message = json!({"MessageType": "LibraryChanged", "MessageId": "4c8f1ab0d6a54ad8a1c6a4b1e0c3d2f9", "Data": {
            "FoldersAddedTo": ["ba9c5cad4ccd875366bf54fd50e04928"], "FoldersRemovedFrom": [],
            "ItemsAdded": ["6f91bbba468dfbb00984986c4e5d0a74"], "ItemsRemoved": ["b44f297fb12dbc4dad50bb49f8475520"],
            "ItemsUpdated": ["0a1b2c3d4e5f60718293a4b5c6d7e8f9"],
            "CollectionFolders": ["f137a2dd21bbc1b99aa5c0f6bf02a805"], "IsEmpty": false}});
        let Said::Notice(notice) = read(&message.to_string()) else {
            panic!("a LibraryChanged message is a notice");
        };
        let change = |id: &str, removed| Change { library: None, kind: None, id: id.into(), removed };
        assert_eq!(
            notice.changes,
            vec![
                change("6f91bbba468dfbb00984986c4e5d0a74", false),
                change("0a1b2c3d4e5f60718293a4b5c6d7e8f9", false),
                change("b44f297fb12dbc4dad50bb49f8475520", true),
            ]
        );
        assert_eq!(notice.folders, vec!["ba9c5cad4ccd875366bf54fd50e04928".to_string()]);
    }

    #[test]
    fn keep_alive_and_noise() {
        let force = json!({"MessageId": "x", "Data": 60, "MessageType": "ForceKeepAlive"});
        assert_eq!(read(&force.to_string()), Said::KeepAlive(Duration::from_secs(30)));
        let empty = json!({"MessageType": "LibraryChanged", "Data": {"ItemsAdded": [], "IsEmpty": true}});
        assert_eq!(read(&empty.to_string()), Said::Nothing);
        for other in [r#"{"MessageType":"KeepAlive"}"#, r#"{"MessageType":"Sessions","Data":[]}"#, "nope", "[]"] {
            assert_eq!(read(other), Said::Nothing, "{other}");
        }
    }
}
