//! The fakes' notification sockets: each open socket is a thread with a
//! queue of messages to push, and what the fake decided about it at the
//! upgrade (`S`: whose session it is). The fake pushes to the sockets its
//! rule says get a message (`broadcast`); tests drop every socket (a lost
//! connection) or refuse new ones (a server restarting). A server that asks
//! for keep-alives (`KeepAlive`) drops a socket that sends none in time, as
//! Jellyfin does.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tungstenite::Message;

/// What a socket's thread is told to do.
enum Order {
    Send(String),
    /// Cut the connection without a close frame, as a crash or a network
    /// failure does.
    Drop,
}

struct Open<S> {
    number: u64,
    subscriber: S,
    orders: Sender<Order>,
}

/// Jellyfin's keep-alive rule: `ForceKeepAlive` with the period on
/// connect, the socket dropped after a period without `KeepAlive`.
#[derive(Clone, Copy, Debug)]
pub struct KeepAlive {
    pub period: Duration,
}

pub struct Sockets<S> {
    open: Mutex<Vec<Open<S>>>,
    upgrades: AtomicU64,
    numbers: AtomicU64,
    refusing: AtomicBool,
    /// Texts the clients sent, oldest first (keep-alives included).
    received: Mutex<Vec<String>>,
}

impl<S: Clone + Send + 'static> Sockets<S> {
    pub fn new() -> Arc<Sockets<S>> {
        Arc::new(Sockets {
            open: Mutex::new(Vec::new()),
            upgrades: AtomicU64::new(0),
            numbers: AtomicU64::new(0),
            refusing: AtomicBool::new(false),
            received: Mutex::new(Vec::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Open<S>>> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Upgrade requests received, accepted or not.
    pub fn upgrades(&self) -> u64 {
        self.upgrades.load(Ordering::SeqCst)
    }

    pub fn count_upgrade(&self) {
        self.upgrades.fetch_add(1, Ordering::SeqCst);
    }

    pub fn open(&self) -> usize {
        self.lock().len()
    }

    /// The subscribers of the open sockets.
    pub fn subscribers(&self) -> Vec<S> {
        self.lock().iter().map(|open| open.subscriber.clone()).collect()
    }

    /// Queues `text` for every open socket whose subscriber `to` accepts.
    pub fn broadcast(&self, text: &str, to: impl Fn(&S) -> bool) {
        for open in self.lock().iter().filter(|open| to(&open.subscriber)) {
            let _ = open.orders.send(Order::Send(text.to_string()));
        }
    }

    /// Cuts every open socket.
    pub fn drop_all(&self) {
        for open in self.lock().drain(..) {
            let _ = open.orders.send(Order::Drop);
        }
    }

    /// While set, upgrades are refused with 503 (a server starting up).
    pub fn refuse(&self, refusing: bool) {
        self.refusing.store(refusing, Ordering::SeqCst);
    }

    pub fn refusing(&self) -> bool {
        self.refusing.load(Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<String> {
        self.received.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Completes the upgrade and serves the socket on this thread until it
    /// closes; `greeting` is sent first.
    pub fn serve(self: &Arc<Self>, stream: TcpStream, subscriber: S, keep_alive: Option<KeepAlive>) {
        let Ok(mut ws) = tungstenite::accept(stream) else {
            return;
        };
        let _ = ws.get_ref().set_read_timeout(Some(Duration::from_millis(50)));
        let (orders, inbox) = channel();
        let number = self.numbers.fetch_add(1, Ordering::SeqCst);
        self.lock().push(Open { number, subscriber, orders });
        if let Some(keep_alive) = keep_alive {
            let force = format!(
                r#"{{"MessageId":"{number:032x}","Data":{},"MessageType":"ForceKeepAlive"}}"#,
                keep_alive.period.as_secs()
            );
            let _ = ws.send(Message::text(force));
        }
        self.pump(&mut ws, &inbox, keep_alive);
        self.lock().retain(|open| open.number != number);
    }

    fn pump(&self, ws: &mut tungstenite::WebSocket<TcpStream>, inbox: &Receiver<Order>, keep_alive: Option<KeepAlive>) {
        let mut last_keep_alive = Instant::now();
        loop {
            match ws.read() {
                Ok(Message::Text(text)) => {
                    let text = text.as_str().to_string();
                    if text.contains("\"KeepAlive\"") {
                        last_keep_alive = Instant::now();
                        let _ = ws.send(Message::text(r#"{"MessageId":"0","MessageType":"KeepAlive"}"#));
                    }
                    self.received.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(text);
                }
                Ok(Message::Close(_)) => return,
                Ok(_) => {}
                Err(tungstenite::Error::Io(err))
                    if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
            for order in inbox.try_iter() {
                match order {
                    Order::Send(text) => {
                        if ws.send(Message::text(text)).is_err() {
                            return;
                        }
                    }
                    Order::Drop => {
                        let _ = ws.get_mut().shutdown(Shutdown::Both);
                        return;
                    }
                }
            }
            if keep_alive.is_some_and(|keep_alive| last_keep_alive.elapsed() > keep_alive.period) {
                // Lost: Jellyfin disposes the socket without a close frame.
                let _ = ws.get_mut().shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// Answers an upgrade with an HTTP error and closes the connection.
pub fn refuse(mut stream: TcpStream, status: u16, reason: &str) {
    // The head was only peeked: read it away so the client sees the answer.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut head = [0u8; 16 << 10];
    let _ = std::io::Read::read(&mut stream, &mut head);
    let body = format!("<html><head><title>{reason}</title></head><body><h1>{status} {reason}</h1></body></html>");
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes());
    let _ = stream.shutdown(Shutdown::Both);
}
