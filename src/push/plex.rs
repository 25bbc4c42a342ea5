//! Plex Media Server's notification socket, `/:/websockets/notifications`:
//! the token in the `X-Plex-Token` header of the upgrade, and the
//! `NotificationContainer` messages read down to what changed in the
//! library: `timeline` entries of `com.plexapp.plugins.library` (section,
//! item, type, state) and `activity` notifications of a section scan that
//! started or ended. Everything else (playback, status, transcodes) is ignored.
//! `docs/servers.md` lists the shapes relied on.

use super::socket::Endpoint;
use super::{Change, Notice};
use crate::config::{PlexConfig, ServerConfig};
use crate::model::Kind;
use crate::source::lenient::{Entries, Int, Object, Text};
use serde::Deserialize;

/// The library's timeline entries carry this identifier; other plugins
/// (DVR, sync) reuse the `timeline` type for unrelated things.
const LIBRARY: &str = "com.plexapp.plugins.library";
/// `state` of a deleted item (`metadataState` is then `deleted` too).
const DELETED: i64 = 9;

pub fn endpoint(server: &ServerConfig, plex: &PlexConfig) -> Endpoint {
    let base = super::websocket_base(&plex.url);
    Endpoint {
        url: format!("{base}/:/websockets/notifications"),
        shown: format!("{base}/:/websockets/notifications"),
        headers: vec![
            ("x-plex-token", plex.token.clone()),
            ("x-plex-client-identifier", format!("mediasync-{}", server.name)),
            ("x-plex-product", "mediasync".into()),
            ("x-plex-version", env!("CARGO_PKG_VERSION").into()),
        ],
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Message {
    #[serde(rename = "NotificationContainer")]
    container: Object<Container>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Container {
    #[serde(rename = "type")]
    kind: Text,
    #[serde(rename = "TimelineEntry")]
    timeline: Entries<TimelineEntry>,
    #[serde(rename = "ActivityNotification")]
    activity: Entries<ActivityNotification>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct TimelineEntry {
    identifier: Text,
    #[serde(rename = "sectionID")]
    section: Text,
    #[serde(rename = "itemID")]
    item: Text,
    #[serde(rename = "type")]
    kind: Int,
    state: Int,
    #[serde(rename = "metadataState")]
    metadata_state: Text,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ActivityNotification {
    event: Text,
    #[serde(rename = "Activity")]
    activity: Object<Activity>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Activity {
    #[serde(rename = "type")]
    kind: Text,
    #[serde(rename = "Context")]
    context: Object<Context>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Context {
    #[serde(rename = "librarySectionID")]
    section: Text,
}

/// What a message says about the library; `None` for messages about
/// anything else, and for text that is not a notification.
pub fn read(text: &str) -> Option<Notice> {
    let message: Message = serde_json::from_str(text).ok()?;
    let container = message.container.0?;
    let mut notice = Notice::default();
    match container.kind.as_str() {
        Some("timeline") => {
            for entry in container.timeline.0.into_iter().flatten() {
                if entry.identifier.as_str() != Some(LIBRARY) {
                    continue;
                }
                // Items outside any section (sectionID -1) are not synced.
                let (Some(section), Some(id)) = (entry.section.as_str(), entry.item.as_str()) else {
                    continue;
                };
                if section.starts_with('-') {
                    continue;
                }
                let kind = entry.kind.get().and_then(|code| u8::try_from(code).ok()).and_then(Kind::from_code);
                let removed = entry.state.get() == Some(DELETED) || entry.metadata_state.as_str() == Some("deleted");
                notice.changes.push(Change { library: Some(section.to_string()), kind, id: id.to_string(), removed });
            }
        }
        Some("activity") => {
            for entry in container.activity.0.into_iter().flatten() {
                let Some(activity) = entry.activity.0 else {
                    continue;
                };
                if activity.kind.as_str() != Some("library.update.section") {
                    continue;
                }
                let scans = match entry.event.as_str() {
                    Some("started") => &mut notice.scans_started,
                    Some("ended") => &mut notice.scans_ended,
                    _ => continue,
                };
                let section = activity.context.0.and_then(|context| context.section.as_str().map(str::to_string));
                scans.extend(section);
            }
        }
        _ => return None,
    }
    (!notice.is_empty()).then_some(notice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timeline_entries_of_the_library_are_changes() {
        let message = json!({"NotificationContainer": {"type": "timeline", "size": 3, "TimelineEntry": [
            {"identifier": "com.plexapp.plugins.library", "sectionID": "1", "itemID": "10141", "type": 1,
             "title": "Prefix Test (2024)", "state": 5, "updatedAt": 1_788_180_088},
            {"identifier": "com.plexapp.plugins.library", "sectionID": "2", "itemID": 77, "type": 4,
             "title": "Pilot", "state": 9, "metadataState": "deleted", "updatedAt": 1_788_180_089},
            {"identifier": "com.plexapp.plugins.library", "sectionID": "-1", "itemID": "5", "type": 18, "state": 0},
            {"identifier": "com.plexapp.plugins.dvr", "sectionID": "1", "itemID": "6", "type": 1, "state": 5}
        ]}});
        let notice = read(&message.to_string()).unwrap();
        assert_eq!(
            notice.changes,
            vec![
                Change { library: Some("1".into()), kind: Some(Kind::Movie), id: "10141".into(), removed: false },
                Change { library: Some("2".into()), kind: Some(Kind::Episode), id: "77".into(), removed: true },
            ]
        );
    }

    #[test]
    fn section_scans_starting_and_ending_are_noticed_and_the_rest_ignored() {
        let ended = json!({"NotificationContainer": {"type": "activity", "size": 1, "ActivityNotification": [
            {"event": "ended", "uuid": "39cc0658", "Activity": {"uuid": "39cc0658", "type": "library.update.section",
             "cancellable": false, "userID": 1, "title": "Scanning Movies", "subtitle": "", "progress": 100,
             "Context": {"librarySectionID": "3"}}}]}});
        assert_eq!(read(&ended.to_string()).unwrap().scans_ended, vec!["3".to_string()]);
        let started = ended.to_string().replace("\"ended\"", "\"started\"");
        assert_eq!(read(&started).unwrap().scans_started, vec!["3".to_string()]);
        let updated = ended.to_string().replace("\"ended\"", "\"updated\"");
        assert!(read(&updated).is_none());
        let playing = json!({"NotificationContainer": {"type": "playing", "size": 1, "PlaySessionStateNotification": [
            {"sessionKey": "3", "ratingKey": "9940", "key": "/library/metadata/9940", "state": "paused"}]}});
        assert!(read(&playing.to_string()).is_none());
        for garbage in ["not json", "[1,2,3]", "{}", "{\"NotificationContainer\": 5}"] {
            assert!(read(garbage).is_none(), "{garbage}");
        }
    }
}
