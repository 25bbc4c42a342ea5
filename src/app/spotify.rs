//! "Connect Spotify": the authorisation code flows started from the status
//! page. A flow is identified by its random, single-use `state`, expires
//! after ten minutes and lives in memory only (a restart cancels it, and the
//! user presses the button again); apps without a secret use PKCE. Finishing
//! a flow exchanges the code and stores the tokens in the server's session.
//! No token, code or verifier is ever logged or shown.

use super::App;
use crate::config::ServerConfig;
use crate::source::SourceError;
use crate::source::spotify::auth::{self, Accounts};
use crate::store::StoreError;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FLOW_LIFETIME: Duration = Duration::from_secs(600);
const MAX_FLOWS: usize = 16;

struct Flow {
    state: String,
    server: String,
    verifier: Option<String>,
    redirect_uri: String,
    started: Instant,
}

/// The flows started and not yet finished.
#[derive(Default)]
pub(super) struct Flows(Mutex<Vec<Flow>>);

impl Flows {
    fn take(&self, state: &str) -> Option<Flow> {
        let mut flows = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        flows.retain(|flow| flow.started.elapsed() < FLOW_LIFETIME);
        let position =
            flows.iter().position(|flow| super::constant_time_eq(flow.state.as_bytes(), state.as_bytes()))?;
        Some(flows.remove(position))
    }

    fn add(&self, flow: Flow) {
        let mut flows = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        flows.retain(|flow| flow.started.elapsed() < FLOW_LIFETIME);
        if flows.len() >= MAX_FLOWS {
            flows.remove(0);
        }
        flows.push(flow);
    }
}

/// A started flow: where to send the browser, and where Spotify sends it back.
#[derive(Debug)]
pub struct FlowStart {
    pub url: String,
    pub redirect_uri: String,
}

/// What Spotify's redirect carries back (its query parameters).
#[derive(Debug, Default)]
pub struct Callback<'a> {
    pub state: Option<&'a str>,
    pub code: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// Why a flow could not start or finish.
#[derive(Debug)]
pub enum FlowError {
    UnknownServer(String),
    /// Only Spotify servers connect an account.
    NotSpotify(String),
    /// The system's random source failed.
    Random(String),
    MissingState,
    /// The state is unknown, used or expired.
    UnknownFlow,
    /// The user (or Spotify) refused; the error code, filtered to be safe to show.
    Denied(String),
    MissingCode,
    /// The flow's server left the config (it cannot while the daemon runs).
    ServerGone(String),
    /// The flow's server is no longer a Spotify server.
    NoLongerSpotify,
    Exchange(SourceError),
    NoRefreshToken,
    Save(StoreError),
}

impl std::fmt::Display for FlowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const START_AGAIN: &str = "start again with \"Connect Spotify\"";
        match self {
            FlowError::UnknownServer(name) => {
                write!(f, "no server named \"{name}\" in the config; see GET /api/status")
            }
            FlowError::NotSpotify(name) => {
                write!(f, "server \"{name}\" is not a Spotify server; only those connect here")
            }
            FlowError::Random(err) => f.write_str(err),
            FlowError::MissingState => write!(f, "the address has no `state`; {START_AGAIN}"),
            FlowError::UnknownFlow => {
                write!(f, "this authorisation is unknown, used or older than ten minutes; {START_AGAIN}")
            }
            FlowError::Denied(error) => write!(f, "Spotify did not authorise mediasync ({error}); nothing changed"),
            FlowError::MissingCode => write!(f, "the address has no `code`; {START_AGAIN}"),
            FlowError::ServerGone(name) => write!(f, "server \"{name}\" is no longer configured"),
            FlowError::NoLongerSpotify => f.write_str("not a Spotify server"),
            FlowError::Exchange(err) => write!(f, "Spotify did not accept the authorisation: {err}"),
            FlowError::NoRefreshToken => f.write_str("Spotify answered without a refresh token; try again"),
            FlowError::Save(err) => write!(f, "could not save the authorisation: {err}"),
        }
    }
}

impl std::error::Error for FlowError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FlowError::Exchange(err) => Some(err),
            FlowError::Save(err) => Some(err),
            _ => None,
        }
    }
}

impl App {
    /// Where Spotify sends the browser back: the configured `redirect_uri`,
    /// or the status server's callback on 127.0.0.1 (Spotify accepts plain
    /// HTTP only for loopback addresses).
    pub fn spotify_redirect_uri(&self, server: &ServerConfig) -> String {
        if let Some(uri) = server.spotify().and_then(|app| app.redirect_uri.clone()) {
            return uri;
        }
        format!("http://127.0.0.1:{}/spotify/callback", self.config().status.listen.port())
    }

    /// Starts a flow for the server `name`.
    pub fn start_spotify_flow(&self, name: &str) -> Result<FlowStart, FlowError> {
        let config = self.config();
        let Some(server) = config.server(name) else {
            return Err(FlowError::UnknownServer(name.to_string()));
        };
        let Some(app) = server.spotify() else {
            return Err(FlowError::NotSpotify(name.to_string()));
        };
        let state = auth::random_token(24).map_err(FlowError::Random)?;
        let verifier = auth::random_token(48).map_err(FlowError::Random)?;
        let verifier = app.client_secret.is_none().then_some(verifier);
        let redirect_uri = self.spotify_redirect_uri(server);
        let challenge = verifier.as_deref().map(auth::challenge);
        let url = auth::authorize_url(app, &redirect_uri, &state, challenge.as_deref());
        self.spotify_flows.add(Flow {
            state,
            server: name.to_string(),
            verifier,
            redirect_uri: redirect_uri.clone(),
            started: Instant::now(),
        });
        log::info!("{name}: Spotify authorisation started (callback {redirect_uri})");
        Ok(FlowStart { url, redirect_uri })
    }

    /// Checks the state, exchanges the code and saves the tokens, then asks
    /// for the server's first sync. Answers the server's name.
    pub fn finish_spotify_flow(&self, callback: &Callback<'_>) -> Result<String, FlowError> {
        let state = callback.state.ok_or(FlowError::MissingState)?;
        let flow = self.spotify_flows.take(state).ok_or(FlowError::UnknownFlow)?;
        if let Some(error) = callback.error {
            let error: String = error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
            return Err(FlowError::Denied(error));
        }
        let code = callback.code.ok_or(FlowError::MissingCode)?;
        let config = self.config();
        let server = config.server(&flow.server).ok_or_else(|| FlowError::ServerGone(flow.server.clone()))?;
        let app = server.spotify().ok_or(FlowError::NoLongerSpotify)?;
        let accounts = Accounts::new(app, config.sync.timeout, &Default::default());
        let tokens = accounts
            .exchange(code, &flow.redirect_uri, flow.verifier.as_deref())
            .map_err(|(err, _)| FlowError::Exchange(err))?;
        let now = crate::sync::now_epoch();
        let expires_at = tokens.expires_at(now);
        let Some(refresh_token) = tokens.refresh_token else {
            return Err(FlowError::NoRefreshToken);
        };
        self.store
            .update_session(&flow.server, |session| {
                session.refresh_token = Some(refresh_token);
                session.access_token = Some(tokens.access_token);
                session.access_expires_at = Some(expires_at);
                session.scope = tokens.scope;
                session.connected_at = Some(now);
                session.reauthorize = None;
            })
            .map_err(FlowError::Save)?;
        log::info!("{}: Spotify account connected", flow.server);
        let _ = self.request_sync(&flow.server, super::SyncRequest::default());
        Ok(flow.server)
    }
}
