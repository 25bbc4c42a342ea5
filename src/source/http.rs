//! The HTTP client every source shares: one ureq agent, request counting,
//! bounded response bodies, the server's clock from every answer's `Date`,
//! and the mapping from HTTP outcomes to the error kinds the engine acts
//! on. URLs passed here never carry secrets, so they may appear in messages;
//! credentials travel in headers only.

use super::{Cause, ErrorKind, SourceError};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// No `Date` seen yet.
const NO_TIME: i64 = i64::MIN;

/// A cap on one response body: a page of a few hundred items is far below it;
/// a runaway or hostile server cannot exhaust a 512 MiB board.
const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

pub struct Http {
    agent: ureq::Agent,
    base: String,
    requests: AtomicU64,
    /// The server's clock at its latest answer that carried a `Date`
    /// (epoch seconds), or `NO_TIME`.
    server_time: AtomicI64,
}

impl Http {
    pub fn new(base: &str, timeout: Duration) -> Http {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(concat!("mediasync/", env!("CARGO_PKG_VERSION")))
            .build();
        Http {
            agent: config.into(),
            base: base.trim_end_matches('/').to_string(),
            requests: AtomicU64::new(0),
            server_time: AtomicI64::new(NO_TIME),
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The server's clock as of its latest answer with a `Date` header.
    pub fn server_time(&self) -> Option<i64> {
        Some(self.server_time.load(Ordering::Relaxed)).filter(|time| *time != NO_TIME)
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// GETs `path_and_query` (which starts with '/') and returns the body of
    /// a 2xx answer; every other outcome becomes a `SourceError`.
    pub fn get(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Result<Vec<u8>, SourceError> {
        self.get_found(path_and_query, headers)?.ok_or_else(|| {
            SourceError::new(ErrorKind::Rejected, format!("{}{path_and_query}: unexpected HTTP 404", self.base))
        })
    }

    /// As `get`, but a 404 is an answer (`None`): the thing asked for does
    /// not exist.
    pub fn get_found(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Result<Option<Vec<u8>>, SourceError> {
        let raw = self.send(path_and_query, headers, None)?;
        let status = raw.status;
        match status {
            200..=299 => Ok(Some(raw.body)),
            404 => Ok(None),
            401 | 403 => Err(SourceError::new(
                ErrorKind::Unauthorized,
                format!(
                    "{} refused the credentials (HTTP {status}); check the server's token in the config",
                    self.base
                ),
            )),
            429 => {
                let wait = Duration::from_secs(raw.retry_after.unwrap_or(30));
                Err(SourceError::new(
                    ErrorKind::RateLimited(wait),
                    format!("{}{path_and_query}: rate limited (HTTP 429), retry after {}s", self.base, wait.as_secs()),
                ))
            }
            408 | 500..=599 => Err(SourceError::new(
                ErrorKind::Unavailable,
                format!("{}{path_and_query}: server error (HTTP {status}); will retry", self.base),
            )),
            _ => Err(SourceError::new(
                ErrorKind::Rejected,
                format!("{}{path_and_query}: unexpected HTTP {status}", self.base),
            )),
        }
    }

    /// Sends a GET (or, with a body, a form POST) and returns whatever the
    /// server answered; only a failed exchange is an error. For sources that
    /// read their server's error bodies.
    pub fn send(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
        form: Option<&str>,
    ) -> Result<RawResponse, SourceError> {
        let url = format!("{}{}", self.base, path_and_query);
        self.requests.fetch_add(1, Ordering::Relaxed);
        let result = match form {
            None => {
                let mut request = self.agent.get(&url);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                request.call()
            }
            Some(form) => {
                let mut request = self.agent.post(&url).header("Content-Type", "application/x-www-form-urlencoded");
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                request.send(form.as_bytes())
            }
        };
        let mut response = result.map_err(|err| transport_error(&self.base, path_and_query, err))?;
        let status = response.status().as_u16();
        let header =
            |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_string);
        if let Some(time) = header("date").as_deref().and_then(parse_http_date) {
            self.server_time.store(time, Ordering::Relaxed);
        }
        let retry_after = header("retry-after").and_then(|value| value.trim().parse::<u64>().ok());
        let body = response.body_mut().with_config().limit(MAX_BODY_BYTES).read_to_vec().map_err(|err| {
            SourceError::new(
                ErrorKind::Unavailable,
                format!("{}{path_and_query}: the response body could not be read ({err})", self.base),
            )
            .caused_by(Cause::Http(err))
        })?;
        Ok(RawResponse { status, body, retry_after })
    }
}

/// An answer of any status (`Http::send`).
pub struct RawResponse {
    pub status: u16,
    pub body: Vec<u8>,
    /// `Retry-After` in seconds, when sent as a number.
    pub retry_after: Option<u64>,
}

fn transport_error(base: &str, path: &str, err: ureq::Error) -> SourceError {
    SourceError::new(
        ErrorKind::Unavailable,
        format!("{base}{path}: cannot reach the server ({err}); check that it is running and the url is right"),
    )
    .caused_by(Cause::Http(err))
}

/// Parses an HTTP `Date` header (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn parse_http_date(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc2822(text.trim()).ok().map(|time| time.timestamp())
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
        let http = Http::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(5));
        let Err(err) = http.get("/library/sections", &[]) else {
            panic!("nothing listens on port {port}");
        };
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert!(err.message().contains("cannot reach the server"), "{err}");
        assert!(matches!(err.cause(), Some(Cause::Http(_))), "{err:?}");
        assert!(err.source().is_some_and(|cause| cause.is::<ureq::Error>()), "{err:?}");
    }
}
