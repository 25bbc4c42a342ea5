//! Checking a configured server before waiting for a schedule: one cheap
//! authenticated request through the server's own source (the library
//! listing; for Spotify, whose libraries are fixed, a count), without
//! retries or rate-limit waits, answering whether the server is reachable,
//! accepts the credentials and lists libraries to sync, and how far its
//! clock (the `Date` header) is from this machine's. `mediasync check`
//! prints it as a table; the daemon shows it per server on the page.

use super::{App, ControlError};
use crate::config::{ServerConfig, SyncConfig};
use crate::source::{ErrorKind, Source, SourceError, Stop};
use crate::store::Store;
use crate::sync::now_epoch;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The longest a check waits for an answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);
/// Clocks further apart than this are a problem: a box without a
/// battery-backed clock before NTP set it (schedules fire at the wrong
/// times, TLS certificates look invalid), or a server with a wrong clock.
const MAX_CLOCK_OFFSET_SECS: i64 = 300;

/// What a check found. `problem` is `None` when the server is ready to sync.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCheck {
    pub checked_at: i64,
    /// Whether the server answered; `None` when no request was sent (a
    /// Spotify server not connected yet, or in a wait it asked for).
    pub reachable: Option<bool>,
    /// Whether it accepted the token; `None` when the answer did not tell.
    pub credentials_accepted: Option<bool>,
    /// The libraries found that the config selects, by title.
    pub libraries: Option<Vec<String>>,
    /// The server's clock minus this machine's, in seconds, from the `Date`
    /// header of its answer (rounded down to the second by the server).
    pub clock_offset_seconds: Option<i64>,
    pub problem: Option<String>,
    pub requests: u64,
}

impl ServerCheck {
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }

    /// A check that could not be made, for this reason.
    pub fn not_made(problem: String) -> ServerCheck {
        ServerCheck {
            checked_at: now_epoch(),
            reachable: None,
            credentials_accepted: None,
            libraries: None,
            clock_offset_seconds: None,
            problem: Some(problem),
            requests: 0,
        }
    }
}

/// Checks one server. `store` holds Spotify's session (a store in memory
/// will do for the other kinds, which keep nothing there); `stop` ends the
/// check's request at once.
pub fn check_server(server: &ServerConfig, sync: &SyncConfig, store: &Store, stop: &Arc<Stop>) -> ServerCheck {
    // One request, answered or not: no retries, no waiting out a rate limit.
    let settings = SyncConfig {
        retries: 0,
        max_rate_limit_wait: Duration::ZERO,
        timeout: sync.timeout.min(CHECK_TIMEOUT),
        ..sync.clone()
    };
    let source = crate::source::build(server, &settings, store, stop);
    let found = libraries_with_an_answer(source.as_ref());
    let local_now = now_epoch();
    let clock_offset_seconds = source.server_time().map(|server_now| server_now.saturating_sub(local_now));
    let requests = source.requests();
    let check = |reachable, credentials_accepted, libraries, problem| ServerCheck {
        checked_at: local_now,
        reachable,
        credentials_accepted,
        libraries,
        clock_offset_seconds,
        problem,
        requests,
    };
    let sent = requests > 0;
    match found {
        Ok(titles) if titles.is_empty() => check(
            Some(true),
            Some(true),
            Some(titles),
            Some(format!(
                "{} lists no library to sync; check `libraries` in its [[server]] entry (movie, show and music libraries are synced)",
                source.describe()
            )),
        ),
        Ok(titles) => {
            let problem = clock_offset_seconds.filter(|offset| offset.unsigned_abs() > MAX_CLOCK_OFFSET_SECS.unsigned_abs()).map(|offset| {
                format!(
                    "{}'s clock is {} s {} this machine's; set the time right on both (timedatectl shows whether NTP is on)",
                    source.describe(),
                    offset.unsigned_abs(),
                    if offset > 0 { "ahead of" } else { "behind" }
                )
            });
            check(Some(true), Some(true), Some(titles), problem)
        }
        Err(err) => {
            let (reachable, accepted) = match err.kind {
                ErrorKind::Unavailable => (Some(false), None),
                ErrorKind::Stopped => (None, None),
                ErrorKind::Unauthorized => (sent.then_some(true), sent.then_some(false)),
                ErrorKind::RateLimited(_) | ErrorKind::Rejected => (sent.then_some(true), None),
            };
            check(reachable, accepted, None, Some(format!("{}: {err}", source.describe())))
        }
    }
}

/// The titles of the libraries the server lists. A source that lists its
/// libraries without asking (Spotify's are fixed) is asked for the first
/// one's count instead, so that the credentials are always tried.
fn libraries_with_an_answer(source: &dyn Source) -> Result<Vec<String>, SourceError> {
    let libraries = source.libraries()?;
    if source.requests() == 0 {
        if let Some((library, kind)) = libraries.first().and_then(|library| Some((library, *library.kinds.first()?))) {
            source.count(library, kind)?;
        }
    }
    Ok(libraries.into_iter().map(|library| library.title).collect())
}

impl App {
    /// Checks a configured server now and shows the result in its live
    /// state. Refused while the server syncs (its sync shows whether it
    /// answers) so that no two sessions of one account refresh at once;
    /// shutdown and a reload stop it as they stop a sync.
    pub fn check(&self, name: &str) -> Result<ServerCheck, ControlError> {
        let config = self.config();
        let (Some(server), Some(slot)) = (config.server(name), self.server(name)) else {
            return Err(ControlError::UnknownServer(name.to_string()));
        };
        let stop = Arc::new(Stop::new());
        if !slot.hold(Some(&stop)) {
            return Err(ControlError::Busy(name.to_string()));
        }
        if self.stopping() {
            stop.set();
        }
        let check = check_server(server, &config.sync, &self.store, &stop);
        slot.release();
        match &check.problem {
            Some(problem) => log::warn!("{name}: check: {problem}"),
            None => log::info!(
                "{name}: check: reachable, credentials accepted, {} libraries",
                check.libraries.as_ref().map_or(0, Vec::len)
            ),
        }
        slot.set_check(check.clone());
        Ok(check)
    }
}
