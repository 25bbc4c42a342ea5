//! The application's side of the servers' notifications (`push`): each
//! server's socket state and last notice for the status page, and the work
//! the notices ask for, gathered per library and debounced (`QUIET` after
//! the last notice, `LONGEST_WAIT` after the first at most, and while the
//! library's scan goes on, until it ends) before the scheduler runs it. A notice names items; what is fetched is decided
//! here: the incremental run of the libraries they belong to, or of the
//! whole server when a library cannot be told or after a missed window (a
//! lost connection made again). Notices never replace the scheduled runs: a
//! scheduled run takes whatever work is pending, since it covers it.

use super::App;
use super::live::ServerSlot;
use crate::config::{Backend, Flavor};
use crate::push::{Change, Event, NextEndpoint, Notice};
use crate::source::Stop;
use crate::source::signin::SignIn;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long after the last notice the work runs: a scan's notices come in
/// bursts, and Jellyfin already batches its own for 30 s.
pub const QUIET: Duration = Duration::from_secs(2);
/// The longest work waits after its first notice, so a scan that never
/// pauses is still followed.
pub const LONGEST_WAIT: Duration = Duration::from_secs(20);
/// The longest changes of a library wait for the end of its scan (Plex
/// announces scans), counted from the scan's start: the end of a scan may
/// never be told (a lost connection is caught up anyway).
pub const LONGEST_SCAN: Duration = Duration::from_secs(300);
/// Up to this many changed items of a library are fetched by id
/// (`Source::lookup`: one request per kind, Plex and Jellyfin/Emby take 100
/// ids a request) and committed alone. More is a scan under way, which the
/// library's incremental run follows for about as many requests as
/// fetching them would cost.
pub const FEW_ITEMS: usize = 50;
/// How long a failed sign-in waits before the next try.
const SIGN_IN_RETRY: Duration = Duration::from_secs(600);

/// The notification socket's state, as the status shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    Connecting,
    Connected,
    Disconnected,
    /// The server refused the socket's credentials.
    Refused,
    /// No signed-in user yet (Jellyfin, Emby): `login_user` and
    /// `password_file`.
    SignInNeeded,
}

impl Connection {
    pub fn text(self) -> &'static str {
        match self {
            Connection::Connecting => "connecting",
            Connection::Connected => "connected",
            Connection::Disconnected => "disconnected",
            Connection::Refused => "refused",
            Connection::SignInNeeded => "sign-in needed",
        }
    }
}

/// A server's notifications as the status shows them.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Notifications {
    pub connection: Option<Connection>,
    /// When the connection took its current state (epoch seconds).
    pub since: Option<i64>,
    pub error: Option<String>,
    /// The next try to connect (epoch seconds), when disconnected.
    pub retry_at: Option<i64>,
    pub last_notice_at: Option<i64>,
    pub last_notice: Option<String>,
    /// Notices about the library since the service started.
    pub notices: u64,
    /// Items (or whole libraries) waiting for the debounce to run.
    pub pending: u64,
    /// Connections made since the service started.
    pub connections: u64,
    /// The Quick Connect code waiting to be entered, and until when
    /// (epoch seconds).
    pub quick_connect_code: Option<String>,
    pub quick_connect_until: Option<i64>,
}

/// What the pending notices ask for.
#[derive(Debug, Default)]
pub struct Work {
    /// Look at every library (a missed window, a library not known).
    everything: bool,
    /// Changed item ids per library id.
    libraries: BTreeMap<String, BTreeSet<String>>,
    first_at: Option<Instant>,
    last_at: Option<Instant>,
    /// Libraries being scanned, with when the scan started: their changes
    /// wait for its end. What the connection said, not work: a run keeps
    /// it, a new connection forgets it.
    scanning: BTreeMap<String, Instant>,
}

/// What a run for notices syncs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    Everything,
    /// These libraries, with the ids of their changed items.
    Libraries(BTreeMap<String, BTreeSet<String>>),
}

/// The libraries of `named` with few enough changed items to fetch them
/// alone (`FEW_ITEMS`); the others run incrementally.
pub fn few_named(named: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, BTreeSet<String>> {
    named
        .iter()
        .filter(|(_, ids)| ids.len() <= FEW_ITEMS)
        .map(|(library, ids)| (library.clone(), ids.clone()))
        .collect()
}

impl Work {
    pub fn is_empty(&self) -> bool {
        !self.everything && self.libraries.is_empty()
    }

    /// When the work is due: `QUIET` after the last notice, `LONGEST_WAIT`
    /// after the first at most; not before the scans of the libraries it
    /// touches end (`LONGEST_SCAN` after their start at most), since the
    /// changes of a scan come as it goes.
    pub fn due(&self) -> Option<Instant> {
        if self.is_empty() {
            return None;
        }
        let quiet = self.last_at.and_then(|at| at.checked_add(QUIET));
        let longest = self.first_at.and_then(|at| at.checked_add(LONGEST_WAIT));
        let due = match (quiet, longest) {
            (Some(quiet), Some(longest)) => Some(quiet.min(longest)),
            (quiet, longest) => quiet.or(longest),
        };
        let scans_end = self
            .scanning
            .iter()
            .filter(|(library, _)| self.everything || self.libraries.contains_key(*library))
            .filter_map(|(_, started)| started.checked_add(LONGEST_SCAN))
            .max();
        due.max(scans_end)
    }

    /// The work, taken; what is being scanned stays.
    fn take(&mut self) -> Work {
        let scanning = std::mem::take(&mut self.scanning);
        let work = std::mem::take(self);
        self.scanning = scanning;
        work
    }

    fn touch(&mut self, now: Instant) {
        self.first_at.get_or_insert(now);
        self.last_at = Some(now);
    }

    fn everything(&mut self, now: Instant) {
        self.everything = true;
        self.touch(now);
    }

    fn item(&mut self, library: &str, id: &str, now: Instant) {
        self.libraries.entry(library.to_string()).or_default().insert(id.to_string());
        self.touch(now);
    }

    fn scan_started(&mut self, library: &str, now: Instant) {
        self.scanning.insert(library.to_string(), now);
    }

    /// A scan of `library` ended: its pending changes run a quiet period
    /// later (state changes of the scanned items may still follow), however
    /// long they waited for the end.
    fn scan_ended(&mut self, library: &str, now: Instant) {
        self.scanning.remove(library);
        if self.libraries.contains_key(library) {
            self.first_at = Some(now);
            self.last_at = Some(now);
        }
    }

    fn pending(&self) -> u64 {
        let items: usize = self.libraries.values().map(BTreeSet::len).sum();
        u64::try_from(items).unwrap_or(u64::MAX).saturating_add(u64::from(self.everything))
    }

    pub fn plan(&self) -> Plan {
        if self.everything { Plan::Everything } else { Plan::Libraries(self.libraries.clone()) }
    }
}

/// Where a change lands: a library of the mirror, every library (not
/// known), or nowhere (a library that is not synced).
enum Target {
    Library(String),
    Everything,
    Nowhere,
}

impl ServerSlot {
    /// The pending notice work, taken: a run starts that covers it.
    pub fn take_push_work(&self) -> Work {
        let mut state = self.lock();
        state.live.notifications.get_or_insert_with(Notifications::default).pending = 0;
        state.push.take()
    }

    /// When the pending notice work is due, if there is any.
    pub fn push_due(&self) -> Option<Instant> {
        self.lock().push.due()
    }

    fn notifications(&self, change: impl FnOnce(&mut Notifications, &mut Work)) {
        let mut state = self.lock();
        let state = &mut *state;
        let shown = state.live.notifications.get_or_insert_with(Notifications::default);
        change(shown, &mut state.push);
        shown.pending = state.push.pending();
    }

    pub(super) fn show_quick_connect(&self, code: Option<(String, i64)>) {
        self.notifications(|shown, _| {
            let (code, until) = code.unzip();
            shown.quick_connect_code = code;
            shown.quick_connect_until = until;
        });
    }

    pub(super) fn connection(&self, connection: Connection, error: Option<String>, retry_at: Option<i64>) {
        self.notifications(|shown, _| {
            if shown.connection != Some(connection) {
                shown.since = Some(crate::sync::now_epoch());
            }
            shown.connection = Some(connection);
            shown.error = error;
            shown.retry_at = retry_at;
        });
    }
}

impl App {
    /// Takes one report of a server's notification listener.
    pub fn on_push(&self, name: &str, event: Event) {
        let Some(slot) = self.server(name) else {
            return;
        };
        let now = Instant::now();
        match event {
            Event::Connecting => slot.connection(Connection::Connecting, None, None),
            Event::Connected => {
                // Whatever changed while the socket was lost was not told:
                // one incremental run of the server catches up. The first
                // connection follows the start, whose sync the freshness
                // rule decides (a restart causes no burst of syncs).
                slot.connection(Connection::Connected, None, None);
                slot.notifications(|shown, work| {
                    work.scanning.clear();
                    if shown.connections > 0 {
                        work.everything(now);
                    }
                    shown.connections = shown.connections.saturating_add(1);
                });
                slot.wake();
            }
            Event::Disconnected { error, retry_in } => {
                let retry_at = super::seconds_after(crate::sync::now_epoch(), retry_in);
                log::info!("{name}: notifications: {error}; trying again in {}s", retry_in.as_secs());
                slot.connection(Connection::Disconnected, Some(error), Some(retry_at));
            }
            Event::Refused { error } => {
                log::warn!("{name}: notifications: {error}");
                self.forget_sign_in(name);
                slot.connection(Connection::Refused, Some(error), None);
            }
            Event::Overflow => {
                slot.notifications(|shown, work| {
                    shown.last_notice_at = Some(crate::sync::now_epoch());
                    shown.last_notice = Some("more changes than one notice holds".into());
                    work.everything(now);
                });
                slot.wake();
            }
            Event::Notice(notice) => {
                let targets: Vec<(Target, &Change)> =
                    notice.changes.iter().map(|change| (self.target(name, change, &notice), change)).collect();
                slot.notifications(|shown, work| {
                    shown.notices = shown.notices.saturating_add(1);
                    shown.last_notice_at = Some(crate::sync::now_epoch());
                    shown.last_notice = Some(notice.summary());
                    for (target, change) in &targets {
                        match target {
                            Target::Library(library) => work.item(library, &change.id, now),
                            Target::Everything => work.everything(now),
                            Target::Nowhere => {}
                        }
                    }
                    for library in &notice.scans_started {
                        work.scan_started(library, now);
                    }
                    for library in &notice.scans_ended {
                        work.scan_ended(library, now);
                    }
                });
                slot.wake();
            }
        }
    }

    /// The library of the mirror a change belongs to. Plex names it; for
    /// Jellyfin and Emby the mirror is asked where the item (or the folder
    /// a new item was added to) is stored. An update or removal of an item
    /// the mirror does not hold is of a library that is not synced; an
    /// addition whose library cannot be told makes every library looked at.
    fn target(&self, name: &str, change: &Change, notice: &Notice) -> Target {
        if let Some(library) = &change.library {
            return match self.store.find_library(name, library) {
                Ok(Some(_)) => Target::Library(library.clone()),
                Ok(None) => Target::Nowhere,
                Err(_) => Target::Everything,
            };
        }
        let libraries = match self.store.libraries() {
            Ok(all) => all.into_iter().filter(|(_, state)| state.server == name).collect::<Vec<_>>(),
            Err(_) => return Target::Everything,
        };
        let holding = |id: &str| {
            libraries.iter().find_map(|(number, state)| {
                let is_library = state.library_id == id;
                let holds = self.store.item(*number, id).ok().flatten().is_some();
                (is_library || holds).then(|| state.library_id.clone())
            })
        };
        if let Some(library) = holding(&change.id) {
            return Target::Library(library);
        }
        // Only additions name folders: an unknown item without one was
        // updated or removed in a library that is not synced.
        if change.removed || notice.folders.is_empty() {
            return Target::Nowhere;
        }
        let folders: BTreeSet<Option<String>> = notice.folders.iter().map(|folder| holding(folder)).collect();
        match (folders.len(), folders.into_iter().next()) {
            (1, Some(Some(library))) => Target::Library(library),
            _ => Target::Everything,
        }
    }

    /// Where a server's notification socket is, with its credentials, by
    /// the config in force (a reload may have changed or removed the
    /// server); for Jellyfin and Emby the access token of a signed-in user
    /// (signing in with `login_user` and `password_file` when none is
    /// stored).
    pub fn push_endpoint(&self, name: &str, stop: &Arc<Stop>) -> NextEndpoint {
        let config = self.config();
        let server = config.server(name).filter(|server| server.notifications()).ok_or("not listened to")?;
        let (jellyfin, slot) = match (&server.backend, self.server(name)) {
            (Backend::Plex(plex), _) => return Ok(crate::push::plex::endpoint(server, plex)),
            (Backend::Jellyfin(jellyfin), Some(slot)) => (jellyfin, slot),
            _ => return Err("no notifications".into()),
        };
        let session = self.store.session(name).map_err(|err| err.to_string())?;
        if let Some(token) = session.access_token.filter(|_| session.reauthorize.is_none()) {
            return Ok(crate::push::jellyfin::endpoint(server, jellyfin, &token));
        }
        if let Some(signed_in) = self.quick_connect_sign_in(name, server, jellyfin, &slot, stop) {
            return signed_in.map(|token| crate::push::jellyfin::endpoint(server, jellyfin, &token));
        }
        let Some(login) = &jellyfin.login else {
            let why = match jellyfin.flavor {
                Flavor::Jellyfin => {
                    "set login_user and password_file, or start Quick Connect on the status page: the server sends library events only to a signed-in user"
                }
                Flavor::Emby => {
                    "set login_user and password_file: the server sends library events only to a signed-in user"
                }
            };
            slot.connection(Connection::SignInNeeded, Some(why.into()), None);
            return Err(why.into());
        };
        if slot.lock().sign_in_after.is_some_and(|after| Instant::now() < after) {
            return Err("waiting to sign in again".into());
        }
        let signed_in = SignIn::new(server, jellyfin, config.sync.timeout, stop).by_name(&login.user, &login.password);
        match signed_in.and_then(|signed_in| self.keep_sign_in(name, &signed_in.access_token).map(|()| signed_in)) {
            Ok(signed_in) => {
                log::info!("{name}: signed in as \"{}\" for notifications", signed_in.user);
                Ok(crate::push::jellyfin::endpoint(server, jellyfin, &signed_in.access_token))
            }
            Err(err) => {
                log::warn!("{name}: notifications: {err}");
                slot.lock().sign_in_after = Instant::now().checked_add(SIGN_IN_RETRY);
                slot.connection(Connection::SignInNeeded, Some(err.to_string()), None);
                Err(err.to_string())
            }
        }
    }

    /// Stores a signed-in user's access token for the socket.
    pub(super) fn keep_sign_in(&self, name: &str, token: &str) -> Result<(), crate::source::SourceError> {
        let now = crate::sync::now_epoch();
        self.store
            .update_session(name, |session| {
                session.access_token = Some(token.to_string());
                session.connected_at = Some(now);
                session.reauthorize = None;
            })
            .map(|_| ())
            .map_err(|err| {
                crate::source::SourceError::new(
                    crate::source::ErrorKind::Rejected,
                    format!("cannot keep the sign-in: {err}"),
                )
            })
    }

    /// A refused socket token is forgotten, so the next try signs in again.
    fn forget_sign_in(&self, name: &str) {
        let is_jellyfin =
            self.config().server(name).is_some_and(|server| matches!(server.backend, Backend::Jellyfin(_)));
        if is_jellyfin {
            if let Err(err) = self.store.update_session(name, |session| session.access_token = None) {
                log::error!("{name}: cannot forget the refused sign-in: {err}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_wait_for_the_quiet_the_longest_wait_and_their_library_s_scan() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut work = Work::default();
        assert_eq!(work.due(), None);
        work.item("1", "10", at(0));
        assert_eq!(work.due(), Some(at(0) + QUIET));
        // A burst without a pause runs LONGEST_WAIT after its first notice.
        let mut second = 0;
        while second < 2 * LONGEST_WAIT.as_secs() {
            work.item("1", &second.to_string(), at(second));
            second += 1;
        }
        assert_eq!(work.due(), Some(at(0) + LONGEST_WAIT));

        // Changes of a library being scanned wait for its end.
        let mut work = Work::default();
        work.scan_started("1", at(0));
        work.scan_started("2", at(0));
        work.item("1", "10", at(1));
        assert_eq!(work.due(), Some(at(0) + LONGEST_SCAN));
        work.scan_ended("1", at(100));
        assert_eq!(work.due(), Some(at(100) + QUIET), "the end of the scan starts the quiet");
        // Another library's scan holds nothing up; a run keeps the scans.
        let taken = work.take();
        let named = BTreeMap::from([("1".to_string(), BTreeSet::from(["10".to_string()]))]);
        assert_eq!(taken.plan(), Plan::Libraries(named));
        assert!(work.is_empty() && work.scanning.contains_key("2"));
        work.item("3", "30", at(101));
        assert_eq!(work.due(), Some(at(101) + QUIET));
        work.everything(at(102));
        assert_eq!(work.due(), Some(at(0) + LONGEST_SCAN), "a look at everything waits for every scan");
    }
}
