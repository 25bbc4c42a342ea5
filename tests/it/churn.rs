//! Property tests: syncs while the server changes between every two pages.
//! Groups of ten seeds share a small library on a simulated server (Plex;
//! Jellyfin and Emby, every version behaviour in turn; Spotify with
//! playlist entries) and its mirror. Each seed runs one or two syncs in the
//! servers' change mode (seeded random additions, edits that reorder
//! listings, deletions, moves between libraries, playlist entry edits
//! before every listing or lookup answer), full or incremental (a group's
//! first seed builds the mirror, quiet or under changes). After each run
//! under changes: no live item dropped (the mirror still holds every item
//! it held that the server held throughout the run), and every deletion in
//! the change feed is one the server made. After one quiet sync the mirror
//! is exact, and the next seed starts from it. One seed in 40 runs the
//! binary on a library of its own and SIGKILLs it at a random request, then
//! runs it again (still under changes) to the end.
//!
//! `MEDIASYNC_PROPTEST_CASES` sets the seeds per source (default 200; CI's
//! qemu runs set fewer), `MEDIASYNC_PROPTEST_SEED` runs one seed alone.

use crate::support::{TOKEN, assert_deletions_made_by_the_server, assert_mirror, stored_rows};
use mediasync::config::{Backend, JellyfinConfig, PlexConfig, ServerConfig, SpotifyConfig, SyncConfig};
use mediasync::fake::Expected;
use mediasync::fake::churn::Deletions;
use mediasync::fake::jellyfin::{Behaviour, FakeJellyfin};
use mediasync::fake::plex::{FakePlex, SectionKind};
use mediasync::fake::spotify::{CLIENT_ID, CLIENT_SECRET, FakeSpotify};
use mediasync::model::Kind;
use mediasync::source::jellyfin::Flavor;
use mediasync::store::Store;
use mediasync::sync::{self, Options, ServerReport};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

const KEY: &str = "jf-api-key-5ecret";

/// Seeds per shared library (`property`).
const GROUP: u64 = 10;
/// A run under changes makes up to 1 to this many changes (drawn per run)
/// before each listing or lookup answer: enough that 200 seeds of every
/// source catch a sweep without lookups (several entries gone between two
/// pages already read).
const MOST_CHANGES: u32 = 5;

/// The seeds to run: the first `MEDIASYNC_PROPTEST_CASES` (200), or with
/// `MEDIASYNC_PROPTEST_SEED` that seed, after the seeds of its group before
/// it (they build the mirror it starts from).
fn seeds() -> Vec<u64> {
    let var = |name: &str| std::env::var(name).ok().and_then(|value| value.parse::<u64>().ok());
    match var("MEDIASYNC_PROPTEST_SEED") {
        Some(seed) => (seed - seed % GROUP..=seed).collect(),
        None => (0..var("MEDIASYNC_PROPTEST_CASES").unwrap_or(200)).collect(),
    }
}

/// One simulated server, as the property needs it.
trait Server {
    fn label(&self) -> String;
    fn expected(&self) -> Vec<Expected>;
    fn deleted(&self) -> Deletions;
    /// Random changes before every listing answer (`None`: quiet).
    fn churn(&self, seed_and_most: Option<(u64, u32)>);
    /// Slows every answer (so a run can be killed in the middle).
    fn delay(&self, delay: Duration);
    fn requests(&self) -> u64;
    fn server_config(&self, page_size: u32) -> ServerConfig;
    /// The `[[server]]` entry of a config file for the binary.
    fn config_entry(&self, page_size: u32) -> String;
    /// Prepares a store before its first sync (Spotify's account).
    fn connect(&self, _store: &Store) {}
}

fn live(rows: &[Expected]) -> BTreeSet<(String, String)> {
    rows.iter().map(|row| (row.library.clone(), row.id.clone())).collect()
}

fn sync_once(server: &dyn Server, store: &Store, page_size: u32, full: bool) -> ServerReport {
    let sync_config = SyncConfig { retries: 3, retry_delay: Duration::from_millis(1), ..SyncConfig::default() };
    let config = server.server_config(page_size);
    let source = mediasync::source::build(&config, &sync_config, store, &Default::default());
    let options = Options {
        full,
        force: false,
        full_every: Duration::from_secs(7 * 86_400),
        // The guard has its own tests; here a random run may delete a show
        // and its episodes, a large share of a small library.
        max_delete_share: 1.0,
        history: 5,
        page_size,
        unchanged_runs: mediasync::sync::UnchangedRuns::Recorded,
    };
    sync::sync_server(&config.name, source.as_ref(), store, &options, &AtomicBool::new(false))
}

/// Where a run began: what the server held and had deleted so far, what the
/// mirror held, and the change feed's head.
struct Before {
    live: BTreeSet<(String, String)>,
    deleted: Deletions,
    stored: BTreeSet<(String, String)>,
    since: u64,
}

impl Before {
    fn take(server: &dyn Server, store: &Store) -> Before {
        Before {
            live: live(&server.expected()),
            deleted: server.deleted(),
            stored: live(&stored_rows(store)),
            since: store.head().unwrap(),
        }
    }
}

/// The property for one run under changes: no live item dropped (what the
/// mirror held and the server held throughout the run, before it, after it
/// and not deleted or moved away in between, is still in the mirror), and
/// the feed deletes only what the server deleted. (A walk under changes may
/// miss an item it never stored, as a newest-first listing moves an item
/// saved again above the walk; the next sync fetches it, which the quiet
/// sync's exactness checks.)
fn check_run(label: &str, server: &dyn Server, store: &Store, before: &Before) {
    let after = live(&server.expected());
    let deleted = server.deleted();
    let stored = live(&stored_rows(store));
    let held_throughout =
        |row: &&(String, String)| after.contains(*row) && deleted.count(row) == before.deleted.count(row);
    let dropped: Vec<_> = before
        .live
        .intersection(&before.stored)
        .filter(held_throughout)
        .filter(|row| !stored.contains(*row))
        .take(5)
        .collect();
    assert!(dropped.is_empty(), "{label}live items dropped from the mirror: {dropped:?}");
    assert_deletions_made_by_the_server(label, store, before.since, &deleted);
}

/// A library on a simulated server and its mirror in memory, shared by a
/// group of seeds: each seed starts from the exact mirror the one before
/// left.
struct Mirror {
    server: Box<dyn Server>,
    store: Store,
    page_size: u32,
}

impl Mirror {
    fn new(server: Box<dyn Server>, rng: &mut fastrand::Rng) -> Mirror {
        let store = Store::with_backend(redb::backends::InMemoryBackend::new(), 1 << 20).unwrap();
        server.connect(&store);
        Mirror { server, store, page_size: rng.u32(5..16) }
    }

    /// One seed: a run under changes, a second one now and then, full or
    /// incremental; then one quiet sync. The group's first seed builds the
    /// mirror first (the first sync, quiet or under changes).
    fn seed(&self, seed: u64, rng: &mut fastrand::Rng) {
        let (server, store, page_size) = (self.server.as_ref(), &self.store, self.page_size);
        let first = store.head().unwrap() == 0;
        let runs = u32::from(first) + if rng.u32(0..4) == 0 { 2 } else { 1 };
        for run in 0..runs {
            let quiet = first && run == 0 && rng.bool();
            // The first sync is a full pass anyway.
            let full = !(first && run == 0) && rng.u32(0..4) == 0;
            let label = format!("{} seed {seed} run {run} (page {page_size}, full {full}): ", server.label());
            let before = Before::take(server, store);
            server.churn((!quiet).then(|| (rng.u64(..), rng.u32(1..=MOST_CHANGES))));
            let report = sync_once(server, store, page_size, full);
            server.churn(None);
            assert!(report.ok(), "{label}the run failed: {report:#?}");
            check_run(&label, server, store, &before);
        }
        quiet_sync_is_exact(server, store, page_size, seed);
    }
}

fn quiet_sync_is_exact(server: &dyn Server, store: &Store, page_size: u32, seed: u64) {
    let label = format!("{} seed {seed}, one quiet sync later: ", server.label());
    let report = sync_once(server, store, page_size, false);
    assert!(report.ok(), "{label}{report:#?}");
    assert_mirror(&label, &stored_rows(store), &server.expected());
    assert_deletions_made_by_the_server(&label, store, 0, &server.deleted());
}

/// One seed through the binary: a first sync (in-process, on the store
/// file), then a run of the binary under changes, killed (SIGKILL) at a
/// random request and run again to its end, still under changes; the
/// property; then one quiet sync in-process.
fn run_killed_case(server: &dyn Server, seed: u64, rng: &mut fastrand::Rng) {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("catalog.redb");
    let page_size = rng.u32(5..16);
    let config = dir.path().join("config.toml");
    let text = format!(
        "[store]\npath = \"{}\"\n[sync]\nretries = 3\nretry_delay = \"1ms\"\nmax_delete_share = 1.0\n{}",
        store_path.display(),
        server.config_entry(page_size)
    );
    std::fs::write(&config, text).unwrap();
    let label = format!("{} seed {seed} (killed, page {page_size}): ", server.label());
    let before = {
        let store = Store::open(&store_path, 1 << 20).unwrap();
        server.connect(&store);
        assert!(sync_once(server, &store, page_size, false).ok(), "{label}the first sync failed");
        Before::take(server, &store)
    };
    server.churn(Some((rng.u64(..), rng.u32(1..=MOST_CHANGES))));
    server.delay(Duration::from_millis(3));
    let kill_after = server.requests() + rng.u64(2..30);
    let mut killed = crate::cli::binary();
    killed.arg("--config").arg(&config).arg("sync");
    if rng.bool() {
        killed.arg("--full");
    }
    let mut child = killed.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.requests() < kill_after && Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap_or(()); // SIGKILL (a no-op if it already finished)
    child.wait().unwrap();
    server.delay(Duration::ZERO);
    let resumed = binary_sync(&config);
    server.churn(None);
    assert!(resumed.status.success(), "{label}the resumed run failed: {}", String::from_utf8_lossy(&resumed.stdout));
    let store = Store::open(&store_path, 1 << 20).unwrap();
    check_run(&label, server, &store, &before);
    quiet_sync_is_exact(server, &store, page_size, seed);
}

fn binary_sync(config: &Path) -> std::process::Output {
    crate::cli::binary().arg("--config").arg(config).arg("sync").output().unwrap()
}

/// Every seed of one source, in groups of `GROUP` sharing a library (a
/// seed alone reruns its group up to it); one seed in 40 runs the binary on
/// a library of its own (seed 4 among them, so a short run has one too).
fn property(build: impl Fn(u64, &mut fastrand::Rng) -> Box<dyn Server>) {
    let started = Instant::now();
    let seeds = seeds();
    let mut mirror: Option<(u64, Mirror)> = None;
    for &seed in &seeds {
        let group = seed / GROUP;
        let mut rng = fastrand::Rng::with_seed(seed);
        if seed % 40 == 4 {
            run_killed_case(build(seed, &mut rng).as_ref(), seed, &mut rng);
            continue;
        }
        if mirror.as_ref().is_none_or(|(current, _)| *current != group) {
            let mut group_rng = fastrand::Rng::with_seed(group.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            mirror = Some((group, Mirror::new(build(group, &mut group_rng), &mut group_rng)));
        }
        if let Some((_, mirror)) = &mirror {
            mirror.seed(seed, &mut rng);
        }
    }
    println!("{} seeds in {:.1}s", seeds.len(), started.elapsed().as_secs_f64());
}

struct Plex(FakePlex);

impl Server for Plex {
    fn label(&self) -> String {
        "plex".into()
    }
    fn expected(&self) -> Vec<Expected> {
        self.0.expected()
    }
    fn deleted(&self) -> Deletions {
        self.0.deleted()
    }
    fn churn(&self, seed_and_most: Option<(u64, u32)>) {
        self.0.churn(seed_and_most);
    }
    fn delay(&self, delay: Duration) {
        self.0.state().delay = delay;
    }
    fn requests(&self) -> u64 {
        self.0.requests()
    }
    fn server_config(&self, page_size: u32) -> ServerConfig {
        let plex = PlexConfig { url: self.0.url().to_string(), token: TOKEN.to_string(), notifications: false };
        ServerConfig { name: "home".into(), libraries: None, page_size, backend: Backend::Plex(plex) }
    }
    fn config_entry(&self, page_size: u32) -> String {
        format!(
            "[[server]]\nname = \"home\"\nkind = \"plex\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\npage_size = {page_size}\n",
            self.0.url()
        )
    }
}

#[test]
fn plex_under_changes_drops_nothing_and_one_quiet_sync_is_exact() {
    property(|_, rng| {
        let fake = FakePlex::start(TOKEN);
        fake.add_movies("Movies", rng.usize(5..40));
        let films = fake.add_section("Films", SectionKind::Movie);
        for number in 0..rng.usize(0..8) {
            fake.add_item(&films, Kind::Movie, &format!("Film {number}"), None);
        }
        fake.add_shows("TV", rng.usize(1..4), rng.usize(1..3), rng.usize(1..5));
        Box::new(Plex(fake))
    });
}

struct Jellyfin(FakeJellyfin);

impl Server for Jellyfin {
    fn label(&self) -> String {
        self.0.state().behaviour.name().into()
    }
    fn expected(&self) -> Vec<Expected> {
        self.0.expected()
    }
    fn deleted(&self) -> Deletions {
        self.0.deleted()
    }
    fn churn(&self, seed_and_most: Option<(u64, u32)>) {
        self.0.churn(seed_and_most);
    }
    fn delay(&self, delay: Duration) {
        self.0.state().delay = delay;
    }
    fn requests(&self) -> u64 {
        self.0.requests()
    }
    fn server_config(&self, page_size: u32) -> ServerConfig {
        let emby = self.0.state().behaviour.is_emby();
        let jellyfin = JellyfinConfig {
            flavor: if emby { Flavor::Emby } else { Flavor::Jellyfin },
            url: self.0.url().to_string(),
            token: KEY.to_string(),
            user: None,
            notifications: false,
            login: None,
        };
        ServerConfig { name: "den".into(), libraries: None, page_size, backend: Backend::Jellyfin(jellyfin) }
    }
    fn config_entry(&self, page_size: u32) -> String {
        let kind = if self.0.state().behaviour.is_emby() { "emby" } else { "jellyfin" };
        format!(
            "[[server]]\nname = \"den\"\nkind = \"{kind}\"\nurl = \"{}\"\ntoken = \"{KEY}\"\npage_size = {page_size}\n",
            self.0.url()
        )
    }
}

#[test]
fn jellyfin_and_emby_under_changes_drop_nothing_and_one_quiet_sync_is_exact() {
    property(|group, rng| {
        let behaviour = Behaviour::ALL[usize::try_from(group).unwrap_or(0) % Behaviour::ALL.len()];
        let fake = FakeJellyfin::start(behaviour, KEY);
        fake.add_movies("Movies", rng.usize(5..40));
        fake.add_movies("Films", rng.usize(0..8));
        fake.add_shows("Shows", rng.usize(1..4), rng.usize(1..3), rng.usize(1..5));
        Box::new(Jellyfin(fake))
    });
}

struct Spotify(FakeSpotify);

impl Server for Spotify {
    fn label(&self) -> String {
        "spotify".into()
    }
    fn expected(&self) -> Vec<Expected> {
        self.0.expected()
    }
    fn deleted(&self) -> Deletions {
        self.0.deleted()
    }
    fn churn(&self, seed_and_most: Option<(u64, u32)>) {
        self.0.churn(seed_and_most);
    }
    fn delay(&self, delay: Duration) {
        self.0.state().delay = delay;
    }
    fn requests(&self) -> u64 {
        self.0.requests()
    }
    fn server_config(&self, page_size: u32) -> ServerConfig {
        let app = SpotifyConfig {
            api_url: self.0.api_url(),
            client_id: CLIENT_ID.into(),
            client_secret: Some(CLIENT_SECRET.into()),
            accounts_url: self.0.accounts_url(),
            redirect_uri: None,
            image_width: mediasync::config::DEFAULT_ARTWORK_WIDTH,
        };
        ServerConfig { name: "music".into(), libraries: None, page_size, backend: Backend::Spotify(app) }
    }
    fn config_entry(&self, page_size: u32) -> String {
        format!(
            "[[server]]\nname = \"music\"\nkind = \"spotify\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\napi_url = \"{}\"\naccounts_url = \"{}\"\npage_size = {page_size}\n",
            self.0.api_url(),
            self.0.accounts_url()
        )
    }
    fn connect(&self, store: &Store) {
        let refresh = self.0.issue_refresh_token();
        store.update_session("music", |session| session.refresh_token = Some(refresh)).unwrap();
    }
}

#[test]
fn spotify_under_changes_drops_nothing_and_one_quiet_sync_is_exact() {
    property(|_, rng| {
        let fake = FakeSpotify::start().unwrap();
        fake.generate(rng.usize(3..30), rng.usize(0..6), rng.usize(0..10), rng.usize(1..5), rng.usize(0..15));
        Box::new(Spotify(fake))
    });
}
