//! A deliberately small HTTP/1.1 server for the status page, safe on a LAN.
//! tiny_http 0.12 (used by the fake servers) reads header lines without a
//! length cap, has no read timeout and starts a thread per connection
//! without bound, so a slow or malicious client could grow memory or stall
//! it. Here every connection has a deadline for its request, headers and
//! body are capped (431, 413), one request is served per connection, and
//! connections are bounded: when the bound is reached the oldest connection
//! still sending its request is dropped, so a flood of slow clients cannot
//! keep a normal request out.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once (threads); past it the oldest connection
    /// still sending its request is dropped.
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
    /// Time a client has to send its whole request.
    pub request_timeout: Duration,
    /// Time a client has to take each chunk of the answer.
    pub write_timeout: Duration,
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
            write_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(300),
        }
    }
}

pub struct Request {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    pub peer: SocketAddr,
    /// The request body (at most `Limits::max_body_bytes`).
    pub body: Vec<u8>,
}

impl Request {
    /// A request as the parser builds it (tests use it to play other peers).
    pub fn new(method: &str, target: &str, headers: &[(&str, &str)], peer: SocketAddr) -> Request {
        Request {
            method: method.to_string(),
            path: target.to_string(),
            query: Vec::new(),
            headers: headers.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect(),
            peer,
            body: Vec::new(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// Writes a streamed body; returns when it is complete or the client left.
pub type StreamBody = Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<()> + Send>;

pub enum Body {
    Bytes(Vec<u8>),
    /// Written straight to the socket (large exports), without a length.
    Stream(StreamBody),
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response { status, content_type, headers: Vec::new(), body: Body::Bytes(body.into()) }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response::new(status, "application/json", value.to_string())
    }

    pub fn error(status: u16, message: &str) -> Response {
        Response::json(status, &serde_json::json!({ "error": message, "status": status }))
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

struct Connection {
    accepted: Instant,
    stream: TcpStream,
    reading: bool,
}

struct Shared {
    limits: Limits,
    handler: Box<Handler>,
    connections: Mutex<BTreeMap<u64, Connection>>,
    stop: AtomicBool,
    /// Seconds since `started` of the accept loop's last turn (the watchdog
    /// reads it).
    heartbeat: AtomicU64,
    started: Instant,
}

pub struct Server {
    address: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(listener: TcpListener, limits: Limits, handler: Box<Handler>) -> std::io::Result<Server> {
        let address = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            limits,
            handler,
            connections: Mutex::new(BTreeMap::new()),
            stop: AtomicBool::new(false),
            heartbeat: AtomicU64::new(0),
            started: Instant::now(),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new().name("http-accept".into()).spawn(move || accept_loop(&listener, &shared))?
        };
        Ok(Server { address, shared, thread: Some(thread) })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The accept loop turned within the last few seconds.
    pub fn alive(&self) -> bool {
        let now = self.shared.started.elapsed().as_secs();
        self.thread.as_ref().is_some_and(|thread| !thread.is_finished())
            && now.saturating_sub(self.shared.heartbeat.load(Ordering::Relaxed)) < 10
    }

    pub fn connections(&self) -> usize {
        lock(&self.shared.connections).len()
    }

    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    while !shared.stop.load(Ordering::Relaxed) {
        shared.heartbeat.store(shared.started.elapsed().as_secs(), Ordering::Relaxed);
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(err) => {
                // Out of file descriptors and the like: back off, keep serving.
                log::warn!("status server: accept failed: {err}");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_nodelay(true);
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        {
            let mut connections = lock(&shared.connections);
            if connections.len() >= shared.limits.max_connections {
                let oldest = connections
                    .iter()
                    .filter(|(_, connection)| connection.reading)
                    .min_by_key(|(_, connection)| connection.accepted)
                    .map(|(id, _)| *id);
                match oldest {
                    Some(oldest) => {
                        if let Some(connection) = connections.remove(&oldest) {
                            let _ = connection.stream.shutdown(Shutdown::Both);
                        }
                    }
                    None => {
                        drop(connections);
                        refuse_busy(stream);
                        continue;
                    }
                }
            }
            connections.insert(id, Connection { accepted: Instant::now(), stream: handle, reading: true });
        }
        let worker = Arc::clone(shared);
        let spawned = std::thread::Builder::new().name("http-conn".into()).stack_size(256 * 1024).spawn(move || {
            serve_connection(&worker, id, stream, peer);
            lock(&worker.connections).remove(&id);
        });
        if spawned.is_err() {
            lock(&shared.connections).remove(&id);
        }
    }
}

fn refuse_busy(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let body = r#"{"error":"too many connections; try again in a moment","status":503}"#;
    let _ = write!(
        stream,
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn serve_connection(shared: &Shared, id: u64, mut stream: TcpStream, peer: SocketAddr) {
    let limits = &shared.limits;
    let _ = stream.set_write_timeout(Some(limits.write_timeout));
    let response = match read_request(&mut stream, limits, peer) {
        Ok(request) => {
            if let Some(connection) = lock(&shared.connections).get_mut(&id) {
                connection.reading = false;
            }
            let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (shared.handler)(&request)));
            handled.unwrap_or_else(|_| Response::error(500, "internal error; see the daemon's log"))
        }
        Err(Some(response)) => response,
        Err(None) => return,
    };
    #[allow(
        clippy::arithmetic_side_effects,
        reason = "the limits are seconds to minutes: the deadline cannot overflow"
    )]
    let mut writer = DeadlineWriter {
        stream: &mut stream,
        deadline: Instant::now() + limits.response_timeout,
        chunk_timeout: limits.write_timeout,
    };
    let _ = write_response(&mut writer, response);
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
    // Drain briefly so the client reads the answer before the close.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut sink = [0u8; 512];
    let _ = stream.read(&mut sink);
}

/// Reads one request within the deadline. `Err(None)`: the client went away
/// (or was dropped); `Err(Some)`: answer with that error and close.
fn read_request(stream: &mut TcpStream, limits: &Limits, peer: SocketAddr) -> Result<Request, Option<Response>> {
    #[allow(
        clippy::arithmetic_side_effects,
        reason = "the limits are seconds to minutes: the deadline cannot overflow"
    )]
    let deadline = Instant::now() + limits.request_timeout;
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let header_end = loop {
        if let Some(at) = find(&buffer, b"\r\n\r\n") {
            break at;
        }
        if buffer.len() > limits.max_header_bytes {
            return Err(Some(Response::error(431, "request headers too large")));
        }
        let read = read_some(stream, &mut chunk, deadline)?;
        buffer.extend_from_slice(chunk.get(..read).unwrap_or_default());
    };
    if header_end > limits.max_header_bytes {
        return Err(Some(Response::error(431, "request headers too large")));
    }
    let head = std::str::from_utf8(buffer.get(..header_end).unwrap_or_default())
        .map_err(|_| Some(bad("headers are not UTF-8")))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Some(bad("malformed request line")));
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(Some(Response::error(505, "only HTTP/1.0 and HTTP/1.1 are served")));
    }
    if method.is_empty() || !method.bytes().all(|byte| byte.is_ascii_uppercase()) {
        return Err(Some(bad("malformed method")));
    }
    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(Some(bad("malformed header line")));
        };
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut request =
        Request { method: method.to_string(), path: String::new(), query: Vec::new(), headers, peer, body: Vec::new() };
    if request.header("transfer-encoding").is_some() {
        return Err(Some(Response::error(411, "chunked request bodies are not accepted; send Content-Length")));
    }
    let length: usize = match request.header("content-length") {
        Some(text) => text.parse().map_err(|_| Some(bad("Content-Length is not a number")))?,
        None => 0,
    };
    if length > limits.max_body_bytes {
        return Err(Some(Response::error(413, "request body too large")));
    }
    // The body: controls take none; the Spotify form takes a pasted address.
    let mut body = buffer.get(header_end.saturating_add(4)..).unwrap_or_default().to_vec();
    while body.len() < length {
        let read = read_some(stream, &mut chunk, deadline)?;
        body.extend_from_slice(chunk.get(..read).unwrap_or_default());
    }
    body.truncate(length);
    request.body = body;
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, query),
        None => (target, ""),
    };
    let path = percent_decode(path).ok_or_else(|| Some(bad("malformed path")))?;
    let pairs = parse_pairs(query).ok_or_else(|| Some(bad("malformed query string")))?;
    Ok(Request { path, query: pairs, ..request })
}

/// The pairs of a query string or form body (`a=1&b=x%20y`); `None` when
/// one is not valid percent-encoded UTF-8.
pub fn parse_pairs(text: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for pair in text.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        pairs.push((percent_decode(key)?, percent_decode(value)?));
    }
    Some(pairs)
}

fn bad(message: &str) -> Response {
    Response::error(400, message)
}

fn read_some(stream: &mut TcpStream, chunk: &mut [u8], deadline: Instant) -> Result<usize, Option<Response>> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Some(Response::error(408, "request not received in time")));
    }
    let _ = stream.set_read_timeout(Some(left.min(Duration::from_secs(1))));
    match stream.read(chunk) {
        Ok(0) => Err(None),
        Ok(read) => Ok(read),
        Err(err) if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            if Instant::now() >= deadline {
                Err(Some(Response::error(408, "request not received in time")))
            } else {
                Ok(0)
            }
        }
        Err(_) => Err(None),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(at.saturating_add(1)..at.saturating_add(3))?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                at = at.saturating_add(3);
            }
            b'+' => {
                out.push(b' ');
                at = at.saturating_add(1);
            }
            byte => {
                out.push(byte);
                at = at.saturating_add(1);
            }
        }
    }
    String::from_utf8(out).ok()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

/// A socket writer that gives up at a deadline for the whole answer.
struct DeadlineWriter<'a> {
    stream: &'a mut TcpStream,
    deadline: Instant,
    chunk_timeout: Duration,
}

impl Write for DeadlineWriter<'_> {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client took too long to read"));
        }
        self.stream.set_write_timeout(Some(left.min(self.chunk_timeout)))?;
        self.stream.write(buffer)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

fn write_response(stream: &mut DeadlineWriter<'_>, response: Response) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nConnection: close\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
        response.status,
        reason(response.status),
        response.content_type
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match response.body {
        Body::Bytes(body) => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            stream.write_all(head.as_bytes())?;
            stream.write_all(&body)
        }
        Body::Stream(write) => {
            head.push_str("\r\n");
            stream.write_all(head.as_bytes())?;
            let mut buffered = std::io::BufWriter::with_capacity(16 * 1024, &mut *stream);
            write(&mut buffered)?;
            buffered.flush()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(percent_decode("%e2%9c%93").as_deref(), Some("✓"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%2"), None);
    }
}
