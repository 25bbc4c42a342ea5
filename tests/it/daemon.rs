//! `mediasync run` as systemd runs it: READY after the store opened and a
//! fed watchdog; `status`, `export` and `sync` going through the running
//! daemon instead of failing on the store lock (the last two with the
//! admin token the daemon generated, which `admin-token` prints); SIGTERM
//! in the middle of a first sync: a prompt clean exit, a checkpoint left in
//! the store, and a restart that resumes from it to an exact mirror; the
//! packaged config unedited (no server, READY, the page says how to add
//! one); and a media server that comes up after the daemon, synced by a
//! retry rather than at the next scheduled slot. The `Daemon` fixture
//! serves `reload` and `check` too.

use crate::status_server::{config_text, get, request};
use crate::support::TOKEN;
use mediasync::fake::plex::FakePlex;
use mediasync::store::Store;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

pub struct Daemon {
    child: Child,
    pub address: SocketAddr,
}

impl Daemon {
    pub fn start(config: &Path, address: SocketAddr, env: &[(&str, &str)]) -> Daemon {
        let log = std::fs::File::create(config.with_extension("log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_mediasync"));
        command.env_remove("MEDIASYNC_CONFIG").env("RUST_LOG", "info").arg("--config").arg(config).arg("run");
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.stdout(Stdio::null()).stderr(log).spawn().unwrap();
        let daemon = Daemon { child, address };
        daemon.wait_until("the status server answers", |daemon| {
            std::net::TcpStream::connect(daemon.address).is_ok() && get(daemon.address, "/healthz").status == 200
        });
        daemon
    }

    pub fn status(&self) -> serde_json::Value {
        get(self.address, "/api/status").json()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGHUP: `systemctl reload`.
    pub fn reload(&self) {
        let sent = Command::new("kill").arg("-HUP").arg(self.child.id().to_string()).status().unwrap();
        assert!(sent.success());
    }

    pub fn wait_until(&self, what: &str, mut done: impl FnMut(&Daemon) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// SIGTERM, then the exit status (it must come within a few seconds).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let killed = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        assert!(killed.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(started.elapsed() < Duration::from_secs(10), "exit took {:?}", started.elapsed());
                return status;
            }
            assert!(started.elapsed() < Duration::from_secs(15), "the daemon ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Daemon {
    /// SIGKILL, as a daemon that never closed its store leaves it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn write_config(dir: &Path, url: &str, address: SocketAddr) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let text = config_text(&dir.join("catalog.redb"), url, &format!("[status]\nlisten = \"{address}\"\n"));
    std::fs::write(&path, text).unwrap();
    path
}

pub fn cli(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mediasync"))
        .env_remove("MEDIASYNC_CONFIG")
        .env("RUST_LOG", "warn")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

/// `Authorization` for the daemon's controls: the token it generated next
/// to the store at its start (the config sets none).
pub fn admin(config: &Path) -> [(&'static str, String); 1] {
    let config = mediasync::config::load(config).unwrap();
    let token = mediasync::app::admin_token::read(&config).unwrap().expect("the daemon generated its token");
    [("Authorization", format!("Bearer {token}"))]
}

fn syncing_with_progress(status: &serde_json::Value) -> bool {
    status["servers"][0]["libraries"]
        .as_array()
        .is_some_and(|libraries| libraries.iter().any(|library| library["progress"]["done"].as_u64() > Some(0)))
}

/// A daemon in the middle of its first sync of a slow fake's library. The
/// progress shown is the last commit's: a full pass commits on the cadence
/// (1,000 items or 2 s), so with fewer than 1,000 movies it would show only
/// once their walk ended.
fn mid_first_sync(items: usize) -> (FakePlex, tempfile::TempDir, std::path::PathBuf, Daemon) {
    let fake = FakePlex::start(TOKEN);
    fake.add_library_of(items);
    fake.state().delay = Duration::from_millis(25);
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let config = write_config(dir.path(), fake.url(), address);
    let daemon = Daemon::start(&config, address, &[]);
    daemon.wait_until("a sync is under way", |daemon| syncing_with_progress(&daemon.status()));
    (fake, dir, config, daemon)
}

/// Whether every server the daemon lists synced and is idle.
pub fn idle_after_success(daemon: &Daemon) -> bool {
    let status = daemon.status();
    let servers = status["servers"].as_array().unwrap();
    !servers.is_empty() && servers.iter().all(|server| server["state"] == "idle" && server["last_success_at"].is_i64())
}

/// Asserts that `mediasync export --server NAME` prints exactly the items
/// the fake lists (by library and id).
pub fn assert_export_exact(config: &Path, server: &str, fake: &FakePlex) {
    let export = cli(config, &["export", "--server", server]);
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let mut exported: Vec<(String, String)> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            (value["library"].as_str().unwrap().to_string(), value["id"].as_str().unwrap().to_string())
        })
        .collect();
    exported.sort();
    let mut expected: Vec<(String, String)> = fake.expected().into_iter().map(|row| (row.library, row.id)).collect();
    expected.sort();
    assert_eq!(exported, expected, "the mirror of {server} is not exact");
}

/// The mode of each library's last run.
fn last_modes(status: &serde_json::Value) -> Vec<String> {
    status["servers"][0]["libraries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|library| library["last_run"]["mode"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn sigterm_mid_sync_leaves_a_checkpoint_and_a_restart_resumes_it() {
    let (fake, dir, config, daemon) = mid_first_sync(3_000);
    let address = daemon.address;
    let page = get(address, "/");
    assert!(page.body.contains("<progress") && page.body.contains("http-equiv=refresh"), "{}", page.body);
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");

    let store = Store::open(&dir.path().join("catalog.redb"), 1 << 20).unwrap();
    let libraries = store.libraries().unwrap();
    assert!(libraries.iter().any(|(_, state)| state.checkpoint.is_some()), "no checkpoint left: {libraries:#?}");
    let stored_before = store.item_count().unwrap();
    assert!(stored_before > 0 && (stored_before as usize) < fake.item_count());
    drop(store);

    fake.state().delay = Duration::ZERO;
    let daemon = Daemon::start(&config, address, &[]);
    daemon.wait_until("the resumed sync finished", idle_after_success);
    let modes = last_modes(&daemon.status());
    assert!(modes.iter().any(|mode| mode == "resumed"), "no library resumed: {modes:?}");

    // The one-shot commands go through the running daemon.
    let printed = cli(&config, &["status"]);
    assert!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
    let document: serde_json::Value = serde_json::from_slice(&printed.stdout).unwrap();
    assert!(document["daemon"]["started_at"].is_i64(), "status did not come from the daemon");
    assert_export_exact(&config, "home", &fake);
    let sync = cli(&config, &["sync", "--full"]);
    assert!(sync.status.success(), "{}", String::from_utf8_lossy(&sync.stderr));
    assert!(String::from_utf8_lossy(&sync.stdout).contains("requested from the running daemon"));
    // `admin-token` prints the token the daemon generated; it is never logged.
    let printed = cli(&config, &["admin-token"]);
    assert!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
    let admin_token = String::from_utf8_lossy(&printed.stdout).trim().to_string();
    assert_eq!(admin(&config)[0].1, format!("Bearer {admin_token}"));
    let log = std::fs::read_to_string(config.with_extension("log")).unwrap();
    assert!(!log.contains(TOKEN), "the token leaked into the log");
    assert!(!log.contains(&admin_token), "the admin token leaked into the log");
    assert!(log.contains("admin-token"), "the log does not say where the admin token is:\n{log}");
    assert!(log.contains("home/1 (Movies): mode="), "no summary line per library:\n{log}");
    assert!(daemon.terminate().success());
}

/// `sync --force` used to be dropped on its way to a running daemon: a real
/// mass deletion was refused on every run, and every run became a full pass.
#[test]
fn sync_force_reaches_a_running_daemon_and_allows_the_refused_deletion() {
    let fake = FakePlex::start(TOKEN);
    fake.add_movies("Movies", 400);
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let config = write_config(dir.path(), fake.url(), address);
    let daemon = Daemon::start(&config, address, &[]);
    daemon.wait_until("the first sync finished", idle_after_success);
    for key in &fake.keys("1", mediasync::model::Kind::Movie)[..300] {
        fake.delete(key);
    }
    // The Movies section (key 1); the watch history is a library too.
    let movies = |daemon: &Daemon| {
        let status = daemon.status();
        let libraries = status["servers"][0]["libraries"].as_array().cloned().unwrap_or_default();
        libraries.into_iter().find(|library| library["id"] == "1").unwrap_or_default()
    };
    let refused = |daemon: &Daemon| movies(daemon)["refused"].clone();
    let sync = cli(&config, &["sync"]);
    assert!(sync.status.success(), "{}", String::from_utf8_lossy(&sync.stderr));
    daemon.wait_until("the guard refused the deletion", |daemon| refused(daemon)["items"] == 300);
    assert_eq!(refused(&daemon)["stored"], 400);
    let page = get(address, "/").body;
    assert!(
        page.contains("Allow the deletions") && page.contains("sync?force=1") && page.contains("confirm("),
        "the page offers to allow it, after asking: {page}"
    );

    let forced = cli(&config, &["sync", "--force"]);
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    assert!(
        String::from_utf8_lossy(&forced.stdout).contains("may delete"),
        "{}",
        String::from_utf8_lossy(&forced.stdout)
    );
    daemon.wait_until("the forced sync deleted them", |daemon| {
        let library = movies(daemon);
        library["items"] == 100 && library["refused"].is_null()
    });
    assert!(daemon.terminate().success());
}

#[test]
fn ready_and_watchdog_reach_systemd() {
    let fake = FakePlex::start(TOKEN);
    fake.add_movies("Movies", 20);
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let address = free_address();
    let config = write_config(dir.path(), fake.url(), address);
    let before = cli(&config, &["admin-token"]);
    assert!(!before.status.success());
    let said = String::from_utf8_lossy(&before.stderr);
    assert!(said.contains("no admin token yet") && said.contains("admin-token"), "{said}");
    let daemon = Daemon::start(
        &config,
        address,
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap()), ("WATCHDOG_USEC", "200000")],
    );
    let mut received = Vec::new();
    let mut buffer = [0u8; 256];
    while !received.iter().any(|message: &String| message == "WATCHDOG=1") {
        let length = socket.recv(&mut buffer).expect("no notification from the daemon");
        received.push(String::from_utf8_lossy(&buffer[..length]).into_owned());
    }
    assert_eq!(received[0], "READY=1", "{received:?}");
    assert!(daemon.terminate().success());
    let mut last = String::new();
    while let Ok(length) = socket.recv(&mut buffer) {
        last = String::from_utf8_lossy(&buffer[..length]).into_owned();
        if last == "STOPPING=1" {
            break;
        }
    }
    assert_eq!(last, "STOPPING=1");
}

#[test]
fn servers_take_turns_with_one_sync_slot() {
    let home = FakePlex::start(TOKEN);
    home.add_library_of(800);
    let cabin = FakePlex::start(TOKEN);
    cabin.add_library_of(800);
    for fake in [&home, &cabin] {
        fake.state().delay = Duration::from_millis(25);
    }
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let path = dir.path().join("config.toml");
    let second = format!(
        "[[server]]\nname = \"cabin\"\nkind = \"plex\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\npage_size = 50\n[status]\nlisten = \"{address}\"\n",
        cabin.url()
    );
    std::fs::write(&path, config_text(&dir.path().join("catalog.redb"), home.url(), &second)).unwrap();
    let daemon = Daemon::start(&path, address, &[]);
    let mut saw_queued = false;
    daemon.wait_until("both servers synced", |daemon| {
        let status = daemon.status();
        let servers = status["servers"].as_array().unwrap();
        let syncing = servers.iter().filter(|server| server["state"] == "syncing").count();
        assert!(syncing <= 1, "two syncs at once with max_concurrent_syncs = 1: {status}");
        saw_queued |= servers.iter().any(|server| server["state"] == "queued");
        servers.iter().all(|server| server["last_success_at"].is_i64() && server["state"] == "idle")
    });
    assert!(saw_queued, "the second server never waited for the slot");
    // Both were due at start (never synced); neither is due again until its
    // staggered slot, minute 10 and minute 14 of every 12 hours.
    let status = daemon.status();
    assert_eq!(status["servers"][0]["schedule"], "0 10 0,12 * * *");
    assert_eq!(status["servers"][1]["schedule"], "0 14 0,12 * * *");
    for server in status["servers"].as_array().unwrap() {
        assert_eq!(server["live"]["runs"], 1, "{server}");
        assert!(server["live"]["next_run_at"].as_i64() > status["daemon"]["now"].as_i64());
    }
    assert!(daemon.terminate().success());

    // Restarted at once, both are fresh: nothing syncs until their slots.
    let daemon = Daemon::start(&path, address, &[]);
    std::thread::sleep(Duration::from_millis(500));
    for server in daemon.status()["servers"].as_array().unwrap() {
        assert_eq!(server["state"], "idle", "{server}");
        assert_eq!(server["live"]["runs"], 0, "a fresh server synced at start: {server}");
    }
    assert!(daemon.terminate().success());
}

#[test]
fn sigterm_while_a_request_hangs_still_exits_promptly() {
    let fake = FakePlex::start(TOKEN);
    fake.add_movies("Movies", 10);
    fake.state().delay = Duration::from_secs(40);
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let config = write_config(dir.path(), fake.url(), address);
    let daemon = Daemon::start(&config, address, &[]);
    daemon.wait_until("the sync started", |daemon| daemon.status()["servers"][0]["state"] == "syncing");
    // `terminate` asserts the exit comes within 10 s.
    assert!(daemon.terminate().success());
    let store = Store::open(&dir.path().join("catalog.redb"), 1 << 20).unwrap();
    assert_eq!(store.item_count().unwrap(), 0);
}

#[test]
fn a_rate_limit_wait_shows_until_when() {
    let fake = FakePlex::start(TOKEN);
    fake.add_movies("Movies", 300);
    fake.fail_at(3, mediasync::fake::plex::Failure::RateLimited(3));
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let config = write_config(dir.path(), fake.url(), address);
    let daemon = Daemon::start(&config, address, &[]);
    daemon
        .wait_until("the sync waits for the rate limit", |daemon| daemon.status()["servers"][0]["state"] == "waiting");
    let status = daemon.status();
    let server = &status["servers"][0];
    assert_eq!(server["live"]["waiting_for"], "the server's rate limit");
    assert!(server["live"]["waiting_until"].as_i64() > status["daemon"]["now"].as_i64());
    let page = get(address, "/").body;
    assert!(page.contains("Waiting for the server&#39;s rate limit until"), "{page}");
    daemon.wait_until("the sync finished after the wait", idle_after_success);
    assert!(daemon.status()["servers"][0]["live"]["waiting_until"].is_null());
    assert!(daemon.terminate().success());
}

#[test]
fn pause_stops_a_running_sync_and_resume_with_sync_now_finishes_it() {
    let (fake, _dir, config, daemon) = mid_first_sync(3_000);
    let address = daemon.address;
    let [(name, bearer)] = admin(&config);
    let admin = [(name, bearer.as_str())];
    assert_eq!(request(address, "POST", "/api/servers/home/pause", &[]).status, 401, "loopback alone is not enough");
    let reset = request(address, "POST", "/api/servers/home/reset", &admin);
    assert_eq!(reset.status, 409, "a reset must not overlap a sync: {}", reset.body);
    assert_eq!(request(address, "POST", "/api/servers/home/pause", &admin).status, 202);
    daemon.wait_until("the sync stopped at a page boundary", |daemon| {
        daemon.status()["servers"][0]["live"]["syncing"] == false
    });
    let status = daemon.status();
    assert_eq!(status["servers"][0]["state"], "paused");
    let libraries = status["servers"][0]["libraries"].as_array().unwrap().clone();
    assert!(libraries.iter().any(|library| library["checkpoint"].is_object()), "no checkpoint kept: {libraries:#?}");
    // A request sent just before the pause is counted once the fake has
    // waited its delay: let it land first.
    std::thread::sleep(Duration::from_millis(300));
    let requests = fake.requests();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fake.requests(), requests, "a paused server is still being synced");

    assert_eq!(request(address, "POST", "/api/servers/home/resume", &admin).status, 202);
    fake.state().delay = Duration::ZERO;
    assert_eq!(request(address, "POST", "/api/servers/home/sync", &admin).status, 202);
    daemon.wait_until("the resumed sync finished", idle_after_success);
    let modes = last_modes(&daemon.status());
    assert!(modes.iter().any(|mode| mode == "resumed"), "{modes:?}");
    // A reset waits out a check the scheduler may run after the success
    // (409 meanwhile).
    daemon.wait_until("the reset is accepted", |_| {
        request(address, "POST", "/api/servers/home/reset", &admin).status == 202
    });
    assert!(daemon.terminate().success());
}

#[test]
fn the_demo_syncs_its_simulated_servers_and_cleans_up() {
    let address = free_address();
    let child = Command::new(env!("CARGO_BIN_EXE_mediasync"))
        .env_remove("MEDIASYNC_CONFIG")
        .env("RUST_LOG", "warn")
        .args(["demo", "--items", "300", "--listen", &address.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let store_dir = std::env::temp_dir().join(format!("mediasync-demo-{}", child.id()));
    let demo = Daemon { child, address };
    demo.wait_until("the demo answers", |demo| {
        std::net::TcpStream::connect(demo.address).is_ok() && get(demo.address, "/healthz").status == 200
    });
    assert!(store_dir.join("demo.redb").exists(), "the demo store is not where expected");
    demo.wait_until("both simulated servers synced", |demo| {
        let status = demo.status();
        status["servers"].as_array().unwrap().iter().all(|server| server["last_success_at"].is_i64())
    });
    let status = demo.status();
    let kinds: Vec<&str> =
        status["servers"].as_array().unwrap().iter().filter_map(|server| server["kind"].as_str()).collect();
    assert_eq!(kinds, ["plex", "jellyfin"]);
    assert!(demo.terminate().success());
    assert!(!store_dir.exists(), "the demo left its temporary store behind");
}

/// Issue 14: a media server that was not up when the daemon started (a NAS
/// boots slower than a Pi) waited for the next scheduled slot, up to 12
/// hours. A failed run is now retried with its own backoff, shown with its
/// reason, and the first sync follows soon after the server comes up.
#[test]
fn a_server_that_comes_up_after_the_daemon_is_synced_by_a_retry_not_at_the_next_slot() {
    let plex_address = free_address();
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let path = dir.path().join("config.toml");
    let extra =
        format!("[status]\nlisten = \"{address}\"\n[daemon]\nretry_backoff = \"300ms\"\nretry_backoff_max = \"2s\"\n");
    std::fs::write(&path, config_text(&dir.path().join("catalog.redb"), &format!("http://{plex_address}"), &extra))
        .unwrap();
    let daemon = Daemon::start(&path, address, &[]);
    // Between runs: a run in progress shows as syncing.
    let mut status = serde_json::Value::Null;
    daemon.wait_until("two failed runs, a retry planned", |daemon| {
        status = daemon.status();
        let server = &status["servers"][0];
        server["live"]["retry"]["failures"].as_u64() >= Some(2) && server["state"] == "failed"
    });
    let server = &status["servers"][0];
    let retry = &server["live"]["retry"];
    assert!(retry["reason"].as_str().is_some_and(|reason| reason.contains("home")), "{retry}");
    let now = status["daemon"]["now"].as_i64().unwrap();
    assert!(retry["at"].as_i64().unwrap() <= now + 3, "the retry is within the 2 s cap: {retry}");
    assert_eq!(server["live"]["next_run_at"], retry["at"], "the retry, not the 12-hour slot, is the next run");
    assert_eq!(server["live"]["check"]["reachable"], false, "the check at start: {server}");
    let page = get(address, "/").body;
    assert!(page.contains("Next retry:") && page.contains("failed runs in a row"), "{page}");
    assert!(page.contains("Failed: ") || page.contains("in a row: "), "the page says why: {page}");

    let fake = FakePlex::start_on(&plex_address.to_string(), TOKEN).unwrap();
    fake.add_library_of(600);
    // A success clears the retry, and the server is checked again.
    daemon.wait_until("the first sync after the server came up, the retry gone, checked again", |daemon| {
        let status = daemon.status();
        let live = &status["servers"][0]["live"];
        idle_after_success(daemon) && live["retry"].is_null() && live["check"]["reachable"] == true
    });
    assert_export_exact(&path, "home", &fake);
    assert!(daemon.terminate().success());
}

/// The packaged config as installed, before any edit: the daemon starts
/// (READY) with no server, says so on the page and how to add one, and the
/// one-shot commands say the same; then an added server and a reload sync
/// it without a restart.
#[test]
fn the_unedited_packaged_config_syncs_nothing_until_a_server_is_added_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/mediasync.example.toml")).unwrap();
    let store = dir.path().join("catalog.redb");
    let unedited = example
        .replace("/var/lib/mediasync/mediasync.redb", store.to_str().unwrap())
        .replace("# listen = \"127.0.0.1:8787\"", &format!("listen = \"{address}\""));
    let path = dir.path().join("config.toml");
    std::fs::write(&path, &unedited).unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let daemon = Daemon::start(&path, address, &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())]);
    let mut buffer = [0u8; 64];
    let length = socket.recv(&mut buffer).expect("no READY from a daemon without servers");
    assert_eq!(&buffer[..length], b"READY=1");
    assert_eq!(daemon.status()["servers"], serde_json::json!([]));
    let page = get(address, "/").body;
    assert!(page.contains("No media server is configured") && page.contains("systemctl reload mediasync"), "{page}");
    for command in ["check", "sync"] {
        let output = cli(&path, &[command]);
        assert_eq!(output.status.code(), Some(2), "{command}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("no media server is configured"), "{command}");
    }

    let fake = FakePlex::start(TOKEN);
    fake.add_movies("Movies", 40);
    let server =
        format!("\n[[server]]\nname = \"home\"\nkind = \"plex\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n", fake.url());
    std::fs::write(&path, format!("{unedited}{server}")).unwrap();
    daemon.reload();
    daemon.wait_until("the added server synced", idle_after_success);
    let status = daemon.status();
    assert_eq!(status["daemon"]["reload"]["added"], serde_json::json!(["home"]));
    assert_export_exact(&path, "home", &fake);
    assert!(daemon.terminate().success());
}
