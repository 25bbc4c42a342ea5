//! The status server over real HTTP on port 0, in-process against the
//! application (`App`, as the daemon runs it, on a tokio runtime of its
//! own) whose store was synced from the fake Plex server: every endpoint,
//! the controls' auth (always a token, the configured or the generated
//! one; foreign `Host` names refused), the change feed (followed from 0 it
//! rebuilds the catalog exactly, and keeps it exact as the server changes),
//! and the limits that keep it safe on a LAN (oversized headers, slow
//! clients and readers, floods, 405s).

use crate::support::TOKEN;
use mediasync::app::{App, admin_token};
use mediasync::config;
use mediasync::fake::plex::FakePlex;
use mediasync::model::{Item, Kind};
use mediasync::store::Store;
use mediasync::web::{self, access::Access, server};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "admin-token-0123456789";

pub struct Running {
    pub fake: FakePlex,
    /// The application the status server serves (what `mediasync run` holds).
    pub daemon: Arc<App>,
    pub server: server::Server,
    /// `Bearer <admin token>`: the configured token, or the generated one.
    pub bearer: String,
    /// The daemon's runtime (dropped after the server).
    pub runtime: tokio::runtime::Runtime,
    pub _dir: tempfile::TempDir,
}

/// A runtime like the daemon's.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

pub fn config_text(store: &std::path::Path, url: &str, extra: &str) -> String {
    format!(
        "[store]\npath = \"{}\"\n[sync]\nretry_delay = \"5ms\"\nretries = 1\n[[server]]\nname = \"home\"\nkind = \"plex\"\nurl = \"{url}\"\ntoken = \"{TOKEN}\"\npage_size = 50\n{extra}",
        store.display()
    )
}

impl Running {
    pub fn start(items: usize, admin_token: Option<&str>, limits: server::Limits) -> Running {
        let fake = FakePlex::start(TOKEN);
        fake.add_library_of(items);
        let dir = tempfile::tempdir().unwrap();
        let store_path = dir.path().join("catalog.redb");
        let extra = admin_token.map(|token| format!("[status]\nadmin_token = \"{token}\"\n")).unwrap_or_default();
        let config = config::parse(&config_text(&store_path, fake.url(), &extra), &dir.path().join("c.toml")).unwrap();
        let store = Store::open(&store_path, 4 << 20).unwrap();
        let access = Access::from_config(&config).unwrap();
        let bearer = format!("Bearer {}", admin_token::read(&config).unwrap().unwrap());
        let daemon = Arc::new(App::new(config, store));
        let runtime = runtime();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let running = Running {
            server: web::start_with(Arc::clone(&daemon), access, listener, limits, runtime.handle()).unwrap(),
            daemon,
            fake,
            bearer,
            runtime,
            _dir: dir,
        };
        running.sync();
        running
    }

    pub fn sync(&self) {
        let config = self.daemon.config();
        let server = &config.servers[0];
        let source = mediasync::source::build(server, &config.sync, &self.daemon.store, &Default::default());
        let options = mediasync::sync::Options {
            full: false,
            force: false,
            full_every: Duration::from_secs(86_400),
            max_delete_share: 0.9,
            history: 5,
            page_size: 50,
            unchanged_runs: mediasync::sync::UnchangedRuns::Recorded,
        };
        let report = mediasync::sync::sync_server(
            "home",
            source.as_ref(),
            &self.daemon.store,
            &options,
            &AtomicBool::new(false),
        );
        assert!(report.ok(), "{report:#?}");
    }

    pub fn address(&self) -> SocketAddr {
        self.server.address()
    }

    /// The `Authorization` header the controls and the export need.
    pub fn admin(&self) -> [(&str, &str); 1] {
        [("Authorization", self.bearer.as_str())]
    }
}

pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    /// The head holds `line` (header names compared in any case: hyper
    /// writes them lowercase).
    pub fn head_has(&self, line: &str) -> bool {
        self.head.to_ascii_lowercase().contains(&line.to_ascii_lowercase())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.body))
    }
}

/// Sends raw bytes, reads the answer to the end (the server closes).
pub fn raw(address: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = stream.write_all(request);
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    Answer { status, head: head.to_string(), body: body.to_string() }
}

/// A request as a browser at `http://{address}/` sends it.
pub fn request(address: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Answer {
    raw(address, request_text(&address.to_string(), method, target, headers).as_bytes())
}

fn request_text(host: &str, method: &str, target: &str, headers: &[(&str, &str)]) -> String {
    let mut text = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    text
}

pub fn get(address: SocketAddr, target: &str) -> Answer {
    request(address, "GET", target, &[])
}

/// The store's catalog as `/api/export` lines keyed by (server, library, id)
/// (read by ureq: the export is sent chunked).
fn exported(running: &Running) -> BTreeMap<(String, String, String), Value> {
    let mut answer = ureq::get(&format!("http://{}/api/export", running.address()))
        .header("Authorization", &running.bearer)
        .call()
        .unwrap();
    let body = answer.body_mut().with_config().limit(u64::MAX).read_to_string().unwrap();
    body.lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap();
            let key = (
                value["server"].as_str().unwrap().to_string(),
                value["library"].as_str().unwrap().to_string(),
                value["id"].as_str().unwrap().to_string(),
            );
            (key, value)
        })
        .collect()
}

#[test]
fn every_get_endpoint_answers() {
    let running = Running::start(600, None, server::Limits::default());
    let address = running.address();

    assert_eq!(get(address, "/healthz").body, "ok\n");

    let page = get(address, "/");
    assert_eq!(page.status, 200);
    assert!(page.head.contains("text/html"));
    for needle in ["home", "Movies", "TV Shows", "Music", "Sync now", "Pause", "Reset", "idle"] {
        assert!(page.body.contains(needle), "the page lacks {needle}");
    }
    assert!(!page.body.contains(TOKEN), "the server token leaked into the page");
    assert!(!page.body.contains("http-equiv=refresh"), "an idle page must not reload itself");

    let status = get(address, "/api/status").json();
    let server = &status["servers"][0];
    assert_eq!(server["name"], "home");
    assert_eq!(server["state"], "idle");
    assert_eq!(server["paused"], false);
    assert_eq!(server["schedule"], "0 10 0,12 * * *", "the first server's staggered default");
    // Movies, TV Shows, Music, and the watch history (synced first).
    assert_eq!(server["libraries"].as_array().unwrap().len(), 4);
    assert_eq!(server["libraries"][0]["id"], "history");
    assert_eq!(server["libraries"][1]["last_run"]["mode"], "full");
    assert!(!status.to_string().contains(TOKEN));

    let metrics = get(address, "/metrics");
    assert_eq!(metrics.status, 200);
    assert!(metrics.head.contains("text/plain; version=0.0.4"));
    for needle in [
        "mediasync_items{server=\"home\",library=\"1\",kind=\"movie\"} 240",
        "mediasync_last_success_timestamp_seconds{server=\"home\",library=\"1\"}",
        "mediasync_last_run_requests{server=\"home\",library=\"1\"}",
        "mediasync_runs_total{server=\"home\"} 0",
        "# TYPE mediasync_requests_total counter",
    ] {
        assert!(metrics.body.contains(needle), "metrics lack {needle}:\n{}", metrics.body);
    }

    // Paging /api/items by its cursor visits every item of a library once.
    let mut ids = Vec::new();
    let mut after = String::new();
    let mut pages = 0;
    loop {
        let page = get(address, &format!("/api/items?server=home&library=2&limit=37&after={after}")).json();
        pages += 1;
        ids.extend(page["items"].as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap().to_string()));
        match page["next"].as_str() {
            Some(next) => after = next.to_string(),
            None => break,
        }
    }
    let mut stored = Vec::new();
    let number = running.daemon.store.find_library("home", "2").unwrap().unwrap();
    running
        .daemon
        .store
        .for_each_item(number, |item| {
            stored.push(item.item.id);
            true
        })
        .unwrap();
    assert_eq!(ids, stored, "paging lost, repeated or reordered items");
    assert!(pages > 3);
    let seasons = get(address, "/api/items?server=home&library=2&kind=season&limit=1000").json();
    let seasons = seasons["items"].as_array().unwrap();
    assert!(!seasons.is_empty() && seasons.iter().all(|item| item["kind"] == "season"));

    assert_eq!(exported(&running).len(), running.fake.item_count());
}

#[test]
fn bad_parameters_get_clear_errors() {
    let running = Running::start(50, None, server::Limits::default());
    let address = running.address();
    for (target, status, needle) in [
        ("/api/items?server=home", 400, "library="),
        ("/api/items?server=home&library=1&limit=0", 400, "limit=0"),
        ("/api/items?server=home&library=1&limit=5000", 400, "1 to 1000"),
        ("/api/items?server=home&library=1&kind=sitcom", 400, "kind=sitcom"),
        ("/api/items?server=home&library=99", 404, "no library 99"),
        ("/api/changes?since=-1", 400, "since=-1"),
        ("/api/changes?limit=abc", 400, "limit=abc"),
        ("/api/export?server=nope", 404, "nope"),
        ("/nowhere", 404, "no such page"),
        // Percent-decoding follows the URL standard: a `%` that starts no
        // escape is itself; `+` in a query is a space.
        ("/api/items?server=%zz&library=1", 404, "of server %zz"),
        ("/api/items?server=a+b&library=1", 404, "of server a b"),
        ("/api/servers/%ff/sync", 400, "not valid percent-encoded UTF-8"),
    ] {
        let method = if target.starts_with("/api/servers") { "POST" } else { "GET" };
        let answer = request(address, method, target, &running.admin());
        assert_eq!(answer.status, status, "{target}: {}", answer.body);
        assert!(answer.head.contains("application/json"), "{target}");
        let error = answer.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains(needle), "{target}: {error}");
    }
}

#[test]
fn other_methods_get_405() {
    let running = Running::start(20, None, server::Limits::default());
    let address = running.address();
    for (method, target, allowed) in [
        ("DELETE", "/api/status", "GET"),
        ("POST", "/", "GET"),
        ("PUT", "/api/items", "GET"),
        ("GET", "/api/servers/home/pause", "POST"),
        ("DELETE", "/api/servers/home/sync", "POST"),
    ] {
        let answer = request(address, method, target, &[]);
        assert_eq!(answer.status, 405, "{method} {target}");
        assert!(answer.head_has(&format!("Allow: {allowed}")), "{}", answer.head);
    }
    // hyper answers an HTTP version it does not speak with 400.
    assert_eq!(raw(address, b"GET / HTTP/2.0\r\nHost: localhost\r\n\r\n").status, 400);
    assert_eq!(raw(address, b"garbage\r\n\r\n").status, 400);
}

#[test]
fn controls_need_the_admin_token() {
    let running = Running::start(100, Some(ADMIN_TOKEN), server::Limits::default());
    let address = running.address();
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let with_token = [("Authorization", bearer.as_str())];

    let none = request(address, "POST", "/api/servers/home/pause", &[]);
    assert_eq!(none.status, 401, "loopback is not enough once a token is set");
    assert!(none.head_has("WWW-Authenticate: Bearer"));
    let wrong = request(address, "POST", "/api/servers/home/pause", &[("Authorization", "Bearer wrong-token-123456")]);
    assert_eq!(wrong.status, 401);
    assert!(!wrong.body.contains(ADMIN_TOKEN));
    assert!(!running.daemon.store.control("home").unwrap().paused);

    let paused = request(address, "POST", "/api/servers/home/pause", &with_token);
    assert_eq!(paused.status, 202, "{}", paused.body);
    assert_eq!(get(address, "/api/status").json()["servers"][0]["state"], "paused");
    assert!(get(address, "/").body.contains("Resume"));
    let refused = request(address, "POST", "/api/servers/home/sync", &with_token);
    assert_eq!(refused.status, 409, "a paused server does not sync: {}", refused.body);
    assert_eq!(request(address, "POST", "/api/servers/home/resume", &with_token).status, 202);
    assert!(!running.daemon.store.control("home").unwrap().paused);
    assert_eq!(request(address, "POST", "/api/servers/home/sync?full=1", &with_token).status, 202);
    assert_eq!(request(address, "POST", "/api/servers/attic/sync", &with_token).status, 404);

    let reset = request(address, "POST", "/api/servers/home/reset", &with_token);
    assert_eq!(reset.status, 202, "{}", reset.body);
    for (_, state) in running.daemon.store.libraries().unwrap() {
        assert!(state.needs_full.is_some() && state.checkpoint.is_none());
    }
    let cross_site = request(
        address,
        "POST",
        "/api/servers/home/pause",
        &[("Authorization", bearer.as_str()), ("Origin", "http://evil.example")],
    );
    assert_eq!(cross_site.status, 403);
    assert!(!get(address, "/api/status").body.contains(ADMIN_TOKEN));
    assert!(!get(address, "/").body.contains(ADMIN_TOKEN));
    assert!(!get(address, "/metrics").body.contains(ADMIN_TOKEN));
}

#[test]
fn without_a_configured_token_the_generated_one_controls_and_pause_survives_a_restart() {
    let running = Running::start(30, None, server::Limits::default());
    let address = running.address();
    let loopback = request(address, "POST", "/api/servers/home/pause", &[]);
    assert_eq!(loopback.status, 401, "loopback alone no longer grants control: {}", loopback.body);
    assert!(loopback.body.contains("mediasync admin-token"), "{}", loopback.body);
    let generated = std::fs::read_to_string(admin_token::path(&running.daemon.config())).unwrap();
    assert_eq!(format!("Bearer {}", generated.trim()), running.bearer);
    assert_eq!(request(address, "POST", "/api/servers/home/pause", &running.admin()).status, 202);
    let store_path = running.daemon.config().store.path.clone();
    let Running { daemon, server, runtime, _dir, fake, .. } = running;
    drop(server);
    // Dropping the runtime ends every task that held the application.
    drop(runtime);
    let daemon = Arc::try_unwrap(daemon).ok().expect("nothing else holds the daemon");
    drop(daemon);
    let store = Store::open(&store_path, 1 << 20).unwrap();
    assert!(store.control("home").unwrap().paused, "pause did not survive a restart");
    drop((store, fake, _dir));
}

#[test]
fn change_feed_followed_from_zero_rebuilds_the_catalog() {
    let running = Running::start(500, None, server::Limits::default());
    let address = running.address();
    let mut mirror: BTreeMap<(String, String, String), Value> = BTreeMap::new();
    let mut since = 0u64;
    let follow = |mirror: &mut BTreeMap<(String, String, String), Value>, since: &mut u64| {
        loop {
            let page = get(address, &format!("/api/changes?since={}&limit=97", *since)).json();
            for change in page["changes"].as_array().unwrap() {
                let key = (
                    change["server"].as_str().unwrap().to_string(),
                    change["library"].as_str().unwrap().to_string(),
                    change["id"].as_str().unwrap().to_string(),
                );
                assert!(change["seq"].as_u64().unwrap() > *since);
                match change["op"].as_str().unwrap() {
                    "upsert" => {
                        mirror.insert(key, change["item"].clone());
                    }
                    _ => {
                        mirror.remove(&key);
                    }
                }
            }
            *since = page["next"].as_u64().unwrap();
            if page["more"] == false {
                break;
            }
        }
    };
    follow(&mut mirror, &mut since);
    assert_eq!(mirror, exported(&running), "the feed from 0 does not rebuild the catalog");

    // The server changes; the follower catches up from where it stopped.
    let movies = running.fake.keys("1", Kind::Movie);
    running.fake.edit_title(&movies[3], "Renamed");
    running.fake.delete(&movies[5]);
    running.fake.add_item("1", Kind::Movie, "Brand new", None);
    running.fake.delete(&running.fake.keys("2", Kind::Show)[0]);
    let before = since;
    running.sync();
    follow(&mut mirror, &mut since);
    assert!(since > before);
    let catalog = exported(&running);
    assert_eq!(mirror, catalog, "the followed feed drifted from the catalog");
    assert_eq!(catalog.len(), running.fake.item_count());
}

/// Delete tombstones used to be kept forever, so the feed grew without
/// bound. Now the oldest are compacted, and a follower positioned before the
/// history kept is told so (410) instead of silently missing a deletion.
#[test]
fn the_change_feed_keeps_recent_deletions_and_answers_410_before_them() {
    let running = Running::start(300, None, server::Limits::default());
    let address = running.address();
    let follower = running.daemon.store.head().unwrap();
    for key in &running.fake.keys("1", Kind::Movie)[..10] {
        running.fake.delete(key);
    }
    running.sync();
    let store = &running.daemon.store;
    let deletions = store.changes(follower, usize::MAX).unwrap().into_iter().filter(|change| change.deleted).count();
    assert_eq!(deletions, 10);
    // Keep the newest 3.
    let limits = mediasync::store::TombstoneLimits { count: 3, age_secs: 90 * 86_400 };
    assert_eq!(store.compact_tombstones(limits, mediasync::sync::now_epoch()).unwrap(), 7);
    let compacted = store.compacted_through().unwrap();
    assert!(compacted > follower);
    let gone = get(address, &format!("/api/changes?since={follower}"));
    assert_eq!(gone.status, 410, "{}", gone.body);
    let body = gone.json();
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("/api/items") && message.contains("since="), "{message}");
    let head = body["head"].as_u64().unwrap();
    assert_eq!(body["compacted_through"].as_u64(), Some(compacted));
    // What the message says works: read the catalog, then follow from head.
    assert_eq!(get(address, &format!("/api/changes?since={head}")).status, 200);
    assert_eq!(get(address, &format!("/api/changes?since={compacted}")).status, 200);
    // From 0 the feed still rebuilds the catalog.
    let mut mirror = BTreeMap::new();
    let mut since = 0u64;
    loop {
        let page = get(address, &format!("/api/changes?since={since}&limit=500")).json();
        for change in page["changes"].as_array().unwrap() {
            let key = (
                change["server"].as_str().unwrap().to_string(),
                change["library"].as_str().unwrap().to_string(),
                change["id"].as_str().unwrap().to_string(),
            );
            if change["op"] == "upsert" {
                mirror.insert(key, change["item"].clone());
            } else {
                mirror.remove(&key);
            }
        }
        since = page["next"].as_u64().unwrap();
        if page["more"] == false {
            break;
        }
    }
    assert_eq!(mirror, exported(&running));
    // By age: a day later, with a day kept, every tombstone goes.
    let limits = mediasync::store::TombstoneLimits { count: 1_000, age_secs: 86_400 };
    assert_eq!(store.compact_tombstones(limits, mediasync::sync::now_epoch() + 2 * 86_400).unwrap(), 3);
    assert_eq!(get(address, &format!("/api/changes?since={compacted}")).status, 410);
}

#[test]
fn oversized_requests_are_refused() {
    let running = Running::start(10, None, server::Limits::default());
    let address = running.address();
    let huge = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n", "a".repeat(20_000));
    assert_eq!(raw(address, huge.as_bytes()).status, 431);
    let endless = format!("GET /{} HTTP/1.1\r\n", "a".repeat(64 * 1024));
    assert_eq!(raw(address, endless.as_bytes()).status, 431);
    let body = b"POST /api/servers/home/sync HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n";
    assert_eq!(raw(address, body).status, 413);
    let chunked = b"POST /api/servers/home/sync HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(raw(address, chunked).status, 411);
    assert_eq!(get(address, "/healthz").status, 200, "the server survives");
}

/// What the old hand-written parser got wrong, now that hyper parses: a
/// bare-LF request is answered (it used to hang until the deadline, which
/// ends with no answer at all), a signed `Content-Length` and CR or LF
/// inside a header value are refused.
#[test]
fn requests_are_read_as_http_says() {
    let running = Running::start(10, None, server::Limits::default());
    let address = running.address();
    let bare_lf = format!("GET /healthz HTTP/1.1\nHost: {address}\n\n");
    let answer = raw(address, bare_lf.as_bytes());
    assert_eq!((answer.status, answer.body.as_str()), (200, "ok\n"), "{}", answer.head);
    let signed = format!("POST /api/servers/home/sync HTTP/1.1\r\nHost: {address}\r\nContent-Length: +5\r\n\r\nhello");
    assert_eq!(raw(address, signed.as_bytes()).status, 400);
    for value in ["a\rb", "a\r b", "a\nb", "a\0b"] {
        let odd = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nX-Odd: {value}\r\n\r\n");
        assert_eq!(raw(address, odd.as_bytes()).status, 400, "{value:?}");
    }
    assert_eq!(get(address, "/healthz").status, 200, "the server survives");
}

/// A slow client holds its connection up to `REQUEST_TIMEOUT`; a normal
/// request must be answered well before that (generous for qemu on CI).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);
const PROMPT: Duration = Duration::from_secs(2);

fn quick_limits() -> server::Limits {
    server::Limits { max_connections: 16, request_timeout: REQUEST_TIMEOUT, ..server::Limits::default() }
}

#[test]
fn a_slow_client_does_not_block_a_normal_request() {
    let running = Running::start(10, None, quick_limits());
    let address = running.address();
    let mut slow = TcpStream::connect(address).unwrap();
    slow.write_all(b"GET / HT").unwrap();
    let started = Instant::now();
    assert_eq!(get(address, "/api/status").status, 200);
    assert!(started.elapsed() < PROMPT, "a normal request waited {:?}", started.elapsed());
    // The slow client is cut off at its deadline: hyper closes the
    // connection without an answer (the old server sent 408 first).
    slow.set_read_timeout(Some(REQUEST_TIMEOUT * 3)).unwrap();
    let mut answer = String::new();
    let closed = slow.read_to_string(&mut answer);
    assert!(closed.is_ok() && answer.is_empty(), "{closed:?} {answer}");
}

#[test]
fn a_flood_of_connections_leaves_room_for_a_normal_request() {
    let running = Running::start(10, None, quick_limits());
    let address = running.address();
    let mut flood = Vec::new();
    for number in 0..200 {
        let Ok(mut stream) = TcpStream::connect(address) else { continue };
        let _ = stream.write_all(if number % 2 == 0 { b"GET / HTTP/1.1\r\nX-Slow: " } else { b"" });
        flood.push(stream);
    }
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..3 {
        let started = Instant::now();
        let answer = get(address, "/healthz");
        assert_eq!(answer.status, 200, "{}", answer.head);
        assert!(started.elapsed() < PROMPT, "a normal request waited {:?}", started.elapsed());
    }
    assert!(running.server.connections() <= 16, "{} connections held", running.server.connections());
    drop(flood);
}

/// A DNS-rebinding client: a web page whose own name now resolves to this
/// box (or to a loopback tunnel to it) sends that name as `Host`. No route
/// answers it, token or not; and on loopback without the token nothing is
/// granted either.
#[test]
fn a_rebinding_client_gets_nothing() {
    let running = Running::start(40, None, server::Limits::default());
    let address = running.address();
    let bearer = running.bearer.clone();
    let with_token = [("Authorization", bearer.as_str())];
    for (method, target) in [
        ("GET", "/"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/api/status"),
        ("GET", "/api/items?server=home&library=1"),
        ("GET", "/api/changes"),
        ("GET", "/api/export"),
        ("GET", "/spotify/callback?state=s&code=c"),
        ("POST", "/api/servers/home/pause"),
        ("POST", "/api/servers/home/connect"),
    ] {
        for host in [format!("rebind.evil.example:{}", address.port()), "evil.example".to_string()] {
            let answer = raw(address, request_text(&host, method, target, &with_token).as_bytes());
            assert_eq!(answer.status, 421, "{method} {target} as {host}: {}", answer.body);
            assert!(answer.json()["error"].as_str().unwrap().contains("[status] hostnames"), "{}", answer.body);
            assert!(!answer.body.contains("Movies") && !answer.body.contains("\"items\""));
        }
    }
    assert!(!running.daemon.store.control("home").unwrap().paused);
    let two_hosts = format!("GET / HTTP/1.1\r\nHost: {address}\r\nHost: evil.example\r\n\r\n");
    assert_eq!(raw(address, two_hosts.as_bytes()).status, 400);
    assert_eq!(raw(address, b"GET / HTTP/1.1\r\n\r\n").status, 400, "no Host");

    // The box's own names answer; loopback without the token controls nothing.
    for host in [format!("localhost:{}", address.port()), address.to_string()] {
        assert_eq!(raw(address, request_text(&host, "GET", "/", &[]).as_bytes()).status, 200, "{host}");
        for (method, target) in [("POST", "/api/servers/home/pause"), ("GET", "/api/export")] {
            let answer = raw(address, request_text(&host, method, target, &[]).as_bytes());
            assert_eq!(answer.status, 401, "{method} {target} as {host}");
        }
    }
    assert!(!running.daemon.store.control("home").unwrap().paused);
    let page = get(address, "/");
    assert!(page.head_has("frame-ancestors 'none'"), "{}", page.head);
}

/// A client whose receive window is a few KiB: it takes an answer as
/// slowly as it likes.
fn slow_reader(running: &Running) -> TcpStream {
    running.runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(running.address()).await.unwrap().into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
    })
}

/// Items written straight to the store: with them an export is far larger
/// (about 4 MB) than what the sockets and the server buffer.
const ARCHIVE: usize = 20_000;

fn with_archive(running: &Running) {
    let store = &running.daemon.store;
    let (number, _) = store.library("home", "archive", "Archive").unwrap();
    store
        .write(|writer| {
            let mut state = writer.state(number)?.unwrap_or_default();
            for n in 0..ARCHIVE {
                let item = Item::new(format!("{n:06}"), Kind::Movie, format!("Archived movie number {n}"), 1);
                writer.upsert(number, &mut state, &item, false)?;
            }
            writer.put_state(number, &state)
        })
        .unwrap();
}

/// A slow reader that asked for the export and has its answer's head.
fn stalled_export(running: &Running) -> TcpStream {
    let export = request_text(&running.address().to_string(), "GET", "/api/export", &running.admin());
    let mut stream = slow_reader(running);
    stream.write_all(export.as_bytes()).unwrap();
    let mut start = [0u8; 16];
    stream.read_exact(&mut start).unwrap();
    assert!(start.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&start));
    stream
}

fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    bytes
}

/// A chunked answer that ended properly, with its last chunk.
fn complete(bytes: &[u8]) -> bool {
    bytes.ends_with(b"\r\n0\r\n\r\n")
}

/// Clients that ask for the export and stop reading fill every connection:
/// a new client still gets in (the oldest answer is dropped, and its
/// client sees it cut off, not complete), and the others' exports finish
/// whole when they read on. (That a stalled export holds no snapshot is
/// `web::export`'s unit test.)
#[test]
fn slow_export_readers_starve_no_one() {
    let limits = server::Limits { max_connections: 4, ..server::Limits::default() };
    let running = Running::start(300, None, limits);
    with_archive(&running);
    let address = running.address();
    let mut stalled: Vec<TcpStream> = (0..4).map(|_| stalled_export(&running)).collect();
    let answer = get(address, "/api/status");
    assert_eq!(answer.status, 200, "{}", answer.head);
    assert!(running.server.connections() <= 4, "{} connections held", running.server.connections());

    let evicted = read_all(&mut stalled[0]);
    assert!(!complete(&evicted), "the dropped export looks complete ({} bytes)", evicted.len());
    for stream in &mut stalled[1..] {
        let bytes = read_all(stream);
        assert!(complete(&bytes), "an export that kept its connection was cut ({} bytes)", bytes.len());
        let lines = String::from_utf8_lossy(&bytes).matches("\"server\":\"home\"").count();
        assert_eq!(lines, running.fake.item_count() + ARCHIVE);
    }
    assert_eq!(running.server.panics(), 0);
}

/// The answer deadline holds for a reader that never finishes: the server
/// drops the connection, and the client sees the export cut off.
#[test]
fn an_answer_not_taken_in_time_is_cut_off() {
    let limits = server::Limits { response_timeout: Duration::from_secs(1), ..server::Limits::default() };
    let running = Running::start(30, None, limits);
    with_archive(&running);
    let mut stalled = stalled_export(&running);
    let deadline = Instant::now() + Duration::from_secs(60);
    while running.server.connections() > 0 {
        assert!(Instant::now() < deadline, "the stalled export was never dropped");
        std::thread::sleep(Duration::from_millis(50));
    }
    let bytes = read_all(&mut stalled);
    assert!(!complete(&bytes), "an export past its deadline looks complete ({} bytes)", bytes.len());
}
