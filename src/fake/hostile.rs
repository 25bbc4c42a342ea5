//! The hostile mode every fake shares: what a broken or malicious server
//! does to an answer. `send` writes a fake's answer with the failure
//! injected for that request done to it: a 429 with an extreme or dated
//! `Retry-After`, a giant body, a giant title, values of the wrong type,
//! deep nesting, or the answer dripped out a few bytes at a time.

use super::Failure;
use serde_json::Value;
use std::io::Read;
use std::time::Duration;

impl Failure {
    /// A failure from its command-line spelling (`fake-plex --hostile`).
    pub fn from_spec(spec: &str) -> Result<Failure, String> {
        let (name, value) = spec.split_once(':').unwrap_or((spec, ""));
        let number =
            |text: &str| text.parse::<u64>().map_err(|_| format!("--hostile {spec}: {text:?} is not a number"));
        let size = |text: &str| number(text).map(|bytes| usize::try_from(bytes).unwrap_or(usize::MAX));
        Ok(match name {
            "retry-after" => Failure::RetryAfter(value.to_string()),
            "giant" => Failure::Giant(number(value)?),
            "giant-title" => Failure::GiantTitle(size(value)?),
            "wrong-types" => Failure::WrongTypes,
            "deep" => Failure::Deep(size(value)?),
            "garbage" => Failure::Garbage,
            "truncated" => Failure::Truncated,
            "slow-drip" => {
                let (bytes, millis) = value.split_once(':').unwrap_or((value, "10"));
                Failure::SlowDrip { bytes: size(bytes)?, pause: Duration::from_millis(number(millis)?) }
            }
            _ => return Err(format!("--hostile {spec}: unknown; see `mediasync help`")),
        })
    }
}

/// Sends `status`, `headers` and `body`, changed by `failure` when it is a
/// hostile one (the others were done by the fake itself).
pub(super) fn send(
    request: tiny_http::Request,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    failure: Option<&Failure>,
) {
    let header = |name: &str, value: &str| tiny_http::Header::from_bytes(name, value).ok();
    let json = || header("Content-Type", "application/json");
    let response = match failure {
        Some(Failure::RetryAfter(value)) => {
            let body = br#"{"error":{"status":429,"message":"API rate limit exceeded"}}"#.to_vec();
            let mut response = tiny_http::Response::from_data(body).with_status_code(429);
            // tiny_http refuses some values (non-ASCII): their printable part then.
            let printable: String = value.chars().filter(char::is_ascii_graphic).collect();
            if let Some(retry_after) = header("Retry-After", value).or_else(|| header("Retry-After", &printable)) {
                response.add_header(retry_after);
            }
            return respond(request, response.boxed());
        }
        Some(Failure::Giant(bytes)) => {
            let length = usize::try_from(*bytes).ok();
            let response =
                tiny_http::Response::new(200.into(), json().into_iter().collect(), giant(*bytes), length, None);
            return respond(request, response.boxed());
        }
        Some(Failure::SlowDrip { bytes, pause }) => {
            let length = Some(body.len());
            let drip = Drip { body: std::io::Cursor::new(body), bytes: (*bytes).max(1), pause: *pause };
            let headers = headers.iter().filter_map(|(name, value)| header(name, value)).collect();
            let response = tiny_http::Response::new(status.into(), headers, drip, length, None);
            return respond(request, response.boxed());
        }
        Some(Failure::GiantTitle(bytes)) => mangle(body, |value| giant_title(value, *bytes)),
        Some(Failure::WrongTypes) => mangle(body, wrong_types),
        Some(Failure::Deep(depth)) => mangle(body, |value| nest(value, *depth)),
        _ => body,
    };
    let mut answer = tiny_http::Response::from_data(response).with_status_code(status);
    for (name, value) in &headers {
        if let Some(header) = header(name, value) {
            answer.add_header(header);
        }
    }
    super::send(request, answer);
}

fn respond(request: tiny_http::Request, response: tiny_http::ResponseBox) {
    let _ = request.respond(response);
}

/// The body as JSON changed by `change`; a body that is not JSON is sent
/// as it was.
fn mangle(body: Vec<u8>, change: impl FnOnce(&mut Value)) -> Vec<u8> {
    match serde_json::from_slice::<Value>(&body) {
        Ok(mut value) => {
            change(&mut value);
            serde_json::to_vec(&value).unwrap_or(body)
        }
        Err(_) => body,
    }
}

/// The entries of an answer: the first list of objects found, depth first
/// (`MediaContainer.Metadata`, `Items`, `items`, a bare list of users).
fn entries(value: &mut Value) -> Option<&mut Vec<Value>> {
    if value.as_array().is_some_and(|list| list.iter().any(Value::is_object)) {
        return value.as_array_mut();
    }
    match value {
        Value::Array(list) => list.iter_mut().find_map(entries),
        Value::Object(map) => map.values_mut().find_map(entries),
        _ => None,
    }
}

const TITLE_KEYS: [&str; 3] = ["title", "Name", "name"];

fn giant_title(value: &mut Value, bytes: usize) {
    let Some(first) = entries(value).and_then(|list| list.iter_mut().find(|entry| entry.is_object())) else {
        return;
    };
    if let Some(map) = first.as_object_mut() {
        for key in TITLE_KEYS {
            if map.contains_key(key) {
                map.insert(key.to_string(), Value::String("T".repeat(bytes)));
            }
        }
    }
}

/// Every value of every entry replaced by one of another type: strings by
/// objects, numbers by words, objects by numbers, lists by booleans.
fn wrong_types(value: &mut Value) {
    let Some(list) = entries(value) else {
        return;
    };
    for entry in list.iter_mut().filter_map(Value::as_object_mut) {
        for field in entry.values_mut() {
            *field = match field {
                Value::String(_) => serde_json::json!({"unexpected": [1, 2]}),
                Value::Number(_) => Value::String("not a number".into()),
                Value::Object(_) => Value::from(-1),
                Value::Array(_) => Value::Bool(true),
                Value::Bool(_) | Value::Null => Value::Array(Vec::new()),
            };
        }
    }
}

/// Lists nested `depth` deep inside the first entry.
fn nest(value: &mut Value, depth: usize) {
    let Some(first) = entries(value).and_then(|list| list.iter_mut().find_map(Value::as_object_mut)) else {
        return;
    };
    let mut nested = Value::Array(Vec::new());
    for _ in 0..depth {
        nested = Value::Array(vec![nested]);
    }
    first.insert("nested".into(), nested);
}

/// `bytes` of valid JSON, made as it is read: an object whose one field
/// (which no source reads) holds a string that fills the rest.
fn giant(bytes: u64) -> impl Read + Send + 'static {
    const HEAD: &[u8] = br#"{"padding":""#;
    const TAIL: &[u8] = br#""}"#;
    let overhead = u64::try_from(HEAD.len() + TAIL.len()).unwrap_or(0);
    let filler = std::io::repeat(b'x').take(bytes.saturating_sub(overhead));
    HEAD.chain(filler).chain(TAIL)
}

/// A body read `bytes` at a time with `pause` before each piece.
struct Drip {
    body: std::io::Cursor<Vec<u8>>,
    bytes: usize,
    pause: Duration,
}

impl Read for Drip {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        std::thread::sleep(self.pause);
        let wanted = buffer.len().min(self.bytes);
        self.body.read(buffer.get_mut(..wanted).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_every_hostile_answer() {
        assert_eq!(Failure::from_spec("retry-after:-1"), Ok(Failure::RetryAfter("-1".into())));
        assert_eq!(Failure::from_spec("giant:62914560"), Ok(Failure::Giant(60 << 20)));
        let drip = Failure::SlowDrip { bytes: 64, pause: Duration::from_millis(5) };
        assert_eq!(Failure::from_spec("slow-drip:64:5"), Ok(drip));
        assert!(Failure::from_spec("giant:lots").is_err());
        assert!(Failure::from_spec("kind").is_err());
    }

    #[test]
    fn giant_bodies_are_json_of_the_size_asked() {
        let mut body = Vec::new();
        giant(100).read_to_end(&mut body).unwrap();
        assert_eq!(body.len(), 100);
        assert!(serde_json::from_slice::<Value>(&body).is_ok());
    }

    #[test]
    fn mangling_reaches_the_entries() {
        let body = br#"{"MediaContainer": {"title1": "Movies", "Metadata": [{"ratingKey": "1", "title": "Heat", "year": 1995}]}}"#;
        let wrong: Value = serde_json::from_slice(&mangle(body.to_vec(), wrong_types)).unwrap();
        assert_eq!(wrong["MediaContainer"]["title1"], "Movies", "outside the entries nothing changes");
        assert!(wrong["MediaContainer"]["Metadata"][0]["ratingKey"].is_object());
        assert_eq!(wrong["MediaContainer"]["Metadata"][0]["year"], "not a number");
        let titled: Value = serde_json::from_slice(&mangle(body.to_vec(), |value| giant_title(value, 10))).unwrap();
        assert_eq!(titled["MediaContainer"]["Metadata"][0]["title"], "TTTTTTTTTT");
        let deep = mangle(body.to_vec(), |value| nest(value, 3));
        assert!(String::from_utf8(deep).unwrap().contains(r#""nested":[[[[]]]]"#));
    }
}
