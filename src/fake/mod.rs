//! Simulated media servers for tests, benchmarks and the demo. They run on
//! 127.0.0.1 with an OS-chosen port and answer like the real servers,
//! quirks included (`docs/servers.md`): a fake kinder than the real
//! server would hide bugs.

#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::arithmetic_side_effects,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test infrastructure behind the `demo` feature: generated sizes are small and a panic fails the test that drives it"
)]

pub mod churn;
mod front;
mod history;
mod hostile;
pub mod jellyfin;
pub mod plex;
pub mod png;
mod query;
pub mod sockets;
pub mod spotify;

use crate::model::Kind;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// A running fake server: its state, shared with the request threads, and
/// its listener. The test controls every fake offers live here once;
/// each fake adds its own library mutations in `impl Fake<ItsState>`.
pub struct Fake<S> {
    state: Arc<Mutex<S>>,
    listener: Listener,
}

/// What every fake's state records: how many requests it served, a log
/// entry per request, and the failures a test injected.
pub trait Recording {
    type Entry: Clone;
    fn requests(&self) -> u64;
    fn log_mut(&mut self) -> &mut Vec<Self::Entry>;
    fn faults_mut(&mut self) -> &mut Faults;
}

impl<S: Recording + Send + 'static> Fake<S> {
    /// Starts serving `state` on `address`, each request through `handle`.
    fn serve(address: &str, state: S, handle: fn(&Mutex<S>, tiny_http::Request)) -> Result<Fake<S>, String> {
        let state = Arc::new(Mutex::new(state));
        let served = Arc::clone(&state);
        let listener = Listener::start(address, move |request| handle(&served, request), None)?;
        Ok(Fake { state, listener })
    }

    /// As `serve`, with websocket upgrades on the same port given to
    /// `upgrade` (`front`).
    fn serve_with_sockets(
        address: &str,
        state: S,
        handle: fn(&Mutex<S>, tiny_http::Request),
        upgrade: fn(&Mutex<S>, std::net::TcpStream, front::Head),
    ) -> Result<Fake<S>, String> {
        let state = Arc::new(Mutex::new(state));
        let served = Arc::clone(&state);
        let upgraded = Arc::clone(&state);
        let upgrade: front::Upgrade = Arc::new(move |stream, head| upgrade(&upgraded, stream, head));
        let listener = Listener::start(address, move |request| handle(&served, request), Some(upgrade))?;
        Ok(Fake { state, listener })
    }

    pub fn url(&self) -> &str {
        &self.listener.url
    }

    pub fn state(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn requests(&self) -> u64 {
        self.state().requests()
    }

    pub fn log(&self) -> Vec<S::Entry> {
        self.state().log_mut().clone()
    }

    pub fn clear_log(&self) {
        self.state().log_mut().clear();
    }

    /// Makes request number `number` (counted from the start) fail.
    pub fn fail_at(&self, number: u64, failure: Failure) {
        self.state().faults_mut().at.insert(number, failure);
    }

    /// Makes every request from number `number` on fail.
    pub fn fail_from(&self, number: u64, failure: Failure) {
        self.state().faults_mut().from = Some((number, failure));
    }

    /// Makes every request whose path starts with `prefix` fail.
    pub fn fail_path(&self, prefix: &str, failure: Failure) {
        self.state().faults_mut().path = Some((prefix.to_string(), failure));
    }

    pub fn heal(&self) {
        self.state().faults_mut().clear();
    }
}

/// A fake's HTTP listener: accepts on a thread of its own, serves every
/// request on another (a real server serves clients concurrently), and
/// stops when dropped.
struct Listener {
    url: String,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    /// With websockets: the public port's front, relaying to `server`.
    front: Option<front::Front>,
}

impl Listener {
    fn start(
        address: &str,
        handle: impl Fn(tiny_http::Request) + Send + Sync + 'static,
        upgrade: Option<front::Upgrade>,
    ) -> Result<Listener, String> {
        let (server, front, port) = match upgrade {
            None => {
                let server =
                    tiny_http::Server::http(address).map_err(|err| format!("cannot listen on {address}: {err}"))?;
                let port = server.server_addr().to_ip().map(|address| address.port());
                (server, None, port.ok_or("the fake server has no IP address")?)
            }
            Some(upgrade) => {
                let public =
                    std::net::TcpListener::bind(address).map_err(|err| format!("cannot listen on {address}: {err}"))?;
                let port = public.local_addr().map_err(|err| format!("no address: {err}"))?.port();
                let server = tiny_http::Server::http("127.0.0.1:0")
                    .map_err(|err| format!("cannot listen on 127.0.0.1:0: {err}"))?;
                let backend = server.server_addr().to_ip().ok_or("the fake server has no IP address")?;
                (server, Some(front::Front::start(public, backend, upgrade)?), port)
            }
        };
        let server = Arc::new(server);
        let host = address.rsplit_once(':').map_or("127.0.0.1", |(host, _)| host);
        let host = if host == "0.0.0.0" { "127.0.0.1" } else { host };
        let handle = Arc::new(handle);
        let thread = {
            let server = Arc::clone(&server);
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    let handle = Arc::clone(&handle);
                    std::thread::spawn(move || handle(request));
                }
            })
        };
        Ok(Listener { url: format!("http://{host}:{port}"), server, thread: Some(thread), front })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.front.take();
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One row of what an exact mirror of a fake must hold, whatever the server.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expected {
    pub library: String,
    pub id: String,
    pub kind: Kind,
    pub title: String,
    pub parent_id: Option<String>,
    pub updated_at: i64,
}

/// The `Date` header of an answer sent at `epoch` by the fake's clock: real
/// servers stamp every answer, and clients take the server's clock from it.
fn date_header(epoch: i64) -> (String, String) {
    let text =
        chrono::DateTime::from_timestamp(epoch, 0).unwrap_or_default().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    ("Date".to_string(), text)
}

/// Answers `request` with `response` in a single write. tiny_http writes an
/// answer's head and body separately; on a kept-alive connection the body
/// then waits for the client's delayed acknowledgement of the head (Nagle's
/// algorithm: 40 ms on Linux), which made every page of the fakes slow.
/// tiny_http still formats the answer (`raw_print`).
fn send(request: tiny_http::Request, response: tiny_http::Response<std::io::Cursor<Vec<u8>>>) {
    let mut bytes = Vec::new();
    let printed = response.raw_print(&mut bytes, request.http_version().clone(), request.headers(), false, None);
    if printed.is_ok() {
        let mut writer = request.into_writer();
        let _ = std::io::Write::write_all(&mut writer, &bytes).and_then(|()| std::io::Write::flush(&mut writer));
    }
}

/// A request header by name, matched case-insensitively as HTTP requires.
fn header<'r>(request: &'r tiny_http::Request, name: &str) -> Option<&'r str> {
    request
        .headers()
        .iter()
        .find(|header| header.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|header| header.value.as_str())
}

/// How a fake misbehaves on a chosen request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// An HTTP error status with the server's usual error body.
    Status(u16),
    /// 429 with `Retry-After` seconds.
    RateLimited(u64),
    /// 200 with a body that is not JSON at all.
    Garbage,
    /// 200 with the real answer cut off halfway.
    Truncated,
    /// 200 with the listing's entries left out but its total kept, as a
    /// server in the middle of a scan (or a flaky proxy) sometimes answers.
    Emptied,
    /// Hostile: 429 with exactly this `Retry-After` (a huge or negative
    /// number, an HTTP-date, garbage).
    RetryAfter(String),
    /// Hostile: 200 with a JSON body of this many bytes, made as it is sent.
    Giant(u64),
    /// Hostile: the real answer with its first entry's title this many
    /// bytes long.
    GiantTitle(usize),
    /// Hostile: the real answer with every value of its entries of the
    /// wrong type.
    WrongTypes,
    /// Hostile: the real answer with lists nested this deep in its first
    /// entry.
    Deep(usize),
    /// Hostile: the real answer sent `bytes` at a time, `pause` apart.
    SlowDrip { bytes: usize, pause: Duration },
}

/// The failures a test injected, by request number.
#[derive(Debug, Default)]
pub struct Faults {
    at: BTreeMap<u64, Failure>,
    from: Option<(u64, Failure)>,
    path: Option<(String, Failure)>,
}

impl Faults {
    /// The failure request `number` to `path` must suffer, if any (a
    /// one-off is used up).
    fn take(&mut self, number: u64, path: &str) -> Option<Failure> {
        self.at
            .remove(&number)
            .or_else(|| self.from.as_ref().filter(|(from, _)| number >= *from).map(|(_, failure)| failure.clone()))
            .or_else(|| {
                self.path
                    .as_ref()
                    .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
                    .map(|(_, failure)| failure.clone())
            })
    }

    fn clear(&mut self) {
        *self = Faults::default();
    }
}

/// A count a fake keeps (its requests, its sockets' upgrades) once it held
/// for 2 s, waiting 60 s at most: a client's last request can be counted a
/// moment after it says it is idle (slow under qemu), so the tests and
/// benchmarks that count requests start and end from a settled count.
pub fn settled_count<T: PartialEq>(count: impl Fn() -> T) -> T {
    let mut before = count();
    for _ in 0..30 {
        std::thread::sleep(Duration::from_secs(2));
        let now = count();
        if now == before {
            break;
        }
        before = now;
    }
    before
}
