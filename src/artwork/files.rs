//! The artwork directory on disk: one image per item named by its key and
//! marker, written whole (temporary name, fsync, rename, directory fsync)
//! so a power cut never leaves a torn image, plus the per-server state
//! beside it (validators, counters). Leftover temporary files are removed
//! at the start of every pass.

use crate::model::content_hash;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Every temporary file starts with this; nothing else does.
const TEMPORARY: &str = ".tmp-";
/// The extensions an image may get from its first bytes.
pub const EXTENSIONS: [&str; 4] = ["jpg", "png", "webp", "img"];

/// The image directory of a server: `dir/<server>` (a name starting with a
/// dot, which config allows, is prefixed so it never means `.` or `..`).
pub fn server_dir(dir: &Path, server: &str) -> PathBuf {
    dir.join(safe(server))
}

/// Where a server's validators and counters live, apart from its images so
/// that its image directory holds images only.
pub fn state_dir(dir: &Path, server: &str) -> PathBuf {
    dir.join(".state").join(safe(server))
}

fn safe(server: &str) -> String {
    if server.starts_with('.') { format!("_{server}") } else { server.to_string() }
}

/// An item's image name without extension: its key (library and id) and
/// its marker, each an FNV-1a hash, so a changed marker is a new name and
/// the store and the directory can be compared name by name.
pub fn stem(library_id: &str, item_id: &str, marker: &str) -> String {
    let key = content_hash(format!("{library_id}\0{item_id}").as_bytes());
    format!("{key:016x}-{:016x}", content_hash(marker.as_bytes()))
}

/// The marker half of a stem: what the served `ETag` is made of.
pub fn marker_of(stem: &str) -> &str {
    stem.split_once('-').map_or(stem, |(_, marker)| marker)
}

/// The extension an image's first bytes call for.
pub fn extension(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"\xff\xd8\xff") {
        "jpg"
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "png"
    } else if bytes.get(..4) == Some(b"RIFF".as_slice()) && bytes.get(8..12) == Some(b"WEBP".as_slice()) {
        "webp"
    } else {
        "img"
    }
}

/// Whether an image's bytes end as its format ends (PNG's `IEND` chunk,
/// JPEG's end-of-image marker, WebP's RIFF length): an answer cut off with
/// a consistent length (a proxy, a server restarting) is not kept as a torn
/// image. Formats not recognised are taken as they come.
pub fn looks_whole(bytes: &[u8]) -> bool {
    match extension(bytes) {
        "png" => bytes.ends_with(b"IEND\xaeB`\x82"),
        "jpg" => bytes.ends_with(b"\xff\xd9"),
        "webp" => bytes
            .get(4..8)
            .and_then(|length| <[u8; 4]>::try_from(length).ok())
            .is_some_and(|length| u64::from(u32::from_le_bytes(length)).saturating_add(8) == bytes.len() as u64),
        _ => true,
    }
}

pub fn content_type(extension: &str) -> &'static str {
    match extension {
        "jpg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        _ => "application/octet-stream",
    }
}

/// One image file found in a server's directory.
#[derive(Clone, Debug)]
pub struct OnDisk {
    pub file: String,
    pub bytes: u64,
    /// When it was last served (or written): the eviction order.
    pub served: SystemTime,
}

/// What `scan` does with leftover temporary files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leftovers {
    Remove,
    /// Count them only (a check that reports before it repairs).
    Count,
}

/// The images of a directory by stem, after removing leftover temporary
/// files (a pass or a write cut short). Returns the images and how many
/// leftovers there were.
pub fn scan(dir: &Path, leftovers_are: Leftovers) -> std::io::Result<(HashMap<String, OnDisk>, u64)> {
    if leftovers_are == Leftovers::Count && !dir.exists() {
        return Ok((HashMap::new(), 0));
    }
    fs::create_dir_all(dir)?;
    let mut images = HashMap::new();
    let mut leftovers: u64 = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        if name.starts_with(TEMPORARY) {
            if leftovers_are == Leftovers::Remove {
                fs::remove_file(entry.path())?;
            }
            leftovers = leftovers.saturating_add(1);
            continue;
        }
        let metadata = entry.metadata()?;
        if !metadata.is_file() {
            continue;
        }
        let stem = name.split_once('.').map_or(name.as_str(), |(stem, _)| stem).to_string();
        let served = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        images.insert(stem, OnDisk { file: name, bytes: metadata.len(), served });
    }
    Ok((images, leftovers))
}

/// Writes `bytes` as `dir/name` whole: a temporary file, synced, renamed
/// over, the directory synced. A crash at any point leaves either no file
/// or the whole one (and maybe a temporary file `scan` removes).
pub fn write_whole(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = dir.join(format!("{TEMPORARY}{name}-{}", std::process::id()));
    let written = (|| {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, dir.join(name))?;
        File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// The file of `stem` in `dir`, if there is one, with its extension.
pub fn find(dir: &Path, stem: &str) -> Option<(PathBuf, &'static str)> {
    EXTENSIONS.into_iter().map(|ext| (dir.join(format!("{stem}.{ext}")), ext)).find(|(path, _)| path.is_file())
}

/// Marks an image as just served (its modification time), so the budget
/// evicts the least recently served first.
pub fn touch(path: &Path) {
    if let Ok(file) = File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::{Leftovers, extension, scan, stem, write_whole};

    #[test]
    fn names_change_with_the_marker_only() {
        assert_eq!(stem("1", "55", "/t/1"), stem("1", "55", "/t/1"));
        assert_ne!(stem("1", "55", "/t/1"), stem("1", "55", "/t/2"));
        assert_eq!(stem("1", "55", "/t/1")[..16], stem("1", "55", "/t/2")[..16]);
        assert_eq!(extension(b"\x89PNG\r\n\x1a\nrest"), "png");
        assert_eq!(extension(b"\xff\xd8\xff\xe0"), "jpg");
        assert!(super::looks_whole(b"\xff\xd8\xff\xe0..\xff\xd9") && !super::looks_whole(b"\xff\xd8\xff\xe0.."));
        assert!(!super::looks_whole(b"\x89PNG\r\n\x1a\nIHDR"));
    }

    #[test]
    fn leftovers_are_removed_and_images_listed() {
        let dir = std::env::temp_dir().join(format!("mediasync-artwork-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        write_whole(&dir, "a-b.png", b"\x89PNG\r\n\x1a\n").unwrap();
        std::fs::write(dir.join(".tmp-c-d.png-1"), b"torn").unwrap();
        assert_eq!(scan(&dir, Leftovers::Count).unwrap().1, 1);
        assert!(dir.join(".tmp-c-d.png-1").exists(), "counting removes nothing");
        let (images, leftovers) = scan(&dir, Leftovers::Remove).unwrap();
        assert_eq!(leftovers, 1);
        assert_eq!(images.keys().collect::<Vec<_>>(), vec!["a-b"]);
        assert_eq!(images["a-b"].file, "a-b.png");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
