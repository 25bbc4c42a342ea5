//! The artwork mirror: after a server's metadata sync, one resized image per
//! item with an image marker (`Item::thumb`), named by item and marker, so
//! an unchanged library costs no image request, a changed poster one, and
//! the directory can be checked against the store. Runs after the sync has
//! committed (never inside its transactions), at `per_minute` at most; a
//! pass cut short resumes where the directory stands.

pub mod fetch;
pub mod files;
pub mod state;

use crate::config::{ArtworkConfig, ServerConfig};
use crate::model::{HISTORY, Kind};
use crate::source::stop::Stop;
use crate::store::{Store, StoreError};
use fetch::{FetchError, Fetched, ImageClient};
use files::OnDisk;
pub use state::ArtworkStats;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which present images a pass asks about again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recheck {
    /// None: only missing images and changed markers cost a request.
    Missing,
    /// Every present image with validators, conditionally (`mediasync
    /// check --artwork --recheck`): a 304 costs no body and no write.
    WithValidators,
}

/// One pass's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArtworkReport {
    pub wanted: u64,
    pub fetched: u64,
    /// Images copied from another item's file with the same marker (tracks
    /// of one album share its picture): no request.
    #[serde(default)]
    pub copied: u64,
    pub bytes_written: u64,
    pub rechecks: u64,
    pub not_modified: u64,
    pub missing_on_server: u64,
    pub pruned: u64,
    pub evicted: u64,
    pub leftovers: u64,
    pub requests: u64,
    pub pending: u64,
    pub error: Option<String>,
}

impl ArtworkReport {
    pub fn summary_line(&self, server: &str) -> String {
        let mut line = format!(
            "{server}: artwork wanted={} fetched={} copied={} bytes_written={} rechecks={} not_modified={} pruned={} evicted={} pending={} requests={}",
            self.wanted,
            self.fetched,
            self.copied,
            self.bytes_written,
            self.rechecks,
            self.not_modified,
            self.pruned,
            self.evicted,
            self.pending,
            self.requests
        );
        if let Some(error) = &self.error {
            line.push_str(&format!(" (stopped: {error})"));
        }
        line
    }
}

/// How long one pass may take before it yields (the daemon gives the next
/// sync its turn; the rest waits for the next pass).
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub deadline: Option<Instant>,
}

/// How one pass runs: the image requests' timeout, what stops it, which
/// present images it asks about again, and until when.
#[derive(Clone, Copy)]
pub struct Pass<'a> {
    pub timeout: Duration,
    pub stop: &'a Arc<Stop>,
    pub recheck: Recheck,
    pub budget: Budget,
}

/// An image the store says should be on disk.
struct Wanted {
    stem: String,
    thumb: String,
}

/// Mirrors one server's artwork. Store errors end the pass; image errors
/// end it too (it resumes at the next pass) and are reported.
pub fn mirror_server(
    store: &Store,
    server: &ServerConfig,
    artwork: &ArtworkConfig,
    pass: Pass<'_>,
) -> Result<ArtworkReport, StoreError> {
    let Pass { timeout, stop, recheck, budget } = pass;
    let mut report = ArtworkReport::default();
    let mut client = ImageClient::new(server, artwork.width, timeout, stop);
    let dir = files::server_dir(&artwork.dir, &server.name);
    let state_dir = files::state_dir(&artwork.dir, &server.name);
    let (mut on_disk, leftovers) = match scan_both(&dir, &state_dir) {
        Ok(scanned) => scanned,
        Err(err) => {
            report.error = Some(format!("{}: {err}; check that the directory is writable", dir.display()));
            return Ok(report);
        }
    };
    report.leftovers = leftovers;
    let (wanted_keys, to_fetch) = wanted(store, &server.name, &on_disk, recheck)?;
    report.wanted = wanted_keys.len() as u64;
    let mut stats = state::load_stats(&state_dir);
    prune(&dir, &state_dir, &mut on_disk, &wanted_keys, &mut report);
    evict(&dir, &state_dir, &mut on_disk, artwork.max_bytes, &mut report);
    let interval = Duration::from_secs(60).checked_div(artwork.per_minute).unwrap_or(Duration::ZERO);
    let mut last_request: Option<Instant> = None;
    let mut budget_full = false;
    let mut by_marker = markers(&on_disk);
    for (done, want) in to_fetch.iter().enumerate() {
        if budget.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            report.error = Some("time is up for this pass; the rest follows at the next sync".into());
            break;
        }
        let present = on_disk.contains_key(&want.stem);
        let known = if present { state::load_validators(&state_dir, &want.stem) } else { None };
        if present && known.is_none() {
            continue;
        }
        if !present && !room_for_one(&on_disk, artwork.max_bytes) {
            budget_full = true;
            break;
        }
        if !present {
            match copy_same_marker(&dir, &state_dir, &on_disk, &by_marker, &want.stem) {
                Some(Ok(copy)) => {
                    report.copied = report.copied.saturating_add(1);
                    report.bytes_written = report.bytes_written.saturating_add(copy.bytes);
                    by_marker.insert(files::marker_of(&want.stem).to_string(), want.stem.clone());
                    on_disk.insert(want.stem.clone(), copy);
                    continue;
                }
                Some(Err(err)) => {
                    report.error = Some(format!("{}: {err}; check the disk", dir.display()));
                    break;
                }
                None => {}
            }
        }
        if let Some(last) = last_request {
            if stop.sleep(interval.saturating_sub(last.elapsed())) {
                report.error = Some("stopped".into());
                break;
            }
        }
        last_request = Some(Instant::now());
        if present {
            report.rechecks = report.rechecks.saturating_add(1);
        }
        match client.fetch(&want.thumb, known.as_ref()) {
            Ok(Fetched::Image { bytes, validators }) => {
                let extension = files::extension(&bytes);
                let name = format!("{}.{extension}", want.stem);
                let written = files::write_whole(&dir, &name, &bytes)
                    .and_then(|()| state::save_validators(&state_dir, &want.stem, &validators));
                if let Err(err) = written {
                    report.error = Some(format!("{}: {err}; check the disk", dir.join(&name).display()));
                    break;
                }
                if let Some(old) = on_disk.get(&want.stem).filter(|old| old.file != name) {
                    let _ = std::fs::remove_file(dir.join(&old.file));
                }
                stats.etag_seen = stats.etag_seen.saturating_add(u64::from(validators.etag.is_some()));
                stats.last_modified_seen =
                    stats.last_modified_seen.saturating_add(u64::from(validators.last_modified.is_some()));
                let served = std::time::SystemTime::now();
                by_marker.insert(files::marker_of(&want.stem).to_string(), want.stem.clone());
                on_disk.insert(want.stem.clone(), OnDisk { file: name, bytes: bytes.len() as u64, served });
                report.fetched = report.fetched.saturating_add(1);
                report.bytes_written = report.bytes_written.saturating_add(bytes.len() as u64);
            }
            Ok(Fetched::NotModified) => report.not_modified = report.not_modified.saturating_add(1),
            Ok(Fetched::Missing | Fetched::TooLarge) => {
                report.missing_on_server = report.missing_on_server.saturating_add(1)
            }
            Err(FetchError::Stopped) => {
                report.error = Some("stopped".into());
                break;
            }
            Err(err) => {
                log::warn!("artwork of {}: {err}", server.name);
                report.error = Some(err.to_string());
                break;
            }
        }
        if done % 50 == 49 {
            let progress = progress(&stats, &report, &on_disk, &wanted_keys, budget_full);
            let _ = state::save_stats(&state_dir, &progress);
        }
    }
    // The last image may have taken the directory past the budget.
    let evicted_before = report.evicted;
    evict(&dir, &state_dir, &mut on_disk, artwork.max_bytes, &mut report);
    budget_full |= report.evicted > evicted_before;
    report.requests = client.requests();
    report.pending = wanted_keys.iter().filter(|stem| !on_disk.contains_key(*stem)).count() as u64;
    let stats = progress(&stats, &report, &on_disk, &wanted_keys, budget_full);
    if let Err(err) = state::save_stats(&state_dir, &stats) {
        log::warn!("artwork of {}: the counters could not be saved: {err}", server.name);
    }
    Ok(report)
}

/// A server's artwork counters as the last pass left them, for the status;
/// `None` when the mirror is off.
pub fn stats_of(config: &crate::config::Config, server: &ServerConfig) -> Option<ArtworkStats> {
    let artwork = config.artwork.as_ref()?;
    Some(state::load_stats(&files::state_dir(&artwork.dir, &server.name)))
}

/// The counters after this pass: the totals plus `report`, the progress
/// as the directory stands.
fn progress(
    totals: &ArtworkStats,
    report: &ArtworkReport,
    on_disk: &HashMap<String, OnDisk>,
    wanted: &HashSet<String>,
    budget_full: bool,
) -> ArtworkStats {
    let files = wanted.iter().filter(|stem| on_disk.contains_key(*stem)).count() as u64;
    ArtworkStats {
        items_with_artwork: wanted.len() as u64,
        files,
        bytes: total_bytes(on_disk),
        pending: (wanted.len() as u64).saturating_sub(files),
        fetched: totals.fetched.saturating_add(report.fetched),
        bytes_written: totals.bytes_written.saturating_add(report.bytes_written),
        rechecks: totals.rechecks.saturating_add(report.rechecks),
        not_modified: totals.not_modified.saturating_add(report.not_modified),
        pruned: totals.pruned.saturating_add(report.pruned),
        evicted: totals.evicted.saturating_add(report.evicted),
        last_pass_at: Some(crate::sync::now_epoch()),
        last_error: report.error.clone(),
        budget_full,
        ..totals.clone()
    }
}

/// How a server's directory stands against the store (`mediasync check
/// --artwork`, before it repairs).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Comparison {
    pub wanted: u64,
    pub on_disk: u64,
    /// Wanted, no file.
    pub missing: u64,
    /// A file the store no longer asks for (item gone, marker changed).
    pub stale: u64,
    /// Temporary files a cut-short write left.
    pub leftovers: u64,
}

impl Comparison {
    pub fn exact(&self) -> bool {
        self.missing == 0 && self.stale == 0 && self.leftovers == 0
    }
}

/// Compares a server's directory with the store, changing nothing.
pub fn compare(store: &Store, server: &ServerConfig, artwork: &ArtworkConfig) -> Result<Comparison, ArtworkError> {
    let dir = files::server_dir(&artwork.dir, &server.name);
    let (on_disk, leftovers) =
        files::scan(&dir, files::Leftovers::Count).map_err(|err| ArtworkError::Disk(dir, err))?;
    let (wanted, _) = wanted(store, &server.name, &on_disk, Recheck::Missing)?;
    let present = wanted.iter().filter(|stem| on_disk.contains_key(*stem)).count() as u64;
    Ok(Comparison {
        wanted: wanted.len() as u64,
        on_disk: on_disk.len() as u64,
        missing: (wanted.len() as u64).saturating_sub(present),
        stale: (on_disk.len() as u64).saturating_sub(present),
        leftovers,
    })
}

/// `mediasync check --artwork` of one server: the directory against the
/// store, the repairing pass, and how it stands after.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArtworkCheck {
    pub before: Comparison,
    pub report: ArtworkReport,
    pub after: Comparison,
}

/// Compares, repairs with a pass and compares again: the check the command
/// runs itself or asks the daemon for.
pub fn check(
    store: &Store,
    server: &ServerConfig,
    artwork: &ArtworkConfig,
    pass: Pass<'_>,
) -> Result<ArtworkCheck, ArtworkError> {
    let before = compare(store, server, artwork)?;
    let report = mirror_server(store, server, artwork, pass)?;
    let after = compare(store, server, artwork)?;
    Ok(ArtworkCheck { before, report, after })
}

/// Why a comparison could not be made.
#[derive(Debug)]
pub enum ArtworkError {
    Store(StoreError),
    Disk(std::path::PathBuf, std::io::Error),
}

impl From<StoreError> for ArtworkError {
    fn from(err: StoreError) -> ArtworkError {
        ArtworkError::Store(err)
    }
}

impl std::fmt::Display for ArtworkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArtworkError::Store(err) => write!(f, "the store could not be read: {err}"),
            ArtworkError::Disk(dir, err) => {
                write!(f, "{}: {err}; check that the directory exists and is readable", dir.display())
            }
        }
    }
}

impl std::error::Error for ArtworkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ArtworkError::Store(err) => Some(err),
            ArtworkError::Disk(_, err) => Some(err),
        }
    }
}

fn scan_both(dir: &Path, state_dir: &Path) -> std::io::Result<(HashMap<String, OnDisk>, u64)> {
    let remove = files::Leftovers::Remove;
    let (images, leftovers) = files::scan(dir, remove)?;
    let (_, state_leftovers) = files::scan(state_dir, remove)?;
    let (_, validator_leftovers) = files::scan(&state_dir.join("validators"), remove)?;
    Ok((images, leftovers.saturating_add(state_leftovers).saturating_add(validator_leftovers)))
}

/// The stems the store asks for, and the images to ask the server for:
/// the missing ones, and with `Recheck::WithValidators` the present ones
/// too. Histories are left out (a play's image is its item's).
fn wanted(
    store: &Store,
    server: &str,
    on_disk: &HashMap<String, OnDisk>,
    recheck: Recheck,
) -> Result<(HashSet<String>, Vec<Wanted>), StoreError> {
    let mut keys = HashSet::new();
    let mut to_fetch = Vec::new();
    for (library, state) in store.libraries()? {
        if state.server != server || state.library_id == HISTORY {
            continue;
        }
        store.for_each_item(library, |stored| {
            let item = stored.item;
            if let (Some(thumb), false) = (item.thumb, item.kind == Kind::Play) {
                let stem = files::stem(&state.library_id, &item.id, &thumb);
                if recheck == Recheck::WithValidators || !on_disk.contains_key(&stem) {
                    to_fetch.push(Wanted { stem: stem.clone(), thumb });
                }
                keys.insert(stem);
            }
            true
        })?;
    }
    Ok((keys, to_fetch))
}

/// A stem on disk for each marker hash.
fn markers(on_disk: &HashMap<String, OnDisk>) -> HashMap<String, String> {
    on_disk.keys().map(|stem| (files::marker_of(stem).to_string(), stem.clone())).collect()
}

/// Another item's image with the same marker (the same picture: Spotify's
/// tracks of one album), written whole under `stem`'s name with its
/// validators; `None` when there is none, or it can no longer be read (the
/// server is asked then).
fn copy_same_marker(
    dir: &Path,
    state_dir: &Path,
    on_disk: &HashMap<String, OnDisk>,
    by_marker: &HashMap<String, String>,
    stem: &str,
) -> Option<std::io::Result<OnDisk>> {
    let source_stem = by_marker.get(files::marker_of(stem))?;
    let source = on_disk.get(source_stem)?;
    let bytes = std::fs::read(dir.join(&source.file)).ok().filter(|bytes| files::looks_whole(bytes))?;
    let name = format!("{stem}.{}", files::extension(&bytes));
    let written = files::write_whole(dir, &name, &bytes).and_then(|()| {
        let validators = state::load_validators(state_dir, source_stem).unwrap_or_default();
        state::save_validators(state_dir, stem, &validators)
    });
    let served = std::time::SystemTime::now();
    Some(written.map(|()| OnDisk { file: name, bytes: bytes.len() as u64, served }))
}

/// Removes the images the store no longer asks for: the item went, or its
/// marker changed (the new marker is a new name).
fn prune(
    dir: &Path,
    state_dir: &Path,
    on_disk: &mut HashMap<String, OnDisk>,
    wanted: &HashSet<String>,
    report: &mut ArtworkReport,
) {
    let stale: Vec<String> = on_disk.keys().filter(|stem| !wanted.contains(*stem)).cloned().collect();
    for stem in stale {
        if remove(dir, state_dir, on_disk, &stem) {
            report.pruned = report.pruned.saturating_add(1);
        }
    }
}

/// Over the budget, the least recently served images go first.
fn evict(
    dir: &Path,
    state_dir: &Path,
    on_disk: &mut HashMap<String, OnDisk>,
    max_bytes: u64,
    report: &mut ArtworkReport,
) {
    let mut total = total_bytes(on_disk);
    if total <= max_bytes {
        return;
    }
    let mut order: Vec<(std::time::SystemTime, String, u64)> =
        on_disk.iter().map(|(stem, image)| (image.served, stem.clone(), image.bytes)).collect();
    order.sort();
    for (_, stem, bytes) in order {
        if total <= max_bytes {
            break;
        }
        if remove(dir, state_dir, on_disk, &stem) {
            total = total.saturating_sub(bytes);
            report.evicted = report.evicted.saturating_add(1);
        }
    }
}

fn remove(dir: &Path, state_dir: &Path, on_disk: &mut HashMap<String, OnDisk>, stem: &str) -> bool {
    let Some(image) = on_disk.get(stem) else { return false };
    match std::fs::remove_file(dir.join(&image.file)) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            log::warn!("{}: could not be removed: {err}", dir.join(&image.file).display());
            false
        }
        _ => {
            let _ = state::forget_validators(state_dir, stem);
            on_disk.remove(stem);
            true
        }
    }
}

/// Whether an image of the average size on disk still fits the budget: a
/// full budget then costs no request (fetching one to evict another would
/// repeat at every pass).
fn room_for_one(on_disk: &HashMap<String, OnDisk>, max_bytes: u64) -> bool {
    let total = total_bytes(on_disk);
    let average = total.checked_div(on_disk.len() as u64).unwrap_or(0);
    total.saturating_add(average) <= max_bytes && total < max_bytes
}

fn total_bytes(on_disk: &HashMap<String, OnDisk>) -> u64 {
    on_disk.values().map(|image| image.bytes).sum()
}
