//! The status document: per server and library, what is stored and how the
//! last runs went, and, from a running service, each server's live state and
//! each interrupted library's progress. One set of types serves the status
//! page, `/api/status` and `mediasync status`; `document` reads the store
//! alone and never makes a request.

use super::App;
use super::live::Live;
use super::reload::ReloadStatus;
use crate::config::Config;
use crate::model::{HISTORY, Item, Kind};
use crate::source::spotify::auth;
use crate::store::records::{Counters, Gap, LibraryState, Pass, RefusedDeletion, RunRecord};
use crate::store::{Session, Store, StoreError};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Serialize)]
pub struct StatusDocument {
    pub version: &'static str,
    pub store: String,
    pub servers: Vec<ServerStatus>,
    /// Present when a running service made the document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon: Option<DaemonStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DaemonStatus {
    pub started_at: i64,
    pub now: i64,
    pub max_concurrent_syncs: u32,
    /// The config file the service reads (again on reload).
    pub config: String,
    /// The last `systemctl reload`, if there was one.
    pub reload: Option<ReloadStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ServerStatus {
    pub name: String,
    pub kind: &'static str,
    pub url: String,
    pub last_attempt_at: Option<i64>,
    pub last_success_at: Option<i64>,
    pub last_error: Option<String>,
    pub libraries: Vec<LibraryStatus>,
    /// Spotify servers only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountStatus>,
    /// Servers with a history (Plex, Spotify).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryStatus>,
    /// With `[artwork]` on: the mirror's progress, validators seen, 304s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artwork: Option<crate::artwork::ArtworkStats>,
    /// Present when a running service made the document.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub running: Option<RunningStatus>,
}

/// A server as the running service sees it.
#[derive(Clone, Debug, Serialize)]
pub struct RunningStatus {
    pub state: ServerCondition,
    pub paused: bool,
    pub schedule: String,
    pub live: Live,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerCondition {
    Paused,
    /// A Spotify server with no account connected, or one to re-authorise.
    Disconnected,
    Waiting,
    Syncing,
    Queued,
    Failed,
    Idle,
}

impl ServerCondition {
    pub fn name(self) -> &'static str {
        match self {
            ServerCondition::Paused => "paused",
            ServerCondition::Disconnected => "disconnected",
            ServerCondition::Waiting => "waiting",
            ServerCondition::Syncing => "syncing",
            ServerCondition::Queued => "queued",
            ServerCondition::Failed => "failed",
            ServerCondition::Idle => "idle",
        }
    }
}

/// A server's history of plays as the status shows it.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryStatus {
    /// Plays stored.
    pub plays: u64,
    /// The latest plays, newest first (at most `LAST_PLAYS`).
    pub last_plays: Vec<Item>,
    /// The last possible gap found: plays the server no longer listed when
    /// polled (poll more often).
    pub gap: Option<Gap>,
    /// The Spotify account was connected before mediasync read histories:
    /// nothing is polled until the user connects it again.
    pub reconnect: bool,
}

/// The plays the status shows per server.
pub const LAST_PLAYS: usize = 5;

/// A Spotify account as the status shows it: never a token.
#[derive(Clone, Debug, Serialize)]
pub struct AccountStatus {
    pub connected: bool,
    pub connected_at: Option<i64>,
    pub reauthorize: Option<String>,
    pub scope: Option<String>,
    pub waiting_until: Option<i64>,
    pub waiting_for: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LibraryStatus {
    pub id: String,
    pub title: String,
    pub state: LibraryCondition,
    pub items: u64,
    pub counts: BTreeMap<Kind, u64>,
    pub last_success_at: Option<i64>,
    pub last_full_at: Option<i64>,
    pub last_error: Option<String>,
    pub needs_full: Option<String>,
    /// The deletion the mass-deletion guard refused last, until a run
    /// succeeds: what `sync --force` (or the page's button) would allow.
    pub refused: Option<RefusedDeletion>,
    pub skipped: BTreeMap<String, String>,
    pub checkpoint: Option<CheckpointStatus>,
    pub last_run: Option<RunRecord>,
    /// An interrupted or running library's progress (running service only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LibraryCondition {
    Failed,
    /// A checkpoint is stored: the next run resumes it.
    Interrupted,
    Idle,
    /// Never synced successfully.
    New,
    Syncing,
}

impl LibraryCondition {
    pub fn name(self) -> &'static str {
        match self {
            LibraryCondition::Failed => "failed",
            LibraryCondition::Interrupted => "interrupted",
            LibraryCondition::Idle => "idle",
            LibraryCondition::New => "new",
            LibraryCondition::Syncing => "syncing",
        }
    }
}

/// Where an interrupted run stands.
#[derive(Clone, Debug, Serialize)]
pub struct CheckpointStatus {
    pub pass: Pass,
    pub kind: Option<Kind>,
    pub position: u64,
    pub counters: Counters,
}

/// How far a pass got: items walked of the server's total, and an estimate
/// of the time left. Incremental passes have no total.
#[derive(Clone, Debug, Serialize)]
pub struct Progress {
    pub pass: Pass,
    pub kind: Option<Kind>,
    pub done: u64,
    pub total: Option<u64>,
    pub percent: Option<f64>,
    pub eta_seconds: Option<u64>,
}

impl StatusDocument {
    /// The document as JSON. Going through `serde_json::Value` keeps the
    /// keys sorted, as the document has always been printed.
    pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }
}

/// `mediasync status`'s document, from the store alone.
pub fn document(config: &Config, store: &Store) -> Result<StatusDocument, StoreError> {
    Ok(StatusDocument {
        version: env!("CARGO_PKG_VERSION"),
        store: config.store.path.display().to_string(),
        servers: servers(config, store, |_, _, _| {})?,
        daemon: None,
    })
}

/// Every configured server's entry; `each_library` may add to a library's
/// entry from its stored state.
fn servers(
    config: &Config,
    store: &Store,
    mut each_library: impl FnMut(&str, &LibraryState, &mut LibraryStatus),
) -> Result<Vec<ServerStatus>, StoreError> {
    let libraries = store.libraries()?;
    let mut servers = Vec::new();
    for server in &config.servers {
        let server_state = store.server_state(&server.name)?;
        let mut entries = Vec::new();
        for (number, state) in libraries.iter().filter(|(_, state)| state.server == server.name) {
            let mut entry = library(state, store.runs(*number)?.pop());
            each_library(&server.name, state, &mut entry);
            entries.push(entry);
        }
        let session = match server.spotify() {
            Some(_) => Some(store.session(&server.name)?),
            None => None,
        };
        let account = session.as_ref().map(account);
        let history_library =
            libraries.iter().find(|(_, state)| state.server == server.name && state.library_id == HISTORY);
        let reconnect = session.as_ref().is_some_and(|session| {
            let wanted = server.libraries.as_ref().is_none_or(|wanted| wanted.iter().any(|name| name == HISTORY));
            wanted && session.connected() && !auth::grants(session.scope.as_deref(), auth::HISTORY_SCOPE)
        });
        let history = match history_library {
            Some((number, state)) => Some(HistoryStatus {
                plays: state.count(Kind::Play),
                last_plays: store
                    .items_backwards(*number, None, None, LAST_PLAYS)?
                    .0
                    .into_iter()
                    .map(|stored| stored.item)
                    .collect(),
                gap: state.gap,
                reconnect,
            }),
            None if reconnect => Some(HistoryStatus { plays: 0, last_plays: Vec::new(), gap: None, reconnect }),
            None => None,
        };
        servers.push(ServerStatus {
            name: server.name.clone(),
            kind: server.kind().name(),
            url: server.url().to_string(),
            last_attempt_at: server_state.last_attempt_at,
            last_success_at: server_state.last_success_at,
            last_error: server_state.last_error,
            libraries: entries,
            account,
            history,
            artwork: crate::artwork::stats_of(config, server),
            running: None,
        });
    }
    Ok(servers)
}

fn account(session: &Session) -> AccountStatus {
    let now = crate::sync::now_epoch();
    let waiting_until = session.waiting_until(now);
    AccountStatus {
        connected: session.connected(),
        connected_at: session.connected_at,
        reauthorize: session.reauthorize.clone(),
        scope: session.scope.clone(),
        waiting_until,
        waiting_for: waiting_until.and(session.not_before_reason.clone()),
    }
}

fn library(state: &LibraryState, last_run: Option<RunRecord>) -> LibraryStatus {
    let condition = match (&state.checkpoint, &state.last_error) {
        (_, Some(_)) => LibraryCondition::Failed,
        (Some(_), None) => LibraryCondition::Interrupted,
        (None, None) if state.last_success_at.is_some() => LibraryCondition::Idle,
        (None, None) => LibraryCondition::New,
    };
    let checkpoint = state.checkpoint.as_ref().map(|checkpoint| CheckpointStatus {
        pass: checkpoint.pass,
        kind: checkpoint.kinds.get(checkpoint.kind_index as usize).copied(),
        position: checkpoint.start,
        counters: checkpoint.counters,
    });
    LibraryStatus {
        id: state.library_id.clone(),
        title: state.title.clone(),
        state: condition,
        items: state.total(),
        counts: state.counts.clone(),
        last_success_at: state.last_success_at,
        last_full_at: state.last_full_at,
        last_error: state.last_error.clone(),
        needs_full: state.needs_full.clone(),
        refused: state.refused,
        skipped: state.skipped.clone(),
        checkpoint,
        last_run,
        progress: None,
    }
}

/// How far a pass got: items walked of the server's total, and an estimate
/// of the time left from the pace so far. Incremental passes stop at the
/// first unchanged item, so they have no total to show.
pub fn progress(state: &LibraryState, now: i64, attempt_started_at: Option<i64>) -> Option<Progress> {
    let checkpoint = state.checkpoint.as_ref()?;
    let kind_total = |kind: &Kind| checkpoint.totals.get(kind).copied().unwrap_or_else(|| state.count(*kind));
    let index = checkpoint.kind_index as usize;
    // Totals come from the server: summed saturating, as any server figure.
    let done = checkpoint.kinds.iter().take(index).map(kind_total).fold(checkpoint.start, u64::saturating_add);
    let total = checkpoint.kinds.iter().map(kind_total).fold(0, u64::saturating_add);
    let kind = checkpoint.kinds.get(index).copied();
    if checkpoint.pass == Pass::Incremental || total == 0 {
        return Some(Progress { pass: checkpoint.pass, kind, done, total: None, percent: None, eta_seconds: None });
    }
    let done = done.min(total);
    // A resumed run (a first Spotify sync may take days under its limits)
    // counts the time of its earlier attempts plus this one's.
    let elapsed = if checkpoint.resumed {
        checkpoint.elapsed_ms as f64 / 1000.0 + attempt_started_at.map_or(0, |at| now.saturating_sub(at).max(0)) as f64
    } else {
        now.saturating_sub(checkpoint.started_at).max(0) as f64
    };
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "the estimate is positive, and `as` clamps a float too large for u64"
    )]
    let eta =
        (done > 0 && elapsed > 0.0).then(|| (elapsed * total.saturating_sub(done) as f64 / done as f64).round() as u64);
    Some(Progress {
        pass: checkpoint.pass,
        kind,
        done,
        total: Some(total),
        percent: Some((done as f64 * 1000.0 / total as f64).round() / 10.0),
        eta_seconds: eta,
    })
}

impl App {
    /// The status document with, per server, the service's live state
    /// (syncing, queued, paused, next run, schedule) and, per library being
    /// synced or interrupted, its progress and estimated time left.
    pub fn status(&self) -> Result<StatusDocument, StoreError> {
        let now = crate::sync::now_epoch();
        let config = self.config();
        let lives: BTreeMap<&str, Live> = config
            .servers
            .iter()
            .map(|server| (server.name.as_str(), self.live(&server.name).unwrap_or_default()))
            .collect();
        let mut servers = servers(&config, &self.store, |server, state, entry| {
            if state.checkpoint.is_none() {
                return;
            }
            match lives.get(server) {
                Some(live) if live.syncing => {
                    entry.state = LibraryCondition::Syncing;
                    entry.progress = progress(state, now, live.run_started_at);
                }
                // Between attempts (a rate-limit or quota wait, an outage):
                // how far it got, and the pace so far.
                _ => entry.progress = progress(state, now, None),
            }
        })?;
        for server in &mut servers {
            let live = lives.get(server.name.as_str()).cloned().unwrap_or_default();
            let paused = self.store.control(&server.name)?.paused;
            server.running = Some(RunningStatus {
                state: condition(server, &live, paused, now),
                paused,
                schedule: super::schedule::for_server(&config, &server.name).to_string(),
                live,
            });
        }
        Ok(StatusDocument {
            version: env!("CARGO_PKG_VERSION"),
            store: config.store.path.display().to_string(),
            servers,
            daemon: Some(DaemonStatus {
                started_at: self.started_at,
                now,
                max_concurrent_syncs: config.daemon.max_concurrent_syncs,
                config: config.path.display().to_string(),
                reload: self.last_reload(),
            }),
        })
    }
}

fn condition(server: &ServerStatus, live: &Live, paused: bool, now: i64) -> ServerCondition {
    let account = server.account.as_ref();
    let account_wait = account.and_then(|account| account.waiting_until);
    if paused {
        ServerCondition::Paused
    } else if account.is_some_and(|account| account.reauthorize.is_some() || !account.connected) {
        ServerCondition::Disconnected
    } else if (live.syncing && live.waiting_until.is_some_and(|until| until > now))
        || (!live.syncing && account_wait.is_some())
    {
        ServerCondition::Waiting
    } else if live.syncing {
        ServerCondition::Syncing
    } else if live.queued {
        ServerCondition::Queued
    } else if server.last_error.is_some() {
        ServerCondition::Failed
    } else {
        ServerCondition::Idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::Checkpoint;
    use serde_json::Value;

    fn state_with(pass: Pass, kind_index: u32, start: u64, resumed: bool) -> LibraryState {
        let mut state = LibraryState::default();
        state.counts.insert(Kind::Episode, 500);
        state.checkpoint = Some(Checkpoint {
            started_as: pass,
            pass,
            generation: 1,
            kinds: vec![Kind::Show, Kind::Season, Kind::Episode],
            kind_index,
            start,
            cursors: BTreeMap::new(),
            totals: [(Kind::Show, 10), (Kind::Season, 40)].into_iter().collect(),
            unstored: BTreeMap::new(),
            full_passes: 0,
            sweep_approved: false,
            order_broken: false,
            forced: false,
            run: 1,
            started_at: 1_000,
            server_started_at: None,
            resumed,
            after: None,
            children: None,
            children_approved: false,
            last_id: None,
            restarts: 0,
            anchor: None,
            confirm: None,
            counters: Counters::default(),
            elapsed_ms: 0,
        });
        state
    }

    /// `progress` as the API shows it.
    fn shown(state: &LibraryState, now: i64, attempt_started_at: Option<i64>) -> Value {
        serde_json::to_value(progress(state, now, attempt_started_at)).unwrap()
    }

    #[test]
    fn progress_counts_finished_kinds_and_estimates_the_rest() {
        // Shows and seasons done (50), 100 episodes of an estimated 500.
        let progress = shown(&state_with(Pass::Full, 2, 100, false), 1_030, None);
        assert_eq!(progress["done"], 150);
        assert_eq!(progress["total"], 550);
        assert_eq!(progress["kind"], "episode");
        assert_eq!(progress["percent"], 27.3);
        // 150 items in 30 s: 400 more take 80 s.
        assert_eq!(progress["eta_seconds"], 80);
    }

    #[test]
    fn progress_has_no_total_for_incremental_passes_and_a_resumed_eta_counts_every_attempt() {
        let incremental = shown(&state_with(Pass::Incremental, 1, 5, false), 1_030, None);
        assert!(incremental["total"].is_null() && incremental["eta_seconds"].is_null());
        assert_eq!(incremental["done"], 15);
        let resumed = shown(&state_with(Pass::Full, 2, 100, true), 1_030, None);
        assert!(resumed["eta_seconds"].is_null(), "a resumed run's pace is unknown without its attempt's start");
        // Resumed 30 s ago with no earlier time recorded: the same pace as above.
        let resumed = shown(&state_with(Pass::Full, 2, 100, true), 1_030, Some(1_000));
        assert_eq!(resumed["eta_seconds"], 80);
        assert_eq!(shown(&LibraryState::default(), 0, None), Value::Null);
    }
}
