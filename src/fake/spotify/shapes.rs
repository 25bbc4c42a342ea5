//! The JSON shapes a fake Spotify answers: artists, albums, tracks,
//! episodes (in either shape) and local files, with the links and images
//! every object carries.

use super::catalog::{encode, hex_of};
use super::images::images;
use super::listings::page;
use super::{FakeAlbum, FakeArtist, FakeEpisode, FakeTrack};
use serde_json::{Value, json};

const MARKETS: [&str; 6] = ["AD", "AT", "BE", "DE", "GB", "US"];

/// An object with an id: its fields plus the href, uri and links all carry.
pub(super) fn object(kind: &str, id: &str, base: &str, mut fields: Value) -> Value {
    let links = json!({"external_urls": {"spotify": format!("https://open.spotify.com/{kind}/{id}")},
        "href": format!("{base}/{kind}s/{id}"), "id": id, "type": kind, "uri": format!("spotify:{kind}:{id}")});
    if let (Value::Object(map), Value::Object(links)) = (&mut fields, links) {
        map.extend(links);
    }
    fields
}

pub(super) fn artist_json(artist: &FakeArtist, base: &str, full: bool) -> Value {
    let popularity = artist.id.bytes().map(u64::from).sum::<u64>() % 100;
    let fields = if full {
        json!({"followers": {"href": null, "total": popularity * 1013}, "genres": ["indie rock"],
            "images": images(base, "ab676161000", &artist.id, artist.image), "name": artist.name, "popularity": popularity})
    } else {
        json!({"name": artist.name})
    };
    object("artist", &artist.id, base, fields)
}

pub(super) fn album_json(album: &FakeAlbum, base: &str, full: bool) -> Value {
    let artists: Vec<Value> = album.artists.iter().map(|artist| artist_json(artist, base, false)).collect();
    let mut fields = json!({
        "album_type": if album.total_tracks < 4 { "single" } else { "album" }, "artists": artists,
        "available_markets": MARKETS, "images": images(base, "ab67616d0000", &album.id, 0), "is_playable": true,
        "name": album.name, "release_date": album.release_date, "release_date_precision": "day",
        "total_tracks": album.total_tracks});
    if full {
        // The album's own tracks: ids derived from the album's, so listings are stable.
        let tracks: Vec<Value> = (1..=album.total_tracks)
            .map(|number| {
                let id = format!("t{}", &hex_of(&format!("{}/{number}", album.id))[..21]);
                let fields = json!({"artists": artists, "available_markets": MARKETS, "disc_number": 1,
                    "duration_ms": 150_000 + number * 9_001, "explicit": false, "is_local": false,
                    "name": format!("{} {number}", album.name), "preview_url": null, "track_number": number});
                object("track", &id, base, fields)
            })
            .collect();
        let href = format!("{base}/albums/{}/tracks", album.id);
        fields["tracks"] = page(&href, tracks, 0, 50, album.total_tracks as usize);
        fields["copyrights"] = json!([{"text": format!("{} Fake Records", &album.release_date[..4]), "type": "C"}]);
        fields["external_ids"] = json!({"upc": format!("00{}", &hex_of(&album.id)[..10])});
        fields["genres"] = json!([]);
        fields["label"] = json!("Fake Records");
        fields["popularity"] = json!(album.total_tracks * 7);
    }
    object("album", &album.id, base, fields)
}

pub(super) fn track_json(track: &FakeTrack, base: &str) -> Value {
    let artists: Vec<Value> = track.artists.iter().map(|artist| artist_json(artist, base, false)).collect();
    let fields = json!({
        "album": album_json(&track.album, base, false), "artists": artists, "available_markets": MARKETS,
        "disc_number": 1, "duration_ms": track.duration_ms, "explicit": track.duration_ms % 7 == 0,
        "external_ids": {"isrc": format!("QZ{}", &hex_of(&track.id)[..10].to_uppercase())}, "is_local": false,
        "is_playable": true, "name": track.name, "popularity": track.duration_ms % 100, "preview_url": null,
        "track_number": track.track_number});
    object("track", &track.id, base, fields)
}

/// An EpisodeObject when the client asked for episodes
/// (`additional_types=episode`), else the legacy track shape, whose
/// `episode`/`track` flags are wrong as on the real API: only `type` and
/// `uri` tell.
pub(super) fn episode_json(episode: &FakeEpisode, base: &str, as_episode: bool) -> Value {
    let show_fields = json!({
        "available_markets": MARKETS, "copyrights": [], "description": format!("{}: a podcast", episode.show_name),
        "explicit": false, "html_description": format!("<p>{}: a podcast</p>", episode.show_name),
        "images": images(base, "ab6765630000", &episode.show_id, 0), "is_externally_hosted": false, "languages": ["en"],
        "media_type": "audio", "name": episode.show_name, "publisher": "Fake Pods", "total_episodes": 120});
    let show = object("show", &episode.show_id, base, show_fields);
    let fields = if as_episode {
        json!({"audio_preview_url": null, "description": format!("In {}, we talk.", episode.name),
            "duration_ms": episode.duration_ms, "explicit": false,
            "html_description": format!("<p>In {}, we talk.</p>", episode.name), "images": show["images"],
            "is_externally_hosted": false, "is_playable": true, "language": "en", "languages": ["en"],
            "name": episode.name, "release_date": episode.release_date, "release_date_precision": "day",
            "show": show})
    } else {
        let artist = object("show", &episode.show_id, base, json!({"name": episode.show_name}));
        let album = json!({"album_type": "show", "artists": [artist], "available_markets": MARKETS,
            "images": show["images"], "name": episode.show_name, "release_date": episode.release_date,
            "release_date_precision": "day", "total_tracks": 1});
        json!({"album": object("show", &episode.show_id, base, album), "artists": [artist],
            "available_markets": MARKETS, "disc_number": 0, "duration_ms": episode.duration_ms, "episode": false,
            "explicit": false, "external_ids": {"spotify": format!("https://open.spotify.com/episode/{}", episode.id)},
            "is_local": false, "name": episode.name, "popularity": 0, "preview_url": null, "track": true,
            "track_number": 0})
    };
    object("episode", &episode.id, base, fields)
}

/// A local file: no ids, no links, a `spotify:local:` URI.
pub(super) fn local_json(name: &str, artist: &str, album: &str, duration_ms: u64) -> Value {
    let uri = format!("spotify:local:{}:{}:{}:{}", encode(artist), encode(album), encode(name), duration_ms / 1000);
    json!({
        "album": {"album_type": null, "artists": [], "available_markets": [], "external_urls": {}, "href": null,
            "id": null, "images": [], "name": album, "release_date": null, "release_date_precision": null,
            "type": "album", "uri": null},
        "artists": [{"external_urls": {}, "href": null, "id": null, "name": artist, "type": "artist", "uri": null}],
        "available_markets": [], "disc_number": 0, "duration_ms": duration_ms, "explicit": false, "external_ids": {},
        "external_urls": {}, "href": null, "id": null, "is_local": true, "name": name, "popularity": 0,
        "preview_url": null, "track_number": 0, "type": "track", "uri": uri,
    })
}
