//! How the fake Jellyfin/Emby server changes: additions (created now, or
//! with an old creation date, as a file copied in keeps its own, so they
//! land in the middle of `DateCreated` order), metadata and image edits
//! (saved now), playback (user data only), deletions of whole subtrees and
//! moves of a subtree to another view of the same type (same ids, gone from
//! the first view); and the random mix of them the change mode makes.

use super::{Changes, Changing};
use crate::fake::jellyfin::{FakeItem, JellyfinState, Noted, type_for};
use crate::model::Kind;

impl JellyfinState {
    /// Adds an item now, of the type `kind` stands for in the view, created
    /// at `created` (now when `None`); returns its id.
    pub fn add(&mut self, view: &str, kind: Kind, name: &str, parent: Option<&str>, created: Option<i64>) -> String {
        let now = self.tick();
        let id = self.take_id();
        let serial = self.take_serial();
        let view = self.views.iter_mut().find(|candidate| candidate.id == view).expect("add: no such view");
        let item_type = type_for(view.collection_type, kind);
        view.items.push(FakeItem {
            id: id.clone(),
            item_type,
            name: name.to_string(),
            parent: parent.map(str::to_string),
            index: Some(1),
            parent_index: None,
            year: Some(2025),
            created: created.unwrap_or(now),
            saved: now,
            image_at: now,
            user_data_at: now,
            play_count: 0,
            last_played: None,
            overview: String::new(),
            serial,
        });
        let folder = parent.map_or_else(|| view.id.clone(), str::to_string);
        self.notifier.note(Noted::Added { id: &id, folder: &folder });
        id
    }

    /// Changes an item now with `change`, which gets the item and the time.
    pub fn change(&mut self, id: &str, change: impl FnOnce(&mut FakeItem, i64)) {
        let now = self.tick();
        let item = self.views.iter_mut().flat_map(|view| view.items.iter_mut()).find(|item| item.id == id);
        let item = item.expect("change: no such item");
        let saved = item.saved;
        change(item, now);
        // A save is an ItemUpdated; playback (user data) is not.
        if item.saved != saved {
            self.notifier.note(Noted::Updated(id));
        }
    }

    /// Deletes an item and everything below it, as the servers do.
    pub fn remove(&mut self, id: &str) {
        self.tick();
        self.note_removed(id);
        for (view, item) in self.take_subtree(id) {
            self.changes.deleted.record(&view, &item.id);
        }
    }

    /// Moves an item and everything below it to another view: same ids,
    /// gone from the first view, saved now.
    pub fn move_to(&mut self, id: &str, view: &str) {
        let now = self.tick();
        self.note_removed(id);
        for (from, mut item) in self.take_subtree(id) {
            self.changes.deleted.record(&from, &item.id);
            item.saved = now;
            if let Some(target) = self.views.iter_mut().find(|candidate| candidate.id == view) {
                target.items.push(item);
            }
        }
        self.notifier.note(Noted::Added { id, folder: view });
    }

    /// Notes a removal for the next `LibraryChanged`: told for the item
    /// named, its children go with it.
    fn note_removed(&mut self, id: &str) {
        let folder = self.views.iter().find_map(|view| {
            view.items
                .iter()
                .find(|item| item.id == id)
                .map(|item| item.parent.clone().unwrap_or_else(|| view.id.clone()))
        });
        if let Some(folder) = folder {
            self.notifier.note(Noted::Removed { id, folder: &folder });
        }
    }

    /// Takes an item and its descendants out of their view, parents first.
    fn take_subtree(&mut self, id: &str) -> Vec<(String, FakeItem)> {
        let mut doomed = vec![id.to_string()];
        let mut taken = Vec::new();
        for view in &mut self.views {
            // Children come after their parents in insertion order, so one
            // pass in order collects whole subtrees.
            let mut kept = Vec::with_capacity(view.items.len());
            for item in view.items.drain(..) {
                let dies =
                    doomed.contains(&item.id) || item.parent.as_ref().is_some_and(|parent| doomed.contains(parent));
                if dies {
                    if !doomed.contains(&item.id) {
                        doomed.push(item.id.clone());
                    }
                    taken.push((view.id.clone(), item));
                } else {
                    kept.push(item);
                }
            }
            view.items = kept;
        }
        taken
    }

    /// A random item of a view of `collection_types`: (view id, item id, type).
    fn pick(&self, rng: &mut fastrand::Rng, collection_types: &[&str]) -> Option<(String, String, &'static str)> {
        let items: Vec<(&str, &FakeItem)> = self
            .views
            .iter()
            .filter(|view| collection_types.contains(&view.collection_type))
            .flat_map(|view| view.items.iter().map(move |item| (view.id.as_str(), item)))
            .collect();
        let (view, item) = items.get(rng.usize(0..items.len().max(1)))?;
        Some((view.to_string(), item.id.clone(), item.item_type))
    }

    /// Adds something that fits a random movie, show or music view.
    fn add_at_random(&mut self, rng: &mut fastrand::Rng) {
        let views: Vec<(String, &'static str)> = self
            .views
            .iter()
            .filter(|view| matches!(view.collection_type, "movies" | "tvshows" | "music"))
            .map(|view| (view.id.clone(), view.collection_type))
            .collect();
        let Some((view, collection_type)) = views.get(rng.usize(0..views.len().max(1))).cloned() else {
            return;
        };
        let levels = match collection_type {
            "tvshows" => [Kind::Show, Kind::Season, Kind::Episode],
            "music" => [Kind::Artist, Kind::Album, Kind::Track],
            _ => [Kind::Movie; 3],
        };
        // Movies have no parent; the other kinds hang under one above.
        let depth = if levels[0] == Kind::Movie { 0 } else { rng.usize(0..3) };
        let parent = depth.checked_sub(1).and_then(|above| levels.get(above)).and_then(|parent_kind| {
            let parent_type = type_for(collection_type, *parent_kind);
            let parents: Vec<String> = self
                .views
                .iter()
                .filter(|candidate| candidate.id == view)
                .flat_map(|view| view.items.iter())
                .filter(|item| item.item_type == parent_type)
                .map(|item| item.id.clone())
                .collect();
            parents.get(rng.usize(0..parents.len().max(1))).cloned()
        });
        let kind = match parent {
            Some(_) => levels.get(depth).copied().unwrap_or(levels[0]),
            None => levels[0],
        };
        // Now, or (a file copied in) long ago: then it sorts among the old.
        let created = rng.bool().then(|| self.clock - i64::from(rng.u32(1..20_000_000)));
        let name = format!("Churned {kind} {}", self.clock);
        self.add(&view, kind, &name, parent.as_deref(), created);
    }
}

impl Changing for JellyfinState {
    fn changes_mut(&mut self) -> &mut Changes<JellyfinState> {
        &mut self.changes
    }

    fn change_at_random(&mut self, rng: &mut fastrand::Rng) {
        let Some((view, id, item_type)) = self.pick(rng, &["movies", "tvshows", "music"]) else {
            self.add_at_random(rng);
            return;
        };
        match rng.u32(0..11) {
            0..=2 => self.add_at_random(rng),
            3 => self.change(&id, |item, now| {
                item.name = format!("Edited {now}");
                item.saved = now;
            }),
            4 => self.change(&id, |item, now| {
                item.overview = format!("Rewritten at {now}.");
                item.saved = now;
            }),
            5 => self.change(&id, |item, now| {
                item.image_at = now;
                item.saved = now;
            }),
            6 => self.change(&id, |item, now| {
                item.play_count += 1;
                item.last_played = Some(now);
                item.user_data_at = now;
            }),
            7..=8 => self.remove(&id),
            9 => {
                let targets: Vec<String> = self
                    .views
                    .iter()
                    .filter(|candidate| candidate.id != view && candidate.collection_type == "movies")
                    .filter(|_| item_type == "Movie")
                    .map(|candidate| candidate.id.clone())
                    .collect();
                match targets.get(rng.usize(0..targets.len().max(1))) {
                    Some(target) => self.move_to(&id, target),
                    None => self.change(&id, |item, now| item.saved = now),
                }
            }
            _ => self.change(&id, |item, now| {
                // A rename moves it among items created at the same time.
                item.name = format!("A renamed {now}");
                item.saved = now;
            }),
        }
    }
}
