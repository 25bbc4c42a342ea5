//! How the fake Plex server changes: additions (new `addedAt` and
//! `updatedAt`), metadata and artwork edits (a new `updatedAt`, which moves
//! the item to the top of `updatedAt:desc`), deletions of whole subtrees, and
//! moves of a subtree to another section of the same type (it keeps its
//! rating key and is gone from the first section), each at the fake's clock;
//! and the random mix of them the change mode makes.

use super::{Changes, Changing};
use crate::fake::plex::{DELETED, FakeItem, PlexState, SectionKind};
use crate::model::Kind;

impl PlexState {
    /// Adds an item now to a section, under `parent`; returns its key.
    pub fn add(&mut self, section: &str, kind: Kind, title: &str, parent: Option<&str>) -> String {
        let now = self.tick();
        let key = self.take_key();
        let grandparent = parent.and_then(|parent| self.find(parent).and_then(|item| item.parent.clone()));
        let section =
            self.sections.iter_mut().find(|candidate| candidate.key == section).expect("add: no such section");
        section.items.push(FakeItem {
            rating_key: key.clone(),
            kind,
            title: title.to_string(),
            title_sort: None,
            parent: parent.map(str::to_string),
            grandparent,
            index: Some(1),
            parent_index: None,
            year: Some(2024),
            added_at: now,
            updated_at: now,
            art_at: now,
            duration: Some(5_400_000),
        });
        // A new item walks through the states of its processing, each
        // pushed as it happens: created (0) to processed (5).
        for item_state in 0..=5 {
            self.notify(&key, item_state);
        }
        key
    }

    /// Renames an item now, as a metadata edit does.
    pub fn edit(&mut self, rating_key: &str, title: &str) {
        let now = self.tick();
        let item = self.find_mut(rating_key).expect("edit: no such item");
        item.title = title.to_string();
        item.updated_at = now;
        self.notify(rating_key, 5);
    }

    /// Replaces an item's poster: the thumb URL and `updatedAt` change.
    pub fn touch_art(&mut self, rating_key: &str) {
        let now = self.tick();
        let item = self.find_mut(rating_key).expect("touch_art: no such item");
        item.art_at = now;
        item.updated_at = now;
        self.notify(rating_key, 5);
    }

    /// Deletes an item and, as PMS does, everything below it.
    pub fn remove(&mut self, rating_key: &str) {
        self.tick();
        // Pushed for the item named only, not for the children it takes.
        self.notify(rating_key, DELETED);
        for (section, item) in self.take_subtree(rating_key) {
            self.changes.deleted.record(&section, &item.rating_key);
        }
    }

    /// Moves an item and everything below it to another section: same
    /// rating keys, gone from the first section, changed now.
    pub fn move_to(&mut self, rating_key: &str, section: &str) {
        let now = self.tick();
        let moved = self.take_subtree(rating_key);
        for (from, mut item) in moved {
            self.changes.deleted.record(&from, &item.rating_key);
            item.updated_at = now;
            if let Some(target) = self.sections.iter_mut().find(|candidate| candidate.key == section) {
                target.items.push(item);
            }
        }
        // Told as a change of the item, now in its new section.
        self.notify(rating_key, 5);
    }

    /// Takes an item and its descendants out of their section, parents first.
    fn take_subtree(&mut self, rating_key: &str) -> Vec<(String, FakeItem)> {
        let mut doomed = vec![rating_key.to_string()];
        let mut taken = Vec::new();
        for section in &mut self.sections {
            // Children come after their parents in insertion order, so one
            // pass in order collects whole subtrees.
            let mut kept = Vec::with_capacity(section.items.len());
            for item in section.items.drain(..) {
                let dies = doomed.contains(&item.rating_key)
                    || item.parent.as_ref().is_some_and(|parent| doomed.contains(parent));
                if dies {
                    if !doomed.contains(&item.rating_key) {
                        doomed.push(item.rating_key.clone());
                    }
                    taken.push((section.key.clone(), item));
                } else {
                    kept.push(item);
                }
            }
            section.items = kept;
        }
        taken
    }

    /// A random synced item: (section key, rating key, kind).
    fn pick(&self, rng: &mut fastrand::Rng) -> Option<(String, String, Kind)> {
        let items: Vec<(&str, &FakeItem)> = self
            .sections
            .iter()
            .filter(|section| section.kind != SectionKind::Photo)
            .flat_map(|section| section.items.iter().map(move |item| (section.key.as_str(), item)))
            .collect();
        let (section, item) = items.get(rng.usize(0..items.len().max(1)))?;
        Some((section.to_string(), item.rating_key.clone(), item.kind))
    }

    /// Adds something that fits a random synced section: a movie, or a
    /// show, season or episode (under a random show or season), or an
    /// artist, album or track.
    fn add_at_random(&mut self, rng: &mut fastrand::Rng) {
        let sections: Vec<(String, SectionKind)> = self
            .sections
            .iter()
            .filter(|section| section.kind != SectionKind::Photo)
            .map(|section| (section.key.clone(), section.kind))
            .collect();
        let Some((section, kind)) = sections.get(rng.usize(0..sections.len().max(1))).cloned() else {
            return;
        };
        let levels = match kind {
            SectionKind::Show => [Kind::Show, Kind::Season, Kind::Episode],
            SectionKind::Artist => [Kind::Artist, Kind::Album, Kind::Track],
            _ => [Kind::Movie; 3],
        };
        // Movies have no parent; the other kinds hang under one above.
        let depth = if levels[0] == Kind::Movie { 0 } else { rng.usize(0..3) };
        let parent = depth.checked_sub(1).and_then(|above| levels.get(above)).and_then(|parent_kind| {
            let parents: Vec<String> = self
                .sections
                .iter()
                .filter(|candidate| candidate.key == section)
                .flat_map(|section| section.items.iter())
                .filter(|item| item.kind == *parent_kind)
                .map(|item| item.rating_key.clone())
                .collect();
            parents.get(rng.usize(0..parents.len().max(1))).cloned()
        });
        let kind = match parent {
            Some(_) => levels.get(depth).copied().unwrap_or(levels[0]),
            None => levels[0],
        };
        let title = format!("Churned {kind} {}", self.clock);
        self.add(&section, kind, &title, parent.as_deref());
    }
}

impl Changing for PlexState {
    fn changes_mut(&mut self) -> &mut Changes<PlexState> {
        &mut self.changes
    }

    fn change_at_random(&mut self, rng: &mut fastrand::Rng) {
        let Some((section, key, kind)) = self.pick(rng) else {
            self.add_at_random(rng);
            return;
        };
        match rng.u32(0..10) {
            0..=2 => self.add_at_random(rng),
            3..=4 => {
                let title = format!("Edited {}", self.clock);
                self.edit(&key, &title);
            }
            5 => self.touch_art(&key),
            6..=7 => self.remove(&key),
            8 => {
                let targets: Vec<String> = self
                    .sections
                    .iter()
                    .filter(|candidate| {
                        candidate.key != section && candidate.kind == SectionKind::Movie && kind == Kind::Movie
                    })
                    .map(|candidate| candidate.key.clone())
                    .collect();
                match targets.get(rng.usize(0..targets.len().max(1))) {
                    Some(target) => self.move_to(&key, target),
                    None => self.touch_art(&key),
                }
            }
            _ => {
                let title = format!("Retitled {}", self.clock);
                self.edit(&key, &title);
            }
        }
    }
}
