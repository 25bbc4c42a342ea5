//! New artists, albums, tracks, episodes and playlists for a fake Spotify,
//! and the ids, snapshot ids, hashes and timestamps they carry.

use super::{FakeAlbum, FakeArtist, FakeEpisode, FakePlaylist, FakeTrack, PlaylistEntry, SpotifyState};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

impl SpotifyState {
    pub(crate) fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.clock
    }

    pub(super) fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    pub(super) fn readable(&self, playlist: &FakePlaylist) -> bool {
        playlist.owner == self.user_id || playlist.collaborative
    }

    pub(crate) fn new_artist(&mut self, name: Option<&str>) -> FakeArtist {
        let serial = self.next_serial();
        FakeArtist {
            id: spotify_id('a', serial),
            name: name.map_or_else(|| format!("Artist {serial}"), str::to_string),
            image: 0,
        }
    }

    pub(crate) fn new_album(&mut self, name: Option<&str>, artists: Vec<FakeArtist>) -> FakeAlbum {
        let serial = self.next_serial();
        FakeAlbum {
            id: spotify_id('b', serial),
            name: name.map_or_else(|| format!("Album {serial}"), str::to_string),
            artists,
            release_date: format!("{}-{:02}-{:02}", 1970 + serial % 55, 1 + serial % 12, 1 + serial % 28),
            total_tracks: 1 + (serial % 12) as u32,
        }
    }

    pub(crate) fn new_track(&mut self, name: Option<&str>, album: FakeAlbum) -> FakeTrack {
        let serial = self.next_serial();
        FakeTrack {
            id: spotify_id('t', serial),
            name: name.map_or_else(|| format!("Track {serial}"), str::to_string),
            artists: album.artists.clone(),
            track_number: 1 + (serial % u64::from(album.total_tracks)) as u32,
            album,
            duration_ms: 120_000 + serial * 1777 % 240_000,
        }
    }

    pub(super) fn new_episode(&mut self) -> FakeEpisode {
        let serial = self.next_serial();
        FakeEpisode {
            id: spotify_id('e', serial),
            name: format!("Episode {serial}"),
            show_id: spotify_id('s', serial % 3),
            show_name: format!("Podcast {}", serial % 3),
            duration_ms: 1_800_000 + serial * 7919 % 1_800_000,
            release_date: format!("20{:02}-{:02}-{:02}", 10 + serial % 15, 1 + serial % 12, 1 + serial % 28),
        }
    }

    pub(crate) fn new_playlist(
        &mut self,
        name: &str,
        owner: &str,
        collaborative: bool,
        entries: Vec<PlaylistEntry>,
    ) -> FakePlaylist {
        let serial = self.next_serial();
        let id = spotify_id('p', serial);
        FakePlaylist {
            snapshot_id: snapshot(&id, 1),
            id,
            name: name.to_string(),
            description: format!("Made for testing ({serial})"),
            owner: owner.to_string(),
            collaborative,
            public: !collaborative && serial % 2 == 0,
            entries,
            version: 1,
        }
    }

    pub(crate) fn edit_playlist(&mut self, id: &str, edit: impl FnOnce(&mut FakePlaylist)) {
        let playlist = self.playlists.iter_mut().find(|playlist| playlist.id == id).expect("no such playlist");
        edit(playlist);
        playlist.version += 1;
        playlist.snapshot_id = snapshot(&playlist.id, playlist.version);
    }
}

/// A 22-character base62 id: a kind letter and digits scrambled from the
/// serial, so id order (the followed-artists order) is not creation order.
pub(crate) fn spotify_id(kind: char, serial: u64) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let digits = |mut value: u64, count: usize| -> String {
        let mut out = vec![b'0'; count];
        for slot in out.iter_mut().rev() {
            *slot = DIGITS[(value % 62) as usize];
            value /= 62;
        }
        String::from_utf8(out).expect("ASCII")
    };
    let unique = serial.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let scramble = serial.wrapping_mul(0xD6E8_FEB8_6659_FD93).rotate_left(17) % 839_299_365_868_340_224; // 62^10
    format!("{kind}{}{}", digits(scramble, 10), digits(unique, 11))
}

/// Like real snapshot ids: base64 of "version,hash".
pub(super) fn snapshot(id: &str, version: u64) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{id}/{version}").as_bytes());
    let hash: String = digest.as_ref()[..16].iter().map(|byte| format!("{byte:02x}")).collect();
    STANDARD.encode(format!("{version},{hash}"))
}

pub(super) fn hex_of(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref()[..14].iter().map(|byte| format!("{byte:02x}")).collect()
}

pub(super) fn timestamp(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0).unwrap_or_default().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Percent-encodes a query component.
pub(super) fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
