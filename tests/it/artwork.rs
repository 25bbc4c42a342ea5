//! The artwork mirror as a user runs it (the real binary against the
//! simulated servers, which serve small real PNGs with each server's
//! caching headers): after a sync every item with a marker has exactly one
//! image, holding the server's current poster; an unchanged resync asks for
//! no image, a new poster costs one request, deletions and a full
//! reconcile leave the directory matching the store; a SIGKILL mid-download
//! leaves no torn image; a forced re-check of unchanged images with
//! validators costs only 304s and writes nothing; the budget holds.

use crate::cli::{binary, run};
use crate::support::TOKEN;
use mediasync::artwork::{self, Budget, Pass, Recheck, files};
use mediasync::fake::jellyfin::{Behaviour, FakeJellyfin};
use mediasync::fake::plex::FakePlex;
use mediasync::fake::png::{is_whole_png, poster, scaled};
use mediasync::fake::spotify::{CLIENT_ID, CLIENT_SECRET, FakeSpotify, SCOPES, image_bytes};
use mediasync::source::Stop;
use mediasync::store::Store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const WIDTH: u32 = 300;

/// Cases of the re-check scenario: `MEDIASYNC_ARTWORK_RECHECKS`, fewer under qemu.
fn rechecks() -> usize {
    std::env::var("MEDIASYNC_ARTWORK_RECHECKS").ok().and_then(|value| value.parse().ok()).unwrap_or(1000)
}

fn write_config(dir: &Path, server: &str, artwork: &str) -> PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        "[store]\npath = \"{}\"\n\n[sync]\nretry_delay = \"5ms\"\nretries = 1\n\n[artwork]\nenabled = true\ndir = \"{}\"\nwidth = {WIDTH}\nper_minute = 60000\n{artwork}\n[[server]]\n{server}page_size = 50\n",
        dir.join("catalog.redb").display(),
        dir.join("art").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Replaces `from` with `to` in the config file.
fn edit_config(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains(from), "{from} is not in the config");
    std::fs::write(config, text.replace(from, to)).unwrap();
}

fn plex_server(fake: &FakePlex) -> String {
    format!("name = \"home\"\nkind = \"plex\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n", fake.url())
}

fn jellyfin_server(fake: &FakeJellyfin) -> String {
    format!("name = \"den\"\nkind = \"jellyfin\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n", fake.url())
}

fn sync(config: &Path, args: &[&str]) -> String {
    let output = run(config, &[&["sync"], args].concat());
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// Every file of a server's image directory: name → bytes.
fn files_of(dir: &Path, server: &str) -> BTreeMap<String, Vec<u8>> {
    let dir = files::server_dir(&dir.join("art"), server);
    let Ok(entries) = std::fs::read_dir(&dir) else { return BTreeMap::new() };
    entries
        .map(|entry| entry.unwrap())
        .map(|entry| (entry.file_name().into_string().unwrap(), std::fs::read(entry.path()).unwrap()))
        .collect()
}

/// The names the store asks for: one per item with a marker.
fn stems_in_store(dir: &Path, server: &str) -> Vec<String> {
    thumbs_in_store(dir, server).into_keys().collect()
}

/// The store's image markers by the name each asks for.
fn thumbs_in_store(dir: &Path, server: &str) -> BTreeMap<String, String> {
    let store = Store::open(&dir.join("catalog.redb"), 4 << 20).unwrap();
    let mut stems = BTreeMap::new();
    for (library, state) in store.libraries().unwrap() {
        if state.server != server || state.library_id == mediasync::model::HISTORY {
            continue;
        }
        store
            .for_each_item(library, |stored| {
                if let Some(thumb) = &stored.item.thumb {
                    stems.insert(files::stem(&state.library_id, &stored.item.id, thumb), thumb.clone());
                }
                true
            })
            .unwrap();
    }
    stems
}

/// The directory matches the store name for name, and every image is the
/// server's current poster of some item, each one once.
fn assert_exact(dir: &Path, server: &str, mut posters: Vec<Vec<u8>>) {
    let on_disk = files_of(dir, server);
    let mut stems: Vec<String> = on_disk.keys().map(|name| name.trim_end_matches(".png").to_string()).collect();
    stems.sort();
    assert_eq!(stems, stems_in_store(dir, server), "the directory and the store differ");
    let mut images: Vec<Vec<u8>> = on_disk.into_values().collect();
    images.sort();
    posters.sort();
    assert_eq!(images.len(), posters.len(), "one image per item with a marker");
    assert!(images == posters, "an image is not the server's current poster");
}

fn plex_posters(fake: &FakePlex) -> Vec<Vec<u8>> {
    let (width, height) = scaled(WIDTH);
    let state = fake.state();
    let items = state.sections.iter().flat_map(|section| section.items.iter());
    items.map(|item| poster(&format!("{}:{}", item.rating_key, item.art_at), width, height)).collect()
}

fn jellyfin_posters(fake: &FakeJellyfin) -> Vec<Vec<u8>> {
    let (width, height) = scaled(WIDTH);
    let state = fake.state();
    let items = state.views.iter().flat_map(|view| view.items.iter());
    items.map(|item| poster(&format!("{}:{}", item.id, item.image_at), width, height)).collect()
}

fn photo_requests(fake: &FakePlex) -> usize {
    fake.log().iter().filter(|entry| entry.path == "/photo/:/transcode").count()
}

#[test]
fn plex_artwork_follows_adds_poster_changes_and_deletions() {
    let fake = FakePlex::start(TOKEN);
    let movies = fake.add_movies("Movies", 12);
    fake.add_shows("Shows", 1, 2, 3);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &plex_server(&fake), "");
    let first = sync(&config, &[]);
    assert!(first.contains("home: artwork wanted="), "{first}");
    assert_exact(dir.path(), "home", plex_posters(&fake));
    assert_eq!(photo_requests(&fake), fake.item_count(), "one image request per item");
    let status = run(&config, &["status"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["servers"][0]["artwork"]["files"], fake.item_count());
    assert_eq!(status["servers"][0]["artwork"]["pending"], 0);

    fake.clear_log();
    sync(&config, &[]);
    assert_eq!(photo_requests(&fake), 0, "an unchanged resync asks for no image");

    let keys = fake.keys(&movies, mediasync::model::Kind::Movie);
    fake.replace_art(&keys[0]);
    fake.clear_log();
    sync(&config, &[]);
    assert_eq!(photo_requests(&fake), 1, "a new poster costs one request");
    assert_exact(dir.path(), "home", plex_posters(&fake));

    fake.delete(&keys[1]);
    fake.delete(&keys[2]);
    fake.add_item(&movies, mediasync::model::Kind::Movie, "Arrival", None);
    fake.clear_log();
    sync(&config, &["--full"]);
    assert_eq!(photo_requests(&fake), 1, "only the added movie's image is asked for");
    assert_exact(dir.path(), "home", plex_posters(&fake));
    assert!(!files_of(dir.path(), "home").values().any(|bytes| !is_whole_png(bytes)));

    // `check --artwork` finds a lost image, a stray one and a leftover, and repairs.
    let images = files::server_dir(&dir.path().join("art"), "home");
    let lost = files_of(dir.path(), "home").into_keys().next().unwrap();
    std::fs::remove_file(images.join(&lost)).unwrap();
    std::fs::write(images.join("0123456789abcdef-0123456789abcdef.png"), b"stray").unwrap();
    std::fs::write(images.join(".tmp-torn.png-1"), b"torn").unwrap();
    fake.clear_log();
    let output = run(&config, &["check", "--artwork"]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("missing=1 stale=1 leftovers=1"), "{stdout}");
    assert!(stdout.contains("home: artwork matches the store"), "{stdout}");
    assert_eq!(photo_requests(&fake), 1, "only the lost image is fetched again");
    assert_exact(dir.path(), "home", plex_posters(&fake));
}

#[test]
fn a_sigkill_mid_download_leaves_no_torn_image() {
    let fake = FakePlex::start(TOKEN);
    fake.add_movies("Movies", 150);
    let dir = tempfile::tempdir().unwrap();
    // Wide images take a while to write: the kill lands among them.
    let config = write_config(dir.path(), &plex_server(&fake), "");
    edit_config(&config, "width = 300", "width = 2000");
    fake.state().delay = Duration::from_millis(2);
    let mut child =
        binary().arg("--config").arg(&config).arg("sync").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while photo_requests(&fake) < 20 {
        assert!(Instant::now() < deadline, "the artwork pass never started");
        assert!(child.try_wait().unwrap().is_none(), "the sync ended before the kill");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let after_kill = files_of(dir.path(), "home");
    let images: Vec<_> = after_kill.iter().filter(|(name, _)| !name.starts_with(".tmp-")).collect();
    assert!(!images.is_empty(), "killed before any image was written");
    for (name, bytes) in &images {
        assert!(is_whole_png(bytes), "{name} is torn");
    }
    fake.state().delay = Duration::ZERO;
    fake.clear_log();
    sync(&config, &[]);
    assert_eq!(photo_requests(&fake), fake.item_count() - images.len(), "the rerun resumes: only what is missing");
    let after = files_of(dir.path(), "home");
    assert!(!after.keys().any(|name| name.starts_with(".tmp-")), "leftovers were not cleaned");
    assert_eq!(after.len(), fake.item_count());
    assert!(after.values().all(|bytes| is_whole_png(bytes)));
}

/// A forced re-check of every image through the library, as `mediasync
/// check --artwork --recheck` would.
fn recheck(dir: &Path) -> artwork::ArtworkReport {
    let config = mediasync::config::load(&dir.join("config.toml")).unwrap();
    let store = Store::open(&dir.join("catalog.redb"), 4 << 20).unwrap();
    let stop = Arc::new(Stop::new());
    let artwork = config.artwork.as_ref().unwrap();
    let budget = Budget { deadline: None };
    let pass = Pass { timeout: Duration::from_secs(30), stop: &stop, recheck: Recheck::WithValidators, budget };
    artwork::mirror_server(&store, &config.servers[0], artwork, pass).unwrap()
}

fn modified(dir: &Path, server: &str) -> BTreeMap<String, SystemTime> {
    let dir = files::server_dir(&dir.join("art"), server);
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .map(|entry| (entry.file_name().into_string().unwrap(), entry.metadata().unwrap().modified().unwrap()))
        .collect()
}

#[test]
fn jellyfin_12_rechecks_of_unchanged_images_cost_only_304s() {
    let fake = FakeJellyfin::start(Behaviour::Jellyfin12, TOKEN);
    fake.add_movies("Movies", rechecks());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &jellyfin_server(&fake), "");
    sync(&config, &[]);
    assert_exact(dir.path(), "den", jellyfin_posters(&fake));
    let before = modified(dir.path(), "den");
    let report = recheck(dir.path());
    assert_eq!(report.requests as usize, rechecks());
    assert_eq!(report.not_modified as usize, rechecks(), "{report:?}");
    assert_eq!((report.fetched, report.bytes_written), (0, 0));
    assert_eq!(modified(dir.path(), "den"), before, "a 304 wrote something");
    let stats = artwork::state::load_stats(&files::state_dir(&dir.path().join("art"), "den"));
    assert_eq!(stats.etag_seen as usize, rechecks());
    assert_eq!(stats.not_modified as usize, rechecks());
    assert_eq!(stats.last_modified_seen, 0);

    let ids = fake.ids(&fake.view_id("Movies"), mediasync::model::Kind::Movie);
    fake.replace_image(&ids[0]);
    fake.clear_log();
    sync(&config, &[]);
    let images = fake.log().iter().filter(|entry| entry.path.contains("/Images/")).count();
    assert_eq!(images, 1, "a changed poster costs one request");
    assert_exact(dir.path(), "den", jellyfin_posters(&fake));
}

#[test]
fn jellyfin_10_11_revalidates_by_date_only_for_images_a_year_old() {
    let fake = FakeJellyfin::start(Behaviour::Jellyfin10_11, TOKEN);
    fake.add_movies("Movies", 20);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &jellyfin_server(&fake), "");
    sync(&config, &[]);
    assert_exact(dir.path(), "den", jellyfin_posters(&fake));
    // Its ImageController answers 304 only for an If-Modified-Since over a
    // year old: a recent image is sent again (and written again).
    let fresh = recheck(dir.path());
    assert_eq!((fresh.not_modified, fresh.fetched), (0, 20), "{fresh:?}");
    fake.state().clock += 400 * 86_400;
    let before = modified(dir.path(), "den");
    let old = recheck(dir.path());
    assert_eq!((old.not_modified, old.fetched), (20, 0), "{old:?}");
    assert_eq!(modified(dir.path(), "den"), before);
    let stats = artwork::state::load_stats(&files::state_dir(&dir.path().join("art"), "den"));
    assert_eq!((stats.etag_seen, stats.last_modified_seen), (0, 40));
    assert_eq!((stats.rechecks, stats.not_modified), (40, 20));
}

#[test]
fn the_directory_stays_within_max_mib() {
    let fake = FakePlex::start(TOKEN);
    fake.add_movies("Movies", 12);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &plex_server(&fake), "max_mib = 1\n");
    // 2000 px asks for 200×300 px posters of the fake: 180 KB each.
    edit_config(&config, "width = 300", "width = 2000");
    for pass in 0..2 {
        fake.clear_log();
        sync(&config, &[]);
        let on_disk = files_of(dir.path(), "home");
        let total: usize = on_disk.values().map(Vec::len).sum();
        assert!(total <= 1 << 20, "{total} bytes on disk over a 1 MiB budget");
        assert!(on_disk.len() >= 4, "the budget holds several images: {}", on_disk.len());
        if pass == 1 {
            assert_eq!(photo_requests(&fake), 0, "a full budget costs no request");
        }
    }
    let stats = artwork::state::load_stats(&files::state_dir(&dir.path().join("art"), "home"));
    assert!(stats.budget_full && stats.pending > 0, "{stats:?}");
}

#[test]
fn an_image_cut_off_with_a_consistent_length_is_never_kept() {
    let fake = FakePlex::start(TOKEN);
    fake.add_movies("Movies", 6);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &plex_server(&fake), "");
    fake.fail_path("/photo/:/transcode", mediasync::fake::plex::Failure::Truncated);
    let first = sync(&config, &[]);
    assert!(first.contains("the image was cut off"), "{first}");
    assert!(files_of(dir.path(), "home").is_empty(), "a cut-off image was kept");
    fake.heal();
    sync(&config, &[]);
    assert_exact(dir.path(), "home", plex_posters(&fake));
}

#[test]
fn a_bad_artwork_value_is_refused_before_any_request() {
    let fake = FakePlex::start(TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &plex_server(&fake), "");
    edit_config(&config, "width = 300", "width = 5");
    let output = run(&config, &["sync"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("[artwork] width = 5"));
    assert_eq!(fake.requests(), 0);
}

/// The value of header `name` in an answer's head.
fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_string())
    })
}

#[test]
fn the_status_server_serves_mirrored_artwork_with_revalidation() {
    use crate::daemon::{Daemon, free_address};
    use crate::status_server::request;
    let fake = FakePlex::start(TOKEN);
    let movies = fake.add_movies("Movies", 5);
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let config = write_config(dir.path(), &plex_server(&fake), "");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("\n[status]\nlisten = \"{address}\"\n"));
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::start(&config, address, &[]);
    daemon.wait_until("the artwork is mirrored", |_| files_of(dir.path(), "home").len() == fake.item_count());
    let key = fake.keys(&movies, mediasync::model::Kind::Movie)[0].clone();
    let target = format!("/api/items/home/{movies}/{key}/artwork");
    let first = request(daemon.address, "GET", &target, &[]);
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.head_has("content-type: image/png") && first.head_has("cache-control: no-cache"), "{}", first.head);
    assert!(first.body.starts_with("\u{fffd}PNG"), "not the image");
    let etag = header_value(&first.head, "etag").expect("an ETag");
    let again = request(daemon.address, "GET", &target, &[("If-None-Match", &etag)]);
    assert_eq!((again.status, again.body.as_str()), (304, ""));
    assert_eq!(header_value(&again.head, "etag").as_deref(), Some(etag.as_str()));
    let absent = request(daemon.address, "GET", &format!("/api/items/home/{movies}/999999/artwork"), &[]);
    assert_eq!(absent.status, 404);
    let foreign = format!("GET {target} HTTP/1.1\r\nHost: evil.example\r\n\r\n");
    let refused = crate::status_server::raw(daemon.address, foreign.as_bytes());
    assert_eq!(refused.status, 421, "the Host check applies");
    let feed = request(daemon.address, "GET", "/api/changes?since=0&limit=1000", &[]).json();
    let entry = feed["changes"].as_array().unwrap().iter().find(|change| change["id"] == key.as_str()).unwrap().clone();
    assert_eq!(entry["artwork"]["url"], target.as_str());
    assert_eq!(entry["artwork"]["etag"], etag.as_str(), "the feed names the artwork's tag");
    daemon.wait_until("the status shows the pass", |daemon| daemon.status()["servers"][0]["artwork"]["files"] == 5);
    let page = request(daemon.address, "GET", "/", &[]);
    assert!(page.body.contains("Artwork: 5 of 5 images"), "{}", page.body);
    assert!(page.body.contains(&format!("src=\"/api/items/home/{movies}/")), "no strip: {}", page.body);
    assert!(page.head_has("img-src 'self'"), "{}", page.head);

    // `check --artwork` while the daemon holds the store: the daemon checks
    // and repairs (a sync under way answers 409: asked again after it).
    let images = files::server_dir(&dir.path().join("art"), "home");
    let lost = files_of(dir.path(), "home").into_keys().next().unwrap();
    std::fs::remove_file(images.join(&lost)).unwrap();
    fake.clear_log();
    let deadline = Instant::now() + Duration::from_secs(300);
    let output = loop {
        let output = run(&config, &["check", "--artwork"]);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !stderr.contains("is syncing") || Instant::now() > deadline {
            break output;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("home: artwork wanted=5 on_disk=4 missing=1 stale=0"), "{stdout}");
    assert!(stdout.contains("home: artwork matches the store"), "{stdout}");
    assert!(images.join(&lost).exists(), "the lost image was not fetched again");
    assert_eq!(photo_requests(&fake), 1, "only the lost image is fetched");
    assert!(daemon.terminate().success());
}

fn spotify_server(fake: &FakeSpotify) -> String {
    format!(
        "name = \"music\"\nkind = \"spotify\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\napi_url = \"{}\"\naccounts_url = \"{}\"\n",
        fake.api_url(),
        fake.accounts_url()
    )
}

/// The directory matches the store name for name, and each image is the
/// bytes the fake's CDN serves for the item's marker (its current picture).
fn assert_spotify_exact(dir: &Path) -> BTreeMap<String, String> {
    let thumbs = thumbs_in_store(dir, "music");
    let on_disk = files_of(dir, "music");
    let stems: Vec<&str> = on_disk.keys().map(|name| name.trim_end_matches(".png")).collect();
    assert_eq!(stems, thumbs.keys().map(String::as_str).collect::<Vec<_>>(), "the directory and the store differ");
    for (name, bytes) in &on_disk {
        let thumb = &thumbs[name.trim_end_matches(".png")];
        assert!(image_bytes(thumb).as_ref() == Some(bytes), "{name} is not the picture {thumb} names");
    }
    thumbs
}

/// A fake Spotify with saved tracks and albums (tracks sharing their
/// album's picture), followed artists and playlists, and a config and
/// store whose account is connected to it.
fn spotify_connected() -> (FakeSpotify, tempfile::TempDir, PathBuf) {
    let fake = FakeSpotify::start().unwrap();
    fake.generate(12, 4, 5, 4, 14);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &spotify_server(&fake), "");
    let refresh = fake.issue_refresh_token();
    Store::open(&dir.path().join("catalog.redb"), 4 << 20)
        .unwrap()
        .update_session("music", |session| {
            session.refresh_token = Some(refresh);
            session.scope = Some(SCOPES.into());
        })
        .unwrap();
    (fake, dir, config)
}

fn image_requests(fake: &FakeSpotify) -> u64 {
    fake.state().image_requests
}

#[test]
fn spotify_artwork_follows_the_listed_images_without_the_token() {
    let (fake, dir, config) = spotify_connected();
    let first = sync(&config, &[]);
    assert!(first.contains("music: artwork wanted="), "{first}");
    let thumbs = assert_spotify_exact(dir.path());
    // Items sharing a picture (the tracks of one album, the album itself)
    // share its marker: one request per picture, the rest copied.
    let pictures: std::collections::BTreeSet<&String> = thumbs.values().collect();
    assert!(pictures.len() < thumbs.len(), "no two items share a picture: the copy is not exercised");
    assert_eq!(image_requests(&fake), pictures.len() as u64, "one image request per picture");
    assert!(first.contains(&format!("copied={}", thumbs.len() - pictures.len())), "{first}");
    assert_eq!(fake.state().image_requests_with_credentials, 0, "the token went to the image host");
    // The size closest to the width (300 of 640, 300, 64); a playlist's
    // cover of unknown size, without the query that changes per listing.
    assert!(thumbs.values().all(|thumb| thumb.contains("1e02") || thumb.contains("0000da84")), "{thumbs:?}");
    assert!(thumbs.values().any(|thumb| thumb.contains("0000da84")), "no playlist cover: {thumbs:?}");
    assert!(!thumbs.values().any(|thumb| thumb.contains('?')), "{thumbs:?}");
    // A saved track's picture is its album's.
    let store = Store::open(&dir.path().join("catalog.redb"), 4 << 20).unwrap();
    let mut albums = BTreeMap::new();
    let mut tracks = Vec::new();
    for (library, state) in store.libraries().unwrap() {
        store
            .for_each_item(library, |stored| {
                let item = stored.item;
                match state.library_id.as_str() {
                    "albums" => {
                        albums.insert(item.id, item.thumb);
                    }
                    "tracks" => tracks.push((item.parent_id, item.thumb)),
                    _ => {}
                }
                true
            })
            .unwrap();
    }
    drop(store);
    let of_saved_albums: Vec<_> =
        tracks.iter().filter_map(|(album, thumb)| Some((albums.get(album.as_ref()?)?, thumb))).collect();
    assert!(!of_saved_albums.is_empty(), "no saved track of a saved album");
    assert!(of_saved_albums.iter().all(|(album, track)| album == track && track.is_some()), "{of_saved_albums:?}");
    let status = run(&config, &["status"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["servers"][0]["artwork"]["files"], thumbs.len());

    let before = image_requests(&fake);
    sync(&config, &[]);
    assert_eq!(image_requests(&fake), before, "an unchanged resync asks for no image");

    let artists = fake.followed_artist_ids();
    let artist_stem = |thumbs: &BTreeMap<String, String>, id: &str| {
        let artists = thumbs.iter().filter(|(stem, _)| {
            let artist = files::stem("artists", id, "");
            stem.starts_with(artist.split('-').next().unwrap())
        });
        artists.map(|(stem, _)| stem.clone()).collect::<Vec<_>>()
    };
    let old = artist_stem(&thumbs, &artists[0]);
    assert_eq!(old.len(), 1, "{thumbs:?}");
    fake.replace_artist_image(&artists[0]);
    let before = image_requests(&fake);
    sync(&config, &[]);
    assert_eq!(image_requests(&fake), before + 1, "a changed picture costs one request");
    let thumbs = assert_spotify_exact(dir.path());
    let new = artist_stem(&thumbs, &artists[0]);
    assert_eq!(new.len(), 1);
    assert_ne!(new, old, "the artist's image was not replaced");

    fake.unfollow_artist(&artists[1]);
    let before = image_requests(&fake);
    sync(&config, &[]);
    assert_eq!(image_requests(&fake), before, "a deletion asks for no image");
    let thumbs = assert_spotify_exact(dir.path());
    assert!(artist_stem(&thumbs, &artists[1]).is_empty(), "the unfollowed artist's image stayed");
}

/// `per_minute` spaces the image requests: n requests take at least n - 1
/// intervals, so by the time the sync has ended at most 1 + elapsed /
/// interval can have been sent (an upper bound that holds on any machine).
#[test]
fn per_minute_spaces_the_image_requests() {
    let fake = FakePlex::start(TOKEN);
    fake.add_movies("Movies", 8);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &plex_server(&fake), "");
    edit_config(&config, "per_minute = 60000", "per_minute = 120");
    let interval = Duration::from_millis(500);
    let started = Instant::now();
    sync(&config, &[]);
    let elapsed = started.elapsed();
    let requests = photo_requests(&fake);
    assert_eq!(requests, fake.item_count(), "every image is fetched");
    let most = 1 + elapsed.as_millis() / interval.as_millis();
    assert!(requests as u128 <= most, "{requests} image requests in {elapsed:?}: more than one per {interval:?}");
}

/// A new `width` picks other listed sizes as the listings are read again:
/// followed artists and playlists at the next sync, saved tracks and
/// albums at the next full walk; a playlist's entries keep theirs until the
/// playlist changes (its entries are read again only then). The directory
/// matches the store at every step.
#[test]
fn spotify_a_new_width_picks_other_sizes_as_listings_are_read_again() {
    let (fake, dir, config) = spotify_connected();
    sync(&config, &[]);
    edit_config(&config, "width = 300", "width = 64");
    // Library id and whether the item is a playlist's entry, by its marker's size.
    let sizes = |dir: &Path| {
        let store = Store::open(&dir.join("catalog.redb"), 4 << 20).unwrap();
        let mut sizes = BTreeMap::new();
        for (library, state) in store.libraries().unwrap() {
            store
                .for_each_item(library, |stored| {
                    if let Some(thumb) = &stored.item.thumb {
                        let size = if thumb.contains("4851") {
                            64
                        } else if thumb.contains("1e02") {
                            300
                        } else {
                            0
                        };
                        let entry = stored.item.parent_id.is_some() && state.library_id == "playlists";
                        let entry = entry && stored.item.kind != mediasync::model::Kind::Playlist;
                        *sizes.entry((state.library_id.clone(), entry, size)).or_insert(0) += 1;
                    }
                    true
                })
                .unwrap();
        }
        sizes
    };
    sync(&config, &[]);
    assert_spotify_exact(dir.path());
    let after_sync = sizes(dir.path());
    assert!(after_sync.keys().all(|(library, _, size)| library != "artists" || *size == 64), "{after_sync:?}");
    sync(&config, &["--full"]);
    assert_spotify_exact(dir.path());
    let after_full = sizes(dir.path());
    for ((library, entry, size), count) in &after_full {
        match (library.as_str(), entry) {
            ("playlists", true) => assert!(*size != 64, "{count} entries re-read unchanged: {after_full:?}"),
            ("playlists", false) => assert_eq!(*size, 0, "a playlist cover has no listed size"),
            _ => assert_eq!(*size, 64, "{library}: {after_full:?}"),
        }
    }
    let id = fake.state().playlists[0].id.clone();
    fake.rename_playlist(&id, "Renamed");
    sync(&config, &[]);
    assert_spotify_exact(dir.path());
    let after_edit = sizes(dir.path());
    assert!(after_edit.keys().any(|(_, entry, size)| *entry && *size == 64), "{after_edit:?}");
}

/// The CDN down: the metadata sync is whole, the artwork pass stops at the
/// first failed image and the next sync resumes. Expired URLs (403): each
/// is skipped, none stops the pass, nothing is written.
#[test]
fn spotify_artwork_survives_a_cdn_outage_and_refusals() {
    let (fake, dir, config) = spotify_connected();
    fake.state().image_failure = Some(503);
    let first = sync(&config, &[]);
    assert!(first.contains("HTTP 503; will retry at the next sync"), "{first}");
    assert_eq!(image_requests(&fake), 1, "the pass stops at the first failed image");
    assert!(files_of(dir.path(), "music").is_empty());
    assert!(!thumbs_in_store(dir.path(), "music").is_empty(), "the metadata sync was held up");

    fake.state().image_failure = Some(403);
    let refused = sync(&config, &[]);
    assert!(!refused.contains("stopped:"), "a refused image stopped the pass: {refused}");
    // Nothing is on disk to copy from: every item's image is asked for once.
    let thumbs = thumbs_in_store(dir.path(), "music");
    assert_eq!(image_requests(&fake), 1 + thumbs.len() as u64, "each refused image is asked for once");
    let pictures: std::collections::BTreeSet<&String> = thumbs.values().collect();
    assert!(files_of(dir.path(), "music").is_empty());

    fake.state().image_failure = None;
    let before = image_requests(&fake);
    sync(&config, &[]);
    assert_eq!(image_requests(&fake) - before, pictures.len() as u64, "one request per picture once the CDN answers");
    assert_spotify_exact(dir.path());
}
