//! What the artwork mirror keeps besides the images, per server, in
//! `dir/.state/<server>`: each image's validators (`validators/<stem>`,
//! JSON) and the counters `mediasync status` and the page show
//! (`stats.json`): which validators the server sent, how often a re-check
//! answered 304, and the progress of the mirror. Written whole, like images.

use super::fetch::Validators;
use super::files::write_whole;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A server's artwork counters: the progress as of the last pass and the
/// totals since the mirror started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ArtworkStats {
    /// Items with an image marker, as of the last pass.
    pub items_with_artwork: u64,
    /// Images on disk for them.
    pub files: u64,
    pub bytes: u64,
    /// Images still to fetch (the next pass continues).
    pub pending: u64,
    /// Images fetched (written) since the mirror started.
    pub fetched: u64,
    pub bytes_written: u64,
    /// Answers carrying `ETag`, `Last-Modified`.
    pub etag_seen: u64,
    pub last_modified_seen: u64,
    /// Conditional re-checks sent, and how many answered 304.
    pub rechecks: u64,
    pub not_modified: u64,
    /// Images removed: item gone or marker changed, and over the budget.
    pub pruned: u64,
    pub evicted: u64,
    /// When the last pass ended (epoch seconds) and what stopped it early.
    pub last_pass_at: Option<i64>,
    pub last_error: Option<String>,
    /// Set when the budget (`max_mib`) is full: new images wait.
    pub budget_full: bool,
}

pub fn load_stats(state_dir: &Path) -> ArtworkStats {
    std::fs::read(state_dir.join("stats.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

pub fn save_stats(state_dir: &Path, stats: &ArtworkStats) -> std::io::Result<()> {
    std::fs::create_dir_all(state_dir)?;
    let bytes = serde_json::to_vec_pretty(stats).map_err(std::io::Error::other)?;
    write_whole(state_dir, "stats.json", &bytes)
}

pub fn load_validators(state_dir: &Path, stem: &str) -> Option<Validators> {
    let bytes = std::fs::read(state_dir.join("validators").join(stem)).ok()?;
    serde_json::from_slice(&bytes).ok().filter(Validators::any)
}

/// Keeps `validators` for `stem` (or forgets them when there are none).
pub fn save_validators(state_dir: &Path, stem: &str, validators: &Validators) -> std::io::Result<()> {
    let dir = state_dir.join("validators");
    if !validators.any() {
        return forget_validators(state_dir, stem);
    }
    std::fs::create_dir_all(&dir)?;
    let bytes = serde_json::to_vec(validators).map_err(std::io::Error::other)?;
    write_whole(&dir, stem, &bytes)
}

pub fn forget_validators(state_dir: &Path, stem: &str) -> std::io::Result<()> {
    match std::fs::remove_file(state_dir.join("validators").join(stem)) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}
