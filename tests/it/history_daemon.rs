//! The history as `mediasync run` keeps it: Spotify's own schedule
//! (`history_every`) beside the library syncs, a stored quota wait holding
//! it too and the history polled first when the wait ends, a long library
//! sync making way for history polls and resuming where it stopped; what
//! the status page, `/api/history` and `/metrics` show; and the page asking
//! to connect an account again when it lacks the history's permission.

use crate::daemon::{Daemon, free_address};
use crate::status_server::get;
use crate::support::{assert_mirror, stored_rows};
use mediasync::fake::Expected;
use mediasync::fake::spotify::{CLIENT_ID, CLIENT_SECRET, FakeSpotify, LIBRARY_SCOPES, Logged, SCOPES};
use mediasync::store::Store;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ADMIN_TOKEN: &str = "history-admin-token-0123456789";

/// A config of one Spotify server polled every `history_every`, its store
/// holding an account connected with `scope`.
fn setup(fake: &FakeSpotify, dir: &Path, address: SocketAddr, scope: &str, history_every: &str) -> PathBuf {
    let store_path = dir.join("catalog.redb");
    let refresh = fake.issue_refresh_token_with(scope);
    Store::open(&store_path, 1 << 20)
        .unwrap()
        .update_session("music", |session| {
            session.refresh_token = Some(refresh);
            session.scope = Some(scope.into());
        })
        .unwrap();
    let text = format!(
        "[store]\npath = \"{}\"\n[sync]\nretry_delay = \"5ms\"\nmax_rate_limit_wait = \"1s\"\n\
         [[server]]\nname = \"music\"\nkind = \"spotify\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
         api_url = \"{}\"\naccounts_url = \"{}\"\nhistory_every = \"{history_every}\"\n[status]\nlisten = \"{address}\"\nadmin_token = \"{ADMIN_TOKEN}\"\n",
        store_path.display(),
        fake.api_url(),
        fake.accounts_url()
    );
    let config = dir.join("config.toml");
    std::fs::write(&config, text).unwrap();
    config
}

/// Every library of the catalog synced to its end: not merely idle between
/// a history poll and the rest of a library sync that made way for it.
fn catalog_synced(daemon: &Daemon) -> bool {
    let status = daemon.status();
    let server = &status["servers"][0];
    let libraries = server["libraries"].as_array().cloned().unwrap_or_default();
    let synced = |id: &str| {
        libraries.iter().any(|library| {
            library["id"] == id && library["last_success_at"].is_i64() && library["checkpoint"].is_null()
        })
    };
    server["state"] == "idle" && ["tracks", "albums", "artists", "playlists"].into_iter().all(synced)
}

fn is_poll(entry: &Logged) -> bool {
    entry.path == "/v1/me/player/recently-played"
}

/// The API requests in order, as "poll" or the library path.
fn sequence(log: &[Logged]) -> Vec<String> {
    log.iter()
        .filter(|entry| entry.number > 0)
        .map(|entry| if is_poll(entry) { "poll".to_string() } else { entry.path.clone() })
        .collect()
}

fn history_rows(rows: Vec<Expected>) -> Vec<Expected> {
    rows.into_iter().filter(|row| row.library == "history").collect()
}

#[test]
fn a_quota_wait_holds_the_history_and_the_history_is_polled_first_when_it_ends() {
    let fake = FakeSpotify::start().unwrap();
    fake.generate(300, 10, 10, 1, 5);
    fake.play_tracks(10);
    {
        let mut state = fake.state();
        // The first poll and three pages, then the quota is spent for 4 s.
        state.quota = Some(4);
        state.quota_reset_secs = 4;
    }
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let config = setup(&fake, dir.path(), address, SCOPES, "1s");
    let daemon = Daemon::start(&config, address, &[]);
    daemon.wait_until("the quota is spent", |_| fake.log().iter().any(|entry| entry.status == 429));
    // The quota is back on the server's side; the stored wait still runs.
    fake.state().quota = None;
    fake.play_tracks(3);
    daemon.wait_until("the library sync finished", catalog_synced);
    let log = fake.log();
    let spent = log.iter().position(|entry| entry.status == 429).unwrap();
    let after: Vec<String> = sequence(&log[spent + 1..]);
    assert_eq!(after.first().map(String::as_str), Some("poll"), "the history goes first after the wait: {after:?}");
    assert!(after.iter().skip(1).any(|path| path == "/v1/me/tracks"), "then the library sync continues: {after:?}");
    assert_eq!(fake.violations(), 0, "nothing, not even a history poll, was sent during the wait");
    assert!(daemon.terminate().success());
    let store = Store::open(&dir.path().join("catalog.redb"), 1 << 20).unwrap();
    assert_mirror("", &history_rows(stored_rows(&store)), &history_rows(fake.expected()));
    assert_eq!(history_rows(stored_rows(&store)).len(), 13);
}

#[test]
fn a_long_library_sync_makes_way_for_history_polls_and_the_page_shows_the_plays() {
    let fake = FakeSpotify::start().unwrap();
    fake.generate(1_500, 10, 10, 1, 5);
    fake.play_tracks(60);
    fake.state().delay = Duration::from_millis(120);
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let config = setup(&fake, dir.path(), address, SCOPES, "1s");
    let daemon = Daemon::start(&config, address, &[]);
    daemon.wait_until("the first library sync finished", catalog_synced);
    let log = fake.log();
    let order = sequence(&log);
    let first_page = order.iter().position(|path| path == "/v1/me/tracks").unwrap();
    let last_page = order.iter().rposition(|path| path == "/v1/me/tracks").unwrap();
    let polls_during = order[first_page..last_page].iter().filter(|path| *path == "poll").count();
    assert!(polls_during >= 1, "the history was polled during the 30-page sync: {order:?}");
    let mut fetched: BTreeMap<String, u32> = BTreeMap::new();
    for entry in log.iter().filter(|entry| entry.number > 0 && entry.status == 200 && !is_poll(entry)) {
        *fetched.entry(format!("{}?{}", entry.path, entry.query)).or_insert(0) += 1;
    }
    let twice: Vec<_> = fetched.iter().filter(|(_, count)| **count > 1).collect();
    assert!(twice.is_empty(), "the sync resumed where it stopped, no page twice: {twice:?}");
    fake.state().delay = Duration::ZERO;

    // What the status shows: the plays, the last of them, the next poll.
    fake.play_tracks(2);
    daemon.wait_until("the new plays are polled", |daemon| daemon.status()["servers"][0]["history"]["plays"] == 52);
    let status = daemon.status();
    let server = &status["servers"][0];
    let newest = fake.state().plays[0].clone();
    assert_eq!(server["history"]["last_plays"][0]["title"], newest.track.name.as_str());
    assert_eq!(server["history"]["last_plays"].as_array().unwrap().len(), 5);
    assert!(server["live"]["next_history_at"].as_i64() >= status["daemon"]["now"].as_i64());
    assert!(server["history"]["gap"].is_null());
    let page = get(address, "/").body;
    assert!(page.contains("History: 52 plays stored"), "{page}");
    assert!(page.contains(&newest.track.name), "the page lists the last plays");
    let metrics = get(address, "/metrics").body;
    assert!(metrics.contains("mediasync_plays{server=\"music\"} 52"), "{metrics}");
    assert!(metrics.contains("mediasync_history_gaps_total{server=\"music\"} 0"), "{metrics}");

    // `/api/history` pages the plays newest first.
    let first = get(address, "/api/history?server=music&limit=25").json();
    let next = first["next"].as_str().unwrap().to_string();
    let second = get(address, &format!("/api/history?server=music&limit=50&before={next}")).json();
    assert!(second["next"].is_null());
    let ids: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|page| page["plays"].as_array().unwrap().iter().map(|play| play["id"].as_str().unwrap().to_string()))
        .collect();
    let mut expected: Vec<String> = history_rows(fake.expected()).into_iter().map(|row| row.id).collect();
    expected.sort();
    expected.reverse();
    assert_eq!(ids, expected, "every play once, newest first");
    let since = fake.state().plays[1].played_at_ms / 1000;
    let recent = get(address, &format!("/api/history?server=music&since={since}")).json();
    assert_eq!(recent["plays"].as_array().unwrap().len(), 2, "the plays at or after `since`");
    assert_eq!(recent["plays"][0]["play"]["played"], "track");
    assert!(recent["plays"][0]["play"]["artists"].is_string());
    // The export and the change feed carry every play, with its facts.
    // (read by ureq: the export is sent chunked)
    let export = ureq::get(&format!("http://{address}/api/export?server=music"))
        .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let exported: Vec<serde_json::Value> = export
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|line| line["library"] == "history")
        .collect();
    assert_eq!(exported.len(), expected.len());
    assert!(exported.iter().all(|play| play["kind"] == "play" && play["play"]["album"].is_string()));
    let changes = get(address, "/api/changes?limit=5000").json();
    let changed: Vec<&serde_json::Value> =
        changes["changes"].as_array().unwrap().iter().filter(|change| change["library"] == "history").collect();
    assert_eq!(changed.len(), expected.len(), "one upsert per play, never rewritten");
    assert!(changed.iter().all(|change| change["op"] == "upsert" && change["item"]["play"]["played"] == "track"));
    assert_eq!(get(address, "/api/history").status, 400);
    assert_eq!(get(address, "/api/history?server=music&since=yesterday").status, 400);
    assert_eq!(get(address, "/api/history?server=nope").status, 404);
    assert!(daemon.terminate().success());
}

#[test]
fn an_account_connected_before_the_history_existed_is_asked_to_connect_again() {
    let fake = FakeSpotify::start().unwrap();
    fake.generate(5, 1, 1, 1, 2);
    fake.play_tracks(3);
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let config = setup(&fake, dir.path(), address, LIBRARY_SCOPES, "1s");
    let daemon = Daemon::start(&config, address, &[]);
    daemon.wait_until("the library sync finished", catalog_synced);
    let status = daemon.status();
    assert_eq!(status["servers"][0]["history"]["reconnect"], true);
    let page = get(address, "/").body;
    assert!(page.contains("Connect Spotify again to record what you play"), "{page}");
    assert!(fake.log().iter().all(|entry| !is_poll(entry)), "no poll without the permission");
    assert!(daemon.terminate().success());
}
