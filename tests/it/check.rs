//! `mediasync check` as a user runs it right after editing the config: one
//! row per server (reachable, credentials, libraries, clock offset), the
//! problems under the table, exit 1 on any; it never creates the store. And
//! with a daemon holding the store: media servers checked directly, a
//! Spotify server (whose session is in the store) through the daemon, whose
//! page shows its own checks.

use crate::daemon::{Daemon, admin, cli, free_address, idle_after_success};
use crate::status_server::{get, request};
use crate::support::TOKEN;
use mediasync::fake::jellyfin::{Behaviour, FakeJellyfin};
use mediasync::fake::plex::FakePlex;
use mediasync::fake::spotify::{CLIENT_ID, CLIENT_SECRET, FakeSpotify};
use mediasync::store::Store;
use std::path::Path;

fn plex_entry(name: &str, url: &str, token: &str) -> String {
    format!("[[server]]\nname = \"{name}\"\nkind = \"plex\"\nurl = \"{url}\"\ntoken = \"{token}\"\n")
}

fn write(dir: &Path, servers: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let store = dir.join("state").join("catalog.redb");
    std::fs::write(&path, format!("[store]\npath = \"{}\"\n{extra}{servers}", store.display())).unwrap();
    path
}

/// Whether a clock cell shows this machine's clock, within a minute (the
/// fakes' `Date` is their clock, set to this machine's here; a slow machine
/// may take seconds to answer).
fn same_clock(cell: &str) -> bool {
    cell.strip_suffix(" s").and_then(|offset| offset.parse::<i64>().ok()).is_some_and(|offset| offset.abs() <= 60)
}

/// The row of `server` in the table, split into its columns.
fn row<'a>(table: &'a str, server: &str) -> Vec<&'a str> {
    let line = table.lines().find(|line| line.starts_with(&format!("{server} "))).unwrap_or_else(|| panic!("{table}"));
    line.split("  ").map(str::trim).filter(|cell| !cell.is_empty()).collect()
}

#[test]
fn check_shows_each_server_in_a_table_and_fails_on_any_problem() {
    let plex = FakePlex::start(TOKEN);
    plex.add_movies("Movies", 5);
    plex.add_shows("TV Shows", 2, 1, 2);
    plex.state().clock = mediasync::sync::now_epoch();
    let jellyfin = FakeJellyfin::start(Behaviour::Jellyfin10_11, TOKEN);
    jellyfin.add_library_of(20);
    jellyfin.state().clock = mediasync::sync::now_epoch() + 42;
    let refusing = FakePlex::start("another-token");
    refusing.state().clock = mediasync::sync::now_epoch();
    let nowhere = format!("http://{}", free_address());
    let dir = tempfile::tempdir().unwrap();
    let good = format!(
        "{}[[server]]\nname = \"den\"\nkind = \"jellyfin\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n",
        plex_entry("living-room", plex.url(), TOKEN),
        jellyfin.url()
    );
    let all = format!("{good}{}{}", plex_entry("attic", refusing.url(), TOKEN), plex_entry("garage", &nowhere, TOKEN));
    let config = write(dir.path(), &all, "");
    let output = cli(&config, &["check"]);
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{table}{stderr}");
    assert!(table.starts_with("SERVER"), "{table}");
    let living_room = row(&table, "living-room");
    assert_eq!(living_room[3..6], ["yes", "accepted", "2: Movies, TV Shows"], "{table}");
    assert!(same_clock(living_room[6]), "Plex's clock, from its Date header: {table}");
    let den = row(&table, "den");
    assert_eq!(den[3..5], ["yes", "accepted"], "{table}");
    assert!(["+41 s", "+42 s"].contains(&den[6]), "the Jellyfin clock is 42 s ahead: {table}");
    let attic = row(&table, "attic");
    assert_eq!(attic[3..6], ["yes", "refused", "-"], "{table}");
    assert!(same_clock(attic[6]), "a refusal carries the clock too: {table}");
    assert_eq!(row(&table, "garage")[3..], ["no", "-", "-", "-"], "{table}");
    assert!(table.contains("\nattic: plex server \"attic\": ") && table.contains("refused the credentials"), "{table}");
    assert!(table.contains("\ngarage: plex server \"garage\""), "{table}");
    assert!(!table.lines().any(|line| line.starts_with("living-room:") || line.starts_with("den:")), "{table}");
    assert!(stderr.contains("2 of 4 servers have a problem"), "{stderr}");
    assert!(!format!("{table}{stderr}").contains(TOKEN), "the token leaked");
    assert_eq!(plex.requests(), 1, "one request per media server");

    std::fs::write(&config, std::fs::read_to_string(&config).unwrap().replace(&all, &good)).unwrap();
    let output = cli(&config, &["check"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    assert!(!dir.path().join("state").exists(), "check created the store's directory");
}

#[test]
fn a_clock_far_off_is_a_problem() {
    let jellyfin = FakeJellyfin::start(Behaviour::Jellyfin12, TOKEN);
    jellyfin.add_library_of(10);
    jellyfin.state().clock = mediasync::sync::now_epoch() - 3_600;
    let dir = tempfile::tempdir().unwrap();
    let entry =
        format!("[[server]]\nname = \"den\"\nkind = \"jellyfin\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n", jellyfin.url());
    let output = cli(&write(dir.path(), &entry, ""), &["check"]);
    let table = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{table}");
    assert!(
        table.contains("clock is 3600 s behind this machine's") || table.contains("clock is 3601 s behind"),
        "{table}"
    );
}

/// A Spotify server is checked with its session from the store: directly
/// when no daemon runs, through the daemon that holds the store otherwise.
#[test]
fn check_works_while_the_daemon_holds_the_store_and_asks_it_about_spotify() {
    let plex = FakePlex::start(TOKEN);
    plex.add_movies("Movies", 30);
    plex.state().clock = mediasync::sync::now_epoch();
    let spotify = FakeSpotify::start().unwrap();
    spotify.generate(20, 5, 5, 2, 3);
    spotify.state().clock = mediasync::sync::now_epoch();
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let spotify_entry = format!(
        "[[server]]\nname = \"music\"\nkind = \"spotify\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\napi_url = \"{}\"\naccounts_url = \"{}\"\n",
        spotify.api_url(),
        spotify.accounts_url()
    );
    let servers = format!("{}{spotify_entry}", plex_entry("home", plex.url(), TOKEN));
    let config = write(dir.path(), &servers, &format!("[status]\nlisten = \"{address}\"\n"));
    let store_path = dir.path().join("state").join("catalog.redb");

    // Not connected yet: a problem, and no request to Spotify.
    std::fs::create_dir_all(store_path.parent().unwrap()).unwrap();
    let output = cli(&config, &["check"]);
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(1), "{table}");
    assert_eq!(row(&table, "music")[3..], ["-", "-", "-", "-"], "{table}");
    assert!(table.contains("is not connected to an account yet"), "{table}");

    let store = Store::open(&store_path, 1 << 20).unwrap();
    let refresh = spotify.issue_refresh_token();
    store.update_session("music", |session| session.refresh_token = Some(refresh)).unwrap();
    drop(store);
    let output = cli(&config, &["check"]);
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{table}");
    let music = row(&table, "music");
    assert_eq!(music[3..6], ["yes", "accepted", "4: Liked Songs, Saved Albums, Followed Artists, Playlists"]);
    assert!(same_clock(music[6]), "the Spotify API's clock: {table}");

    let daemon = Daemon::start(&config, address, &[]);
    daemon.wait_until("both servers synced", idle_after_success);
    for server in daemon.status()["servers"].as_array().unwrap() {
        assert_eq!(server["live"]["check"]["credentials_accepted"], true, "the check at start: {server}");
    }
    let requests = plex.requests();
    let output = cli(&config, &["check"]);
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{table}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(row(&table, "home")[3..6], ["yes", "accepted", "1: Movies"], "{table}");
    assert_eq!(row(&table, "music")[3..5], ["yes", "accepted"], "{table}");
    assert_eq!(plex.requests(), requests + 1, "the media server is checked directly");
    let [(name, bearer)] = admin(&config);
    let refused = request(address, "POST", "/api/servers/home/check", &[]);
    assert_eq!(refused.status, 401, "a check is a control: {}", refused.body);
    let on_demand = request(address, "POST", "/api/servers/home/check", &[(name, bearer.as_str())]);
    assert_eq!(on_demand.status, 200, "{}", on_demand.body);
    assert_eq!(on_demand.json()["libraries"], serde_json::json!(["Movies"]));
    let page = get(address, "/").body;
    assert!(page.contains("reachable · credentials accepted · 1 library (Movies)"), "{page}");
    assert!(daemon.terminate().success());
}
