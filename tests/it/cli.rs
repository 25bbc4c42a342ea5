//! The binary as a user runs it: config errors before any request, exit
//! codes, export and status output, and a SIGKILL in the middle of the first
//! sync followed by a rerun that finishes exactly.

use crate::support::TOKEN;
use mediasync::fake::plex::FakePlex;
use mediasync::sync::COMMIT_INTERVAL;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test; under emulation (`scripts/cross-build.sh --test`)
/// MEDIASYNC_TEST_RUNNER names the emulator to start it with.
pub fn binary() -> Command {
    let runner = std::env::var("MEDIASYNC_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    let mut command = match words.next() {
        Some(emulator) => {
            let mut command = Command::new(emulator);
            command.args(words).arg(env!("CARGO_BIN_EXE_mediasync"));
            command
        }
        None => Command::new(env!("CARGO_BIN_EXE_mediasync")),
    };
    command.env_remove("MEDIASYNC_CONFIG").env("RUST_LOG", "warn");
    command
}

fn write_config(dir: &Path, url: &str, extra_server: &str) -> PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        "[store]\npath = \"{}\"\n\n[sync]\nretry_delay = \"5ms\"\nretries = 1\n\n[[server]]\nname = \"home\"\nkind = \"plex\"\nurl = \"{url}\"\ntoken = \"{TOKEN}\"\npage_size = 50\n{extra_server}",
        dir.join("catalog.redb").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

pub fn run(config: &Path, args: &[&str]) -> Output {
    binary().arg("--config").arg(config).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn bad_configs_fail_before_any_request() {
    let fake = FakePlex::start(TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("tokn = \"x\"\n", "tokn"),
        ("[[server]]\nname = \"home\"\nkind = \"plex\"\nurl = \"http://a:1\"\ntoken = \"t\"\n", "used twice"),
    ];
    for (extra, expected) in cases {
        let config = write_config(dir.path(), fake.url(), extra);
        let output = run(&config, &["sync"]);
        assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
        assert!(text(&output.stderr).contains(expected), "{}", text(&output.stderr));
    }
    let config = dir.path().join("config.toml");
    let good = std::fs::read_to_string(&config).unwrap();
    for (from, to, expected) in [
        (fake.url().to_string(), "htp:/nowhere".to_string(), "url"),
        (format!("token = \"{TOKEN}\""), String::new(), "missing `token`"),
    ] {
        std::fs::write(&config, good.replace(&from, &to)).unwrap();
        let output = run(&config, &["sync"]);
        assert_eq!(output.status.code(), Some(2));
        assert!(text(&output.stderr).contains(expected), "{}", text(&output.stderr));
    }
    assert_eq!(fake.requests(), 0, "a bad config makes no request");
    let missing = run(&dir.path().join("absent.toml"), &["status"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("cannot read config file"));
}

#[test]
fn config_falls_back_to_the_environment() {
    let fake = FakePlex::start(TOKEN);
    fake.add_movies("Movies", 10);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), fake.url(), "");
    let output = binary().env("MEDIASYNC_CONFIG", &config).arg("sync").output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
}

#[test]
fn sync_export_and_status_as_a_user_sees_them() {
    let fake = FakePlex::start(TOKEN);
    fake.add_library_of(400);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), fake.url(), "");
    let output = run(&config, &["sync"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("home/1 (Movies): mode=full new="), "{stdout}");
    assert!(stdout.contains("requests="), "{stdout}");
    let all_output = format!("{stdout}{}", text(&output.stderr));
    assert!(!all_output.contains(TOKEN), "the token leaked into the output");

    let export = run(&config, &["export", "--server", "home"]);
    assert!(export.status.success());
    let lines: Vec<serde_json::Value> =
        text(&export.stdout).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines.len(), fake.item_count());
    for line in &lines {
        for field in ["server", "library", "id", "kind", "title", "parent_id", "updated_at", "hash"] {
            assert!(line.get(field).is_some(), "missing {field} in {line}");
        }
    }
    let episode = lines.iter().find(|line| line["kind"] == "episode").unwrap();
    assert!(episode["parent_id"].is_string());

    let status = run(&config, &["status"]);
    assert!(status.status.success());
    let document: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    // The watch history syncs first: [1] is the first section.
    let library = &document["servers"][0]["libraries"][1];
    assert_eq!(library["id"], "1");
    assert_eq!(library["state"], "idle");
    assert_eq!(library["last_run"]["mode"], "full");

    let unknown = run(&config, &["sync", "--server", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("no such server"));
}

#[test]
fn failed_sync_exits_non_zero() {
    let fake = FakePlex::start("another-token");
    fake.add_movies("Movies", 10);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), fake.url(), "");
    let output = run(&config, &["sync"]);
    assert_eq!(output.status.code(), Some(1));
    let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert!(all.contains("refused the token"), "{all}");
    assert!(!all.contains(TOKEN));
}

/// A first sync is killed after several commit intervals, with small pages
/// from a slow server: the rerun resumes from the last commit, so it fetches
/// again at most the pages of one interval (those waiting for the cadence's
/// commit, and the one in flight), and the mirror is exact.
#[test]
fn sigkill_during_the_first_sync_then_rerun_is_exact() {
    const DELAY: Duration = Duration::from_millis(100);
    let fake = FakePlex::start(TOKEN);
    fake.add_library_of(3_000);
    fake.state().delay = DELAY;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), fake.url(), "");
    let written = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, written.replace("page_size = 50", "page_size = 10")).unwrap();
    let mut child =
        binary().arg("--config").arg(&config).arg("sync").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Each request takes DELAY at least: 70 of them span three intervals.
    let deadline = Instant::now() + Duration::from_secs(180);
    while fake.requests() < 70 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let first: Vec<(u8, u64)> = fake.log().iter().filter_map(|entry| Some((entry.item_type?, entry.start?))).collect();
    assert!(first.len() >= 60, "the first run was killed too early to prove anything: {} pages", first.len());
    fake.state().delay = Duration::ZERO;
    fake.clear_log();

    let output = run(&config, &["sync"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("mode=resumed"), "{}", text(&output.stdout));
    let second: Vec<(u8, u64)> = fake
        .log()
        .iter()
        .filter(|entry| entry.size != Some(0))
        .filter_map(|entry| Some((entry.item_type?, entry.start?)))
        .collect();
    let refetched = second.iter().filter(|page| first.contains(page)).count();
    // The pages of one interval (each took DELAY at least), the page in
    // flight at the kill, and the one that made the interval's commit due.
    let interval_pages = usize::try_from(COMMIT_INTERVAL.as_millis() / DELAY.as_millis()).unwrap();
    assert!(
        refetched <= interval_pages + 2,
        "{refetched} pages fetched twice (one interval holds {interval_pages}): {second:?}"
    );

    let export = run(&config, &["export"]);
    let mut stored: Vec<(String, String, String)> = text(&export.stdout)
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                value["library"].as_str().unwrap().to_string(),
                value["id"].as_str().unwrap().to_string(),
                value["title"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    stored.sort();
    let mut expected: Vec<(String, String, String)> =
        fake.expected().into_iter().map(|row| (row.library, row.id, row.title)).collect();
    expected.sort();
    assert_eq!(stored, expected);
}

#[test]
fn sync_keeps_the_change_feed_within_max_tombstones() {
    let fake = FakePlex::start(TOKEN);
    fake.add_movies("Movies", 100);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), fake.url(), "");
    let limited = std::fs::read_to_string(&config).unwrap().replace("[sync]", "max_tombstones = 2\n\n[sync]");
    std::fs::write(&config, limited).unwrap();
    assert!(run(&config, &["sync"]).status.success());
    for key in &fake.keys("1", mediasync::model::Kind::Movie)[..5] {
        fake.delete(key);
    }
    let output = run(&config, &["sync"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let store = mediasync::store::Store::open(&dir.path().join("catalog.redb"), 1 << 20).unwrap();
    let deletions = store.changes(0, usize::MAX).unwrap().into_iter().filter(|change| change.deleted).count();
    assert_eq!(deletions, 2, "the newest two deletions are kept");
    assert!(store.compacted_through().unwrap() > 0);
}

/// A one-shot sync that finds nothing changed commits nothing: the store
/// file is left byte for byte as it was (closing a store that committed
/// nothing rewrites only redb's header, with the same bytes), and the
/// status still shows the last run that changed something. A change is
/// synced and recorded as before.
#[test]
fn an_unchanged_one_shot_sync_leaves_the_store_file_as_it_was() {
    let fake = FakePlex::start(TOKEN);
    fake.add_library_of(300);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), fake.url(), "");
    let store = dir.path().join("catalog.redb");
    for round in ["first", "second"] {
        let output = run(&config, &["sync"]);
        assert!(output.status.success(), "{round} sync: {}", text(&output.stderr));
    }
    let settled = std::fs::read(&store).unwrap();
    let last_run = |config: &Path| {
        let status = run(config, &["status"]);
        assert!(status.status.success(), "{}", text(&status.stderr));
        let document: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        document["servers"][0]["libraries"][1]["last_run"].clone()
    };
    let recorded = last_run(&config);
    assert!(recorded.is_object(), "the runs so far are recorded: {recorded}");

    let output = run(&config, &["sync"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("home/1 (Movies): mode=incremental"), "{}", text(&output.stdout));
    assert!(std::fs::read(&store).unwrap() == settled, "an unchanged one-shot sync changed the store file");
    assert_eq!(last_run(&config), recorded, "the status shows the last run that changed something");

    let movie = run(&config, &["export", "--server", "home"]);
    let first_movie: serde_json::Value = text(&movie.stdout)
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|line| line["kind"] == "movie")
        .unwrap();
    let key = first_movie["id"].as_str().unwrap().to_string();
    fake.edit_title(&key, "Renamed by the server");
    let output = run(&config, &["sync"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(std::fs::read(&store).unwrap() != settled, "the change was committed");
    assert_ne!(last_run(&config), recorded, "a run that changed something is recorded");
    let export = text(&run(&config, &["export", "--server", "home"]).stdout);
    assert!(export.contains("Renamed by the server"), "the renamed movie is exported");
    assert_eq!(export.lines().count(), fake.item_count());
}

#[test]
fn an_unchanged_one_shot_spotify_sync_leaves_the_store_file_as_it_was() {
    use mediasync::fake::spotify::{CLIENT_ID, CLIENT_SECRET, FakeSpotify, SCOPES};
    let fake = FakeSpotify::start().unwrap();
    // Followed artists over three pages of 50 and the playlists: walked
    // whole every run.
    fake.generate(60, 10, 120, 6, 20);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("catalog.redb");
    let config = dir.path().join("config.toml");
    let text_of_config = format!(
        "[store]\npath = \"{}\"\n\n[sync]\nretry_delay = \"5ms\"\nretries = 1\n\n[[server]]\nname = \"music\"\nkind = \"spotify\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\napi_url = \"{}\"\naccounts_url = \"{}\"\npage_size = 50\n",
        store.display(),
        fake.api_url(),
        fake.accounts_url()
    );
    std::fs::write(&config, text_of_config).unwrap();
    // Connected from the status page: the refresh token and its scopes.
    {
        let refresh = fake.issue_refresh_token();
        let opened = mediasync::store::Store::open(&store, 1 << 20).unwrap();
        opened
            .update_session("music", |session| {
                session.refresh_token = Some(refresh);
                session.scope = Some(SCOPES.into());
            })
            .unwrap();
    }
    let output = run(&config, &["sync"]);
    assert!(output.status.success(), "first sync: {}", text(&output.stderr));
    let settled = std::fs::read(&store).unwrap();

    let output = run(&config, &["sync"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("music/artists (Followed Artists): mode=full"), "{}", text(&output.stdout));
    assert!(std::fs::read(&store).unwrap() == settled, "an unchanged one-shot sync changed the store file");

    // An artist unfollowed: the walk misses it, the lookup confirms it.
    let artist = fake.state().followed_artists[40].id.clone();
    fake.unfollow_artist(&artist);
    let output = run(&config, &["sync"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(std::fs::read(&store).unwrap() != settled, "the deletion was committed");
    let export = text(&run(&config, &["export", "--server", "music"]).stdout);
    assert!(!export.contains(&format!("\"{artist}\"")), "the unfollowed artist is gone");
    assert_eq!(export.lines().count(), fake.expected().len(), "the mirror is exact");
}
