//! A fake Spotify's images, as its CDN (i.scdn.co) serves them: the
//! objects list one picture in three sizes (a playlist lists one of null
//! size, whose URL carries a query that changes on every listing, as real
//! playlist image URLs are temporary), each URL naming its picture and size,
//! so a new picture is a new URL. Served under `/image/` on the fake's own
//! listener as PNGs of a tenth of the listed size, without asking for a
//! token (a request carrying one is counted: a token sent off the API host).
//! `SpotifyState::image_failure` makes every image answer a status instead
//! (an outage, expired URLs).

use super::catalog::hex_of;
use crate::fake::png::poster;
use serde_json::{Value, json};

/// The sizes the CDN lists, by the size code before the picture's hash:
/// 640, 300 and 64 px; `da84` is a playlist's cover, listed without size.
const SIZES: [(&str, u32); 4] = [("b273", 640), ("1e02", 300), ("4851", 64), ("da84", 300)];
/// The length of a picture's hash in its URL (`hex_of`).
const HASH_CHARS: usize = 28;

/// The origin images are served from: the API's (`{origin}/v1`).
fn origin(base: &str) -> &str {
    base.strip_suffix("/v1").unwrap_or(base)
}

/// The picture of object `id` at `version` in three sizes, widest first.
pub(super) fn images(base: &str, prefix: &str, id: &str, version: u64) -> Value {
    let hash = if version == 0 { hex_of(id) } else { hex_of(&format!("{id}#{version}")) };
    let origin = origin(base);
    let image = |(code, size): (&str, u32)| json!({"height": size, "url": format!("{origin}/image/{prefix}{code}{hash}"), "width": size});
    json!([image(SIZES[0]), image(SIZES[1]), image(SIZES[2])])
}

/// A playlist's cover: one image of null size, its URL's query changing
/// with every listing.
pub(super) fn playlist_image(base: &str, id: &str, listing: u64) -> Value {
    let url = format!("{}/image/ab67706c0000da84{}?t={listing}", origin(base), hex_of(id));
    json!([{"height": null, "url": url, "width": null}])
}

/// The bytes the fake serves for an image URL (its query ignored), or
/// `None` when the URL names no image it lists.
pub fn image_bytes(url: &str) -> Option<Vec<u8>> {
    let path = url.split(['?', '#']).next()?;
    let (_, name) = path.rsplit_once("/image/")?;
    let split = name.len().checked_sub(HASH_CHARS + 4)?;
    let code = name.get(split..split + 4)?;
    let (_, size) = SIZES.iter().find(|(known, _)| *known == code)?;
    let side = (size / 10).max(1);
    Some(poster(name, side, side))
}
