//! How the fake Spotify library changes: saves (at the top of the newest
//! first listings), unsaves, saving again (an old save moves to the top with
//! a new `added_at`), follows and unfollows, playlists created (listed
//! first) and deleted (unfollowed), and playlist edits: entries inserted,
//! removed, moved, a rename. Every edit gives the playlist a new
//! `snapshot_id`. A removed entry vacates the last position (entries are
//! known by position), which is the deletion a mirror may make.

use super::{Changes, Changing};
use crate::fake::spotify::{FakeArtist, PlaylistEntry, PlaylistItem, Saved, SpotifyState, spotify_id};

impl SpotifyState {
    /// Saves a new track (on a new single by a new artist) now; returns its id.
    pub fn save_new_track(&mut self, name: &str) -> String {
        let added_at = self.tick();
        let artist = self.new_artist(None);
        let album = self.new_album(Some(&format!("{name} (Single)")), vec![artist]);
        let track = self.new_track(Some(name), album);
        let id = track.id.clone();
        self.saved_tracks.insert(0, Saved { added_at, item: track });
        id
    }

    pub fn unsave_track_id(&mut self, id: &str) {
        self.tick();
        self.saved_tracks.retain(|saved| saved.item.id != id);
        self.changes.deleted.record("tracks", id);
    }

    /// Saves a new album (by a new artist) now; returns its id.
    pub fn save_new_album(&mut self, name: &str) -> String {
        let added_at = self.tick();
        let artist = self.new_artist(None);
        let album = self.new_album(Some(name), vec![artist]);
        let id = album.id.clone();
        self.saved_albums.insert(0, Saved { added_at, item: album });
        id
    }

    pub fn unsave_album_id(&mut self, id: &str) {
        self.tick();
        self.saved_albums.retain(|saved| saved.item.id != id);
        self.changes.deleted.record("albums", id);
    }

    pub fn follow_new_artist(&mut self, name: &str) -> String {
        self.tick();
        let artist = self.new_artist(Some(name));
        let id = artist.id.clone();
        self.followed_artists.push(artist);
        id
    }

    pub fn unfollow_artist_id(&mut self, id: &str) {
        self.tick();
        self.followed_artists.retain(|artist| artist.id != id);
        self.changes.deleted.record("artists", id);
    }

    /// Creates (or follows) a playlist of `entries` new tracks added now; it
    /// lists first, as on Spotify. Returns its id.
    pub fn create_playlist(&mut self, name: &str, owner: &str, collaborative: bool, entries: usize) -> String {
        let now = self.tick();
        let various = FakeArtist { id: spotify_id('a', 0), name: "Various".into(), image: 0 };
        let album = self.new_album(None, vec![various]);
        let entries: Vec<PlaylistEntry> = (0..entries)
            .map(|_| PlaylistEntry {
                added_at: Some(now),
                added_by: Some(owner.to_string()),
                item: PlaylistItem::Track(self.new_track(None, album.clone())),
            })
            .collect();
        let playlist = self.new_playlist(name, owner, collaborative, entries);
        let id = playlist.id.clone();
        self.playlists.insert(0, playlist);
        id
    }

    /// Deletes (unfollows) a playlist: it and every entry position go.
    pub fn delete_playlist(&mut self, id: &str) {
        self.tick();
        let length =
            self.playlists.iter().find(|playlist| playlist.id == id).map_or(0, |playlist| playlist.entries.len());
        self.playlists.retain(|playlist| playlist.id != id);
        self.changes.deleted.record("playlists", id);
        for position in 0..length {
            self.changes.deleted.record("playlists", &format!("{id}/{position:06}"));
        }
    }

    /// Inserts a new track at `position` (clamped to the end); returns its id.
    pub fn insert_entry(&mut self, id: &str, position: usize, track_name: &str) -> String {
        let now = self.tick();
        let artist = self.new_artist(None);
        let album = self.new_album(None, vec![artist]);
        let track = self.new_track(Some(track_name), album);
        let track_id = track.id.clone();
        let added_by = Some(self.user_id.clone());
        self.edit_playlist(id, |playlist| {
            let position = position.min(playlist.entries.len());
            playlist
                .entries
                .insert(position, PlaylistEntry { added_at: Some(now), added_by, item: PlaylistItem::Track(track) });
        });
        track_id
    }

    /// Removes the entry at `position`: the last position is vacated.
    pub fn remove_entry(&mut self, id: &str, position: usize) {
        self.tick();
        let mut vacated = None;
        self.edit_playlist(id, |playlist| {
            if position < playlist.entries.len() {
                playlist.entries.remove(position);
                vacated = Some(playlist.entries.len());
            }
        });
        if let Some(last) = vacated {
            self.changes.deleted.record("playlists", &format!("{id}/{last:06}"));
        }
    }

    /// Moves the entry at `from` to `to` (both clamped), as a drag does.
    pub fn move_entry(&mut self, id: &str, from: usize, to: usize) {
        self.tick();
        self.edit_playlist(id, |playlist| {
            if from < playlist.entries.len() {
                let entry = playlist.entries.remove(from);
                let to = to.min(playlist.entries.len());
                playlist.entries.insert(to, entry);
            }
        });
    }

    pub fn rename(&mut self, id: &str, name: &str) {
        self.tick();
        self.edit_playlist(id, |playlist| playlist.name = name.to_string());
    }

    /// A saved track saved again: it moves to the top with a new `added_at`.
    fn save_again(&mut self, index: usize) {
        let now = self.tick();
        if index < self.saved_tracks.len() {
            let mut saved = self.saved_tracks.remove(index);
            saved.added_at = now;
            self.saved_tracks.insert(0, saved);
        }
    }

    /// A random playlist the user may read: (id, entries).
    fn readable_playlist(&self, rng: &mut fastrand::Rng) -> Option<(String, usize)> {
        let readable: Vec<(String, usize)> = self
            .playlists
            .iter()
            .filter(|playlist| playlist.owner == self.user_id || playlist.collaborative)
            .map(|playlist| (playlist.id.clone(), playlist.entries.len()))
            .collect();
        readable.get(rng.usize(0..readable.len().max(1))).cloned()
    }
}

impl Changing for SpotifyState {
    fn changes_mut(&mut self) -> &mut Changes<SpotifyState> {
        &mut self.changes
    }

    fn change_at_random(&mut self, rng: &mut fastrand::Rng) {
        let name = format!("Churned {}", self.clock);
        let tracks = self.saved_tracks.len();
        let albums = self.saved_albums.len();
        let artists = self.followed_artists.len();
        match rng.u32(0..16) {
            0 => {
                self.save_new_track(&name);
            }
            1 if tracks > 0 => {
                let id = self.saved_tracks[rng.usize(0..tracks)].item.id.clone();
                self.unsave_track_id(&id);
            }
            2 if tracks > 0 => self.save_again(rng.usize(0..tracks)),
            3 => {
                self.save_new_album(&name);
            }
            4 if albums > 0 => {
                let id = self.saved_albums[rng.usize(0..albums)].item.id.clone();
                self.unsave_album_id(&id);
            }
            5 => {
                self.follow_new_artist(&name);
            }
            6 if artists > 0 => {
                let id = self.followed_artists[rng.usize(0..artists)].id.clone();
                self.unfollow_artist_id(&id);
            }
            7 => {
                let user = self.user_id.clone();
                let entries = rng.usize(0..12);
                self.create_playlist(&name, &user, false, entries);
            }
            8 => {
                if let Some((id, _)) = self.readable_playlist(rng) {
                    self.delete_playlist(&id);
                }
            }
            9..=10 => {
                if let Some((id, length)) = self.readable_playlist(rng) {
                    self.insert_entry(&id, rng.usize(0..=length), &name);
                }
            }
            11..=12 => {
                if let Some((id, length)) = self.readable_playlist(rng).filter(|(_, length)| *length > 0) {
                    self.remove_entry(&id, rng.usize(0..length));
                }
            }
            13..=14 => {
                if let Some((id, length)) = self.readable_playlist(rng).filter(|(_, length)| *length > 1) {
                    self.move_entry(&id, rng.usize(0..length), rng.usize(0..length));
                }
            }
            _ => {
                if let Some((id, _)) = self.readable_playlist(rng) {
                    self.rename(&id, &name);
                }
            }
        }
    }
}
