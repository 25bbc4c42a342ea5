//! The test's controls of a fake Spotify: starting it, issuing and
//! expiring tokens, generating and mutating the library, and the rows an
//! exact mirror holds (`expected`).

use super::serve::handle;
use super::{
    BASE_TIME, CLIENT_ID, CLIENT_SECRET, Expected, FakeAlbum, FakeArtist, FakeSpotify, FakeTrack, PlaylistEntry,
    PlaylistItem, SCOPES, Saved, SpotifyPlay, SpotifyState,
};
use crate::fake::Fake;
use crate::model::Kind;
use std::time::Instant;

impl Fake<SpotifyState> {
    /// Starts an empty library on 127.0.0.1 with an OS-chosen port.
    pub fn start() -> Result<FakeSpotify, String> {
        FakeSpotify::start_on("127.0.0.1:0")
    }

    pub fn start_on(address: &str) -> Result<FakeSpotify, String> {
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let state = SpotifyState {
            user_id: "listener1".into(),
            display_name: "Listener One".into(),
            client_id: CLIENT_ID.into(),
            client_secret: Some(CLIENT_SECRET.into()),
            clock: BASE_TIME,
            quota_reset_secs: 86_400,
            token_lifetime_secs: 3600,
            seed: seed as u64,
            ..SpotifyState::default()
        };
        Fake::serve(address, state, handle)
    }

    pub fn api_url(&self) -> String {
        format!("{}/v1", self.url())
    }

    pub fn accounts_url(&self) -> String {
        self.url().to_string()
    }

    pub fn token_requests(&self) -> u64 {
        self.state().token_requests
    }

    /// API requests sent before the last `Retry-After` had run out.
    pub fn violations(&self) -> u64 {
        self.state().violations
    }

    /// A refresh token granting `SCOPES`, as if the user had authorized.
    pub fn issue_refresh_token(&self) -> String {
        self.issue_refresh_token_with(SCOPES)
    }

    /// A refresh token granting `scope` (`LIBRARY_SCOPES`: an account
    /// connected before mediasync read the history).
    pub fn issue_refresh_token_with(&self, scope: &str) -> String {
        let mut state = self.state();
        let token = state.secret("AQ");
        state.refresh_tokens.push((token.clone(), scope.to_string()));
        token
    }

    /// An access token granting `SCOPES`, valid for `token_lifetime_secs`.
    pub fn issue_access_token(&self) -> String {
        self.state().issue_access(SCOPES)
    }

    /// The newest valid refresh token.
    pub fn refresh_token(&self) -> Option<String> {
        self.state().refresh_tokens.last().map(|(token, _)| token.clone())
    }

    /// Every access token issued so far now answers "The access token expired".
    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        for grant in self.state().access_tokens.values_mut() {
            grant.expires = now;
        }
    }

    /// Every refresh token dies, as 6 months after the user's authorization.
    pub fn revoke_refresh_tokens(&self) {
        let mut state = self.state();
        let tokens: Vec<String> = state.refresh_tokens.drain(..).map(|(token, _)| token).collect();
        state.revoked.extend(tokens);
    }

    /// The quota is back (the day has passed): requests are served again,
    /// and one sent now is not early.
    pub fn reset_quota(&self) {
        let mut state = self.state();
        state.quota_used = 0;
        state.not_before = None;
    }

    /// Deterministic content: a catalog of artists, albums and tracks;
    /// `tracks` saved tracks, `albums` saved albums, `artists` followed
    /// artists, and `playlists` playlists of `entries_per_playlist` entries.
    /// Playlist `p` is the user's unless `p % 4 == 2` (someone else's, not
    /// collaborative: forbidden) or `p % 4 == 3` (someone else's,
    /// collaborative); `p % 5 == 4` is very old (null `added_at`). Entries
    /// mix tracks with episodes, local files, unavailable tracks and a
    /// repeated track.
    pub fn generate(
        &self,
        tracks: usize,
        albums: usize,
        artists: usize,
        playlists: usize,
        entries_per_playlist: usize,
    ) {
        let mut state = self.state();
        let artist_catalog: Vec<FakeArtist> = (0..artists.max(1)).map(|_| state.new_artist(None)).collect();
        let album_catalog: Vec<FakeAlbum> = (0..albums.max(1))
            .map(|number| {
                let artist = artist_catalog[number % artist_catalog.len()].clone();
                state.new_album(None, vec![artist])
            })
            .collect();
        let track_catalog: Vec<FakeTrack> = (0..tracks.max(entries_per_playlist).max(1))
            .map(|number| state.new_track(None, album_catalog[number % album_catalog.len()].clone()))
            .collect();
        let base = state.clock - 1000;
        for (number, track) in track_catalog.iter().take(tracks).enumerate() {
            let added_at = base - (number / 2) as i64 * 3607;
            state.saved_tracks.push(Saved { added_at, item: track.clone() });
        }
        for (number, album) in album_catalog.iter().take(albums).enumerate() {
            let added_at = base - (number / 2) as i64 * 86_399;
            state.saved_albums.push(Saved { added_at, item: album.clone() });
        }
        state.followed_artists.extend(artist_catalog.into_iter().take(artists));
        for number in 0..playlists {
            let owner = match number % 4 {
                2 => "spotify".to_string(),
                3 => "friend2".to_string(),
                _ => state.user_id.clone(),
            };
            let old = number % 5 == 4;
            let mut entries = Vec::new();
            for position in 0..entries_per_playlist {
                let item = match position {
                    p if p % 17 == 16 => PlaylistItem::Unavailable,
                    p if p % 13 == 12 => PlaylistItem::Local {
                        name: format!("Home Demo {p}"),
                        artist: "The Garage".into(),
                        album: "Demos".into(),
                        duration_ms: 180_000 + p as u64 * 1000,
                    },
                    p if p % 10 == 9 => PlaylistItem::Episode(state.new_episode()),
                    p if p % 11 == 10 => {
                        entries.first().map_or(PlaylistItem::Unavailable, |first: &PlaylistEntry| first.item.clone())
                    }
                    p => PlaylistItem::Track(track_catalog[(number * 7 + p) % track_catalog.len()].clone()),
                };
                let added_at = base - number as i64 * 86_400 - (entries_per_playlist - position) as i64 * 60;
                let added_by = if number % 4 == 3 && position % 2 == 1 { state.user_id.clone() } else { owner.clone() };
                entries.push(PlaylistEntry {
                    added_at: (!old).then_some(added_at),
                    added_by: (!old).then_some(added_by),
                    item,
                });
            }
            let playlist = state.new_playlist(&format!("Playlist {number}"), &owner, number % 4 == 3, entries);
            state.playlists.push(playlist);
        }
    }

    /// Saves a new track (on a new single by a new artist) now; returns its id.
    pub fn save_track(&self, name: &str) -> String {
        self.state().save_new_track(name)
    }

    pub fn unsave_track(&self, id: &str) {
        self.state().unsave_track_id(id);
    }

    /// Saves a new album (by a new artist) now; returns its id.
    pub fn save_album(&self, name: &str) -> String {
        self.state().save_new_album(name)
    }

    pub fn unsave_album(&self, id: &str) {
        self.state().unsave_album_id(id);
    }

    pub fn follow_artist(&self, name: &str) -> String {
        self.state().follow_new_artist(name)
    }

    /// The user plays `count` tracks one after another, the last one
    /// ending now: saved tracks in turn (new ones when none is saved), one
    /// in three from the first playlist, the others from their album.
    /// `played_at` carries milliseconds, as on Spotify.
    pub fn play_tracks(&self, count: usize) {
        let mut state = self.state();
        for _ in 0..count {
            let now = state.tick() + 199;
            state.clock = now;
            let serial = state.next_serial();
            let track = match state.saved_tracks.get(serial as usize % state.saved_tracks.len().max(1)) {
                Some(saved) => saved.item.clone(),
                None => {
                    let artist = state.new_artist(None);
                    let album = state.new_album(None, vec![artist]);
                    state.new_track(None, album)
                }
            };
            let context = match state.playlists.first() {
                Some(playlist) if serial % 3 == 0 => Some(("playlist", playlist.id.clone())),
                _ => Some(("album", track.album.id.clone())),
            };
            let played_at_ms = now * 1000 + (serial * 37 % 1000) as i64;
            state.plays.insert(0, SpotifyPlay { played_at_ms, track, context, served: false });
        }
    }

    /// The artist gets a new picture: new image URLs in the listing.
    pub fn replace_artist_image(&self, id: &str) {
        let mut state = self.state();
        let artist = state.followed_artists.iter_mut().find(|artist| artist.id == id).expect("no such artist");
        artist.image += 1;
    }

    /// The ids of the followed artists, as listed (in id order).
    pub fn followed_artist_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.state().followed_artists.iter().map(|artist| artist.id.clone()).collect();
        ids.sort();
        ids
    }

    pub fn unfollow_artist(&self, id: &str) {
        self.state().unfollow_artist_id(id);
    }

    /// Creates (or follows) a playlist of `entries` new tracks added now; it
    /// lists first, as on Spotify. Returns its id.
    pub fn add_playlist(&self, name: &str, owner: &str, collaborative: bool, entries: usize) -> String {
        self.state().create_playlist(name, owner, collaborative, entries)
    }

    pub fn remove_playlist(&self, id: &str) {
        self.state().delete_playlist(id);
    }

    /// Inserts a new track at `position` (clamped to the end); returns its id.
    pub fn playlist_insert(&self, id: &str, position: usize, track_name: &str) -> String {
        self.state().insert_entry(id, position, track_name)
    }

    pub fn playlist_remove(&self, id: &str, position: usize) {
        self.state().remove_entry(id, position);
    }

    pub fn rename_playlist(&self, id: &str, name: &str) {
        self.state().rename(id, name);
    }

    pub fn snapshot_id(&self, id: &str) -> Option<String> {
        self.state().playlists.iter().find(|playlist| playlist.id == id).map(|playlist| playlist.snapshot_id.clone())
    }

    /// What an exact mirror holds, sorted: libraries `tracks`, `albums`,
    /// `artists` and `playlists` (playlists, then the entries of those the
    /// user may read, id `{playlist}/{position:06}`), and `history`: every
    /// play an answer listed (`SpotifyPlay::expected`).
    pub fn expected(&self) -> Vec<Expected> {
        let state = self.state();
        let row =
            |library: &str, id: &str, kind: Kind, title: &str, parent_id: Option<&str>, updated_at: i64| Expected {
                library: library.to_string(),
                id: id.to_string(),
                kind,
                title: title.to_string(),
                parent_id: parent_id.map(str::to_string),
                updated_at,
            };
        let mut rows = Vec::new();
        for saved in &state.saved_tracks {
            let track = &saved.item;
            rows.push(row("tracks", &track.id, Kind::Track, &track.name, Some(&track.album.id), saved.added_at));
        }
        for saved in &state.saved_albums {
            let album = &saved.item;
            let artist = album.artists.first().map(|artist| artist.id.as_str());
            rows.push(row("albums", &album.id, Kind::Album, &album.name, artist, saved.added_at));
        }
        for artist in &state.followed_artists {
            rows.push(row("artists", &artist.id, Kind::Artist, &artist.name, None, 0));
        }
        for playlist in &state.playlists {
            rows.push(row("playlists", &playlist.id, Kind::Playlist, &playlist.name, Some(&playlist.owner), 0));
            if !state.readable(playlist) {
                continue;
            }
            for (position, entry) in playlist.entries.iter().enumerate() {
                let kind = if matches!(entry.item, PlaylistItem::Episode(_)) { Kind::Episode } else { Kind::Track };
                let id = format!("{}/{position:06}", playlist.id);
                let updated_at = entry.added_at.unwrap_or(0);
                rows.push(row("playlists", &id, kind, entry.item.name(), Some(&playlist.id), updated_at));
            }
        }
        rows.extend(state.plays.iter().filter(|play| play.served).map(SpotifyPlay::expected));
        rows.sort();
        rows
    }
}
