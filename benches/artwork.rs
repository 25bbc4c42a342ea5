//! What the artwork mirror costs: the release binary's `sync` with
//! `[artwork]` on against the simulated servers (Plex's transcoder without
//! validators, Jellyfin 12 with `ETag`, Jellyfin 10.11 with `Last-Modified`,
//! Spotify's CDN: listed sizes, pictures shared by an album's tracks), each
//! in this process. Prints, per server: image requests and bytes
//! written by the first sync, by an unchanged resync, by a resync after
//! some posters changed (and bytes written per changed image), and by a
//! forced re-check (`check --artwork --recheck`) of the unchanged images
//! (304s, bytes written).
//!
//! Run: `cargo bench --bench artwork` (items per server:
//! MEDIASYNC_BENCH_ARTWORK_ITEMS, default 2000; changed posters: a
//! hundredth of them, at least 1; Spotify: that many saved tracks, a tenth
//! as many saved albums and followed artists, whose pictures change).

#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "benchmark harness: a panic is a failed run, and sizes and figures are small and known"
)]

mod common;

use common::binary;
use mediasync::fake::jellyfin::{Behaviour, FakeJellyfin};
use mediasync::fake::plex::FakePlex;
use mediasync::fake::spotify::{CLIENT_ID, CLIENT_SECRET, FakeSpotify, SCOPES};
use mediasync::model::Kind;
use std::path::Path;
use std::time::Instant;

const TOKEN: &str = "bench-token";

/// The figures of one command's artwork line.
#[derive(Default, Debug)]
struct Line {
    fetched: u64,
    copied: u64,
    bytes_written: u64,
    not_modified: u64,
    requests: u64,
}

fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(&format!("{name}=")))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

fn artwork_line(config: &Path, args: &[&str]) -> (Line, f64) {
    let started = Instant::now();
    let output = binary("error").arg("--config").arg(config).args(args).output().expect("the binary runs");
    let seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line =
        stdout.lines().find(|line| line.contains(": artwork wanted=") && line.contains("fetched=")).unwrap_or("");
    assert!(!line.is_empty(), "no artwork line: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    let parsed = Line {
        fetched: field(line, "fetched"),
        copied: field(line, "copied"),
        bytes_written: field(line, "bytes_written"),
        not_modified: field(line, "not_modified"),
        requests: field(line, "requests"),
    };
    (parsed, seconds)
}

fn write_config(dir: &Path, server: &str, page_size: u32) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        "[store]\npath = \"{}\"\n[artwork]\nenabled = true\ndir = \"{}\"\nper_minute = 60000\n[[server]]\n{server}page_size = {page_size}\n",
        dir.join("catalog.redb").display(),
        dir.join("art").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn print(server: &str, step: &str, line: &Line, seconds: f64, changed: u64) {
    let per_image = line.bytes_written.checked_div(changed).unwrap_or(0);
    println!(
        "{server:<16} {step:<22} image_requests={:<6} fetched={:<6} copied={:<6} not_modified={:<6} bytes_written={:<10} bytes_per_changed_image={:<7} {seconds:.2}s",
        line.requests, line.fetched, line.copied, line.not_modified, line.bytes_written, per_image
    );
}

/// The four steps against one server; `change` replaces `count` posters.
fn run(server: &str, config: &Path, change: &dyn Fn(usize), count: usize) {
    let (first, seconds) = artwork_line(config, &["sync"]);
    print(server, "first sync", &first, seconds, first.fetched + first.copied);
    let (unchanged, seconds) = artwork_line(config, &["sync"]);
    print(server, "unchanged resync", &unchanged, seconds, 0);
    change(count);
    let (changed, seconds) = artwork_line(config, &["sync"]);
    print(server, &format!("{count} posters changed"), &changed, seconds, count as u64);
    let (recheck, seconds) = artwork_line(config, &["check", "--artwork", "--recheck"]);
    print(server, "forced re-check", &recheck, seconds, 0);
}

fn main() {
    let items: usize =
        std::env::var("MEDIASYNC_BENCH_ARTWORK_ITEMS").ok().and_then(|value| value.parse().ok()).unwrap_or(2000);
    let changes = (items / 100).max(1);
    println!("artwork mirror: {items} items per server, width 300 (the fakes answer a tenth: 30×45 px PNGs)");

    let plex = FakePlex::start(TOKEN);
    let movies = plex.add_movies("Movies", items);
    let dir = tempfile::tempdir().unwrap();
    let server = format!("name = \"plex\"\nkind = \"plex\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n", plex.url());
    let config = write_config(dir.path(), &server, 500);
    let keys = plex.keys(&movies, Kind::Movie);
    run("plex", &config, &|count| keys.iter().take(count).for_each(|key| plex.replace_art(key)), changes);

    for behaviour in [Behaviour::Jellyfin12, Behaviour::Jellyfin10_11] {
        let jellyfin = FakeJellyfin::start(behaviour, TOKEN);
        jellyfin.add_movies("Movies", items);
        let dir = tempfile::tempdir().unwrap();
        let server = format!("name = \"jf\"\nkind = \"jellyfin\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n", jellyfin.url());
        let config = write_config(dir.path(), &server, 500);
        let ids = jellyfin.ids(&jellyfin.view_id("Movies"), Kind::Movie);
        let change = |count: usize| ids.iter().take(count).for_each(|id| jellyfin.replace_image(id));
        run(behaviour.name(), &config, &change, changes);
    }

    let spotify = FakeSpotify::start().unwrap();
    let artists = (items / 10).max(1);
    spotify.generate(items, artists, artists, (items / 200).max(1), 20);
    let dir = tempfile::tempdir().unwrap();
    let server = format!(
        "name = \"spotify\"\nkind = \"spotify\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\napi_url = \"{}\"\naccounts_url = \"{}\"\n",
        spotify.api_url(),
        spotify.accounts_url()
    );
    let config = write_config(dir.path(), &server, 50);
    let refresh = spotify.issue_refresh_token();
    mediasync::store::Store::open(&dir.path().join("catalog.redb"), 4 << 20)
        .unwrap()
        .update_session("spotify", |session| {
            session.refresh_token = Some(refresh);
            session.scope = Some(SCOPES.into());
        })
        .unwrap();
    let ids = spotify.followed_artist_ids();
    let change = |count: usize| ids.iter().take(count).for_each(|id| spotify.replace_artist_image(id));
    run("spotify", &config, &change, changes.min(artists));
}
