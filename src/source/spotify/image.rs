//! The artwork marker of a Spotify object: of the `images` it lists (each
//! `{url, width, height}`, sizes sometimes null, the list sometimes empty),
//! the URL of the size closest to `[artwork] width`, without its query. The
//! query goes because playlist image URLs are temporary and differ between
//! listings; the image's id in the path is what names the picture, so a
//! marker that changes only with the picture costs no download per run.

use super::super::lenient::{Entries, Int, Text};
use serde::Deserialize;

/// One listed size of an image.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Image {
    url: Text,
    width: Int,
}

/// The marker of the image closest to `width` pixels wide: listed sizes
/// first (the nearest, the larger on a tie), then an image of unknown size
/// (playlists list one with null sizes). Only `http` and `https` URLs are
/// kept; `None` for an empty or unreadable list.
pub(super) fn closest(images: Entries<Image>, width: u32) -> Option<String> {
    let mut best: Option<(u64, i64, String)> = None;
    for image in images.0.into_iter().flatten() {
        let Some(url) = image.url.as_str().and_then(stable_url) else { continue };
        let listed = image.width.get().filter(|listed| *listed > 0);
        // Unknown sizes rank after every known one.
        let distance = listed.map_or(u64::MAX, |listed| listed.abs_diff(i64::from(width)));
        let size = listed.unwrap_or(0);
        let better = match &best {
            None => true,
            Some((best_distance, best_size, _)) => {
                distance < *best_distance || (distance == *best_distance && size > *best_size)
            }
        };
        if better {
            best = Some((distance, size, url));
        }
    }
    best.map(|(_, _, url)| url)
}

/// `url` without its query and fragment, if it is an `http(s)` URL.
fn stable_url(url: &str) -> Option<String> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return None;
    }
    let end = url.find(['?', '#']).unwrap_or(url.len());
    Some(url[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::{Image, closest};
    use crate::source::lenient::Entries;
    use serde_json::json;

    fn images(value: serde_json::Value) -> Entries<Image> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_listed_size_closest_to_the_width_wins() {
        let listed = json!([
            {"url": "https://i.scdn.co/image/b273", "width": 640, "height": 640},
            {"url": "https://i.scdn.co/image/1e02", "width": 300, "height": 300},
            {"url": "https://i.scdn.co/image/4851", "width": 64, "height": 64},
        ]);
        assert_eq!(closest(images(listed.clone()), 300).as_deref(), Some("https://i.scdn.co/image/1e02"));
        assert_eq!(closest(images(listed.clone()), 1000).as_deref(), Some("https://i.scdn.co/image/b273"));
        assert_eq!(closest(images(listed.clone()), 100).as_deref(), Some("https://i.scdn.co/image/4851"));
        // 470 is 170 from both 640 and 300: the larger.
        assert_eq!(closest(images(listed), 470).as_deref(), Some("https://i.scdn.co/image/b273"));
    }

    #[test]
    fn null_sizes_empty_lists_and_temporary_queries() {
        let playlist =
            json!([{"url": "https://image-cdn-ak.spotifycdn.com/image/ab67706c?t=7", "width": null, "height": null}]);
        assert_eq!(
            closest(images(playlist), 300).as_deref(),
            Some("https://image-cdn-ak.spotifycdn.com/image/ab67706c"),
            "the temporary query is not part of the marker"
        );
        assert_eq!(closest(images(json!([])), 300), None);
        let odd = json!([{"url": "ftp://x/y", "width": 300}, {"url": null, "width": 300}, 5,
            {"url": "https://mosaic.scdn.co/640/ab", "width": null}, {"url": "https://mosaic.scdn.co/60/ab", "width": 60}]);
        assert_eq!(closest(images(odd), 300).as_deref(), Some("https://mosaic.scdn.co/60/ab"), "a known size first");
        let not_a_list = json!({"url": "https://i.scdn.co/image/x"});
        assert_eq!(closest(serde_json::from_value(not_a_list).unwrap_or_default(), 300), None);
    }
}
