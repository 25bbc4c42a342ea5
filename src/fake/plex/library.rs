//! A fake Plex's library bookkeeping: the clock, rating keys, plays,
//! generated items, and the timeline and activity notifications its
//! changes push to the sockets.

use super::{BASE_TIME, DELETED, FakeItem, PlexState};
use crate::fake::history::PlexPlay;
use crate::model::Kind;
use serde_json::json;

impl PlexState {
    /// Pushes a timeline entry for an item in `item_state` (PMS's numbers:
    /// 0 created … 5 processed, 9 deleted) to every socket, as one message.
    pub(crate) fn notify(&self, rating_key: &str, item_state: u8) {
        let found = self.sections.iter().find_map(|section| {
            section.items.iter().find(|item| item.rating_key == rating_key).map(|item| (section, item))
        });
        let Some((section, item)) = found else {
            return;
        };
        let mut entry = json!({
            "identifier": "com.plexapp.plugins.library",
            "sectionID": section.key,
            "itemID": item.rating_key,
            "type": item.kind.code(),
            "title": item.title,
            "state": item_state,
            "updatedAt": item.updated_at,
        });
        let metadata_state = match item_state {
            0..=4 => Some("created"),
            DELETED => Some("deleted"),
            _ => None,
        };
        if let (Some(metadata_state), Some(entry)) = (metadata_state, entry.as_object_mut()) {
            entry.insert("metadataState".into(), json!(metadata_state));
        }
        let message = json!({"NotificationContainer": {"type": "timeline", "size": 1, "TimelineEntry": [entry]}});
        self.sockets.broadcast(&message.to_string(), |_| true);
    }

    pub(super) fn notify_scan(&self, section: &str, event: &str) {
        let title = self.sections.iter().find(|candidate| candidate.key == section).map_or("", |found| &found.title);
        let message = json!({"NotificationContainer": {"type": "activity", "size": 1, "ActivityNotification": [{
            "event": event,
            "uuid": format!("00000000-0000-4000-8000-{section:0>12}"),
            "Activity": {
                "uuid": format!("00000000-0000-4000-8000-{section:0>12}"),
                "type": "library.update.section",
                "cancellable": false,
                "userID": 1,
                "title": format!("Scanning {title}"),
                "subtitle": "",
                "progress": if event == "ended" { 100 } else { 0 },
                "Context": {"librarySectionID": section},
            },
        }]}});
        self.sockets.broadcast(&message.to_string(), |_| true);
    }

    pub(crate) fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.clock
    }

    /// See `FakePlex::play`. A play is recorded when it ends, at least a
    /// minute after the previous one.
    pub(super) fn play(&mut self, count: usize) {
        let playable: Vec<(String, FakeItem)> = self
            .sections
            .iter()
            .flat_map(|section| section.items.iter().map(move |item| (section.key.clone(), item.clone())))
            .filter(|(_, item)| matches!(item.kind, Kind::Movie | Kind::Episode | Kind::Track))
            .collect();
        if playable.is_empty() {
            return;
        }
        for _ in 0..count {
            self.clock += 60;
            let viewed_at = self.tick();
            self.next_history += 1;
            let serial = self.next_history;
            let (section, item) = &playable[serial as usize % playable.len()];
            let parent = item.parent.as_deref().and_then(|parent| self.find(parent));
            let grandparent = item.grandparent.as_deref().and_then(|grandparent| self.find(grandparent));
            let play = PlexPlay {
                history_id: serial,
                viewed_at,
                rating_key: item.rating_key.clone(),
                kind: item.kind,
                title: item.title.clone(),
                parent_title: parent.map(|parent| parent.title.clone()),
                grandparent_title: grandparent.map(|grandparent| grandparent.title.clone()),
                section: section.clone(),
                account_id: 1 + serial % 3,
                device_id: 1 + serial % 4,
                served: false,
            };
            self.plays.push(play);
        }
    }

    pub(crate) fn take_key(&mut self) -> String {
        self.next_key += 1;
        self.next_key.to_string()
    }

    pub(crate) fn find(&self, rating_key: &str) -> Option<&FakeItem> {
        self.sections.iter().flat_map(|section| section.items.iter()).find(|item| item.rating_key == rating_key)
    }

    pub(crate) fn find_mut(&mut self, rating_key: &str) -> Option<&mut FakeItem> {
        self.sections.iter_mut().flat_map(|section| section.items.iter_mut()).find(|item| item.rating_key == rating_key)
    }

    /// A generated item. Items are added in bursts of a few per second, as a
    /// library scan does, so many share `addedAt`/`updatedAt` values.
    pub(super) fn generated(&mut self, section: &str, kind: Kind, parent: Option<&str>, number: usize) -> String {
        let key = self.take_key();
        let serial = self.next_key as i64;
        let added_at = BASE_TIME - 30_000_000 + serial / 3 * 7;
        let updated_at = added_at + (serial % 5) * 3_600;
        let grandparent = parent.and_then(|parent| self.find(parent).and_then(|item| item.parent.clone()));
        let title = match kind {
            Kind::Movie => format!("Movie {serial}"),
            Kind::Show => format!("Show {serial}"),
            Kind::Season => format!("Season {}", number + 1),
            Kind::Episode => format!("Episode {serial}"),
            Kind::Artist => format!("Artist {serial}"),
            Kind::Album => format!("Album {serial}"),
            _ => format!("Track {serial}"),
        };
        let item = FakeItem {
            rating_key: key.clone(),
            kind,
            title_sort: (serial % 4 == 0).then(|| format!("{title}, The")),
            title,
            parent: parent.map(str::to_string),
            grandparent,
            index: Some(number as i64 + 1),
            parent_index: parent.map(|_| 1),
            year: Some(1990 + (serial % 35) as i32),
            added_at,
            updated_at,
            art_at: updated_at,
            duration: matches!(kind, Kind::Movie | Kind::Episode | Kind::Track).then_some(60_000 + serial * 13),
        };
        self.sections
            .iter_mut()
            .find(|candidate| candidate.key == section)
            .expect("generated: no such section")
            .items
            .push(item);
        key
    }
}
