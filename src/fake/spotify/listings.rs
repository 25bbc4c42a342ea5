//! A fake Spotify's library listings: saved tracks and albums, followed
//! artists, playlists and their entries, and library `contains`, paged by
//! offset or by an `after` cursor as the real API pages them.

use super::catalog::timestamp;
use super::images::playlist_image;
use super::serve::{Answer, Params, api_error, has_scope, param};
use super::shapes::{album_json, artist_json, episode_json, local_json, object, track_json};
use super::{FakeArtist, PlaylistItem, SpotifyState};
use serde_json::{Value, json};

impl SpotifyState {
    /// `/me/library/contains?uris=`: one boolean per URI, in order; at most
    /// 40 URIs, each `spotify:{type}:{id}`, else 400. A playlist is in the
    /// library when the user follows it, which the owner does until deleting
    /// (unfollowing) it.
    pub(super) fn contains(&self, params: &Params) -> Result<Value, Answer> {
        let uris: Vec<&str> = param(params, "uris").unwrap_or("").split(',').filter(|uri| !uri.is_empty()).collect();
        if uris.is_empty() {
            return Err(api_error(400, "Missing required parameter: uris"));
        }
        if uris.len() > 40 {
            return Err(api_error(400, "Too many ids requested"));
        }
        let mut flags = Vec::with_capacity(uris.len());
        for uri in uris {
            let saved = match uri.strip_prefix("spotify:").and_then(|rest| rest.split_once(':')) {
                Some(("track", id)) => self.saved_tracks.iter().any(|saved| saved.item.id == id),
                Some(("album", id)) => self.saved_albums.iter().any(|saved| saved.item.id == id),
                Some(("artist", id)) => self.followed_artists.iter().any(|artist| artist.id == id),
                Some(("playlist", id)) => self.playlists.iter().any(|playlist| playlist.id == id),
                Some(("episode" | "show" | "audiobook" | "user", _)) => false,
                _ => return Err(api_error(400, &format!("Invalid URI: {uri}"))),
            };
            flags.push(Value::Bool(saved));
        }
        Ok(Value::Array(flags))
    }

    pub(super) fn saved_tracks_page(&self, params: &Params, base: &str) -> Result<Value, Answer> {
        let (offset, limit) = paging(params, 50)?;
        let items = self.saved_tracks.iter().skip(offset).take(limit);
        let items =
            items.map(|saved| json!({"added_at": timestamp(saved.added_at), "track": track_json(&saved.item, base)}));
        Ok(page(&format!("{base}/me/tracks"), items.collect(), offset, limit, self.saved_tracks.len()))
    }

    pub(super) fn saved_albums_page(&self, params: &Params, base: &str) -> Result<Value, Answer> {
        let (offset, limit) = paging(params, 50)?;
        let items = self.saved_albums.iter().skip(offset).take(limit);
        let items = items
            .map(|saved| json!({"added_at": timestamp(saved.added_at), "album": album_json(&saved.item, base, true)}));
        Ok(page(&format!("{base}/me/albums"), items.collect(), offset, limit, self.saved_albums.len()))
    }

    pub(super) fn following(&self, params: &Params, base: &str) -> Result<Value, Answer> {
        if param(params, "type") != Some("artist") {
            return Err(api_error(400, "Missing or bad type"));
        }
        let limit = limit(params, 50)?;
        let after = param(params, "after").unwrap_or("");
        let mut artists: Vec<&FakeArtist> = self.followed_artists.iter().collect();
        artists.sort_by(|a, b| a.id.cmp(&b.id));
        let rest: Vec<&FakeArtist> = artists.iter().copied().filter(|artist| artist.id.as_str() > after).collect();
        let chunk = &rest[..rest.len().min(limit)];
        let more = rest.len() > chunk.len();
        let last = chunk.last().filter(|_| more).map(|artist| artist.id.clone());
        let href = match param(params, "after") {
            Some(after) => format!("{base}/me/following?type=artist&after={after}&limit={limit}"),
            None => format!("{base}/me/following?type=artist&limit={limit}"),
        };
        Ok(json!({"artists": {
            "href": href,
            "items": chunk.iter().map(|artist| artist_json(artist, base, true)).collect::<Vec<_>>(),
            "limit": limit,
            "next": last.as_ref().map(|last| format!("{base}/me/following?type=artist&after={last}&limit={limit}")),
            "cursors": {"after": last},
            "total": artists.len(),
        }}))
    }

    pub(super) fn playlists_page(&mut self, params: &Params, base: &str) -> Result<Value, Answer> {
        let (offset, limit) = paging(params, 50)?;
        self.listings += 1;
        let listing = self.listings;
        let items = self.playlists.iter().skip(offset).take(limit).map(|playlist| {
            let owner = &playlist.owner;
            let href = format!("{base}/playlists/{}", playlist.id);
            let images =
                if playlist.entries.is_empty() { json!([]) } else { playlist_image(base, &playlist.id, listing) };
            let display_name = if *owner == self.user_id { self.display_name.clone() } else { owner.to_uppercase() };
            let fields = json!({"collaborative": playlist.collaborative, "description": playlist.description,
                "images": images, "items": {"href": format!("{href}/items"), "total": playlist.entries.len()},
                "name": playlist.name, "owner": object("user", owner, base, json!({"display_name": display_name})),
                "primary_color": null, "public": playlist.public, "snapshot_id": playlist.snapshot_id,
                "tracks": {"href": format!("{href}/tracks"), "total": playlist.entries.len()}});
            object("playlist", &playlist.id, base, fields)
        });
        let items = items.collect();
        Ok(page(&format!("{base}/me/playlists"), items, offset, limit, self.playlists.len()))
    }

    pub(super) fn entries_page(
        &self,
        id: &str,
        what: &str,
        params: &Params,
        scope: &str,
        base: &str,
    ) -> Result<Value, Answer> {
        let Some(playlist) = self.playlists.iter().find(|playlist| playlist.id == id) else {
            return Err(api_error(404, "Resource not found"));
        };
        if !self.readable(playlist) {
            return Err(api_error(403, "Forbidden"));
        }
        if playlist.owner != self.user_id && !has_scope(scope, "playlist-read-collaborative") {
            return Err(api_error(403, "Insufficient client scope"));
        }
        let (offset, limit) = paging(params, if what == "items" { 50 } else { 100 })?;
        let episodes =
            param(params, "additional_types").is_some_and(|types| types.split(',').any(|kind| kind == "episode"));
        let items = playlist.entries.iter().skip(offset).take(limit).map(|entry| {
            let item = match &entry.item {
                PlaylistItem::Track(track) => track_json(track, base),
                PlaylistItem::Episode(episode) => episode_json(episode, base, episodes),
                PlaylistItem::Local { name, artist, album, duration_ms } => {
                    local_json(name, artist, album, *duration_ms)
                }
                PlaylistItem::Unavailable => Value::Null,
            };
            let added_by = entry.added_by.as_ref().map(|user| object("user", user, base, json!({})));
            json!({
                "added_at": entry.added_at.map(timestamp),
                "added_by": added_by,
                "is_local": matches!(entry.item, PlaylistItem::Local { .. }),
                "primary_color": null,
                "item": item,
                "track": item,
                "video_thumbnail": {"url": null},
            })
        });
        let href = format!("{base}/playlists/{id}/{what}");
        Ok(page(&href, items.collect(), offset, limit, playlist.entries.len()))
    }
}

/// `offset` and `limit`, or the 400 Spotify sends.
pub(super) fn paging(params: &Params, most: usize) -> Result<(usize, usize), Answer> {
    let offset = match param(params, "offset") {
        None => 0,
        Some(text) => text.parse().map_err(|_| api_error(400, "Invalid offset"))?,
    };
    Ok((offset, limit(params, most)?))
}

/// `limit`: 1..=`most`, default 20.
pub(super) fn limit(params: &Params, most: usize) -> Result<usize, Answer> {
    match param(params, "limit") {
        None => Ok(20),
        Some(text) => {
            text.parse().ok().filter(|limit| (1..=most).contains(limit)).ok_or_else(|| api_error(400, "Invalid limit"))
        }
    }
}

pub(super) fn page(href: &str, items: Vec<Value>, offset: usize, limit: usize, total: usize) -> Value {
    let at = |offset: usize| format!("{href}?offset={offset}&limit={limit}");
    json!({
        "href": at(offset),
        "items": items,
        "limit": limit,
        "next": (offset + limit < total).then(|| at(offset + limit)),
        "offset": offset,
        "previous": (offset > 0).then(|| at(offset.saturating_sub(limit))),
        "total": total,
    })
}
