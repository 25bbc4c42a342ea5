//! A websocket client for the servers' notification sockets: tungstenite's
//! framing over a plain TCP stream or over rustls (the TLS stack ureq
//! already links, with the same webpki roots), blocking, with a short read
//! timeout so the listener can look at its stop flag and keep-alive timers
//! between frames. Credentials travel in the upgrade request's headers; the
//! address shown in messages never carries them.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use tungstenite::Message;
use tungstenite::client::IntoClientRequest;
use tungstenite::http::{HeaderName, HeaderValue, Uri};
use tungstenite::protocol::WebSocketConfig;

/// How long connecting and the upgrade may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A read returns at least this often, so the listener notices a stop and
/// its timers without a frame arriving.
pub const TICK: Duration = Duration::from_millis(500);
/// The largest notification kept: a scan of tens of thousands of items
/// fits; a larger one is treated as "too many changes" (a full look).
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// Where to connect and with what: `url` may carry a query a server reads
/// its credentials from (Emby's socket), so only `shown` appears in
/// messages.
pub struct Endpoint {
    pub url: String,
    pub shown: String,
    pub headers: Vec<(&'static str, String)>,
}

/// Why a connection failed or ended.
#[derive(Debug)]
pub enum SocketError {
    /// The server answered the upgrade with this HTTP status (401: the
    /// credentials were refused).
    Status(u16),
    /// Anything else: name resolution, connecting, TLS, a broken frame, a
    /// closed connection. The text names the failure.
    Broken(String),
    /// A message larger than `MAX_MESSAGE_BYTES`.
    TooLarge,
}

impl std::fmt::Display for SocketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocketError::Status(status) => write!(f, "the server refused the socket (HTTP {status})"),
            SocketError::Broken(why) => f.write_str(why),
            SocketError::TooLarge => write!(f, "a notification larger than {MAX_MESSAGE_BYTES} bytes"),
        }
    }
}

/// What one read gave.
pub enum Frame {
    Text(String),
    /// Nothing arrived within `TICK`.
    Idle,
    /// A frame that carries no notification (ping, pong, binary).
    Other,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// An open notification socket.
pub struct Socket {
    ws: tungstenite::WebSocket<Stream>,
}

impl Socket {
    /// Connects and upgrades. `endpoint.url` is `ws://` or `wss://`.
    pub fn connect(endpoint: &Endpoint) -> Result<Socket, SocketError> {
        let broken = |what: &str, err: &dyn std::fmt::Display| {
            SocketError::Broken(format!("{}: {what} ({err})", endpoint.shown))
        };
        let uri: Uri = endpoint.url.parse().map_err(|err| broken("not a websocket address", &err))?;
        let host = uri.host().ok_or_else(|| broken("no host", &"the url names none"))?.to_string();
        let tls = uri.scheme_str() == Some("wss");
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let tcp = connect_tcp(host.trim_start_matches('[').trim_end_matches(']'), port)
            .map_err(|err| broken("cannot connect", &err))?;
        tcp.set_read_timeout(Some(CONNECT_TIMEOUT)).map_err(|err| broken("socket options", &err))?;
        tcp.set_write_timeout(Some(CONNECT_TIMEOUT)).map_err(|err| broken("socket options", &err))?;
        tcp.set_nodelay(true).map_err(|err| broken("socket options", &err))?;
        let stream = if tls {
            let name = rustls::pki_types::ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
                .map_err(|err| broken("not a TLS server name", &err))?
                .to_owned();
            let connection =
                rustls::ClientConnection::new(tls_config().map_err(|err| broken("TLS setup", &err))?, name)
                    .map_err(|err| broken("TLS setup", &err))?;
            Stream::Tls(Box::new(rustls::StreamOwned::new(connection, tcp)))
        } else {
            Stream::Plain(tcp)
        };
        let mut request = endpoint.url.as_str().into_client_request().map_err(|err| broken("bad request", &err))?;
        for (name, value) in &endpoint.headers {
            let value = HeaderValue::from_str(value).map_err(|err| broken("a header value", &err))?;
            request.headers_mut().insert(HeaderName::from_static(name), value);
        }
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        let (ws, _) =
            tungstenite::client::client_with_config(request, stream, Some(config)).map_err(|err| match err {
                tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response)) => {
                    SocketError::Status(response.status().as_u16())
                }
                tungstenite::HandshakeError::Failure(err) => broken("upgrade failed", &err),
                tungstenite::HandshakeError::Interrupted(_) => broken("upgrade failed", &"timed out"),
            })?;
        ws.get_ref().tcp().set_read_timeout(Some(TICK)).map_err(|err| broken("socket options", &err))?;
        Ok(Socket { ws })
    }

    /// The next frame, or `Idle` after `TICK` without one. Pings are
    /// answered by tungstenite.
    pub fn read(&mut self) -> Result<Frame, SocketError> {
        match self.ws.read() {
            Ok(Message::Text(text)) => Ok(Frame::Text(text.as_str().to_string())),
            Ok(Message::Close(_)) => Err(SocketError::Broken("the server closed the socket".into())),
            Ok(_) => Ok(Frame::Other),
            Err(tungstenite::Error::Io(err))
                if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                Ok(Frame::Idle)
            }
            Err(tungstenite::Error::Capacity(_)) => Err(SocketError::TooLarge),
            Err(err) => Err(SocketError::Broken(format!("the socket broke ({err})"))),
        }
    }

    pub fn send_text(&mut self, text: &str) -> Result<(), SocketError> {
        self.send(Message::text(text))
    }

    pub fn ping(&mut self) -> Result<(), SocketError> {
        self.send(Message::Ping(Default::default()))
    }

    fn send(&mut self, message: Message) -> Result<(), SocketError> {
        self.ws.send(message).map_err(|err| SocketError::Broken(format!("cannot send on the socket ({err})")))
    }

    /// Says goodbye; errors are of no interest any more.
    pub fn close(mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}

fn connect_tcp(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the name resolves to no address");
    for address in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(err) => last = err,
        }
    }
    Err(last)
}

/// The client TLS config: ring, the webpki roots, as ureq has them.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
