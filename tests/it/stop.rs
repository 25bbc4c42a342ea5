//! Stopping: a stop ends every wait at once (the regression of issue 12:
//! SIGTERM during a rate-limit wait slept on, the daemon gave up on the
//! sync thread, and the store was never closed, so the next start repaired
//! the whole file before READY). Now SIGTERM or a pause during a long wait
//! sends nothing more, the daemon closes the store, and the next start
//! opens it without a repair; a daemon killed outright shows the contrast.

use crate::daemon::{Daemon, admin, free_address, write_config};
use crate::status_server::request;
use crate::support::TOKEN;
use mediasync::fake::plex::{Failure, FakePlex};
use std::path::{Path, PathBuf};
use std::time::Duration;

const REPAIR: &str = "not closed cleanly";

/// A daemon whose first sync waits out a 15-minute `Retry-After`.
fn waiting_fifteen_minutes() -> (FakePlex, tempfile::TempDir, PathBuf, Daemon) {
    let fake = FakePlex::start(TOKEN);
    fake.add_movies("Movies", 300);
    fake.fail_from(3, Failure::RateLimited(900));
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let config = write_config(dir.path(), fake.url(), address);
    let daemon = Daemon::start(&config, address, &[]);
    daemon
        .wait_until("the sync waits for the rate limit", |daemon| daemon.status()["servers"][0]["state"] == "waiting");
    (fake, dir, config, daemon)
}

fn log_of(config: &Path) -> String {
    std::fs::read_to_string(config.with_extension("log")).unwrap()
}

/// The log of a start of the daemon on `config` (started and stopped).
fn next_start_log(config: &Path) -> String {
    let address = free_address();
    let text = std::fs::read_to_string(config).unwrap();
    let old = text.lines().find(|line| line.starts_with("listen = ")).unwrap().to_string();
    std::fs::write(config, text.replace(&old, &format!("listen = \"{address}\""))).unwrap();
    let daemon = Daemon::start(config, address, &[]);
    assert!(daemon.terminate().success());
    log_of(config)
}

#[test]
fn sigterm_during_a_long_rate_limit_wait_sends_nothing_more_and_closes_the_store() {
    let (fake, _dir, config, daemon) = waiting_fifteen_minutes();
    let sent = fake.requests();
    // `terminate` asserts the exit comes within 10 s.
    assert!(daemon.terminate().success());
    assert_eq!(fake.requests(), sent, "a request was sent after SIGTERM");
    let log = log_of(&config);
    assert!(log.contains("store closed"), "{log}");
    let next = next_start_log(&config);
    assert!(!next.contains(REPAIR), "the next start repaired the store:\n{next}");
}

#[test]
fn a_daemon_killed_mid_wait_leaves_a_store_the_next_start_repairs() {
    let (_fake, _dir, config, daemon) = waiting_fifteen_minutes();
    daemon.kill();
    let next = next_start_log(&config);
    assert!(next.contains(REPAIR), "{next}");
}

#[test]
fn pause_during_a_rate_limit_wait_sends_nothing_more() {
    let (fake, _dir, config, daemon) = waiting_fifteen_minutes();
    let sent = fake.requests();
    let [(name, bearer)] = admin(&config);
    assert_eq!(request(daemon.address, "POST", "/api/servers/home/pause", &[(name, bearer.as_str())]).status, 202);
    daemon.wait_until("the sync stopped", |daemon| daemon.status()["servers"][0]["live"]["syncing"] == false);
    assert_eq!(daemon.status()["servers"][0]["state"], "paused");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fake.requests(), sent, "a request was sent after the pause");
    assert!(daemon.terminate().success());
}
