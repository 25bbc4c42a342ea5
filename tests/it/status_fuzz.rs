//! The status server's request path under random and mutated requests
//! (proptest), over real TCP against the server as the daemon runs it:
//! odd methods and headers, bare LF line ends, `Content-Length: +5` and
//! friends, `Transfer-Encoding`, `%2F`, `+` and broken escapes in paths and
//! queries, CR, LF and NUL inside header values, huge headers, invalid
//! UTF-8, foreign `Host` names and `Origin`s, then byte-level mutations of
//! the whole request (flips, insertions, cuts, repeats). Every answer must
//! be an HTTP/1.x answer with an expected status (or a close for a request
//! cut short), no handler or connection may panic, no control or export may
//! be granted without the admin token and a name of the box, and the server
//! must keep answering. `MEDIASYNC_FUZZ_CASES` sets the number of cases
//! (default 2000; `.ci/run` sets fewer under qemu); the figures are
//! printed (`cargo test --test it status_fuzz -- --nocapture`).

use crate::status_server::{Running, get};
use mediasync::web::server;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn cases() -> u32 {
    std::env::var("MEDIASYNC_FUZZ_CASES").ok().and_then(|text| text.parse().ok()).unwrap_or(2000)
}

/// Statuses the server (or hyper for it) may answer.
const EXPECTED: [u16; 14] = [200, 202, 400, 401, 403, 404, 405, 408, 409, 411, 413, 414, 421, 431];

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        16 => prop::sample::select(vec![
            "", "api", "servers", "home", "sync", "pause", "resume", "reset", "connect", "export", "status",
            "items", "changes", "metrics", "healthz", "spotify", "callback", "%2F", "home%2Fpause", "+", "a+b",
            "%zz", "%ff", "%00", "%", "..", "%2e%2e", "✓", "%e2%9c%93", "home%20", "HOME",
        ])
        .prop_map(String::from),
        2 => "[A-Za-z0-9%+._~-]{0,12}",
        1 => "[ -~]{0,12}",
        1 => prop::collection::vec(any::<u8>(), 0..8).prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
    ]
}

/// One of the server's routes, the controls with odd server names.
fn route() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        "/",
        "/healthz",
        "/metrics",
        "/api/status",
        "/api/items",
        "/api/changes",
        "/api/export",
        "/spotify/callback",
        "/api/spotify/callback",
    ])
    .prop_map(String::from);
    let name = prop::sample::select(vec!["home", "home%2Fpause", "%ff", "a+b", "HOME", "nope", "%68ome", ""]);
    let action = prop::sample::select(vec!["sync", "pause", "resume", "reset", "connect", "sync%2F", "delete"]);
    let control = (name, action).prop_map(|(name, action)| format!("/api/servers/{name}/{action}"));
    prop_oneof![fixed, control]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec!["server", "library", "kind", "after", "limit", "since", "full", "x"]);
    let value = prop_oneof![
        6 => prop::sample::select(vec![
            "home",
            "1",
            "2",
            "0",
            "-1",
            "1000",
            "1001",
            "18446744073709551616",
            "movie",
            "sitcom",
            "a+b",
            "%2F",
            "%zz",
            "%ff",
            "true",
            "",
            "✓",
        ])
        .prop_map(String::from),
        2 => "[A-Za-z0-9%+._~-]{0,16}",
        1 => "[ -~]{0,16}",
    ];
    prop::collection::vec((key, value), 0..5)
        .prop_map(|pairs| pairs.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join("&"))
}

/// The `Host` lines: mostly one of the box's names, else a foreign name,
/// a broken one, none, or two; and whether they name the box.
fn host_lines(address: SocketAddr) -> impl Strategy<Value = (String, bool)> {
    let ours = vec![address.to_string(), format!("localhost:{}", address.port()), "localhost".into()];
    let foreign = vec!["evil.example".to_string(), "127.0.0.1.evil.example".into(), "".into(), "a b".into()];
    prop_oneof![
        8 => prop::sample::select(ours.clone()).prop_map(|host| (format!("Host: {host}\r\n"), true)),
        2 => prop::sample::select(foreign.clone()).prop_map(|host| (format!("Host: {host}\r\n"), false)),
        1 => Just((String::new(), false)),
        1 => (prop::sample::select(ours), prop::sample::select(foreign))
            .prop_map(|(ours, foreign)| (format!("Host: {ours}\r\nHost: {foreign}\r\n"), false)),
    ]
}

/// A request's bytes, and whether its `Host` names the box (unknown once
/// mutated: a mutation may well turn one name of the box into another).
#[derive(Debug)]
struct Case {
    bytes: Vec<u8>,
    names_the_box: Option<bool>,
}

/// Another header line, before its line end is chosen.
fn header(address: SocketAddr, token: String) -> impl Strategy<Value = Vec<u8>> {
    let benign = prop::sample::select(vec![
        format!("Authorization: Bearer {token}"),
        format!("Authorization: Bearer {token}"),
        format!("Authorization: Bearer {token}x"),
        "Authorization: Bearer ".into(),
        format!("Authorization: bearer {token}"),
        format!("Origin: http://{address}"),
        "Origin: http://evil.example".into(),
        "Origin: null".into(),
        "Content-Length: 0".into(),
        "Accept: */*".into(),
        "User-Agent: fuzz/1.0".into(),
        "Cookie: a=b; c=%zz".into(),
        "X-Forwarded-For: 10.0.0.1".into(),
        "Expect: 100-continue".into(),
        "Connection: keep-alive, Upgrade".into(),
        "Upgrade: websocket".into(),
    ])
    .prop_map(String::into_bytes);
    let hostile = prop::sample::select(vec![
        "Content-Length: +5",
        "Content-Length: -1",
        "Content-Length: 5",
        "Content-Length: 1e3",
        "Content-Length: 99999999999999999999",
        "Content-Length: 5, 5",
        "Content-Length:  0",
        "Transfer-Encoding: chunked",
        "Transfer-Encoding: gzip, chunked",
        " folded: continuation",
        "X-Space : before colon",
        "NoColon",
        ": empty name",
    ])
    .prop_map(|line| line.as_bytes().to_vec());
    let odd_value = (
        prop::sample::select(vec!["X-Odd", "Host", "Authorization", "Content-Length"]),
        prop::collection::vec(any::<u8>(), 0..24),
    )
        .prop_map(|(name, value)| [name.as_bytes(), b": ", &value].concat());
    let huge = (1usize..24_000).prop_map(|length| [b"X-Padding: ".as_slice(), &vec![b'a'; length]].concat());
    prop_oneof![32 => benign, 4 => hostile, 2 => odd_value, 1 => huge]
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Cut(usize, usize),
    Truncate(usize),
    Repeat(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Flip(at, byte)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<usize>(), 1usize..16).prop_map(|(at, length)| Mutation::Cut(at, length)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..64).prop_map(|(at, length)| Mutation::Repeat(at, length)),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let at = |position: usize, bytes: &Vec<u8>| position % (bytes.len() + 1);
    match mutation {
        Mutation::Flip(position, byte) => {
            let position = at(*position, bytes);
            if let Some(slot) = bytes.get_mut(position) {
                *slot = *byte;
            }
        }
        Mutation::Insert(position, inserted) => {
            let position = at(*position, bytes);
            bytes.splice(position..position, inserted.iter().copied());
        }
        Mutation::Cut(position, length) => {
            let position = at(*position, bytes);
            let end = (position + length).min(bytes.len());
            bytes.drain(position..end);
        }
        Mutation::Truncate(position) => {
            let position = at(*position, bytes);
            bytes.truncate(position);
        }
        Mutation::Repeat(position, length) => {
            let position = at(*position, bytes);
            let end = (position + length).min(bytes.len());
            let copy = bytes[position..end].to_vec();
            bytes.splice(end..end, copy);
        }
    }
}

/// A request: method, target, `Host`, headers with a line end each, an
/// optional body, then (for a quarter of them) mutations of the whole.
fn request(address: SocketAddr, token: String) -> impl Strategy<Value = Case> {
    let method = prop_oneof![
        16 => prop::sample::select(vec!["GET", "POST"]).prop_map(String::from),
        2 => prop::sample::select(vec!["PUT", "DELETE", "HEAD", "OPTIONS", "get", "G\tET", "CONNECT", ""])
            .prop_map(String::from),
        1 => "[ -~]{0,8}",
    ];
    let path = prop_oneof![
        3 => route(),
        1 => prop::collection::vec(segment(), 1..6).prop_map(|segments| format!("/{}", segments.join("/"))),
    ];
    let target = (path, prop::option::of(query())).prop_map(|(path, query)| match query {
        Some(query) => format!("{path}?{query}"),
        None => path,
    });
    let version = prop_oneof![
        8 => Just("HTTP/1.1"),
        1 => prop::sample::select(vec!["HTTP/1.0", "HTTP/2.0", "HTTP/1.1 x", "", "http/1.1"]),
    ];
    let line_end = || prop_oneof![32 => Just("\r\n"), 2 => Just("\n"), 1 => Just("\r")];
    let headers = prop::collection::vec((header(address, token), line_end()), 0..4);
    let body = prop::collection::vec(any::<u8>(), 0..48);
    let mutations = prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(mutation(), 1..4)];
    let head = (method, target, version, line_end(), host_lines(address));
    (head, headers, line_end(), body, mutations).prop_map(
        |((method, target, version, request_end, (host, names_the_box)), headers, final_end, body, mutations)| {
            let mut bytes = format!("{method} {target} {version}{request_end}{host}").into_bytes();
            for (header, end) in headers {
                bytes.extend_from_slice(&header);
                bytes.extend_from_slice(end.as_bytes());
            }
            bytes.extend_from_slice(final_end.as_bytes());
            bytes.extend_from_slice(&body);
            for mutation in &mutations {
                mutate(&mut bytes, mutation);
            }
            Case { bytes, names_the_box: Some(names_the_box).filter(|_| mutations.is_empty()) }
        },
    )
}

/// Sends `bytes`, says the request is over (so a request cut short ends at
/// once instead of at the header deadline) and reads the whole answer.
fn exchange(address: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // The server may answer and close before taking all of a bad request.
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// The final answer's status (after any `100 Continue`), if it is an
/// HTTP/1.x answer (hyper answers an HTTP/1.0 request in HTTP/1.0).
fn status_of(answer: &[u8]) -> Option<u16> {
    let mut rest = answer;
    loop {
        let line_end = rest.windows(2).position(|window| window == b"\r\n")?;
        let line = std::str::from_utf8(&rest[..line_end]).ok()?;
        let rest_of_line = line.strip_prefix("HTTP/1.1 ").or_else(|| line.strip_prefix("HTTP/1.0 "))?;
        let status: u16 = rest_of_line.get(..3)?.parse().ok()?;
        if status != 100 {
            return Some(status);
        }
        let head_end = rest.windows(4).position(|window| window == b"\r\n\r\n")?;
        rest = &rest[head_end + 4..];
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

#[test]
fn random_and_mutated_requests_never_panic_and_never_grant_without_the_token() {
    let running = Running::start(20, None, server::Limits::default());
    let address = running.address();
    let token = running.bearer.trim_start_matches("Bearer ").to_string();
    let cases = cases();
    let statuses: RefCell<BTreeMap<String, u64>> = RefCell::new(BTreeMap::new());
    let sent = Cell::new(0u64);
    let largest = Cell::new(0usize);
    let started = Instant::now();
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&request(address, token.clone()), |Case { bytes, names_the_box }| {
        let answer = exchange(address, &bytes);
        sent.set(sent.get() + 1);
        largest.set(largest.get().max(bytes.len()));
        let status = status_of(&answer);
        let shown = status.map_or("closed".to_string(), |status| status.to_string());
        *statuses.borrow_mut().entry(shown).or_default() += 1;
        match status {
            None => prop_assert!(answer.is_empty(), "not an HTTP/1.x answer: {:?}", String::from_utf8_lossy(&answer)),
            Some(status) => prop_assert!(EXPECTED.contains(&status), "unexpected status {status}"),
        }
        if matches!(status, Some(200..=299)) {
            prop_assert!(names_the_box != Some(false), "a 2xx to a foreign, missing or doubled Host");
        }
        let granted = status == Some(202) || (status == Some(200) && contains(&answer, b"application/x-ndjson"));
        if granted {
            prop_assert!(contains(&bytes, token.as_bytes()), "a control or the export granted without the token");
        }
        if running.server.panics() != 0 {
            return Err(TestCaseError::fail("a handler or connection panicked"));
        }
        Ok(())
    });
    let elapsed = started.elapsed();
    println!(
        "status server fuzz: {cases} cases, {} requests (shrinking included) in {:.1} s ({:.0} requests/s), largest request {} bytes, panics {}, answers by status {:?}",
        sent.get(),
        elapsed.as_secs_f64(),
        sent.get() as f64 / elapsed.as_secs_f64().max(0.001),
        largest.get(),
        running.server.panics(),
        statuses.borrow(),
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
    assert_eq!(running.server.panics(), 0);
    assert_eq!(get(address, "/healthz").status, 200, "the server stopped answering");
}
