//! `mediasync demo`: the daemon against built-in simulated servers (the
//! fakes the tests use): a Plex server holding a generated library of a few
//! thousand items that changes every minute, and a Jellyfin server, with fast schedules, a temporary store
//! and the status page on 127.0.0.1:8787, so a newcomer sees full and
//! incremental syncs happen without owning a media server.

#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::arithmetic_side_effects,
    reason = "demo driver of the simulated servers behind the `demo` feature: generated sizes are small, never in the appliance binary"
)]

use crate::fake::jellyfin::{Behaviour, FakeJellyfin};
use crate::fake::plex::{FakePlex, SectionKind};
use crate::model::Kind;
use crate::store::Store;
use std::path::PathBuf;
use std::time::Duration;

const DEMO_TOKEN: &str = "demo-token-not-secret";
/// Simulated latency per request, so progress is visible on the page.
const LATENCY: Duration = Duration::from_millis(120);
const CHANGE_EVERY: Duration = Duration::from_secs(60);

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A library of about `items` items (movies, shows, music), returning the
/// movie section's key for the changes.
fn fill(fake: &FakePlex, items: usize) -> String {
    let movies = fake.add_movies("Movies", (items * 2 / 5).max(1));
    fake.add_shows("TV Shows", (items * 2 / 5 / 23).max(1), 2, 10);
    fake.add_music("Music", (items / 5 / 21).max(1), 2, 9);
    fake.add_section("Photos", SectionKind::Photo);
    fake.state().delay = LATENCY;
    movies
}

pub fn run(listen: Option<&str>, items: Option<usize>) -> Result<(), String> {
    let items = items.unwrap_or(3_000).clamp(10, 200_000);
    let listen = listen.unwrap_or(crate::config::DEFAULT_LISTEN);
    let living_room = FakePlex::start(DEMO_TOKEN);
    let den = FakeJellyfin::start(Behaviour::Jellyfin10_11, DEMO_TOKEN);
    let movies = fill(&living_room, items);
    den.add_library_of((items / 3).max(10));
    den.state().delay = LATENCY;
    // Their clocks (their `Date`, what changes are stamped with) are this
    // machine's, as a real server's would be: the check shows no offset.
    let now = crate::sync::now_epoch();
    living_room.state().clock = now;
    den.state().clock = now;

    let dir = TempDir(std::env::temp_dir().join(format!("mediasync-demo-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).map_err(|err| format!("cannot create {}: {err}", dir.0.display()))?;
    let store_path = dir.0.join("demo.redb");
    // The buttons need an admin token, as on a real box; this one is the
    // demo's own and is printed below for the person trying it.
    let admin_token = crate::source::spotify::auth::random_token(24)?;
    let text = format!(
        r#"
[store]
path = "{store}"
[sync]
full_every = "5m"
retry_delay = "200ms"
[[server]]
name = "living-room"
kind = "plex"
url = "{living_room}"
token = "{DEMO_TOKEN}"
page_size = 100
schedule = "0,30 * * * * *"
[[server]]
name = "den"
kind = "jellyfin"
url = "{den}"
token = "{DEMO_TOKEN}"
page_size = 100
schedule = "15,45 * * * * *"
[status]
listen = "{listen}"
admin_token = "{admin_token}"
[daemon]
max_concurrent_syncs = 1
"#,
        store = store_path.display().to_string().replace('\\', "\\\\").replace('"', "\\\""),
        living_room = living_room.url(),
        den = den.url(),
    );
    let config = crate::config::parse(&text, &dir.0.join("demo.toml")).map_err(|err| err.to_string())?;
    let store = Store::open(&config.store.path, config.store.cache_bytes).map_err(|err| err.to_string())?;
    eprintln!(
        "mediasync demo: a simulated Plex server ({} items, changing every minute) and a\n\
         simulated Jellyfin server ({} items); syncs every 30 s (full every 5 min); store {}\n\
         open http://{}/ in a browser (the buttons ask for the admin token {admin_token}); Ctrl-C stops",
        living_room.item_count(),
        den.item_count(),
        store_path.display(),
        crate::cli::client::local_base(config.status.listen).trim_start_matches("http://"),
    );
    let changer = std::thread::spawn(move || change_forever(living_room, movies));
    let _den = den;
    let result = crate::daemon::run(config, store).map_err(|err| match err {
        crate::daemon::DaemonError::Listen(..) => {
            format!("{err}; or run the demo elsewhere: demo --listen 127.0.0.1:9000")
        }
        err => err.to_string(),
    });
    drop(changer);
    result
}

/// Every minute: a few new movies, a few renamed, one deleted; a library
/// being scanned and curated.
fn change_forever(fake: FakePlex, movies: String) {
    let mut seed = crate::sync::now_epoch() as u64 | 1;
    let mut next = move |bound: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % bound.max(1) as u64) as usize
    };
    for round in 1.. {
        std::thread::sleep(CHANGE_EVERY);
        for number in 0..3 {
            fake.add_item(&movies, Kind::Movie, &format!("New release {round}.{number}"), None);
        }
        let keys = fake.keys(&movies, Kind::Movie);
        for _ in 0..2 {
            if let Some(key) = keys.get(next(keys.len())) {
                fake.edit_title(key, &format!("Director's cut {round}"));
            }
        }
        if let Some(key) = keys.get(next(keys.len())) {
            fake.delete(key);
        }
        log::info!("demo: living-room changed (3 added, 2 renamed, 1 deleted)");
    }
}
