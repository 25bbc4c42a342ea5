//! Jellyfin's Quick Connect started from the status page: the sign-in of
//! the notification socket without a password in a file. Starting asks the
//! server for a code and shows it on the page; the user enters it in a
//! Jellyfin app signed in as the user whose library events to follow; the
//! listener's next look for credentials (`App::push_endpoint`) finds the
//! code authorised and keeps the access token like a password sign-in's.
//! The secret that fetches the token stays in memory, never shown.

use super::App;
use super::live::ServerSlot;
use super::push::Connection;
use crate::config::{Backend, Config, Flavor, JellyfinConfig, ServerConfig};
use crate::source::signin::SignIn;
use crate::source::{SourceError, Stop};
use std::sync::Arc;

/// How long a code can be entered: Jellyfin forgets a request after ten
/// minutes.
const LIFETIME_SECONDS: i64 = 600;

/// A code shown, waiting to be authorised.
pub(super) struct Pending {
    secret: String,
    until: i64,
}

/// Why Quick Connect could not start.
#[derive(Debug)]
pub enum QuickConnectError {
    UnknownServer(String),
    /// Not a Jellyfin server (Emby has no Quick Connect), or its
    /// notifications are off.
    NotAvailable(String, &'static str),
    /// The socket is connected already.
    Connected(String),
    /// The server refused or failed to start it.
    Server(SourceError),
}

impl std::fmt::Display for QuickConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuickConnectError::UnknownServer(server) => {
                write!(f, "no server named \"{server}\" in the config; see GET /api/status")
            }
            QuickConnectError::NotAvailable(server, why) => write!(f, "server \"{server}\": {why}"),
            QuickConnectError::Connected(server) => {
                write!(f, "server \"{server}\" already receives its notifications; nothing to sign in")
            }
            QuickConnectError::Server(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for QuickConnectError {}

impl App {
    /// Starts Quick Connect for a Jellyfin server: the code to show.
    pub fn start_quick_connect(&self, name: &str) -> Result<String, QuickConnectError> {
        let config = self.config();
        let (server, jellyfin) = quick_connect_server(&config, name)?;
        let slot = self.server(name).ok_or_else(|| QuickConnectError::UnknownServer(name.to_string()))?;
        if slot.live().notifications.and_then(|shown| shown.connection) == Some(Connection::Connected) {
            return Err(QuickConnectError::Connected(name.to_string()));
        }
        let signin = SignIn::new(server, jellyfin, config.sync.timeout, &self.shutdown_signal());
        let started = signin.start_quick_connect().map_err(QuickConnectError::Server)?;
        let until = crate::sync::now_epoch().saturating_add(LIFETIME_SECONDS);
        slot.lock().quick_connect = Some(Pending { secret: started.secret, until });
        slot.show_quick_connect(Some((started.code.clone(), until)));
        log::info!("{name}: Quick Connect started; its code is on the status page");
        Ok(started.code)
    }

    /// The sign-in of the Quick Connect started for `name`, when its code
    /// was authorised: `None` when none is pending, `Some(Err)` while it
    /// waits or after it failed or expired (then it is dropped and the
    /// page says why).
    pub(super) fn quick_connect_sign_in(
        &self,
        name: &str,
        server: &ServerConfig,
        jellyfin: &JellyfinConfig,
        slot: &ServerSlot,
        stop: &Arc<Stop>,
    ) -> Option<Result<String, String>> {
        let (secret, until) =
            slot.lock().quick_connect.as_ref().map(|pending| (pending.secret.clone(), pending.until))?;
        let failed = |why: String| {
            slot.lock().quick_connect = None;
            slot.show_quick_connect(None);
            slot.connection(Connection::SignInNeeded, Some(why.clone()), None);
            Some(Err(why))
        };
        if crate::sync::now_epoch() > until {
            return failed("the Quick Connect code expired; start Quick Connect again".into());
        }
        let signin = SignIn::new(server, jellyfin, self.config().sync.timeout, stop);
        match signin.by_quick_connect(&secret) {
            Ok(None) => Some(Err("waiting for the Quick Connect code to be entered".into())),
            Ok(Some(signed_in)) => {
                if let Err(err) = self.keep_sign_in(name, &signed_in.access_token) {
                    return failed(err.to_string());
                }
                log::info!("{name}: signed in as \"{}\" through Quick Connect for notifications", signed_in.user);
                slot.lock().quick_connect = None;
                slot.show_quick_connect(None);
                Some(Ok(signed_in.access_token))
            }
            // A server briefly away: the code stays, the next look asks again.
            Err(err) if err.is_retryable() => Some(Err(err.to_string())),
            Err(err) => {
                log::warn!("{name}: Quick Connect: {err}");
                failed(err.to_string())
            }
        }
    }
}

/// The Jellyfin server `name` Quick Connect can sign in for.
fn quick_connect_server<'a>(
    config: &'a Config,
    name: &str,
) -> Result<(&'a ServerConfig, &'a JellyfinConfig), QuickConnectError> {
    let server = config.server(name).ok_or_else(|| QuickConnectError::UnknownServer(name.to_string()))?;
    let not_available = |why| Err(QuickConnectError::NotAvailable(name.to_string(), why));
    match &server.backend {
        Backend::Jellyfin(jellyfin) if !jellyfin.notifications => {
            not_available("its notifications are off (notifications = false); nothing to sign in for")
        }
        Backend::Jellyfin(jellyfin) if jellyfin.flavor == Flavor::Jellyfin => Ok((server, jellyfin)),
        Backend::Jellyfin(_) => not_available("Emby has no Quick Connect; set login_user and password_file"),
        _ => not_available("Quick Connect is Jellyfin's; this server needs no sign-in for its notifications"),
    }
}
