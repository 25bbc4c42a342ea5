//! Shared fixtures: a fake Plex server, a store in a temporary directory, a
//! sync helper using short retry delays (of the catalog: the history has
//! its own scenarios), and export-vs-server comparison (`stored_rows`,
//! shared with the Jellyfin/Emby scenarios).

use mediasync::config::{Backend, PlexConfig, ServerConfig};
use mediasync::fake::plex::{Expected, FakePlex};
use mediasync::source::Stop;
use mediasync::source::plex::Plex;
use mediasync::source::retry::{RetryPolicy, Retrying};
use mediasync::store::Store;
use mediasync::sync::{self, Libraries, Options, ServerReport, Signals};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub const TOKEN: &str = "test-token-5ecret";

pub struct Setup {
    pub fake: FakePlex,
    /// Holds the store's directory for the test's lifetime.
    pub _dir: tempfile::TempDir,
    pub store: Store,
    pub page_size: u32,
    pub retries: u32,
    pub max_delete_share: f64,
}

impl Setup {
    pub fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("catalog.redb"), 4 << 20).unwrap();
        Setup { fake: FakePlex::start(TOKEN), _dir: dir, store, page_size: 100, retries: 2, max_delete_share: 0.5 }
    }

    pub fn server(&self, token: &str) -> ServerConfig {
        ServerConfig {
            name: "home".into(),
            libraries: None,
            page_size: self.page_size,
            backend: Backend::Plex(self.plex(token)),
        }
    }

    pub fn plex(&self, token: &str) -> PlexConfig {
        PlexConfig { url: self.fake.url().to_string(), token: token.to_string(), notifications: false }
    }

    pub fn options(&self, full: bool, force: bool) -> Options {
        Options {
            full,
            force,
            full_every: Duration::from_secs(7 * 86_400),
            max_delete_share: self.max_delete_share,
            history: 5,
            page_size: self.page_size,
            unchanged_runs: mediasync::sync::UnchangedRuns::Recorded,
        }
    }

    pub fn sync_with(&self, token: &str, full: bool, force: bool) -> ServerReport {
        self.sync_as(token, &self.options(full, force))
    }

    /// An incremental sync as a one-shot `mediasync sync` makes it: a sync
    /// that changes nothing is not recorded.
    pub fn sync_one_shot(&self, token: &str) -> ServerReport {
        let options =
            Options { unchanged_runs: mediasync::sync::UnchangedRuns::Unrecorded, ..self.options(false, false) };
        self.sync_as(token, &options)
    }

    fn sync_as(&self, token: &str, options: &Options) -> ServerReport {
        let stop = Arc::new(Stop::new());
        let source = Retrying::new(
            Plex::new(&self.server(token), &self.plex(token), Duration::from_secs(10), &stop),
            RetryPolicy {
                retries: self.retries,
                delay: Duration::from_millis(2),
                max_rate_limit_wait: Duration::from_secs(2),
            },
            &stop,
        );
        // The catalog: the watch history has its own scenarios (`history`).
        let signals = Signals { stop: &AtomicBool::new(false), yield_to: None };
        sync::sync_libraries("home", &source, &self.store, options, Libraries::Catalog.into(), signals)
    }

    pub fn sync(&self) -> ServerReport {
        self.sync_with(TOKEN, false, false)
    }

    /// The store's catalog in the fake's terms, sorted.
    pub fn stored(&self) -> Vec<Expected> {
        stored_rows(&self.store)
    }

    pub fn assert_exact(&self) {
        assert_mirror("", &self.stored(), &self.fake.expected());
    }

    /// Listing requests (type, start) made since the log was cleared.
    pub fn listings(&self) -> Vec<(u8, u64)> {
        self.fake.log().iter().filter_map(|entry| Some((entry.item_type?, entry.start?))).collect()
    }
}

/// A store's catalog in the fakes' terms, sorted.
/// How many items a library holds in the store.
pub fn items_of(store: &Store, library: u32) -> u64 {
    let mut items = 0u64;
    store
        .for_each_item(library, |_| {
            items += 1;
            true
        })
        .unwrap();
    items
}

pub fn stored_rows(store: &Store) -> Vec<Expected> {
    let mut rows = Vec::new();
    for (number, state) in store.libraries().unwrap() {
        store
            .for_each_item(number, |stored| {
                rows.push(Expected {
                    library: state.library_id.clone(),
                    id: stored.item.id.clone(),
                    kind: stored.item.kind,
                    title: stored.item.title.clone(),
                    parent_id: stored.item.parent_id.clone(),
                    updated_at: stored.item.updated_at,
                });
                true
            })
            .unwrap();
    }
    rows.sort();
    rows
}

/// Panics, showing a few of the differences, unless the store holds exactly
/// the server's rows; `label` (a server version, say) prefixes the message.
pub fn assert_mirror(label: &str, stored: &[Expected], expected: &[Expected]) {
    if stored != expected {
        let missing: Vec<_> = expected.iter().filter(|row| !stored.contains(row)).take(5).collect();
        let extra: Vec<_> = stored.iter().filter(|row| !expected.contains(row)).take(5).collect();
        panic!(
            "{label}not an exact mirror: {} stored, {} on the server\nmissing: {missing:#?}\nextra: {extra:#?}",
            stored.len(),
            expected.len()
        );
    }
}

pub fn assert_ok(report: &ServerReport) {
    assert!(report.ok(), "sync failed: {report:#?}");
}

pub fn mode_of(report: &ServerReport, library: &str) -> String {
    report
        .libraries
        .iter()
        .find(|entry| entry.library_id == library)
        .map(|entry| entry.mode.clone())
        .unwrap_or_default()
}

/// The number of (library, kind) listings of the default mixed library.
pub const STREAMS: u64 = 1 + 3 + 3;

/// The deletions in a store's change feed after `since`, as (library id,
/// item id): each must be a deletion the server made (`Fake::deleted`).
pub fn feed_deletions(store: &Store, since: u64) -> Vec<(String, String)> {
    let libraries: std::collections::BTreeMap<u32, String> =
        store.libraries().unwrap().into_iter().map(|(number, state)| (number, state.library_id)).collect();
    store
        .changes(since, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|change| change.deleted)
        .map(|change| (libraries.get(&change.library).cloned().unwrap_or_default(), change.id))
        .collect()
}

/// Panics unless every deletion of the feed after `since` is one the server
/// made.
pub fn assert_deletions_made_by_the_server(
    label: &str,
    store: &Store,
    since: u64,
    deleted: &mediasync::fake::churn::Deletions,
) {
    let invented: Vec<_> = feed_deletions(store, since).into_iter().filter(|row| !deleted.contains(row)).collect();
    assert!(invented.is_empty(), "{label}deletions the server never made: {invented:?}");
}
