//! What a sync costs, per source, through the release binary: for a first
//! sync, an unchanged resync (twice), one edited item, and `status` alone (opening and closing
//! the store, which every one-shot command pays), then through a running
//! daemon (the appliance's path: the store stays open) an unchanged resync
//! twice and one edit, it prints the requests, the bytes dirtied, the
//! fsync-family calls, the peak memory and the time;
//! after the first sync, the store's bytes per item beside the export's,
//! and where the store's bytes go. Every sync is checked to leave an exact
//! mirror, and held to its write budget (`budget`). Needs `strace`.
//!
//! Run: `cargo bench --bench scale`. Sizes: MEDIASYNC_BENCH_SIZES (Plex,
//! default "5000,20000,50000"; empty: no Plex server),
//! MEDIASYNC_BENCH_JELLYFIN_ITEMS (per server, default 3000; 0: no
//! Jellyfin or Emby server),
//! MEDIASYNC_BENCH_SPOTIFY_TRACKS (default 2000; 0: no Spotify account);
//! MEDIASYNC_BENCH_CACHE_MIB sets `cache_mib`. Compare figures of one run:
//! machines are noisy.

mod budget;
mod daemon;
mod run;
mod servers;

use budget::{Overruns, UNCHANGED_RUNS};
use daemon::{Daemon, daemon_config};
use mediasync::fake::Expected;
use mediasync::fake::jellyfin::Behaviour;
use mediasync::model::Kind;
use mediasync::store::{Space, Store};
use run::{Binary, Cost};
use servers::Served;
use std::path::{Path, PathBuf};

/// One request per kind of the three libraries (1 + 3 + 3) plus the list,
/// and the watch history's poll (one request when no play is new).
const PLEX_UNCHANGED_BUDGET: u64 = 9;
/// /Users and /Views, then per library (three) one changed listing across
/// its kinds and one count through the filter: with the filter's check.
const JELLYFIN_UNCHANGED_BUDGET: u64 = 2 + 2 * 3;
/// One edited item may cost two requests more than an unchanged resync.
const JELLYFIN_ONE_CHANGE_BUDGET: u64 = JELLYFIN_UNCHANGED_BUDGET + 2;
const KIB: f64 = 1024.0;

struct Subject {
    served: Served,
    _dir: tempfile::TempDir,
    config: PathBuf,
    /// The same, for `mediasync run`: a status listener, no scheduled run.
    daemon_config: PathBuf,
    daemon_address: std::net::SocketAddr,
    store: PathBuf,
    cache_bytes: usize,
}

/// What the first sync left: the store file, the export, the breakdown.
struct Stored {
    label: String,
    items: u64,
    store_bytes: u64,
    export_bytes: u64,
    space: Space,
}

fn main() -> Result<(), String> {
    if std::env::args().any(|arg| arg == "--list") {
        return Ok(());
    }
    let binary = Binary::new()?;
    let cache_mib: Option<usize> = setting("MEDIASYNC_BENCH_CACHE_MIB")?;
    let plex_sizes = sizes("MEDIASYNC_BENCH_SIZES", "5000,20000,50000")?;
    let jellyfin_items = setting("MEDIASYNC_BENCH_JELLYFIN_ITEMS")?.unwrap_or(3000);
    let spotify_tracks = setting("MEDIASYNC_BENCH_SPOTIFY_TRACKS")?.unwrap_or(2000);

    println!(
        "{:<15} {:>6}  {:<15} {:>8} {:>12} {:>6} {:>12} {:>8}",
        "server", "items", "run", "requests", "dirtied_KiB", "fsyncs", "peak_rss_MiB", "seconds"
    );
    let mut stored = Vec::new();
    let mut peaks = Vec::new();
    let mut overruns = Overruns::default();
    for &items in &plex_sizes {
        let subject = Subject::new(Served::plex(items), cache_mib)?;
        let (first, costs) = subject.run_all(&binary, &mut overruns)?;
        let unchanged = costs.get(1).map_or(0, |cost| cost.requests);
        if unchanged > PLEX_UNCHANGED_BUDGET {
            return Err(format!("an unchanged Plex resync made {unchanged} requests (budget {PLEX_UNCHANGED_BUDGET})"));
        }
        let peak = costs.iter().take(2).filter_map(|cost| cost.peak_rss_kib).max().unwrap_or(0);
        peaks.push((items, peak));
        stored.push(first);
    }
    let behaviours = if jellyfin_items > 0 { Behaviour::ALL.as_slice() } else { &[] };
    for &behaviour in behaviours {
        let subject = Subject::new(Served::jellyfin(behaviour, jellyfin_items), cache_mib)?;
        let (first, costs) = subject.run_all(&binary, &mut overruns)?;
        check_jellyfin_budget(behaviour, &costs)?;
        stored.push(first);
    }
    if spotify_tracks > 0 {
        let subject = Subject::new(Served::spotify(spotify_tracks)?, cache_mib)?;
        stored.push(subject.run_all(&binary, &mut overruns)?.0);
    }

    print_store_sizes(&stored);
    print_where_the_bytes_go(&stored);
    if let (Some(small), Some(large)) = (peaks.first(), peaks.last()) {
        if large.0 > small.0 {
            println!(
                "\npeak memory ratio for {}x the items: {:.2}x ({} KiB -> {} KiB)",
                large.0.checked_div(small.0).unwrap_or(0),
                ratio(large.1, small.1),
                small.1,
                large.1
            );
        }
    }
    overruns.verdict()
}

impl Subject {
    fn new(served: Served, cache_mib: Option<usize>) -> Result<Subject, String> {
        let dir = tempfile::tempdir().map_err(|err| format!("no temporary directory: {err}"))?;
        let store = dir.path().join("catalog.redb");
        let config = dir.path().join("config.toml");
        let cache = cache_mib.map(|mib| format!("cache_mib = {mib}\n")).unwrap_or_default();
        let text = format!("[store]\npath = \"{}\"\n{cache}\n{}", store.display(), served.server_toml());
        let (daemon_text, daemon_address) = daemon_config(&text)?;
        std::fs::write(&config, text).map_err(|err| format!("cannot write {}: {err}", config.display()))?;
        let daemon_config = dir.path().join("daemon.toml");
        std::fs::write(&daemon_config, daemon_text)
            .map_err(|err| format!("cannot write {}: {err}", daemon_config.display()))?;
        let cache_bytes = cache_mib.unwrap_or(2).saturating_mul(1 << 20);
        Ok(Subject { served, _dir: dir, config, daemon_config, daemon_address, store, cache_bytes })
    }

    /// Every run in turn, printing a row each; the first sync's store.
    fn run_all(&self, binary: &Binary, overruns: &mut Overruns) -> Result<(Stored, Vec<Cost>), String> {
        self.served.prepare(&self.store, self.cache_bytes)?;
        let label = self.served.label();
        let items = u64::try_from(self.served.expected().len()).unwrap_or(u64::MAX);
        let mut costs = Vec::new();
        let mut first = None;
        for run in ["first sync", "unchanged", "unchanged again", "one change", "status alone"] {
            if run == "one change" {
                self.served.change_one("Renamed for the benchmark")?;
            }
            let command = if run == "status alone" { "status" } else { "sync" };
            let (cost, _) = binary.measure(&self.config, &[command], || self.served.requests())?;
            print_cost(&label, items, run, &cost);
            if UNCHANGED_RUNS.contains(&run) {
                overruns.check_unchanged(&self.served, run, &cost);
            }
            if command == "sync" {
                let export_bytes = self.check_exact(binary)?;
                if first.is_none() {
                    let stored = self.stored(&label, items, export_bytes)?;
                    overruns.check_first_sync(&label, &cost, stored.store_bytes);
                    first = Some(stored);
                }
            }
            costs.push(cost);
        }
        costs.extend(self.run_daemon(binary, &label, items, overruns)?);
        let first = first.ok_or("no first sync")?;
        Ok((first, costs))
    }

    /// The daemon path: `mediasync run` keeps the store open and `mediasync
    /// sync` asks it for an unchanged resync (twice) and one change.
    fn run_daemon(
        &self,
        binary: &Binary,
        label: &str,
        items: u64,
        overruns: &mut Overruns,
    ) -> Result<Vec<Cost>, String> {
        let mut daemon = Daemon::start(binary.path(), &self.daemon_config, self.daemon_address, binary.scratch())?;
        let mut costs = Vec::new();
        for run in ["daemon unchanged", "daemon again", "daemon change"] {
            if run == "daemon change" {
                self.served.change_one("Renamed again for the benchmark")?;
            }
            let cost = daemon.sync(|| self.served.requests())?;
            print_cost(label, items, run, &cost);
            if UNCHANGED_RUNS.contains(&run) {
                overruns.check_unchanged(&self.served, run, &cost);
            }
            costs.push(cost);
            self.check_exact_with(binary, &self.daemon_config)?;
        }
        Ok(costs)
    }

    /// Fails unless the store's export equals the server's catalog; the
    /// export's size.
    fn check_exact(&self, binary: &Binary) -> Result<u64, String> {
        self.check_exact_with(binary, &self.config)
    }

    fn check_exact_with(&self, binary: &Binary, config: &Path) -> Result<u64, String> {
        let (_, export) = binary.measure(config, &["export"], || 0)?;
        let mut rows = export.lines().map(exported_row).collect::<Result<Vec<_>, _>>()?;
        rows.sort();
        let expected = self.served.expected();
        if rows != expected {
            return Err(format!(
                "{}: not an exact mirror: {} stored, {} on the server",
                self.served.label(),
                rows.len(),
                expected.len()
            ));
        }
        Ok(u64::try_from(export.len()).unwrap_or(u64::MAX))
    }

    /// The store's size and breakdown, measured on a copy (opening the
    /// store writes to it).
    fn stored(&self, label: &str, items: u64, export_bytes: u64) -> Result<Stored, String> {
        let store_bytes = file_size(&self.store)?;
        let copy = self.store.with_extension("copy");
        std::fs::copy(&self.store, &copy).map_err(|err| format!("cannot copy the store: {err}"))?;
        let space = Store::open(&copy, self.cache_bytes).and_then(|store| store.space()).map_err(|err| err.to_string());
        std::fs::remove_file(&copy).map_err(|err| format!("cannot remove the copy: {err}"))?;
        Ok(Stored { label: label.to_string(), items, store_bytes, export_bytes, space: space? })
    }
}

fn exported_row(line: &str) -> Result<Expected, String> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|err| format!("bad export line: {err}"))?;
    let text = |field: &str| value.get(field).and_then(|field| field.as_str()).map(str::to_string);
    let missing = || format!("export line without a field: {line}");
    Ok(Expected {
        library: text("library").ok_or_else(missing)?,
        id: text("id").ok_or_else(missing)?,
        kind: text("kind").as_deref().and_then(Kind::from_name).ok_or_else(missing)?,
        title: text("title").ok_or_else(missing)?,
        parent_id: text("parent_id"),
        updated_at: value.get("updated_at").and_then(serde_json::Value::as_i64).ok_or_else(missing)?,
    })
}

fn print_cost(label: &str, items: u64, run: &str, cost: &Cost) {
    let peak = cost.peak_rss_kib.map_or_else(|| "-".to_string(), |kib| format!("{:.1}", kib as f64 / KIB));
    println!(
        "{label:<15} {items:>6}  {run:<15} {:>8} {:>12.1} {:>6} {peak:>12} {:>8.2}",
        cost.requests,
        cost.dirtied_bytes as f64 / KIB,
        cost.fsyncs,
        cost.seconds
    );
}

fn print_store_sizes(stored: &[Stored]) {
    println!("\nstore after the first sync (bytes per item; ratio = store / export)");
    println!("{:<15} {:>6} {:>12} {:>10} {:>10} {:>6}", "server", "items", "store_bytes", "store", "export", "ratio");
    for entry in stored {
        println!(
            "{:<15} {:>6} {:>12} {:>10.0} {:>10.0} {:>6.2}",
            entry.label,
            entry.items,
            entry.store_bytes,
            per_item(entry.store_bytes, entry.items),
            per_item(entry.export_bytes, entry.items),
            ratio(entry.store_bytes, entry.export_bytes)
        );
    }
}

/// Bytes per item: item records (keys, fixed parts, bodies), the pages
/// their B-tree fills, the change feed's pages, every other table's pages,
/// redb's own pages, and the file's unallocated rest.
fn print_where_the_bytes_go(stored: &[Stored]) {
    println!("\nwhere the store's bytes go after the first sync (bytes per item)");
    println!(
        "{:<15} {:>6} {:>6} {:>6} {:>6} {:>6} {:>10} {:>8} {:>7} {:>6} {:>6} {:>6}",
        "server",
        "items",
        "file",
        "keys",
        "fixed",
        "bodies",
        "item_pages",
        "(slack)",
        "changes",
        "other",
        "redb",
        "free"
    );
    for entry in stored {
        let space = &entry.space;
        let table = |name: &str| space.tables.iter().find(|table| table.name == name);
        let items = table("items");
        let item_pages = items.map_or(0, |table| table.page_bytes);
        let fixed = items
            .map_or(0, |table| table.stored_bytes)
            .saturating_sub(space.item_key_bytes.saturating_add(space.item_body_bytes));
        let changes = table("changes").map_or(0, |table| table.page_bytes);
        let all_tables: u64 = space.tables.iter().map(|table| table.page_bytes).sum();
        let other = all_tables.saturating_sub(item_pages.saturating_add(changes));
        let per = |bytes: u64| per_item(bytes, entry.items);
        println!(
            "{:<15} {:>6} {:>6.0} {:>6.0} {:>6.0} {:>6.0} {:>10.0} {:>8.0} {:>7.0} {:>6.0} {:>6.0} {:>6.0}",
            entry.label,
            entry.items,
            per(entry.store_bytes),
            per(space.item_key_bytes),
            per(fixed),
            per(space.item_body_bytes),
            per(item_pages),
            per(items.map_or(0, |table| table.slack_bytes)),
            per(changes),
            per(other),
            per(space.allocated_bytes.saturating_sub(all_tables)),
            per(entry.store_bytes.saturating_sub(space.allocated_bytes)),
        );
    }
}

/// Fails when a Jellyfin/Emby resync asked more than its budget: the
/// unchanged ones (by the CLI and through the daemon) and the one edit.
fn check_jellyfin_budget(behaviour: Behaviour, costs: &[Cost]) -> Result<(), String> {
    // The order of `run_all`: first sync, unchanged, unchanged again, one
    // change, status alone, daemon unchanged, daemon again, daemon change.
    let runs = [
        "first sync",
        "unchanged",
        "unchanged again",
        "one change",
        "status alone",
        "daemon unchanged",
        "daemon again",
        "daemon change",
    ];
    for (run, cost) in runs.iter().zip(costs) {
        let budget = match *run {
            "unchanged" | "unchanged again" | "daemon unchanged" | "daemon again" => JELLYFIN_UNCHANGED_BUDGET,
            "one change" | "daemon change" => JELLYFIN_ONE_CHANGE_BUDGET,
            _ => continue,
        };
        if cost.requests > budget {
            return Err(format!(
                "{}: the {run} run made {} requests for 3 libraries (budget {budget})",
                behaviour.name(),
                cost.requests
            ));
        }
    }
    Ok(())
}

fn per_item(bytes: u64, items: u64) -> f64 {
    bytes as f64 / items.max(1) as f64
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    numerator as f64 / denominator.max(1) as f64
}

fn file_size(path: &Path) -> Result<u64, String> {
    std::fs::metadata(path).map(|meta| meta.len()).map_err(|err| format!("cannot stat {}: {err}", path.display()))
}

fn setting(name: &str) -> Result<Option<usize>, String> {
    match std::env::var(name) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| format!("{name}={text}: not a number")),
        Err(_) => Ok(None),
    }
}

/// A comma-separated list of sizes; empty means none (no Plex server).
fn sizes(name: &str, default: &str) -> Result<Vec<usize>, String> {
    let text = std::env::var(name).unwrap_or_else(|_| default.to_string());
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|size| size.trim().parse().map_err(|_| format!("{name}={text}: not a list of numbers")))
        .collect()
}
