//! The HTTP client every source shares: one ureq agent, request counting,
//! bounded response bodies, the server's clock from every answer's `Date`,
//! and the mapping from HTTP outcomes to the error kinds the engine acts
//! on. URLs passed here never carry secrets, so they may appear in messages;
//! credentials travel in headers only.

use super::stop::Stop;
use super::{Cause, ErrorKind, SourceError};
use serde::de::DeserializeOwned;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// The longest single wait a server can ask for: a day covers a spent daily
/// quota; a longer `Retry-After` is taken as a day.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);
/// The wait when a 429 carries no readable `Retry-After`.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);
/// A body may hold this much besides its entries (the envelope, totals).
const BODY_BASE_BYTES: u64 = 1 << 20;
/// And this much per entry asked for: real entries are a few KiB (the
/// responses in `tests/data/plex` are under 2 KiB each).
const BODY_ENTRY_BYTES: u64 = 16 << 10;
/// An error body is read only for its message.
const ERROR_BODY_BYTES: u64 = 64 << 10;
/// `Http::server_time` before any answer carried a readable `Date`.
const NO_TIME: i64 = i64::MIN;
/// Name resolution and connecting are the only steps a stop cannot
/// interrupt, so they get less than the whole request's timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes read from an answer listing at most `entries` entries
/// (0 for a count or a small answer). Bodies are parsed as they stream in,
/// so this bounds the transfer, not memory: what is kept is the few fields
/// stored (`lenient`).
pub fn body_cap(entries: u32) -> u64 {
    BODY_BASE_BYTES.saturating_add(u64::from(entries).saturating_mul(BODY_ENTRY_BYTES))
}

pub struct Http {
    agent: ureq::Agent,
    base: String,
    requests: AtomicU64,
    /// The server's clock at its latest answer with a readable `Date`
    /// header (epoch seconds), or `NO_TIME`.
    server_time: AtomicI64,
    stop: Arc<Stop>,
}

impl Http {
    /// A client for `base`; `stop` interrupts its requests in flight.
    pub fn new(base: &str, timeout: Duration, stop: &Arc<Stop>) -> Http {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_resolve(Some(timeout.min(CONNECT_TIMEOUT)))
            .timeout_connect(Some(timeout.min(CONNECT_TIMEOUT)))
            .http_status_as_error(false)
            .user_agent(concat!("mediasync/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent: ureq::Agent = config.into();
        stop.register(&agent);
        Http {
            agent,
            base: base.trim_end_matches('/').to_string(),
            requests: AtomicU64::new(0),
            server_time: AtomicI64::new(NO_TIME),
            stop: Arc::clone(stop),
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The server's clock (epoch seconds) as of its latest answer, from its
    /// `Date` header, whatever the answer's status.
    pub fn server_time(&self) -> Option<i64> {
        Some(self.server_time.load(Ordering::Relaxed)).filter(|time| *time != NO_TIME)
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// GETs `path_and_query` (which starts with '/') and returns a 2xx
    /// answer; every other outcome becomes a `SourceError`.
    pub fn get(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Result<Reply, SourceError> {
        self.get_found(path_and_query, headers)?.ok_or_else(|| {
            SourceError::new(ErrorKind::Rejected, format!("{}{path_and_query}: unexpected HTTP 404", self.base))
        })
    }

    /// As `get`, but a 404 is an answer (`None`): the thing asked for does
    /// not exist.
    pub fn get_found(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Result<Option<Reply>, SourceError> {
        let reply = self.send(path_and_query, headers, None)?;
        let status = reply.status;
        match status {
            200..=299 => Ok(Some(reply)),
            404 => Ok(None),
            401 | 403 => Err(SourceError::new(
                ErrorKind::Unauthorized,
                format!(
                    "{} refused the credentials (HTTP {status}); check the server's token in the config",
                    self.base
                ),
            )),
            429 => Err(rate_limited(&reply.at, reply.retry_after)),
            408 | 500..=599 => Err(SourceError::new(
                ErrorKind::Unavailable,
                format!("{}: server error (HTTP {status}); will retry", reply.at),
            )),
            _ => Err(SourceError::new(ErrorKind::Rejected, format!("{}: unexpected HTTP {status}", reply.at))),
        }
    }

    /// Sends a GET (or, with a body, a POST) and returns whatever the
    /// server answered, its body unread; only a failed exchange is an
    /// error. For sources that read their server's error bodies.
    pub fn send(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<Body<'_>>,
    ) -> Result<Reply, SourceError> {
        let at = format!("{}{}", self.base, path_and_query);
        if self.stop.is_set() {
            return Err(SourceError::stopped(&at));
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let result = match body {
            None => {
                let mut request = self.agent.get(&at);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                request.call()
            }
            Some(body) => {
                let (content_type, bytes) = match body {
                    Body::Form(form) => ("application/x-www-form-urlencoded", form),
                    Body::Json(json) => ("application/json", json),
                };
                let mut request = self.agent.post(&at).header("Content-Type", content_type);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                request.send(bytes.as_bytes())
            }
        };
        let response = match result {
            Ok(response) => response,
            Err(_) if self.stop.is_set() => return Err(SourceError::stopped(&at)),
            Err(err) => return Err(transport_error(&at, err)),
        };
        let status = response.status().as_u16();
        let header =
            |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_string);
        if let Some(time) = header("date").as_deref().and_then(parse_http_date) {
            self.server_time.store(time, Ordering::Relaxed);
        }
        let retry_after = header("retry-after").and_then(|value| retry_after(&value, SystemTime::now()));
        Ok(Reply { status, retry_after, body: response.into_body(), at, stop: Arc::clone(&self.stop) })
    }
}

/// A POST's body (`Http::send`).
#[derive(Clone, Copy)]
pub enum Body<'a> {
    Form(&'a str),
    Json(&'a str),
}

/// An answer of any status, its body not read yet (`Http::send`).
pub struct Reply {
    pub status: u16,
    /// `Retry-After`, when readable (`retry_after`).
    pub retry_after: Option<Duration>,
    body: ureq::Body,
    /// The URL asked, for messages (it never holds a secret).
    at: String,
    stop: Arc<Stop>,
}

impl Reply {
    /// The URL asked, for messages.
    pub fn at(&self) -> &str {
        &self.at
    }

    /// Reads the body as `T` while it streams in, at most `cap` bytes of it
    /// (`body_cap`); `what` names the expected answer in messages. A body
    /// cut off, too large or not what was expected is an outage of this
    /// request (`Unavailable`), retried like a 5xx.
    pub fn json<T: DeserializeOwned>(self, cap: u64, what: &str) -> Result<T, SourceError> {
        let Reply { mut body, at, stop, .. } = self;
        let reader = std::io::BufReader::with_capacity(64 << 10, body.with_config().limit(cap).reader());
        serde_json::from_reader(reader).map_err(|err| {
            if stop.is_set() {
                return SourceError::stopped(&at);
            }
            let message = if err.is_io() {
                format!("{at}: the answer could not be read ({err}); it may be larger than the {cap} bytes allowed")
            } else {
                format!("{at}: the answer is not {what} ({err}); the response may have been cut off")
            };
            SourceError::new(ErrorKind::Unavailable, message).caused_by(Cause::Json(err))
        })
    }

    /// The start of the body, at most 64 KiB: an error body, read for its
    /// message only.
    pub fn error_body(self) -> Vec<u8> {
        let Reply { mut body, .. } = self;
        let mut start = Vec::new();
        let _ = body.as_reader().take(ERROR_BODY_BYTES).read_to_end(&mut start);
        start
    }
}

/// A 429's error: wait `Retry-After` (or `DEFAULT_RETRY_AFTER`).
pub fn rate_limited(at: &str, retry_after: Option<Duration>) -> SourceError {
    let wait = retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
    SourceError::new(
        ErrorKind::RateLimited(wait),
        format!("{at}: rate limited (HTTP 429), retry after {}s", wait.as_secs()),
    )
}

/// A `Retry-After` value as a wait from `now`: delay-seconds or an
/// HTTP-date (RFC 9110, 10.2.3), at most `MAX_WAIT`; a date in the past is
/// no wait. Anything else (a negative number, a fraction, garbage) is
/// unreadable: `None`.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        // More digits than a u64 holds is a wait past any bound.
        Duration::from_secs(value.parse().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_WAIT))
}

/// An HTTP date (the `Date` header) as epoch seconds.
pub fn parse_http_date(value: &str) -> Option<i64> {
    let at = httpdate::parse_http_date(value.trim()).ok()?;
    let seconds = at.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(seconds).ok()
}

fn transport_error(at: &str, err: ureq::Error) -> SourceError {
    SourceError::new(
        ErrorKind::Unavailable,
        format!("{at}: cannot reach the server ({err}); check that it is running and the url is right"),
    )
    .caused_by(Cause::Http(err))
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn a_failed_exchange_keeps_its_cause() {
        // A port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let http = Http::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(5), &Arc::default());
        let Err(err) = http.get("/library/sections", &[]) else {
            panic!("nothing listens on port {port}");
        };
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert!(err.message().contains("cannot reach the server"), "{err}");
        assert!(matches!(err.cause(), Some(Cause::Http(_))), "{err:?}");
        assert!(err.source().is_some_and(|cause| cause.is::<ureq::Error>()), "{err:?}");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_within_bounds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_923_200);
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(retry_after("18446744073709551615", now), Some(MAX_WAIT));
        assert_eq!(retry_after("99999999999999999999999999", now), Some(MAX_WAIT));
        assert_eq!(retry_after("Thu, 02 Jan 2020 00:01:30 GMT", now), Some(Duration::from_secs(90)));
        assert_eq!(retry_after("Thursday, 02-Jan-20 00:01:30 GMT", now), Some(Duration::from_secs(90)));
        assert_eq!(retry_after("Thu Jan  2 00:01:30 2020", now), Some(Duration::from_secs(90)));
        assert_eq!(retry_after("Wed, 01 Jan 2020 00:00:00 GMT", now), Some(Duration::ZERO), "a past date");
        assert_eq!(retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now), Some(MAX_WAIT));
        for unreadable in ["-5", "1.5", "", "soon", "+3", "0x10"] {
            assert_eq!(retry_after(unreadable, now), None, "{unreadable:?}");
        }
        assert_eq!(parse_http_date("Thu, 02 Jan 2020 00:00:00 GMT"), Some(1_577_923_200));
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn body_caps_grow_with_the_page_and_never_overflow() {
        assert_eq!(body_cap(0), 1 << 20);
        assert_eq!(body_cap(200), (1 << 20) + 200 * (16 << 10));
        assert!(body_cap(crate::config::MAX_PAGE_SIZE) < 100 << 20);
        assert!(body_cap(u32::MAX) > body_cap(crate::config::MAX_PAGE_SIZE));
    }
}
