//! The test's controls of a fake Jellyfin or Emby: starting it with a
//! behaviour, generating and mutating the library, the users and the clock,
//! and the rows an exact mirror holds (`expected`).

use super::catalog::{flat_type, kind_of, type_for};
use super::serve::handle;
use super::{
    BASE_TIME, Behaviour, Expected, FakeJellyfin, FakeUser, FakeView, JellyfinState, Notifier, SYNCED, notify,
    quick_connect,
};
use crate::fake::churn::Changes;
use crate::fake::{Fake, Faults};
use crate::model::Kind;
use std::time::Duration;

impl Fake<JellyfinState> {
    /// Starts an empty server on 127.0.0.1 with an OS-chosen port.
    pub fn start(behaviour: Behaviour, api_key: &str) -> FakeJellyfin {
        let mut state = JellyfinState {
            behaviour,
            api_key: api_key.to_string(),
            users: Vec::new(),
            views: Vec::new(),
            clock: BASE_TIME,
            log: Vec::new(),
            max_page: None,
            filter_fault: None,
            user_routes: true,
            delay: Duration::ZERO,
            notifier: Notifier::default(),
            quick_connect: quick_connect::QuickConnect::default(),
            requests: 0,
            next_serial: 1,
            faults: Faults::default(),
            changes: Changes::default(),
        };
        // The first user is not an administrator: "the first administrator"
        // must be looked for, not assumed.
        for (name, admin) in [("guest", false), ("admin", true), ("alice", true)] {
            let id = state.take_id();
            state.users.push(FakeUser { id, name: name.to_string(), admin, password: format!("{name}-password") });
        }
        let fake =
            Fake::serve_with_sockets("127.0.0.1:0", state, handle, notify::upgrade).expect("binding 127.0.0.1:0 works");
        notify::start_timer(std::sync::Arc::downgrade(&fake.state));
        fake
    }

    /// Adds a view (library) of a collection type, returning its id.
    pub fn add_view(&self, name: &str, collection_type: &'static str) -> String {
        let mut state = self.state();
        let id = state.take_id();
        state.views.push(FakeView { id: id.clone(), name: name.to_string(), collection_type, items: Vec::new() });
        id
    }

    pub fn add_movies(&self, name: &str, count: usize) -> String {
        let view = self.add_view(name, "movies");
        let mut state = self.state();
        for number in 0..count {
            state.generated(&view, "Movie", None, number);
        }
        view
    }

    /// `shows` series of `seasons` seasons of `episodes` episodes.
    pub fn add_shows(&self, name: &str, shows: usize, seasons: usize, episodes: usize) -> String {
        let view = self.add_view(name, "tvshows");
        let mut state = self.state();
        for show in 0..shows {
            let series = state.generated(&view, "Series", None, show);
            for season in 0..seasons {
                let season_id = state.generated(&view, "Season", Some(&series), season);
                for episode in 0..episodes {
                    state.generated(&view, "Episode", Some(&season_id), episode);
                }
            }
        }
        view
    }

    /// Artists with albums with tracks.
    pub fn add_music(&self, name: &str, artists: usize, albums: usize, tracks: usize) -> String {
        let view = self.add_view(name, "music");
        let mut state = self.state();
        for artist in 0..artists {
            let artist_id = state.generated(&view, "MusicArtist", None, artist);
            for album in 0..albums {
                let album_id = state.generated(&view, "MusicAlbum", Some(&artist_id), album);
                for track in 0..tracks {
                    state.generated(&view, "Audio", Some(&album_id), track);
                }
            }
        }
        view
    }

    /// A flat view of one item type: music videos (`MusicVideo`), home
    /// videos (`Video`), collections (`BoxSet`), photos (`Photo`).
    pub fn add_flat(&self, name: &str, collection_type: &'static str, count: usize) -> String {
        let view = self.add_view(name, collection_type);
        let item_type = flat_type(collection_type);
        let mut state = self.state();
        for number in 0..count {
            state.generated(&view, item_type, None, number);
        }
        view
    }

    /// A mixed library of about `items` items: 40% movies, 40% TV, 20%
    /// music, a few home videos, music videos and collections, plus views a
    /// client must skip.
    pub fn add_library_of(&self, items: usize) {
        self.add_movies("Movies", (items * 2 / 5).max(1));
        // One series = 1 + 2 seasons + 2*10 episodes = 23 items.
        self.add_shows("Shows", (items * 2 / 5 / 23).max(1), 2, 10);
        // One artist = 1 + 2 albums + 2*9 tracks = 21 items.
        self.add_music("Music", (items / 5 / 21).max(1), 2, 9);
        self.add_flat("Home Videos", "homevideos", 7);
        self.add_flat("Music Videos", "musicvideos", 5);
        self.add_flat("Collections", "boxsets", 3);
        self.add_flat("Photos", "photos", 20);
        self.add_view("Playlists", "playlists");
    }

    /// Adds an item now, of the type `kind` stands for in the view.
    pub fn add_item(&self, view: &str, kind: Kind, name: &str, parent: Option<&str>) -> String {
        self.state().add(view, kind, name, parent, None)
    }

    /// Renames an item now, as a metadata edit does.
    pub fn edit_title(&self, id: &str, name: &str) {
        self.state().change(id, |item, now| {
            item.name = name.to_string();
            item.saved = now;
        });
    }

    /// Edits metadata a client does not store (the overview): only the save
    /// time, hence the `Etag`, changes.
    pub fn edit_overview(&self, id: &str) {
        self.state().change(id, |item, now| {
            item.overview = format!("Rewritten at {now}.");
            item.saved = now;
        });
    }

    /// Replaces the primary image: `ImageTags.Primary` and the save time change.
    pub fn replace_image(&self, id: &str) {
        self.state().change(id, |item, now| {
            item.image_at = now;
            item.saved = now;
        });
    }

    /// Plays an item through: user data changes (one more play, last
    /// played now), the item is not saved.
    pub fn play(&self, id: &str) {
        self.state().change(id, |item, now| {
            item.play_count += 1;
            item.last_played = Some(now);
            item.user_data_at = now;
        });
    }

    /// Marks an item played as the apps' check mark does: one more play,
    /// and an existing last played date kept (now only when there is none).
    pub fn mark_played(&self, id: &str) {
        self.state().change(id, |item, now| {
            item.play_count += 1;
            item.last_played = item.last_played.or(Some(now));
            item.user_data_at = now;
        });
    }

    /// Marks an item unplayed: no plays, no last played date.
    pub fn mark_unplayed(&self, id: &str) {
        self.state().change(id, |item, now| {
            item.play_count = 0;
            item.last_played = None;
            item.user_data_at = now;
        });
    }

    /// Authorises a Quick Connect code as the named user's app does; false
    /// when no such pending code or user.
    pub fn authorize_quick_connect(&self, code: &str, user: &str) -> bool {
        quick_connect::authorize(&mut self.state(), code, user)
    }

    /// The notification sockets (test controls: drop, refuse, count).
    pub fn sockets(&self) -> std::sync::Arc<crate::fake::sockets::Sockets<notify::Subscriber>> {
        std::sync::Arc::clone(&self.state().notifier.sockets)
    }

    /// Deletes an item and everything below it, as the servers do.
    pub fn delete(&self, id: &str) {
        self.state().remove(id);
    }

    /// Ids of a view's items of one kind, in insertion order.
    pub fn ids(&self, view: &str, kind: Kind) -> Vec<String> {
        let state = self.state();
        let Some(view) = state.views.iter().find(|candidate| candidate.id == view) else {
            return Vec::new();
        };
        let item_type = type_for(view.collection_type, kind);
        view.items.iter().filter(|item| item.item_type == item_type).map(|item| item.id.clone()).collect()
    }

    /// The id of the first view with this name.
    pub fn view_id(&self, name: &str) -> String {
        self.state().views.iter().find(|view| view.name == name).map(|view| view.id.clone()).expect("no such view")
    }

    pub fn item_count(&self) -> usize {
        self.expected().len()
    }

    /// What an exact mirror holds: the synced views' items, mapped the way
    /// the client maps them.
    pub fn expected(&self) -> Vec<Expected> {
        let state = self.state();
        let mut rows: Vec<Expected> = state
            .views
            .iter()
            .filter(|view| SYNCED.contains(&view.collection_type))
            .flat_map(|view| {
                view.items.iter().map(|item| Expected {
                    library: view.id.clone(),
                    id: item.id.clone(),
                    kind: kind_of(item.item_type),
                    title: item.name.clone(),
                    parent_id: item.parent.clone(),
                    updated_at: item.created,
                })
            })
            .collect();
        rows.sort();
        rows
    }
}
