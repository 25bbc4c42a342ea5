//! A fake Plex Media Server. Like the real one it answers XML unless JSON is
//! asked for, answers 401 (as text/html) without the right token, pages with
//! `X-Plex-Container-Start`/`-Size` (headers or query), reports `totalSize`
//! only on paged requests, sorts by `updatedAt`/`addedAt`/`titleSort`,
//! silently ignores the `addedAt>>=` filter (PMS 1.43+), serves items
//! shaped like the responses in `tests/data/plex` (`docs/servers.md`),
//! answers `/library/metadata/{id},{id},…` with the items that exist (404
//! when none does), and stamps every answer with a `Date` from its clock.
//! Tests mutate its library and inject failures at chosen request numbers.
//! Its notification socket (`/:/websockets/notifications`, token in the
//! `X-Plex-Token` header or query) pushes a `timeline` entry per state an
//! item goes through when it is added (0 to 5), edited or moved (5) or
//! deleted (9), and `activity` notifications of section scans (`scan`).

mod control;
mod images;
mod library;
mod listings;
mod serve;
mod xml;

use super::churn::Changes;
use super::history::PlexPlay;
use super::sockets::Sockets;
use super::{Fake, Faults, Recording};
use crate::model::Kind;
use std::time::Duration;

pub use super::Failure;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    pub number: u64,
    pub path: String,
    pub item_type: Option<u8>,
    pub start: Option<u64>,
    pub size: Option<u64>,
    pub returned: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionKind {
    Movie,
    Show,
    Artist,
    Photo,
}

impl SectionKind {
    fn name(self) -> &'static str {
        match self {
            SectionKind::Movie => "movie",
            SectionKind::Show => "show",
            SectionKind::Artist => "artist",
            SectionKind::Photo => "photo",
        }
    }
}

#[derive(Clone, Debug)]
pub struct FakeItem {
    pub rating_key: String,
    pub kind: Kind,
    pub title: String,
    pub title_sort: Option<String>,
    pub parent: Option<String>,
    pub grandparent: Option<String>,
    pub index: Option<i64>,
    pub parent_index: Option<i64>,
    pub year: Option<i32>,
    pub added_at: i64,
    pub updated_at: i64,
    pub art_at: i64,
    pub duration: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct FakeSection {
    pub key: String,
    pub kind: SectionKind,
    pub title: String,
    pub items: Vec<FakeItem>,
}

pub use super::Expected;

pub struct PlexState {
    pub token: String,
    pub sections: Vec<FakeSection>,
    /// The server's clock, epoch seconds: every mutation happens "now".
    pub clock: i64,
    pub log: Vec<Logged>,
    /// Cap on items per page: real servers may return fewer than asked.
    pub max_page: Option<u64>,
    /// Whether `sort=` is honoured (some proxies and old servers do not).
    pub honour_sort: bool,
    /// Latency added to every request.
    pub delay: Duration,
    /// The open notification sockets.
    pub sockets: std::sync::Arc<Sockets<()>>,
    /// Every play, oldest first (`/status/sessions/history/all`).
    pub plays: Vec<PlexPlay>,
    /// Plays recorded just before each history request is answered: plays
    /// that arrive while a client walks the history.
    pub plays_during_history_requests: usize,
    requests: u64,
    next_key: u64,
    next_history: u64,
    faults: Faults,
    pub(crate) changes: Changes<PlexState>,
}

/// A fake server; `Fake`'s methods control it, these mutate its library.
pub type FakePlex = Fake<PlexState>;

impl Recording for PlexState {
    type Entry = Logged;
    fn requests(&self) -> u64 {
        self.requests
    }
    fn log_mut(&mut self) -> &mut Vec<Logged> {
        &mut self.log
    }
    fn faults_mut(&mut self) -> &mut Faults {
        &mut self.faults
    }
}

const BASE_TIME: i64 = 1_600_000_000;

/// `state` of a deleted item.
pub(crate) const DELETED: u8 = 9;
