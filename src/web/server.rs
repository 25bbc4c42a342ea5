//! The status server's transport: hyper's HTTP/1 server on the daemon's
//! tokio runtime. hyper reads and checks requests (a deadline for the
//! request head, capped head and buffers, strict framing, the 400, 414 and
//! 431 answers); this file bounds the rest: one request per connection, its
//! body's size and deadline, the number of connections (when full, the
//! oldest connection still sending its request is dropped, else the oldest
//! answer, so neither slow senders nor slow readers keep a new client out),
//! a deadline for the whole answer, and handlers on blocking threads (they
//! read redb), a panicking one answering 500 and being counted.

use super::http::{Request, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once; past it one is dropped for the new one.
    pub max_connections: usize,
    /// The request line and headers (431 beyond).
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
    /// Time a client has to send its whole request.
    pub request_timeout: Duration,
    /// Time a client has to take a whole answer (a streamed export too), so
    /// a client reading a byte now and then cannot hold a connection.
    pub response_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 64,
            max_header_bytes: 8 * 1024,
            max_body_bytes: 4 * 1024,
            request_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(300),
        }
    }
}

/// hyper refuses a smaller buffer (`http1::Builder::max_buf_size`).
const HYPER_MIN_BUFFER: usize = 8 * 1024;

pub type Handler = dyn Fn(Request) -> Response + Send + Sync;

struct Shared {
    limits: Limits,
    handler: Arc<Handler>,
    connections: AtomicUsize,
    panics: AtomicU64,
}

pub struct Server {
    address: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Server {
    /// Serves `listener` (bound already; tests bind port 0) on `runtime`.
    pub fn start(
        listener: std::net::TcpListener,
        limits: Limits,
        handler: Arc<Handler>,
        runtime: &tokio::runtime::Handle,
    ) -> std::io::Result<Server> {
        let address = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let shared = Arc::new(Shared { limits, handler, connections: AtomicUsize::new(0), panics: AtomicU64::new(0) });
        let accept = runtime.spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(Server { address, shared, accept })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The server still accepts connections.
    pub fn alive(&self) -> bool {
        !self.accept.is_finished()
    }

    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Handlers that panicked (each answered 500) since the start.
    pub fn panics(&self) -> u64 {
        self.shared.panics.load(Ordering::Relaxed)
    }

    /// Stops accepting and drops every connection.
    pub fn stop(&mut self) {
        self.accept.abort();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Slot {
    accepted: Instant,
    /// The request is in; its answer is being made or sent.
    answering: Arc<AtomicBool>,
    task: AbortHandle,
}

/// Owns every connection's task: dropping it (`Server::stop`) ends them.
async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let mut tasks = JoinSet::new();
    let mut slots: BTreeMap<tokio::task::Id, Slot> = BTreeMap::new();
    loop {
        tokio::select! {
            Some(ended) = tasks.join_next_with_id() => {
                let id = match &ended {
                    Ok((id, ())) => *id,
                    Err(err) => err.id(),
                };
                if ended.is_err_and(|err| err.is_panic()) {
                    shared.panics.fetch_add(1, Ordering::Relaxed);
                    log::error!("status server: a connection's task panicked");
                }
                slots.remove(&id);
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if slots.len() >= shared.limits.max_connections {
                        make_room(&mut slots);
                    }
                    let answering = Arc::new(AtomicBool::new(false));
                    let task = tasks.spawn(serve_connection(Arc::clone(&shared), stream, peer, Arc::clone(&answering)));
                    slots.insert(task.id(), Slot { accepted: Instant::now(), answering, task });
                }
                Err(err) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    log::warn!("status server: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
        }
        shared.connections.store(slots.len(), Ordering::Relaxed);
    }
}

/// Drops the oldest connection still sending its request, else the oldest
/// answer: a request is sent in moments and an answer read in seconds, so
/// the oldest is the one most likely held on purpose.
fn make_room(slots: &mut BTreeMap<tokio::task::Id, Slot>) {
    let oldest = |answering: bool| {
        slots
            .iter()
            .filter(|(_, slot)| slot.answering.load(Ordering::Relaxed) == answering)
            .min_by_key(|(_, slot)| slot.accepted)
            .map(|(id, _)| *id)
    };
    if let Some(slot) = oldest(false).or_else(|| oldest(true)).and_then(|id| slots.remove(&id)) {
        slot.task.abort();
    }
}

async fn serve_connection(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, answering: Arc<AtomicBool>) {
    let accepted = Instant::now();
    let Ok(local) = stream.local_addr() else { return };
    let _ = stream.set_nodelay(true);
    let limits = &shared.limits;
    let service = service_fn(|request| {
        answering.store(true, Ordering::Relaxed);
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(answer(&shared, request, local, accepted).await.into_hyper()) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.saturating_add(limits.max_body_bytes).max(HYPER_MIN_BUFFER))
        .keep_alive(false)
        // A client that half-closes after its request still gets the answer.
        .half_close(true)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(limits.request_timeout.saturating_add(limits.response_timeout), connection).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => log::debug!("status server: {peer}: {err}"),
        Err(_) => log::debug!("status server: {peer}: the answer was not taken in time"),
    }
}

async fn answer(shared: &Shared, request: hyper::Request<Incoming>, local: SocketAddr, accepted: Instant) -> Response {
    let request = match receive(&shared.limits, request, local, accepted).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let handler = Arc::clone(&shared.handler);
    match tokio::task::spawn_blocking(move || handler(request)).await {
        Ok(response) => response,
        Err(err) => {
            if err.is_panic() {
                shared.panics.fetch_add(1, Ordering::Relaxed);
            }
            log::error!("status server: a handler failed: {err}");
            Response::error(500, "internal error; see the daemon's log")
        }
    }
}

/// The request with its body, read within what is left of the request's
/// time; bodies only come with Content-Length (the controls take none, the
/// Spotify form a pasted address).
async fn receive(
    limits: &Limits,
    request: hyper::Request<Incoming>,
    local: SocketAddr,
    accepted: Instant,
) -> Result<Request, Response> {
    let (parts, body) = request.into_parts();
    if parts.headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(Response::error(411, "chunked request bodies are not accepted; send Content-Length"));
    }
    let too_large = || Response::error(413, "request body too large");
    if body.size_hint().lower() > u64::try_from(limits.max_body_bytes).unwrap_or(u64::MAX) {
        return Err(too_large());
    }
    let left = limits.request_timeout.saturating_sub(accepted.elapsed());
    let body = match tokio::time::timeout(left, Limited::new(body, limits.max_body_bytes).collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(err)) if err.is::<LengthLimitError>() => return Err(too_large()),
        Ok(Err(_)) => return Err(Response::error(400, "the request body broke off")),
        Err(_) => return Err(Response::error(408, "request not received in time")),
    };
    Request::new(parts.method, &parts.uri, parts.headers, local, body)
}
