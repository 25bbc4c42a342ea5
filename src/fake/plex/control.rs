//! The test's controls of a fake Plex: starting it, generating and
//! mutating sections and items, plays, scans and sockets, and the rows an
//! exact mirror holds (`expected`).

use super::serve::{handle, upgrade};
use super::{BASE_TIME, Expected, FakePlex, FakeSection, PlexState, SectionKind};
use crate::fake::churn::Changes;
use crate::fake::history::PlexPlay;
use crate::fake::sockets::Sockets;
use crate::fake::{Fake, Faults};
use crate::model::Kind;
use std::time::Duration;

impl Fake<PlexState> {
    /// Starts an empty server on 127.0.0.1 with an OS-chosen port.
    pub fn start(token: &str) -> FakePlex {
        FakePlex::start_on("127.0.0.1:0", token).expect("binding 127.0.0.1:0 works")
    }

    pub fn start_on(address: &str, token: &str) -> Result<FakePlex, String> {
        let state = PlexState {
            token: token.to_string(),
            sections: Vec::new(),
            clock: BASE_TIME,
            log: Vec::new(),
            max_page: None,
            honour_sort: true,
            delay: Duration::ZERO,
            sockets: Sockets::new(),
            plays: Vec::new(),
            plays_during_history_requests: 0,
            requests: 0,
            next_key: 100,
            next_history: 1000,
            faults: Faults::default(),
            changes: Changes::default(),
        };
        Fake::serve_with_sockets(address, state, handle, upgrade)
    }

    pub fn add_section(&self, title: &str, kind: SectionKind) -> String {
        let mut state = self.state();
        let key = (state.sections.len() + 1).to_string();
        state.sections.push(FakeSection { key: key.clone(), kind, title: title.to_string(), items: Vec::new() });
        key
    }

    /// Adds a movie section of `count` movies.
    pub fn add_movies(&self, title: &str, count: usize) -> String {
        let key = self.add_section(title, SectionKind::Movie);
        let mut state = self.state();
        for number in 0..count {
            state.generated(&key, Kind::Movie, None, number);
        }
        key
    }

    /// Adds a show section: `shows` shows of `seasons` seasons of `episodes` episodes.
    pub fn add_shows(&self, title: &str, shows: usize, seasons: usize, episodes: usize) -> String {
        let key = self.add_section(title, SectionKind::Show);
        let mut state = self.state();
        for show in 0..shows {
            let show_key = state.generated(&key, Kind::Show, None, show);
            for season in 0..seasons {
                let season_key = state.generated(&key, Kind::Season, Some(&show_key), season);
                for episode in 0..episodes {
                    state.generated(&key, Kind::Episode, Some(&season_key), episode);
                }
            }
        }
        key
    }

    /// Adds a music section: artists with albums with tracks.
    pub fn add_music(&self, title: &str, artists: usize, albums: usize, tracks: usize) -> String {
        let key = self.add_section(title, SectionKind::Artist);
        let mut state = self.state();
        for artist in 0..artists {
            let artist_key = state.generated(&key, Kind::Artist, None, artist);
            for album in 0..albums {
                let album_key = state.generated(&key, Kind::Album, Some(&artist_key), album);
                for track in 0..tracks {
                    state.generated(&key, Kind::Track, Some(&album_key), track);
                }
            }
        }
        key
    }

    /// A mixed library of about `items` items: 40% movies, 40% TV, 20% music.
    pub fn add_library_of(&self, items: usize) {
        let movies = (items * 2 / 5).max(1);
        self.add_movies("Movies", movies);
        // One show = 1 + 2 seasons + 2*10 episodes = 23 items.
        self.add_shows("TV Shows", (items * 2 / 5 / 23).max(1), 2, 10);
        // One artist = 1 + 2 albums + 2*9 tracks = 21 items.
        self.add_music("Music", (items / 5 / 21).max(1), 2, 9);
        self.add_section("Photos", SectionKind::Photo);
    }

    /// Adds an item now (new `addedAt` and `updatedAt`), returning its key.
    pub fn add_item(&self, section: &str, kind: Kind, title: &str, parent: Option<&str>) -> String {
        self.state().add(section, kind, title, parent)
    }

    /// Renames an item now, as a metadata edit does.
    pub fn edit_title(&self, rating_key: &str, title: &str) {
        self.state().edit(rating_key, title);
    }

    /// Replaces an item's poster: the thumb URL and `updatedAt` change.
    pub fn replace_art(&self, rating_key: &str) {
        self.state().touch_art(rating_key);
    }

    /// Deletes an item and, as PMS does, everything below it.
    pub fn delete(&self, rating_key: &str) {
        self.state().remove(rating_key);
    }

    /// Deletes every item of a kind in a section (a drive went missing).
    pub fn delete_all(&self, section: &str, kind: Kind) {
        let keys: Vec<String> = self
            .state()
            .sections
            .iter()
            .filter(|candidate| candidate.key == section)
            .flat_map(|section| section.items.iter())
            .filter(|item| item.kind == kind)
            .map(|item| item.rating_key.clone())
            .collect();
        for key in keys {
            self.delete(&key);
        }
    }

    /// Rating keys of a section's items of one kind, in insertion order.
    pub fn keys(&self, section: &str, kind: Kind) -> Vec<String> {
        self.state()
            .sections
            .iter()
            .filter(|candidate| candidate.key == section)
            .flat_map(|section| section.items.iter())
            .filter(|item| item.kind == kind)
            .map(|item| item.rating_key.clone())
            .collect()
    }

    /// `count` plays, one after another: the movies, episodes and tracks
    /// in turn, by accounts 1 to 3 on devices 1 to 4 (the server owner's
    /// token lists every account's plays).
    pub fn play(&self, count: usize) {
        self.state().play(count);
    }

    /// Deletes a play from the server's history (Plex lets users do so).
    pub fn delete_play(&self, history_id: u64) {
        self.state().plays.retain(|play| play.history_id != history_id);
    }

    /// What an exact mirror holds (photo sections are not synced), and
    /// every play a history answer listed.
    pub fn expected(&self) -> Vec<Expected> {
        let state = self.state();
        let mut rows: Vec<Expected> = state
            .sections
            .iter()
            .filter(|section| section.kind != SectionKind::Photo)
            .flat_map(|section| {
                section.items.iter().map(|item| Expected {
                    library: section.key.clone(),
                    id: item.rating_key.clone(),
                    kind: item.kind,
                    title: item.title.clone(),
                    parent_id: item.parent.clone(),
                    updated_at: item.updated_at,
                })
            })
            .collect();
        rows.extend(state.plays.iter().filter(|play| play.served).map(PlexPlay::expected));
        rows.sort();
        rows
    }

    /// A section scan, as PMS announces it: `library.update.section`
    /// started, then the changes `scan` makes (their timeline entries),
    /// then ended.
    pub fn scan<T>(&self, section: &str, scan: impl FnOnce(&FakePlex) -> T) -> T {
        self.state().notify_scan(section, "started");
        let result = scan(self);
        self.state().notify_scan(section, "ended");
        result
    }

    /// The notification sockets (test controls: drop, refuse, count).
    pub fn sockets(&self) -> std::sync::Arc<Sockets<()>> {
        std::sync::Arc::clone(&self.state().sockets)
    }

    pub fn item_count(&self) -> usize {
        self.state()
            .sections
            .iter()
            .filter(|section| section.kind != SectionKind::Photo)
            .map(|section| section.items.len())
            .sum()
    }
}
