//! The servers' own change notifications: one websocket per Plex, Jellyfin
//! or Emby server (`socket`), read down to what changed (`plex`,
//! `jellyfin`), kept alive as each server asks, and reconnected with
//! backoff and jitter (`backoff`). `listen` runs on a thread of its own and
//! reports through callbacks; what to sync about a notice is the
//! application's business (`app::push`). Sends no HTTP request but the
//! upgrade, so an idle server costs nothing.

pub mod backoff;
pub mod jellyfin;
pub mod plex;
pub mod socket;

use crate::model::Kind;
use crate::source::Stop;
pub use socket::{Endpoint, SocketError};
use std::time::{Duration, Instant};

/// One item a server said changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The library (Plex's section), when the server says.
    pub library: Option<String>,
    /// The kind, when the server says.
    pub kind: Option<Kind>,
    pub id: String,
    /// The server said it was deleted (to be confirmed before deleting).
    pub removed: bool,
}

/// What one message said about the library.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notice {
    pub changes: Vec<Change>,
    /// Libraries whose scan started (Plex's `library.update.section`).
    pub scans_started: Vec<String>,
    /// Libraries whose scan ended.
    pub scans_ended: Vec<String>,
    /// Folders items were added to or removed from (Jellyfin): a hint of
    /// the library of items the mirror does not know yet.
    pub folders: Vec<String>,
}

impl Notice {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
            && self.scans_started.is_empty()
            && self.scans_ended.is_empty()
            && self.folders.is_empty()
    }

    /// A few words for the status page.
    pub fn summary(&self) -> String {
        let removed = self.changes.iter().filter(|change| change.removed).count();
        let changed = self.changes.len().saturating_sub(removed);
        let mut parts = Vec::new();
        if changed > 0 {
            parts.push(format!("{changed} changed"));
        }
        if removed > 0 {
            parts.push(format!("{removed} removed"));
        }
        if !self.scans_started.is_empty() {
            parts.push(format!("scan started in library {}", self.scans_started.join(", ")));
        }
        if !self.scans_ended.is_empty() {
            parts.push(format!("scan ended in library {}", self.scans_ended.join(", ")));
        }
        if parts.is_empty() {
            parts.push("folders changed".into());
        }
        parts.join(", ")
    }
}

/// What the listener reports.
#[derive(Debug)]
pub enum Event {
    Connecting,
    Connected,
    /// The connection failed or ended; the next try is in `retry_in`.
    Disconnected {
        error: String,
        retry_in: Duration,
    },
    /// The server refused the credentials of the socket.
    Refused {
        error: String,
    },
    Notice(Notice),
    /// More changed than one message may carry: look at everything.
    Overflow,
}

/// Which messages the socket speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Plex,
    /// Jellyfin and Emby.
    MediaBrowser,
}

/// With no frame for this long the listener pings; with none for twice as
/// long the connection is taken as dead (a server that vanished without
/// closing it) and made again.
const PING_AFTER: Duration = Duration::from_secs(30);

/// What to connect to next: an endpoint, or why not (no credentials yet:
/// the listener asks again after `CREDENTIALS_POLL`).
pub type NextEndpoint = Result<Endpoint, String>;
/// How often a listener without credentials looks for them again: also
/// the pace of the checks of a Quick Connect code (a request each).
pub const CREDENTIALS_POLL: Duration = Duration::from_secs(5);

/// Keeps one server's socket open until `stop` is set: connects with what
/// `endpoint` gives, reads notices, answers keep-alives, and reconnects
/// after a failure with backoff and jitter. Every change of state and every
/// notice goes to `report`.
pub fn listen(
    protocol: Protocol,
    stop: &Stop,
    endpoint: &mut dyn FnMut() -> NextEndpoint,
    report: &mut dyn FnMut(Event),
) {
    let mut failures: u32 = 0;
    while !stop.is_set() {
        let endpoint = match endpoint() {
            Ok(endpoint) => endpoint,
            Err(_) => {
                stop.sleep(CREDENTIALS_POLL);
                continue;
            }
        };
        report(Event::Connecting);
        let error = match socket::Socket::connect(&endpoint) {
            Ok(mut socket) => {
                report(Event::Connected);
                failures = 0;
                let error = read_until_broken(protocol, &mut socket, stop, report);
                socket.close();
                error
            }
            Err(error) => error,
        };
        if stop.is_set() {
            return;
        }
        match error {
            SocketError::Status(401 | 403) => {
                report(Event::Refused { error: format!("{}: {error}", endpoint.shown) });
                // The credentials will not work by trying again at once: the
                // application replaces them or the backoff spaces the tries.
                failures = failures.saturating_add(1);
            }
            SocketError::TooLarge => report(Event::Overflow),
            _ => failures = failures.saturating_add(1),
        }
        let retry_in = backoff::delay(failures, backoff::random_fraction());
        report(Event::Disconnected { error: format!("{}: {error}", endpoint.shown), retry_in });
        stop.sleep(retry_in);
    }
}

/// Reads until the connection breaks or `stop` is set; the error says why
/// it ended.
fn read_until_broken(
    protocol: Protocol,
    socket: &mut socket::Socket,
    stop: &Stop,
    report: &mut dyn FnMut(Event),
) -> SocketError {
    let mut heard = Instant::now();
    let mut pinged = false;
    let mut keep_alive: Option<(Duration, Instant)> = None;
    while !stop.is_set() {
        let frame = match socket.read() {
            Ok(frame) => frame,
            Err(error) => return error,
        };
        if !matches!(frame, socket::Frame::Idle) {
            heard = Instant::now();
            pinged = false;
        }
        if let socket::Frame::Text(text) = frame {
            match protocol {
                Protocol::Plex => {
                    if let Some(notice) = plex::read(&text) {
                        report(Event::Notice(notice));
                    }
                }
                Protocol::MediaBrowser => match jellyfin::read(&text) {
                    jellyfin::Said::Notice(notice) => report(Event::Notice(notice)),
                    jellyfin::Said::KeepAlive(every) => {
                        if let Err(error) = socket.send_text(jellyfin::KEEP_ALIVE) {
                            return error;
                        }
                        keep_alive = Some((every, Instant::now()));
                    }
                    jellyfin::Said::Nothing => {}
                },
            }
        }
        if let Some((every, sent)) = keep_alive {
            if sent.elapsed() >= every {
                if let Err(error) = socket.send_text(jellyfin::KEEP_ALIVE) {
                    return error;
                }
                keep_alive = Some((every, Instant::now()));
            }
        }
        let silent = heard.elapsed();
        if silent >= PING_AFTER.saturating_mul(2) {
            return SocketError::Broken(format!("nothing heard for {}s", silent.as_secs()));
        }
        if silent >= PING_AFTER && !pinged {
            if let Err(error) = socket.ping() {
                return error;
            }
            pinged = true;
        }
    }
    SocketError::Broken("stopped".into())
}

/// `http(s)://host/prefix` as `ws(s)://host/prefix` (config urls are checked
/// to be http or https, without a query).
pub fn websocket_base(url: &str) -> String {
    let url = url.trim_end_matches('/');
    match url.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}"),
        None => format!("ws://{}", url.strip_prefix("http://").unwrap_or(url)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_addresses_keep_the_prefix() {
        assert_eq!(websocket_base("http://192.0.2.1:32400/"), "ws://192.0.2.1:32400");
        assert_eq!(websocket_base("https://media.example/jellyfin"), "wss://media.example/jellyfin");
    }
}
