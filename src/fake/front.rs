//! The front door of a fake that serves websockets: real servers answer
//! their notification sockets on the same port as their API, but tiny_http
//! hands an upgraded connection over without a read timeout, so a socket
//! could not both wait for the client and push to it. The front accepts
//! every connection, looks at the request head without consuming it, gives
//! websocket upgrades to the fake's socket handler and relays everything
//! else, byte for byte, to the fake's tiny_http server on a private port.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A request head as the front saw it.
pub struct Head {
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// A header by name, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

/// Takes a websocket upgrade: the connection, its head still unread.
pub type Upgrade = Arc<dyn Fn(TcpStream, Head) + Send + Sync>;

pub struct Front {
    stop: Arc<AtomicBool>,
    address: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl Front {
    pub fn start(public: TcpListener, backend: SocketAddr, upgrade: Upgrade) -> Result<Front, String> {
        let address = public.local_addr().map_err(|err| format!("the fake's front has no address: {err}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for stream in public.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else {
                    continue;
                };
                let upgrade = Arc::clone(&upgrade);
                std::thread::spawn(move || route(stream, backend, &upgrade));
            }
        });
        Ok(Front { stop, address, thread: Some(thread) })
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn route(client: TcpStream, backend: SocketAddr, upgrade: &Upgrade) {
    let Some(head) = peek_head(&client) else {
        relay(client, backend);
        return;
    };
    let websocket = head.header("Upgrade").is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    if websocket {
        upgrade(client, head);
    } else {
        relay(client, backend);
    }
}

/// The head of the first request (httparse), read with `peek` so the
/// bytes stay for whoever handles the connection; `None` if it does not
/// come whole soon or does not parse (tiny_http then answers it).
fn peek_head(stream: &TcpStream) -> Option<Head> {
    let started = Instant::now();
    let mut buffer = vec![0u8; 16 << 10];
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut seen = 0;
    let head = loop {
        let read = stream.peek(&mut buffer).ok()?;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(buffer.get(..read)?) {
            Ok(httparse::Status::Complete(_)) => {
                let target = request.path?.to_string();
                let headers = request
                    .headers
                    .iter()
                    .map(|header| (header.name.to_string(), String::from_utf8_lossy(header.value).into_owned()))
                    .collect();
                break Some(Head { target, headers });
            }
            Ok(httparse::Status::Partial) => {}
            Err(_) => break None,
        }
        if read == 0 || read == buffer.len() || started.elapsed() > Duration::from_secs(5) {
            break None;
        }
        if read == seen {
            std::thread::sleep(Duration::from_millis(2));
        }
        seen = read;
    };
    stream.set_read_timeout(None).ok()?;
    head
}

/// Copies both ways between the client and the tiny_http server until
/// either side closes.
fn relay(client: TcpStream, backend: SocketAddr) {
    let Ok(server) = TcpStream::connect(backend) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = server.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let (Ok(mut client_read), Ok(mut server_write)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let upstream = std::thread::spawn(move || {
        copy(&mut client_read, &mut server_write);
        let _ = server_write.shutdown(Shutdown::Write);
    });
    let (mut server_read, mut client_write) = (server, client);
    copy(&mut server_read, &mut client_write);
    let _ = client_write.shutdown(Shutdown::Both);
    let _ = upstream.join();
}

fn copy(from: &mut TcpStream, to: &mut TcpStream) {
    let mut buffer = [0u8; 16 << 10];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(read) => {
                if to.write_all(&buffer[..read]).is_err() {
                    return;
                }
            }
        }
    }
}
