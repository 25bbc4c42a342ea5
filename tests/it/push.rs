//! Near-real-time syncs from the servers' own notifications, against the
//! running daemon (`mediasync run`) and the simulated servers' sockets: a
//! change is in the mirror seconds after the server's notice, with few
//! requests; a scan's burst costs about one incremental run; a dropped
//! socket and a restarted server are followed by a reconnection and one
//! catch-up run to an exact mirror; an idle server costs no request. The
//! figures (seconds from notice to mirror, requests) are printed.

use crate::daemon::{Daemon, free_address};
use crate::status_server::request;
use crate::support::TOKEN;
use mediasync::fake::jellyfin::{Behaviour, FakeJellyfin};
use mediasync::fake::plex::FakePlex;
use mediasync::fake::settled_count;
use mediasync::model::Kind;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

const ADMIN: &str = "push-admin-token";

/// A daemon whose schedule never comes during the test: every run is the
/// start run or one the notices asked for.
fn start(dir: &Path, url: &str, extra: &str) -> Daemon {
    let address = free_address();
    let config = dir.join("config.toml");
    let text = format!(
        "[store]\npath = \"{}\"\n[status]\nlisten = \"{address}\"\nadmin_token = \"{ADMIN}\"\n[[server]]\nname = \"home\"\nkind = \"plex\"\nurl = \"{url}\"\ntoken = \"{TOKEN}\"\npage_size = 50\nschedule = \"0 0 3 1 1 *\"\n{extra}",
        dir.join("catalog.redb").display()
    );
    std::fs::write(&config, text).unwrap();
    Daemon::start(&config, address, &[])
}

fn notifications(daemon: &Daemon) -> Value {
    daemon.status()["servers"][0]["live"]["notifications"].clone()
}

/// Connected, synced, nothing pending or running.
fn settled(daemon: &Daemon) -> bool {
    let status = daemon.status();
    let server = &status["servers"][0];
    server["live"]["notifications"]["connection"] == "connected"
        && server["live"]["notifications"]["pending"] == 0
        && server["live"]["syncing"] == false
        && server["last_success_at"].is_i64()
}

/// The mirror as (library, id, title), through the daemon's export (read
/// by ureq: it is sent chunked).
fn mirror(daemon: &Daemon) -> BTreeSet<(String, String, String)> {
    let mut answer = ureq::get(&format!("http://{}/api/export", daemon.address))
        .header("Authorization", &format!("Bearer {ADMIN}"))
        .call()
        .unwrap();
    let body = answer.body_mut().with_config().limit(u64::MAX).read_to_string().unwrap();
    body.lines()
        .map(|line| {
            let item: Value = serde_json::from_str(line).unwrap();
            let text = |key: &str| item[key].as_str().unwrap_or_default().to_string();
            (text("library"), text("id"), text("title"))
        })
        .collect()
}

fn expected(fake: &FakePlex) -> BTreeSet<(String, String, String)> {
    fake.expected().into_iter().map(|row| (row.library, row.id, row.title)).collect()
}

/// Waits until the mirror is exact; the seconds it took.
fn until_exact(daemon: &Daemon, fake: &FakePlex, what: &str) -> f64 {
    let started = Instant::now();
    let want = expected(fake);
    daemon.wait_until(what, |daemon| mirror(daemon) == want);
    daemon.wait_until("the run ends", settled);
    started.elapsed().as_secs_f64()
}

#[test]
fn plex_changes_reach_the_mirror_from_the_notifications() {
    let fake = FakePlex::start(TOKEN);
    let movies = fake.add_movies("Movies", 30);
    let shows = fake.add_shows("TV Shows", 2, 2, 3);
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path(), fake.url(), "");
    daemon.wait_until("connected and synced", settled);
    assert_eq!(mirror(&daemon), expected(&fake));
    assert_eq!(fake.sockets().open(), 1, "one socket per server");

    let mut figures = Vec::new();
    let mut change = |what: &str, act: &dyn Fn(&FakePlex)| {
        let before = settled_count(|| fake.requests());
        act(&fake);
        let seconds = until_exact(&daemon, &fake, what);
        let requests = settled_count(|| fake.requests()) - before;
        figures.push(format!("{what}: {seconds:.1}s, {requests} requests"));
        requests
    };
    // A few named items are fetched alone: the library listing (which
    // libraries the source syncs) and one `/library/metadata/{ids}` lookup,
    // whose answer also proves a deletion.
    let added = change("movie added", &|fake: &FakePlex| {
        fake.add_item(&movies, Kind::Movie, "Arrival", None);
    });
    assert_eq!(added, 2, "an added movie");
    let edited =
        change("movie edited", &|fake: &FakePlex| fake.edit_title(&fake.keys(&movies, Kind::Movie)[3], "Edited"));
    assert_eq!(edited, 2, "an edited movie");
    let removed = change("movie deleted", &|fake: &FakePlex| fake.delete(&fake.keys(&movies, Kind::Movie)[5]));
    assert_eq!(removed, 2, "a deleted movie");
    let season = fake.keys(&shows, Kind::Season)[0].clone();
    let episode = change("episode added", &|fake: &FakePlex| {
        fake.add_item(&shows, Kind::Episode, "New Episode", Some(&season));
    });
    assert_eq!(episode, 2, "an episode added to a stored season");
    // A new show's episode needs its show and season: the library's
    // incremental run fetches them.
    change("episode of a new show added", &|fake: &FakePlex| {
        let show = fake.add_item(&shows, Kind::Show, "New Show", None);
        let season = fake.add_item(&shows, Kind::Season, "Season 1", Some(&show));
        fake.add_item(&shows, Kind::Episode, "Pilot", Some(&season));
    });
    // A deleted show takes its seasons and episodes, which the notice does
    // not name, as on the server.
    let show = change("show deleted", &|fake: &FakePlex| fake.delete(&fake.keys(&shows, Kind::Show)[1]));
    assert_eq!(show, 2, "a deleted show");
    let status = notifications(&daemon);
    assert!(status["last_notice"].is_string() && status["notices"].as_u64() > Some(0), "{status}");
    let page = crate::status_server::get(daemon.address, "/").body;
    assert!(page.contains("Notifications: connected") && page.contains("last notice"), "{page}");
    println!("notice to mirror (Plex): {}", figures.join("; "));
}

#[test]
fn a_scan_of_many_changes_costs_about_one_incremental_run() {
    let fake = FakePlex::start(TOKEN);
    let movies = fake.add_movies("Movies", 200);
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path(), fake.url(), "");
    daemon.wait_until("connected and synced", settled);

    let before = fake.requests();
    let runs_before = daemon.status()["servers"][0]["live"]["runs"].as_u64().unwrap();
    fake.scan(&movies, |fake| {
        for number in 0..500 {
            fake.add_item(&movies, Kind::Movie, &format!("Scanned {number}"), None);
            if number == 250 {
                // A scan pauses (a slow disk, a large file) for longer
                // than the quiet period: its changes still wait for its end.
                std::thread::sleep(mediasync::app::push::QUIET + Duration::from_secs(1));
            }
        }
    });
    let seconds = until_exact(&daemon, &fake, "the scan is mirrored");
    let pushed = fake.requests() - before;
    let runs = daemon.status()["servers"][0]["live"]["runs"].as_u64().unwrap() - runs_before;
    assert_eq!(runs, 1, "the scan was synced in {runs} runs");
    // The same changes found by an incremental run alone: what a scheduled
    // run would have cost.
    let fake_alone = FakePlex::start(TOKEN);
    fake_alone.add_movies("Movies", 200);
    let dir_alone = tempfile::tempdir().unwrap();
    let alone = start(dir_alone.path(), fake_alone.url(), "notifications = false");
    alone.wait_until("synced", |daemon| daemon.status()["servers"][0]["last_success_at"].is_i64());
    for number in 0..500 {
        fake_alone.add_item("1", Kind::Movie, &format!("Scanned {number}"), None);
    }
    let before_alone = fake_alone.requests();
    let bearer = format!("Bearer {ADMIN}");
    let asked = request(alone.address, "POST", "/api/servers/home/sync", &[("Authorization", bearer.as_str())]);
    assert!(asked.status < 300, "{}", asked.body);
    let want = expected(&fake_alone);
    alone.wait_until("the incremental run ends", |daemon| mirror(daemon) == want);
    let incremental = fake_alone.requests() - before_alone;
    println!(
        "a scan of 500 additions: mirrored {seconds:.1}s after it ended, {pushed} requests; the incremental run alone: {incremental} requests"
    );
    assert!(pushed <= incremental + 2, "the scan cost {pushed} requests, an incremental run {incremental}");
}

#[test]
fn a_dropped_socket_and_a_restarted_server_are_caught_up() {
    let fake = FakePlex::start(TOKEN);
    let movies = fake.add_movies("Movies", 40);
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path(), fake.url(), "");
    daemon.wait_until("connected and synced", settled);
    let upgrades = fake.sockets().upgrades();

    // The socket drops; a change made before the client is back is told to
    // nobody: the reconnection's catch-up run finds it.
    fake.sockets().refuse(true);
    fake.sockets().drop_all();
    daemon.wait_until("the drop is seen", |daemon| notifications(daemon)["connection"] != "connected");
    fake.add_item(&movies, Kind::Movie, "Added while away", None);
    fake.delete(&fake.keys(&movies, Kind::Movie)[2]);
    fake.sockets().refuse(false);
    let seconds = until_exact(&daemon, &fake, "caught up after the drop");
    assert!(fake.sockets().upgrades() > upgrades, "it connected again");
    assert_eq!(fake.sockets().open(), 1);

    // The server restarts: sockets cut, refused while it starts, the
    // library changed meanwhile.
    let restarted = fake.sockets().upgrades();
    fake.sockets().refuse(true);
    fake.sockets().drop_all();
    fake.edit_title(&fake.keys(&movies, Kind::Movie)[0], "Edited during the restart");
    std::thread::sleep(Duration::from_millis(1500));
    fake.sockets().refuse(false);
    let restart_seconds = until_exact(&daemon, &fake, "caught up after the restart");
    assert!(fake.sockets().upgrades() > restarted);
    println!("caught up {seconds:.1}s after a dropped socket, {restart_seconds:.1}s after a server restart");
}

#[test]
fn an_idle_server_costs_no_request() {
    let fake = FakePlex::start(TOKEN);
    fake.add_movies("Movies", 20);
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path(), fake.url(), "");
    daemon.wait_until("connected and synced", settled);
    // Start from a count that held for 2 s (a daemon that polls still
    // fails below).
    let before = settled_count(|| (fake.requests(), fake.sockets().upgrades()));
    // Nothing polls between schedules: no timer in the daemon sends a
    // request; the socket's keep-alive (a websocket ping after 30 s of
    // silence) is a frame on the open connection, not a request.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!((fake.requests(), fake.sockets().upgrades()), before, "requests sent while idle");
    assert_eq!(fake.sockets().open(), 1);
    println!("idle: 0 requests in 5 s with the socket open");

    // SIGTERM stops the listener with the rest: the daemon exits with the
    // socket open, the store closed (no listener holds it), and the server
    // sees the socket closed.
    assert!(daemon.terminate().success());
    let log = std::fs::read_to_string(dir.path().join("config.log")).unwrap();
    assert!(log.contains("store closed"), "{log}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.sockets().open() > 0 {
        assert!(Instant::now() < deadline, "the socket stayed open after the daemon stopped");
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// A Jellyfin or Emby server signed in with `login_user`/`password_file`.
fn start_jellyfin(dir: &Path, fake: &FakeJellyfin, behaviour: Behaviour, login: bool) -> Daemon {
    let password = dir.join("password");
    std::fs::write(&password, "admin-password\n").unwrap();
    let kind = if behaviour.is_emby() { "emby" } else { "jellyfin" };
    let login = if login {
        format!("login_user = \"admin\"\npassword_file = \"{}\"\n", password.display())
    } else {
        String::new()
    };
    let address = free_address();
    let config = dir.join("config.toml");
    let text = format!(
        "[store]\npath = \"{}\"\n[status]\nlisten = \"{address}\"\nadmin_token = \"{ADMIN}\"\n[[server]]\nname = \"home\"\nkind = \"{kind}\"\nurl = \"{}\"\ntoken = \"{JELLYFIN_KEY}\"\npage_size = 50\nschedule = \"0 0 3 1 1 *\"\n{login}",
        dir.join("catalog.redb").display(),
        fake.url()
    );
    std::fs::write(&config, text).unwrap();
    Daemon::start(&config, address, &[])
}

const JELLYFIN_KEY: &str = "0123456789abcdef0123456789abcdef";

fn jellyfin_expected(fake: &FakeJellyfin) -> BTreeSet<(String, String, String)> {
    fake.expected().into_iter().map(|row| (row.library, row.id, row.title)).collect()
}

/// A simulated Jellyfin or Emby server batching its changes for 1 s (30 s
/// on real servers) with a library of `movies` movies and one of 2 shows
/// ("TV Shows"), and a daemon on it:
/// the fake, the library's id, the daemon's directory and the daemon.
fn jellyfin_daemon(
    behaviour: Behaviour,
    movies: usize,
    login: bool,
) -> (FakeJellyfin, String, tempfile::TempDir, Daemon) {
    let fake = FakeJellyfin::start(behaviour, JELLYFIN_KEY);
    fake.state().notifier.library_update = Duration::from_secs(1);
    let library = fake.add_movies("Movies", movies);
    fake.add_shows("TV Shows", 2, 2, 3);
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_jellyfin(dir.path(), &fake, behaviour, login);
    (fake, library, dir, daemon)
}

#[test]
fn jellyfin_and_emby_changes_reach_the_mirror_for_a_signed_in_user() {
    for behaviour in [Behaviour::Jellyfin10_11, Behaviour::Emby] {
        let (fake, movies, _dir, daemon) = jellyfin_daemon(behaviour, 30, true);
        daemon.wait_until("connected and synced", settled);
        let shows = fake.view_id("TV Shows");
        let admin = fake.state().users.iter().find(|user| user.name == "admin").unwrap().id.clone();
        assert_eq!(
            fake.sockets().subscribers(),
            vec![Some(admin)],
            "{}: the socket is the signed-in user's",
            behaviour.name()
        );

        let mut figures = Vec::new();
        let mut change = |what: &str, act: &dyn Fn(&FakeJellyfin)| {
            let before = settled_count(|| fake.requests());
            let started = Instant::now();
            act(&fake);
            let want = jellyfin_expected(&fake);
            daemon.wait_until(what, |daemon| mirror(daemon) == want);
            daemon.wait_until("the run ends", settled);
            let seconds = started.elapsed().as_secs_f64();
            let requests = settled_count(|| fake.requests()) - before;
            figures.push(format!("{what}: {seconds:.1}s (the server batches 1 s), {requests} requests"));
            requests
        };
        // A few named items are fetched alone: the libraries and one `Ids=`
        // lookup of the library's items, whose answer also proves a
        // removal (the user is kept from the first run).
        let added = change("movie added", &|fake: &FakeJellyfin| {
            fake.add_item(&movies, Kind::Movie, "Arrival", None);
        });
        let edited = change("movie edited", &|fake: &FakeJellyfin| {
            fake.edit_title(&fake.ids(&movies, Kind::Movie)[3], "Edited")
        });
        let removed = change("movie deleted", &|fake: &FakeJellyfin| fake.delete(&fake.ids(&movies, Kind::Movie)[5]));
        let season = fake.ids(&shows, Kind::Season)[0].clone();
        let episode = change("episode added", &|fake: &FakeJellyfin| {
            fake.add_item(&shows, Kind::Episode, "New Episode", Some(&season));
        });
        let show = change("show deleted", &|fake: &FakeJellyfin| fake.delete(&fake.ids(&shows, Kind::Show)[1]));
        println!("notice to mirror ({}): {}", behaviour.name(), figures.join("; "));
        assert_eq!(
            (added, edited, removed, episode, show),
            (2, 2, 2, 2, 2),
            "{}: movie added, edited, deleted, episode added, show deleted",
            behaviour.name()
        );
        // Signed in already (Jellyfin), or no Quick Connect at all (Emby).
        let bearer = format!("Bearer {ADMIN}");
        let quick =
            request(daemon.address, "POST", "/api/servers/home/quick-connect", &[("Authorization", bearer.as_str())]);
        assert_eq!(quick.status, 409, "{}", quick.body);
        let why = if behaviour.is_emby() { "Emby has no Quick Connect" } else { "already receives" };
        assert!(quick.body.contains(why), "{}", quick.body);
    }
}

/// Waits until the page asks for a sign-in and the start's sync is done.
fn signed_out_and_synced(daemon: &Daemon) {
    daemon.wait_until("the sign-in is asked for", |daemon| notifications(daemon)["connection"] == "sign_in_needed");
    daemon.wait_until("synced", |daemon| daemon.status()["servers"][0]["last_success_at"].is_i64());
}

#[test]
fn without_a_sign_in_no_socket_is_opened() {
    let (fake, _, _dir, daemon) = jellyfin_daemon(Behaviour::Jellyfin12, 5, false);
    signed_out_and_synced(&daemon);
    // An API key's session would get no library events: none is opened.
    assert_eq!(fake.sockets().upgrades(), 0);
}

#[test]
fn quick_connect_from_the_page_signs_the_socket_in() {
    // 10.8 starts Quick Connect with a GET, later versions with a POST.
    for behaviour in [Behaviour::Jellyfin10_8, Behaviour::Jellyfin12] {
        let (fake, movies, dir, daemon) = jellyfin_daemon(behaviour, 5, false);
        signed_out_and_synced(&daemon);
        let page = crate::status_server::get(daemon.address, "/").body;
        assert!(page.contains("Sign in with Quick Connect"), "{page}");
        let bearer = format!("Bearer {ADMIN}");
        let start = || {
            request(daemon.address, "POST", "/api/servers/home/quick-connect", &[("Authorization", bearer.as_str())])
        };

        // Turned off on the server: the page says so and what to do.
        fake.state().quick_connect.enabled = false;
        let refused = start();
        assert_eq!(refused.status, 502, "{}", refused.body);
        assert!(refused.body.contains("Quick Connect is disabled"), "{}", refused.body);
        fake.state().quick_connect.enabled = true;

        let started = start();
        assert_eq!(started.status, 200, "{}", started.body);
        let code = serde_json::from_str::<Value>(&started.body).unwrap()["code"].as_str().unwrap().to_string();
        assert_eq!(notifications(&daemon)["quick_connect_code"], code.as_str());
        assert!(crate::status_server::get(daemon.address, "/").body.contains(&code));
        assert_eq!(fake.sockets().upgrades(), 0, "no socket before the code is entered");

        // The user enters the code in a Jellyfin app signed in as alice.
        assert!(fake.authorize_quick_connect(&code, "alice"));
        daemon.wait_until("connected", |daemon| notifications(daemon)["connection"] == "connected");
        let alice = fake.state().users.iter().find(|user| user.name == "alice").unwrap().id.clone();
        assert_eq!(fake.sockets().subscribers(), vec![Some(alice)], "{}: the socket is alice's", behaviour.name());
        let shown = daemon.status().to_string();
        assert!(shown.contains("\"quick_connect_code\":null"), "{shown}");
        let log = std::fs::read_to_string(dir.path().join("config.log")).unwrap();
        let token = fake.state().notifier.tokens().into_iter().next().unwrap();
        assert!(!shown.contains(&token) && !log.contains(&token), "the access token is shown or logged");

        let before = fake.requests();
        fake.add_item(&movies, Kind::Movie, "Arrival", None);
        let want = jellyfin_expected(&fake);
        daemon.wait_until("the addition is mirrored", |daemon| mirror(daemon) == want);
        daemon.wait_until("the run ends", settled);
        println!(
            "{}: signed in by Quick Connect; an addition mirrored with {} requests",
            behaviour.name(),
            fake.requests() - before
        );
        let unknown = request(
            daemon.address,
            "POST",
            "/api/servers/nowhere/quick-connect",
            &[("Authorization", bearer.as_str())],
        );
        assert_eq!(unknown.status, 404);
    }
}

#[test]
fn a_server_a_reload_adds_gets_its_socket() {
    let first = FakePlex::start(TOKEN);
    first.add_movies("Movies", 5);
    let added = FakePlex::start(TOKEN);
    added.add_movies("Movies", 5);
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path(), first.url(), "");
    daemon.wait_until("connected and synced", settled);
    let config = dir.path().join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[[server]]\nname = \"den\"\nkind = \"plex\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\nschedule = \"0 0 3 1 1 *\"\n",
        added.url()
    ));
    std::fs::write(&config, text).unwrap();
    daemon.reload();
    daemon.wait_until("the added server's socket is open", |_| added.sockets().open() == 1);
    assert_eq!(first.sockets().open(), 1, "the first server keeps its one socket");
}
