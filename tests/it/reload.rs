//! `systemctl reload` (SIGHUP) on a running daemon: servers added, changed
//! and removed without a restart, a running sync of a changed server
//! stopped at its page boundary and continued with the new settings, a
//! setting that needs a restart named, and a bad file that changes nothing
//! but says why in the journal (the log) and on the page.

use crate::daemon::{Daemon, admin, free_address, idle_after_success};
use crate::status_server::{config_text, get, request};
use crate::support::TOKEN;
use mediasync::fake::plex::FakePlex;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

fn write(path: &Path, home: &FakePlex, page_size: u32, extra: &str, address: std::net::SocketAddr) {
    let store = path.with_file_name("catalog.redb");
    let text = config_text(&store, home.url(), &format!("{extra}[status]\nlisten = \"{address}\"\n"))
        .replace("page_size = 50", &format!("page_size = {page_size}"));
    std::fs::write(path, text).unwrap();
}

fn server_names(status: &serde_json::Value) -> Vec<String> {
    status["servers"].as_array().unwrap().iter().map(|server| server["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn sighup_adds_changes_and_removes_servers_and_a_bad_file_keeps_the_running_config() {
    let home = FakePlex::start(TOKEN);
    // More than 1,000 movies: the cadence commits (and shows progress)
    // while their walk goes on.
    home.add_library_of(3_000);
    home.state().delay = Duration::from_millis(25);
    let cabin = FakePlex::start(TOKEN);
    cabin.add_movies("Movies", 120);
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let path = dir.path().join("config.toml");
    write(&path, &home, 50, "", address);
    let daemon = Daemon::start(&path, address, &[]);
    let pid = daemon.pid();
    daemon.wait_until("home syncs", |daemon| {
        daemon.status()["servers"][0]["libraries"]
            .as_array()
            .is_some_and(|libraries| libraries.iter().any(|library| library["progress"]["done"].as_u64() > Some(0)))
    });

    // home's page size changes mid-sync, and cabin is added.
    let cabin_entry =
        format!("[[server]]\nname = \"cabin\"\nkind = \"plex\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n", cabin.url());
    write(&path, &home, 100, &cabin_entry, address);
    home.clear_log();
    daemon.reload();
    daemon.wait_until("both servers listed", |daemon| server_names(&daemon.status()) == ["home", "cabin"]);
    home.state().delay = Duration::ZERO;
    daemon.wait_until("both servers synced", idle_after_success);
    let status = daemon.status();
    let reload = &status["daemon"]["reload"];
    assert_eq!(
        (&reload["added"], &reload["changed"], &reload["removed"]),
        (&json!(["cabin"]), &json!(["home"]), &json!([]))
    );
    let home_status = &status["servers"][0];
    assert!(
        home_status["live"]["runs"].as_u64() >= Some(2),
        "the changed server's sync was not stopped: {home_status}"
    );
    let modes: Vec<&str> = home_status["libraries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|library| library["last_run"]["mode"].as_str())
        .collect();
    assert!(modes.contains(&"resumed"), "the stopped sync did not resume from its page: {modes:?}");
    // The page in flight at the reload may have the old size; every page
    // after the first of the new size has the new one (a page after a
    // kind's first asks one entry more: the last one of the page before).
    let sizes: Vec<u64> = home.log().iter().filter_map(|entry| entry.size).filter(|size| *size != 0).collect();
    let new_size = |size: &u64| *size == 100 || *size == 101;
    let first_new = sizes.iter().position(new_size).expect("the new page size is not in use");
    assert!(sizes[first_new..].iter().all(new_size), "the old page size after the new one: {sizes:?}");

    // cabin removed, and a setting the running service cannot change.
    write(&path, &home, 100, "[daemon]\nmax_concurrent_syncs = 2\n", address);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}hostnames = [\"pi.home.arpa\"]\n")).unwrap();
    daemon.reload();
    daemon.wait_until("cabin gone", |daemon| server_names(&daemon.status()) == ["home"]);
    let reload = daemon.status()["daemon"]["reload"].clone();
    assert_eq!(reload["removed"], json!(["cabin"]));
    assert_eq!(reload["needs_restart"], json!(["[status] hostnames", "[daemon] max_concurrent_syncs"]));
    assert_eq!(daemon.status()["daemon"]["max_concurrent_syncs"], 1, "the running value stays until a restart");
    assert!(get(address, "/").body.contains("max_concurrent_syncs changed, which applies after"));
    let [(name, bearer)] = admin(&path);
    let admin = [(name, bearer.as_str())];
    assert_eq!(request(address, "POST", "/api/servers/cabin/sync", &admin).status, 404);

    // A bad file: nothing changes, and the page and the log say why.
    std::fs::write(&path, std::fs::read_to_string(&path).unwrap().replace(TOKEN, "your-plex-token")).unwrap();
    daemon.reload();
    daemon.wait_until("the refusal shows", |daemon| daemon.status()["daemon"]["reload"]["refused"].is_string());
    let status = daemon.status();
    let refused = status["daemon"]["reload"]["refused"].as_str().unwrap().to_string();
    assert!(
        refused.contains("\"home\"") && refused.contains("`token` is still the example's placeholder"),
        "{refused}"
    );
    assert_eq!(server_names(&status), ["home"]);
    let page = get(address, "/").body;
    assert!(page.contains("The config was not reloaded") && page.contains("previous config keeps running"), "{page}");
    assert_eq!(
        request(address, "POST", "/api/servers/home/sync", &admin).status,
        202,
        "the running config still syncs"
    );
    assert_eq!(daemon.pid(), pid, "reloads never restart the process");
    assert!(daemon.terminate().success());
    let log = std::fs::read_to_string(path.with_extension("log")).unwrap();
    assert!(log.contains("reload: config ") && log.contains("the previous config keeps running"), "{log}");
    assert!(!log.contains(TOKEN), "the token leaked into the log");
}
