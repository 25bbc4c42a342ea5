//! The page's artwork parts: each server's mirror progress line, and a strip
//! of the most recent additions and changes (from the change feed) whose
//! artwork is mirrored, each image served by the artwork route.

use super::page::escape;
use crate::app::App;
use crate::artwork::{ArtworkStats, files};
use std::fmt::Write;

/// Images the strip shows at most, and feed entries read to find them.
const STRIP_IMAGES: usize = 12;
const FEED_READ: usize = 400;

/// "Artwork: 120 of 130 images · 2 MiB · validators … · 304s …".
pub fn progress_line(out: &mut String, stats: &ArtworkStats) {
    let _ = write!(
        out,
        "<div>Artwork: {} of {} images · {} KiB · {} fetched · re-checks {} ({} answered 304) · validators seen: ETag {}, Last-Modified {}",
        stats.files,
        stats.items_with_artwork,
        stats.bytes / 1024,
        stats.fetched,
        stats.rechecks,
        stats.not_modified,
        stats.etag_seen,
        stats.last_modified_seen
    );
    if stats.budget_full {
        let _ = write!(out, " · the budget (max_mib) is full: {} images wait", stats.pending);
    }
    if let Some(error) = &stats.last_error {
        let _ = write!(out, " · last pass stopped: {}", escape(error));
    }
    out.push_str("</div>");
}

/// The strip of recent additions with their artwork (empty when the mirror
/// is off or nothing recent has an image).
pub fn recent(app: &App) -> String {
    let config = app.config();
    let Some(artwork) = &config.artwork else { return String::new() };
    let Ok(head) = app.store.head() else { return String::new() };
    let Ok(changes) = app.store.changes(head.saturating_sub(FEED_READ as u64), FEED_READ) else {
        return String::new();
    };
    let mut cells = Vec::new();
    for change in changes.iter().rev().filter(|change| !change.deleted) {
        if cells.len() >= STRIP_IMAGES {
            break;
        }
        let Ok(Some(state)) = app.store.state(change.library) else { continue };
        let Ok(Some(stored)) = app.store.item(change.library, &change.id) else { continue };
        let Some(thumb) = &stored.item.thumb else { continue };
        let stem = files::stem(&state.library_id, &change.id, thumb);
        if files::find(&files::server_dir(&artwork.dir, &state.server), &stem).is_none() {
            continue;
        }
        cells.push(format!(
            "<figure><img src=\"{}\" alt=\"\" loading=lazy width=80><figcaption>{}</figcaption></figure>",
            super::artwork::url(&state.server, &state.library_id, &change.id),
            escape(&stored.item.title)
        ));
    }
    if cells.is_empty() {
        return String::new();
    }
    format!("<section><h2>Recently added</h2><div class=strip>{}</div></section>", cells.concat())
}
