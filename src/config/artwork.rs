//! `[artwork]`: the optional artwork mirror (off unless `enabled = true`),
//! its directory, disk budget, image width and request rate, checked here
//! with messages naming the key and what to write instead.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[artwork]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawArtwork {
    pub enabled: Option<bool>,
    pub dir: Option<PathBuf>,
    pub max_mib: Option<u64>,
    pub width: Option<u32>,
    pub per_minute: Option<u32>,
}

/// The artwork mirror's settings, present only when it is enabled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtworkConfig {
    /// One subdirectory per server; default `artwork` beside the store.
    pub dir: PathBuf,
    /// The directory's budget: past it, the least recently served images go.
    pub max_bytes: u64,
    /// The width asked of the server (the height follows the image).
    pub width: u32,
    /// At most this many image requests per minute toward one server.
    pub per_minute: u32,
}

pub const DEFAULT_ARTWORK_MAX_MIB: u64 = 512;
pub const DEFAULT_ARTWORK_WIDTH: u32 = 300;
pub const DEFAULT_ARTWORK_PER_MINUTE: u32 = 120;
const WIDTHS: std::ops::RangeInclusive<u32> = 32..=4000;
const PER_MINUTE: std::ops::RangeInclusive<u32> = 1..=60_000;
const MAX_MIB: std::ops::RangeInclusive<u64> = 1..=1 << 20;

/// A refused `[artwork]` value.
#[derive(Debug, PartialEq, Eq)]
pub enum ArtworkProblem {
    DirEmpty,
    Width(u32),
    PerMinute(u32),
    MaxMib(u64),
}

impl std::fmt::Display for ArtworkProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArtworkProblem::DirEmpty => f.write_str(
                "[artwork] dir is empty; leave it out (the default is `artwork` beside the store) or name a directory such as /var/lib/mediasync/artwork",
            ),
            ArtworkProblem::Width(width) => write!(
                f,
                "[artwork] width = {width} is outside {} to {} pixels; 300 suits a poster strip",
                WIDTHS.start(),
                WIDTHS.end()
            ),
            ArtworkProblem::PerMinute(rate) => write!(
                f,
                "[artwork] per_minute = {rate} is outside {} to {}; 120 is gentle toward a small server",
                PER_MINUTE.start(),
                PER_MINUTE.end()
            ),
            ArtworkProblem::MaxMib(mib) => write!(
                f,
                "[artwork] max_mib = {mib} is outside {} to {} MiB; 512 holds about 20,000 posters of 300 px",
                MAX_MIB.start(),
                MAX_MIB.end()
            ),
        }
    }
}

/// `None` when the mirror is off (no table, or `enabled` not true); values
/// are checked even then, so a typo is found before it is switched on.
pub fn validate(raw: Option<RawArtwork>, store_path: &Path) -> Result<Option<ArtworkConfig>, ArtworkProblem> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let dir = match raw.dir {
        Some(dir) if dir.as_os_str().is_empty() => return Err(ArtworkProblem::DirEmpty),
        Some(dir) => dir,
        None => store_path.parent().unwrap_or(Path::new(".")).join("artwork"),
    };
    let width = raw.width.unwrap_or(DEFAULT_ARTWORK_WIDTH);
    if !WIDTHS.contains(&width) {
        return Err(ArtworkProblem::Width(width));
    }
    let per_minute = raw.per_minute.unwrap_or(DEFAULT_ARTWORK_PER_MINUTE);
    if !PER_MINUTE.contains(&per_minute) {
        return Err(ArtworkProblem::PerMinute(per_minute));
    }
    let max_mib = raw.max_mib.unwrap_or(DEFAULT_ARTWORK_MAX_MIB);
    if !MAX_MIB.contains(&max_mib) {
        return Err(ArtworkProblem::MaxMib(max_mib));
    }
    let config = ArtworkConfig { dir, max_bytes: max_mib << 20, width, per_minute };
    Ok(Some(config).filter(|_| raw.enabled == Some(true)))
}

#[cfg(test)]
mod tests {
    use super::{ArtworkProblem, RawArtwork, validate};
    use std::path::{Path, PathBuf};

    #[test]
    fn off_unless_enabled_and_defaults_beside_the_store() {
        let store = Path::new("/var/lib/mediasync/mediasync.redb");
        assert_eq!(validate(None, store), Ok(None));
        assert_eq!(validate(Some(RawArtwork::default()), store), Ok(None));
        let on = validate(Some(RawArtwork { enabled: Some(true), ..RawArtwork::default() }), store).unwrap().unwrap();
        assert_eq!(on.dir, PathBuf::from("/var/lib/mediasync/artwork"));
        assert_eq!((on.width, on.per_minute, on.max_bytes), (300, 120, 512 << 20));
    }

    #[test]
    fn bad_values_are_refused_even_when_off() {
        let store = Path::new("/s/m.redb");
        let refused = |raw: RawArtwork| validate(Some(raw), store).unwrap_err();
        assert_eq!(refused(RawArtwork { width: Some(5), ..RawArtwork::default() }), ArtworkProblem::Width(5));
        assert_eq!(refused(RawArtwork { per_minute: Some(0), ..RawArtwork::default() }), ArtworkProblem::PerMinute(0));
        assert_eq!(refused(RawArtwork { max_mib: Some(0), ..RawArtwork::default() }), ArtworkProblem::MaxMib(0));
        assert_eq!(
            refused(RawArtwork { dir: Some(PathBuf::new()), ..RawArtwork::default() }),
            ArtworkProblem::DirEmpty
        );
        assert!(
            refused(RawArtwork { width: Some(5), ..RawArtwork::default() }).to_string().contains("[artwork] width = 5")
        );
    }
}
