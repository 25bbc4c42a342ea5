//! The status server's request and answer as the handlers see them, built
//! from and turned into hyper's types (`server` does the HTTP). A request's
//! path is split into segments before each is percent-decoded, so `%2F`
//! stays inside its segment and `+` stays a plus; the query is
//! `application/x-www-form-urlencoded` (`+` is a space), decoded by
//! `form_urlencoded`.

use http_body_util::channel::Channel;
use http_body_util::{Either, Full};
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode, Uri};
use std::net::SocketAddr;

pub struct Request {
    pub method: Method,
    /// The path's segments, each percent-decoded (`/api/a%2Fb` is `["api", "a/b"]`).
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    /// The address the connection reached (which of the box's addresses).
    pub local: SocketAddr,
    /// The request body (at most `Limits::max_body_bytes`).
    pub body: Bytes,
}

impl Request {
    /// A request from its parsed parts; refused (400) when a path segment is
    /// not percent-encoded UTF-8.
    pub fn new(
        method: Method,
        uri: &Uri,
        headers: HeaderMap,
        local: SocketAddr,
        body: Bytes,
    ) -> Result<Request, Response> {
        let path = uri.path();
        let segments = path
            .strip_prefix('/')
            .unwrap_or(path)
            .split('/')
            .map(|segment| percent_encoding::percent_decode_str(segment).decode_utf8().map(|text| text.into_owned()))
            .collect::<Result<Vec<String>, _>>()
            .map_err(|_| Response::error(400, "the path is not valid percent-encoded UTF-8"))?;
        let query = uri.query().map(|query| parse_pairs(query.as_bytes())).unwrap_or_default();
        Ok(Request { method, segments, query, headers, local, body })
    }

    /// A header's value, when it is there once and is visible ASCII.
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        let mut values = self.headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => value.to_str().ok(),
            _ => None,
        }
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// The pairs of a query string or form body (`a=1&b=x+y%21`).
pub fn parse_pairs(text: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(text).into_owned().collect()
}

pub enum Body {
    Bytes(Vec<u8>),
    /// Chunks as their producer sends them (large exports), without a
    /// length. A producer that fails aborts it with the error: the client
    /// then sees the answer end without its last chunk, never a
    /// complete-looking one.
    Stream(Channel<Bytes, std::io::Error>),
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(HeaderName, HeaderValue)>,
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

    pub fn with_header(self, name: HeaderName, value: &'static str) -> Response {
        self.with_value(name, HeaderValue::from_static(value))
    }

    /// A header whose value is made at run time (an `ETag`).
    pub fn with_value(mut self, name: HeaderName, value: HeaderValue) -> Response {
        self.headers.push((name, value));
        self
    }

    /// The answer as hyper sends it. Every answer is uncached, unsniffed
    /// and unframeable; an HTML page sets a fuller policy of its own.
    pub fn into_hyper(self) -> hyper::Response<AnswerBody> {
        let body = match self.body {
            Body::Bytes(bytes) => Either::Left(Full::new(Bytes::from(bytes))),
            Body::Stream(channel) => Either::Right(channel),
        };
        let mut answer = hyper::Response::new(body);
        *answer.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = answer.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(NO_CONTENT_POLICY));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        answer
    }
}

pub type AnswerBody = Either<Full<Bytes>, Channel<Bytes, std::io::Error>>;

/// The policy of every answer that is not a page: nothing loads, nothing
/// frames it.
pub const NO_CONTENT_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(target: &str) -> Request {
        let address: SocketAddr = "127.0.0.1:8787".parse().unwrap();
        let uri: Uri = target.parse().unwrap();
        Request::new(Method::GET, &uri, HeaderMap::new(), address, Bytes::new())
            .unwrap_or_else(|_| panic!("{target} refused"))
    }

    #[test]
    fn path_segments_are_split_before_decoding() {
        assert_eq!(parsed("/api/servers/a%2Fb/sync").segments, ["api", "servers", "a/b", "sync"]);
        assert_eq!(parsed("/api/servers/a+b%20c/sync").segments, ["api", "servers", "a+b c", "sync"]);
        assert_eq!(parsed("/").segments, [""]);
        assert_eq!(parsed("//api/status").segments, ["", "api", "status"]);
        assert_eq!(parsed("/%e2%9c%93").segments, ["✓"]);
    }

    #[test]
    fn the_query_is_form_encoded() {
        let request = parsed("/api/items?server=a+b%2Fc&library=%e2%9c%93&after=&flag");
        assert_eq!(request.param("server"), Some("a b/c"));
        assert_eq!(request.param("library"), Some("✓"));
        assert_eq!(request.param("after"), Some(""));
        assert_eq!(request.param("flag"), Some(""));
        assert_eq!(request.param("missing"), None);
    }

    #[test]
    fn a_path_that_is_not_utf8_is_refused() {
        let address: SocketAddr = "127.0.0.1:8787".parse().unwrap();
        let uri: Uri = "/api/servers/%ff/sync".parse().unwrap();
        let refused = Request::new(Method::POST, &uri, HeaderMap::new(), address, Bytes::new());
        assert_eq!(refused.err().map(|response| response.status), Some(400));
    }
}
