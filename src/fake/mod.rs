//! Simulated media servers for tests, benchmarks and the demo. They run on
//! 127.0.0.1 with an OS-chosen port and answer like the real servers,
//! quirks included (`../shared/api-notes.md`): a fake kinder than the real
//! server would hide bugs.

pub mod jellyfin;
pub mod plex;
mod query;

use crate::model::Kind;

/// One row of what an exact mirror of a fake must hold, whatever the server.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expected {
    pub library: String,
    pub id: String,
    pub kind: Kind,
    pub title: String,
    pub parent_id: Option<String>,
    pub updated_at: i64,
}

/// A request header by name, matched case-insensitively as HTTP requires.
fn header<'r>(request: &'r tiny_http::Request, name: &str) -> Option<&'r str> {
    request
        .headers()
        .iter()
        .find(|header| header.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|header| header.value.as_str())
}
