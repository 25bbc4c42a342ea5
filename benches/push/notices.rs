//! The push bench's figures per notice: the release daemon on simulated
//! Plex, Jellyfin and Emby servers (in this process, each with a movie and
//! a show library), and the requests each kind of change costs from the
//! server's notice until the mirror is exact again.

use crate::common::{Process, TOKEN, binary, free_port};
use mediasync::fake::Expected;
use mediasync::fake::jellyfin::{Behaviour, FakeJellyfin};
use mediasync::fake::plex::FakePlex;
use mediasync::fake::settled_count;
use mediasync::model::Kind;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const ADMIN: &str = "bench-admin-token";
const JELLYFIN_KEY: &str = "0123456789abcdef0123456789abcdef";

/// Adds an item (library, kind, title, parent), its id.
type Add<'a> = &'a dyn Fn(&str, Kind, &str, Option<&str>) -> String;

/// What the figures need of a simulated server.
struct Simulated<'a> {
    requests: &'a dyn Fn() -> u64,
    expected: &'a dyn Fn() -> Vec<Expected>,
    add: Add<'a>,
    edit: &'a dyn Fn(&str),
    delete: &'a dyn Fn(&str),
    ids: &'a dyn Fn(&str, Kind) -> Vec<String>,
}

pub fn print_costs() {
    println!("requests per notice, from the change until the mirror is exact");
    println!("server          movie_added  movie_edited  movie_deleted  episode_added  show_deleted");
    let plex = FakePlex::start(TOKEN);
    let (movies, shows) = (plex.add_movies("Movies", 200), plex.add_shows("TV Shows", 4, 2, 5));
    let server = format!("kind = \"plex\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n", plex.url());
    row(
        "plex",
        &server,
        &movies,
        &shows,
        &Simulated {
            requests: &|| plex.requests(),
            expected: &|| plex.expected(),
            add: &|library, kind, title, parent| plex.add_item(library, kind, title, parent),
            edit: &|id| plex.edit_title(id, "Edited"),
            delete: &|id| plex.delete(id),
            ids: &|library, kind| plex.keys(library, kind),
        },
    );
    for behaviour in [Behaviour::Jellyfin10_11, Behaviour::Emby] {
        let fake = FakeJellyfin::start(behaviour, JELLYFIN_KEY);
        fake.state().notifier.library_update = Duration::from_secs(1);
        let (movies, shows) = (fake.add_movies("Movies", 200), fake.add_shows("TV Shows", 4, 2, 5));
        let dir = tempfile::tempdir().expect("a temporary directory");
        let password = dir.path().join("password");
        std::fs::write(&password, "admin-password\n").expect("the password is written");
        let kind = if behaviour.is_emby() { "emby" } else { "jellyfin" };
        let server = format!(
            "kind = \"{kind}\"\nurl = \"{}\"\ntoken = \"{JELLYFIN_KEY}\"\nlogin_user = \"admin\"\npassword_file = \"{}\"\n",
            fake.url(),
            password.display()
        );
        row(
            behaviour.name(),
            &server,
            &movies,
            &shows,
            &Simulated {
                requests: &|| fake.requests(),
                expected: &|| fake.expected(),
                add: &|library, kind, title, parent| fake.add_item(library, kind, title, parent),
                edit: &|id| fake.edit_title(id, "Edited"),
                delete: &|id| fake.delete(id),
                ids: &|library, kind| fake.ids(library, kind),
            },
        );
    }
}

/// One server's row: a daemon synced on it, then each change, measured from
/// a request count that held for 2 s to one that holds again.
fn row(name: &str, server: &str, movies: &str, shows: &str, fake: &Simulated<'_>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("config.toml");
    let address = format!("127.0.0.1:{}", free_port());
    let text = format!(
        "[store]\npath = \"{}\"\n[status]\nlisten = \"{address}\"\nadmin_token = \"{ADMIN}\"\n[[server]]\nname = \"home\"\n{server}page_size = 200\nschedule = \"0 0 3 1 1 *\"\n",
        dir.path().join("catalog.redb").display()
    );
    std::fs::write(&config, text).expect("the config is written");
    let _daemon = Process(binary("error").arg("--config").arg(&config).arg("run").spawn().expect("the daemon starts"));
    until(&address, fake);
    let season = (fake.ids)(shows, Kind::Season)[0].clone();
    let show = (fake.ids)(shows, Kind::Show)[1].clone();
    let changes: [&dyn Fn(); 5] = [
        &|| drop((fake.add)(movies, Kind::Movie, "Arrival", None)),
        &|| (fake.edit)(&(fake.ids)(movies, Kind::Movie)[3]),
        &|| (fake.delete)(&(fake.ids)(movies, Kind::Movie)[5]),
        &|| drop((fake.add)(shows, Kind::Episode, "New Episode", Some(&season))),
        &|| (fake.delete)(&show),
    ];
    let mut costs = Vec::new();
    for change in changes {
        let before = settled_count(fake.requests);
        change();
        until(&address, fake);
        costs.push(settled_count(fake.requests) - before);
    }
    println!("{name:<15} {:<12} {:<13} {:<14} {:<14} {}", costs[0], costs[1], costs[2], costs[3], costs[4]);
}

/// Waits until the daemon's mirror (its export) is the fake's library.
fn until(address: &str, fake: &Simulated<'_>) {
    let want: BTreeSet<(String, String, String)> =
        (fake.expected)().into_iter().map(|row| (row.library, row.id, row.title)).collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    while mirror(address).as_ref() != Some(&want) {
        assert!(Instant::now() < deadline, "the mirror never became exact");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mirror(address: &str) -> Option<BTreeSet<(String, String, String)>> {
    let mut answer = ureq::get(&format!("http://{address}/api/export"))
        .header("Authorization", &format!("Bearer {ADMIN}"))
        .call()
        .ok()?;
    let body = answer.body_mut().with_config().limit(u64::MAX).read_to_string().ok()?;
    body.lines()
        .map(|line| {
            let item: serde_json::Value = serde_json::from_str(line).ok()?;
            let text = |key: &str| item[key].as_str().unwrap_or_default().to_string();
            Some((text("library"), text("id"), text("title")))
        })
        .collect()
}
