//! The fakes' change mode: a server that changes while a client syncs.
//! Before answering a listing or a lookup, a fake with `Churn` set makes a
//! few seeded random changes (additions, edits that reorder, deletions,
//! moves between libraries), as a real server does during a scan; the same
//! seed makes the same changes. Scripted changes (`Fake::before_request`)
//! put one chosen change between two chosen requests. Every fake records
//! what it deleted (`Deletions`), so a test can tell a deletion the client
//! mirrored from one it made up. Each fake's changes live beside it here:
//! `plex`, `jellyfin`, `spotify`.

pub mod jellyfin;
pub mod plex;
pub mod spotify;

use super::{Fake, Recording};
use std::collections::BTreeMap;

/// Seeded random changes before each answer.
pub struct Churn {
    rng: fastrand::Rng,
    /// Up to this many changes (uniformly 0..=most) before each answer.
    pub most: u32,
}

impl Churn {
    pub fn new(seed: u64, most: u32) -> Churn {
        Churn { rng: fastrand::Rng::with_seed(seed), most }
    }

    /// How many changes to make before this answer, and the generator to
    /// draw them from.
    pub(super) fn draw(&mut self) -> (u32, &mut fastrand::Rng) {
        let count = self.rng.u32(0..=self.most);
        (count, &mut self.rng)
    }
}

/// A change made to a fake's state just before it answers a chosen request.
pub type Hook<S> = Box<dyn FnOnce(&mut S) + Send>;

/// What a fake deleted since it started, as (library id, item id) and how
/// often (an id can come back and go again: a moved item, a playlist
/// position): the only deletions a mirror of it may make.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deletions(BTreeMap<(String, String), u32>);

impl Deletions {
    pub(crate) fn record(&mut self, library: &str, id: &str) {
        let count = self.0.entry((library.to_string(), id.to_string())).or_insert(0);
        *count = count.saturating_add(1);
    }

    /// Whether the server ever deleted it.
    pub fn contains(&self, row: &(String, String)) -> bool {
        self.0.contains_key(row)
    }

    /// How often the server deleted it.
    pub fn count(&self, row: &(String, String)) -> u32 {
        self.0.get(row).copied().unwrap_or(0)
    }
}

/// What a fake's state keeps for changes: scripted ones by request number,
/// the random ones, and the record of deletions.
pub struct Changes<S> {
    scripted: BTreeMap<u64, Hook<S>>,
    churn: Option<Churn>,
    pub(crate) deleted: Deletions,
}

impl<S> Default for Changes<S> {
    fn default() -> Changes<S> {
        Changes { scripted: BTreeMap::new(), churn: None, deleted: Deletions::default() }
    }
}

/// A fake state that changes: random changes are its own kind of change.
pub trait Changing: Recording + Sized {
    fn changes_mut(&mut self) -> &mut Changes<Self>;

    /// One random change, drawn from `rng`.
    fn change_at_random(&mut self, rng: &mut fastrand::Rng);

    /// The changes due before answering request `number` that `churns`:
    /// the scripted one, then the random ones.
    fn before_answer(&mut self, number: u64, churns: bool) {
        if let Some(hook) = self.changes_mut().scripted.remove(&number) {
            hook(self);
        }
        if !churns {
            return;
        }
        let Some(mut churn) = self.changes_mut().churn.take() else {
            return;
        };
        let (count, rng) = churn.draw();
        for _ in 0..count {
            self.change_at_random(rng);
        }
        self.changes_mut().churn = Some(churn);
    }
}

impl<S: Changing + Send + 'static> Fake<S> {
    /// Makes `change` just before request `number` (counted from the start,
    /// as `fail_at` counts) is answered.
    pub fn before_request(&self, number: u64, change: impl FnOnce(&mut S) + Send + 'static) {
        self.state().changes_mut().scripted.insert(number, Box::new(change));
    }

    /// Turns the change mode on (up to `most` random changes before each
    /// listing or lookup answer, drawn from `seed`), or off with `None`.
    pub fn churn(&self, seed_and_most: Option<(u64, u32)>) {
        self.state().changes_mut().churn = seed_and_most.map(|(seed, most)| Churn::new(seed, most));
    }

    /// Every (library, id) the server deleted since it started.
    pub fn deleted(&self) -> Deletions {
        self.state().changes_mut().deleted.clone()
    }
}
