//! Listening and watching history against the simulated Spotify and Plex
//! servers: the store holds exactly every play a server answered with, after
//! a first poll, after new plays, across a restart, with plays arriving
//! during a walk and with a SIGKILL mid-poll; an idle poll is one request;
//! more than 50 Spotify plays between two polls is reported as a possible
//! gap; plays the server forgets (Spotify's window, a deleted Plex play or
//! item) stay; an account connected before the history scope existed is
//! not polled; a library sync that made way for a poll resumes without the
//! libraries it finished.

use crate::support::{TOKEN, assert_mirror, mode_of, stored_rows};
use mediasync::config::{Backend, PlexConfig, ServerConfig, SpotifyConfig, SyncConfig};
use mediasync::fake::Expected;
use mediasync::fake::plex::FakePlex;
use mediasync::fake::spotify::{CLIENT_ID, CLIENT_SECRET, FakeSpotify, LIBRARY_SCOPES, SCOPES};
use mediasync::model::Kind;
use mediasync::store::Store;
use mediasync::store::records::Gap;
use mediasync::sync::{self, Libraries, Options, Selection, ServerReport, Signals};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// A store in a temporary directory, reopened as a restarted process would.
struct Disk {
    dir: tempfile::TempDir,
}

impl Disk {
    fn new() -> Disk {
        Disk { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("catalog.redb")
    }

    fn open(&self) -> Store {
        Store::open(&self.path(), 4 << 20).unwrap()
    }
}

fn options(page_size: u32) -> Options {
    Options {
        full: false,
        force: false,
        full_every: Duration::from_secs(7 * 86_400),
        max_delete_share: 0.5,
        history: 5,
        page_size,
        unchanged_runs: mediasync::sync::UnchangedRuns::Recorded,
    }
}

fn sync_config() -> SyncConfig {
    SyncConfig { retries: 2, retry_delay: Duration::from_millis(5), ..SyncConfig::default() }
}

/// One run over `which` libraries of `server`, with a source built afresh.
fn run(server: &ServerConfig, store: &Store, which: Libraries) -> ServerReport {
    let source = mediasync::source::build(server, &sync_config(), store, &Default::default());
    let signals = Signals { stop: &AtomicBool::new(false), yield_to: None };
    let report =
        sync::sync_libraries(&server.name, source.as_ref(), store, &options(server.page_size), which.into(), signals);
    assert!(report.ok(), "sync failed: {report:#?}");
    report
}

/// The rows of one library, in the fakes' terms.
fn library_rows(rows: Vec<Expected>, library: &str) -> Vec<Expected> {
    rows.into_iter().filter(|row| row.library == library).collect()
}

/// The store's plays are exactly the plays the server answered with.
fn assert_history(store: &Store, expected: &[Expected]) {
    assert_mirror("", &library_rows(stored_rows(store), "history"), &library_rows(expected.to_vec(), "history"));
}

fn history_state(store: &Store, server: &str) -> mediasync::store::records::LibraryState {
    let number = store.find_library(server, "history").unwrap().expect("a history library is stored");
    store.state(number).unwrap().unwrap()
}

fn spotify_server(fake: &FakeSpotify) -> ServerConfig {
    ServerConfig {
        name: "music".into(),
        libraries: None,
        page_size: 50,
        backend: Backend::Spotify(SpotifyConfig {
            api_url: fake.api_url(),
            client_id: CLIENT_ID.into(),
            client_secret: Some(CLIENT_SECRET.into()),
            accounts_url: fake.accounts_url(),
            redirect_uri: None,
            image_width: mediasync::config::DEFAULT_ARTWORK_WIDTH,
        }),
    }
}

/// A fake Spotify with a few saved tracks and a store whose account was
/// connected with `scope`.
fn spotify(scope: &str, disk: &Disk) -> FakeSpotify {
    let fake = FakeSpotify::start().unwrap();
    fake.generate(12, 3, 2, 1, 4);
    let refresh = fake.issue_refresh_token_with(scope);
    disk.open()
        .update_session("music", |session| {
            session.refresh_token = Some(refresh);
            session.scope = Some(scope.into());
        })
        .unwrap();
    fake
}

fn recently_played(fake: &FakeSpotify) -> Vec<String> {
    fake.log()
        .into_iter()
        .filter(|entry| entry.path == "/v1/me/player/recently-played")
        .map(|entry| entry.query)
        .collect()
}

#[test]
fn spotify_history_is_exact_after_a_first_poll_new_plays_and_a_restart() {
    let disk = Disk::new();
    let fake = spotify(SCOPES, &disk);
    let server = spotify_server(&fake);
    fake.play_tracks(30);
    {
        let store = disk.open();
        let report = run(&server, &store, Libraries::History);
        assert_eq!(report.libraries.len(), 1, "only the history is polled");
        assert_eq!(report.libraries[0].counters.new, 30);
        assert_eq!(library_rows(stored_rows(&store), "history").len(), 30);
        assert_history(&store, &fake.expected());
        assert_eq!(recently_played(&fake), ["limit=50"], "the first poll asks for the whole window");
    }
    // A restart: a new process opens the store and builds its source.
    fake.play_tracks(12);
    fake.clear_log();
    let store = disk.open();
    let report = run(&server, &store, Libraries::History);
    assert_eq!(report.libraries[0].counters.new, 12);
    assert_history(&store, &fake.expected());
    let polls = recently_played(&fake);
    assert_eq!(polls.len(), 1);
    assert!(polls[0].starts_with("limit=50&after="), "{polls:?}");
    assert_eq!(history_state(&store, "music").gap, None, "42 plays, all seen: no gap");
    let stored = library_rows(stored_rows(&store), "history");
    assert_eq!(stored.len(), 42, "no play stored twice");
    assert!(stored.iter().all(|row| row.kind == Kind::Play));
}

#[test]
fn an_idle_poll_is_one_request_and_writes_no_play() {
    let disk = Disk::new();
    let fake = spotify(SCOPES, &disk);
    let server = spotify_server(&fake);
    fake.play_tracks(8);
    let store = disk.open();
    run(&server, &store, Libraries::History);
    let before = fake.requests();
    let report = run(&server, &store, Libraries::History);
    assert_eq!(fake.requests() - before, 1, "{:#?}", fake.log());
    assert_eq!(report.requests, 1);
    let counters = report.libraries[0].counters;
    assert_eq!((counters.new, counters.changed, counters.deleted), (0, 0, 0));
    assert_history(&store, &fake.expected());
}

#[test]
fn more_than_fifty_plays_between_polls_is_reported_as_a_possible_gap() {
    let disk = Disk::new();
    let fake = spotify(SCOPES, &disk);
    let server = spotify_server(&fake);
    fake.play_tracks(20);
    let store = disk.open();
    run(&server, &store, Libraries::History);

    // 49 plays: the window still holds the newest stored one.
    fake.play_tracks(49);
    run(&server, &store, Libraries::History);
    assert_eq!(history_state(&store, "music").gap, None);

    // 70 plays: the 20 oldest of them are gone from the window before the poll.
    fake.play_tracks(70);
    let report = run(&server, &store, Libraries::History);
    assert_eq!(report.libraries[0].counters.new, 50);
    let gap = history_state(&store, "music").gap.expect("a possible gap is recorded");
    let oldest_served = fake.state().plays[49].played_at_ms / 1000;
    assert_eq!((gap.count, gap.before), (1, Some(oldest_served)));
    // Exact within what the server returned, and nothing it dropped is lost.
    assert_history(&store, &fake.expected());
    assert_eq!(library_rows(stored_rows(&store), "history").len(), 20 + 49 + 50);

    // Exactly 50 new plays: all newer than the last stored one, so possibly more.
    fake.play_tracks(50);
    run(&server, &store, Libraries::History);
    assert_eq!(history_state(&store, "music").gap.map(|gap: Gap| gap.count), Some(2));

    // A few plays later, nothing is missing: the count stays.
    fake.play_tracks(5);
    run(&server, &store, Libraries::History);
    assert_eq!(history_state(&store, "music").gap.map(|gap| gap.count), Some(2));
    assert_history(&store, &fake.expected());
}

/// A library sync asked to make way for a history poll stops at the next
/// page boundary without failing or counting as a success; run again with
/// the libraries it finished left out, it completes the catalog.
#[test]
fn a_library_sync_that_makes_way_is_resumed_without_the_libraries_it_finished() {
    let disk = Disk::new();
    let fake = spotify(SCOPES, &disk);
    let server = spotify_server(&fake);
    let store = disk.open();
    let source = mediasync::source::build(&server, &sync_config(), &store, &Default::default());
    let stop = AtomicBool::new(false);
    let made_way = AtomicBool::new(true);
    let signals = Signals { stop: &stop, yield_to: Some(&made_way) };
    let report =
        sync::sync_libraries("music", source.as_ref(), &store, &options(50), Libraries::Catalog.into(), signals);
    assert!(report.yielded && report.ok() && report.libraries.is_empty(), "{report:#?}");
    assert_eq!(store.server_state("music").unwrap().last_success_at, None, "a sync that made way is not over");

    let done = vec!["tracks".to_string(), "albums".to_string()];
    let selection = Selection { libraries: Libraries::Catalog, done: &done, only: None, named: None };
    let signals = Signals { stop: &stop, yield_to: None };
    let report = sync::sync_libraries("music", source.as_ref(), &store, &options(50), selection, signals);
    assert!(report.ok() && !report.yielded, "{report:#?}");
    let synced: Vec<&str> = report.libraries.iter().map(|library| library.library_id.as_str()).collect();
    assert_eq!(synced, ["artists", "playlists"]);
    assert!(store.server_state("music").unwrap().last_success_at.is_some());
}

#[test]
fn an_account_connected_without_the_history_scope_is_not_polled() {
    let disk = Disk::new();
    let fake = spotify(LIBRARY_SCOPES, &disk);
    let server = spotify_server(&fake);
    fake.play_tracks(5);
    let store = disk.open();
    let report = run(&server, &store, Libraries::History);
    assert!(report.libraries.is_empty());
    let report = run(&server, &store, Libraries::All);
    let libraries: Vec<&str> = report.libraries.iter().map(|library| library.library_id.as_str()).collect();
    assert_eq!(libraries, ["tracks", "albums", "artists", "playlists"]);
    assert!(recently_played(&fake).is_empty(), "{:?}", recently_played(&fake));
}

fn plex_server(fake: &FakePlex, page_size: u32) -> ServerConfig {
    ServerConfig {
        name: "home".into(),
        libraries: None,
        page_size,
        backend: Backend::Plex(PlexConfig { url: fake.url().to_string(), token: TOKEN.into(), notifications: false }),
    }
}

fn history_requests(fake: &FakePlex) -> usize {
    fake.log().iter().filter(|entry| entry.path == "/status/sessions/history/all").count()
}

#[test]
fn plex_history_is_exact_with_plays_arriving_during_the_walk() {
    let disk = Disk::new();
    let fake = FakePlex::start(TOKEN);
    fake.add_library_of(300);
    fake.play(230);
    let server = plex_server(&fake, 40);
    let store = disk.open();
    // Plays arrive between the pages of every walk: offsets shift under it.
    fake.state().plays_during_history_requests = 3;
    let report = run(&server, &store, Libraries::All);
    assert_eq!(report.libraries[0].library_id, "history", "the history goes first");
    assert_history(&store, &fake.expected());
    fake.play(25);
    let report = run(&server, &store, Libraries::All);
    assert_eq!(mode_of(&report, "history"), "incremental");
    assert_history(&store, &fake.expected());

    // An idle poll: one request for the history.
    fake.state().plays_during_history_requests = 0;
    run(&server, &store, Libraries::History);
    fake.clear_log();
    let report = run(&server, &store, Libraries::History);
    // The server's run also lists its sections: the history's own cost is one.
    assert_eq!((history_requests(&fake), report.libraries[0].counters.requests), (1, 1), "{:#?}", fake.log());
    assert_history(&store, &fake.expected());
    let plays = library_rows(stored_rows(&store), "history");
    let played = fake.state().plays.len();
    assert_eq!(plays.len(), played, "every play stored once");
}

#[test]
fn plex_plays_the_server_forgets_are_kept() {
    let disk = Disk::new();
    let fake = FakePlex::start(TOKEN);
    fake.add_movies("Movies", 20);
    fake.play(15);
    let server = plex_server(&fake, 10);
    let store = disk.open();
    run(&server, &store, Libraries::All);
    let kept = library_rows(stored_rows(&store), "history");
    assert_eq!(kept.len(), 15);
    // The user deletes plays and a movie that was played.
    let ids: Vec<u64> = fake.state().plays.iter().map(|play| play.history_id).collect();
    for id in &ids[..10] {
        fake.delete_play(*id);
    }
    let watched = fake.state().plays[0].rating_key.clone();
    fake.delete(&watched);
    fake.play(3);
    let report = run(&server, &store, Libraries::All);
    assert_eq!(report.libraries[0].counters.deleted, 0);
    let history = library_rows(stored_rows(&store), "history");
    assert_eq!(history.len(), 18, "the 15 first plays stay, 3 new ones join them");
    assert!(kept.iter().all(|play| history.contains(play)));
    assert_eq!(history_state(&store, "home").gap, None, "deleting plays opens no gap");
}

fn write_config(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        "[store]\npath = \"{}\"\n\n[sync]\nretry_delay = \"5ms\"\nretries = 1\n\n{server}",
        dir.join("catalog.redb").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `mediasync sync --server NAME` and SIGKILLs it once `killed` says so.
fn kill_mid_sync(config: &Path, name: &str, killed: impl Fn() -> bool) {
    let mut child = crate::cli::binary()
        .arg("--config")
        .arg(config)
        .args(["sync", "--server", name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !killed() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn a_sigkill_mid_poll_loses_and_duplicates_no_play() {
    let disk = Disk::new();
    let plex = FakePlex::start(TOKEN);
    plex.add_movies("Movies", 40);
    plex.play(2_000);
    plex.state().delay = Duration::from_millis(10);
    let text = format!(
        "[[server]]\nname = \"home\"\nkind = \"plex\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\npage_size = 50\nlibraries = [\"history\"]\n",
        plex.url()
    );
    let config = write_config(disk.dir.path(), &text);
    // Killed in the middle of the walk of 40 pages.
    kill_mid_sync(&config, "home", || history_requests(&plex) >= 12);
    let first = history_requests(&plex);
    assert!((12..40).contains(&first), "killed after {first} pages");
    plex.state().delay = Duration::ZERO;
    plex.play(30);
    let output = crate::cli::run(&config, &["sync", "--server", "home"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let store = disk.open();
    assert_history(&store, &plex.expected());
    // The plays that came during the kill moved the listing under the
    // resumed walk: it started over from the top and fetched them too.
    assert_eq!(library_rows(stored_rows(&store), "history").len(), 2_030, "the resumed walk got the new plays");
    drop(store);
    let output = crate::cli::run(&config, &["sync", "--server", "home"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let store = disk.open();
    assert_history(&store, &plex.expected());
    assert_eq!(library_rows(stored_rows(&store), "history").len(), 2_030, "each play once");

    // Spotify: killed while the poll's request waits for its answer.
    let disk = Disk::new();
    let fake = spotify(SCOPES, &disk);
    fake.play_tracks(40);
    fake.state().delay = Duration::from_secs(2);
    let text = format!(
        "[[server]]\nname = \"music\"\nkind = \"spotify\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\napi_url = \"{}\"\naccounts_url = \"{}\"\nlibraries = [\"history\"]\n",
        fake.api_url(),
        fake.accounts_url()
    );
    let config = write_config(disk.dir.path(), &text);
    // 300 ms after the token request, the poll waits for its answer.
    let token_seen = std::cell::Cell::new(None::<Instant>);
    kill_mid_sync(&config, "music", || {
        if fake.token_requests() >= 1 && token_seen.get().is_none() {
            token_seen.set(Some(Instant::now()));
        }
        token_seen.get().is_some_and(|seen| seen.elapsed() > Duration::from_millis(300))
    });
    assert!(
        fake.log().iter().all(|entry| entry.number == 0 || entry.status != 200),
        "no poll answered before the kill"
    );
    fake.state().delay = Duration::ZERO;
    fake.play_tracks(6);
    let output = crate::cli::run(&config, &["sync", "--server", "music"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let store = disk.open();
    assert_history(&store, &fake.expected());
    assert_eq!(library_rows(stored_rows(&store), "history").len(), 46, "each play once");
}
