//! The one-shot commands' way into a running daemon: while `mediasync run`
//! holds the store (redb lets one process open it), `status`, `export` and
//! `sync` ask the daemon's local API instead of failing on the lock. It
//! speaks only to that API, never to a media server.

use crate::app::admin_token::{self, TokenError};
use crate::app::check::ServerCheck;
use crate::artwork::ArtworkCheck;
use crate::config::Config;
use serde::Deserialize;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The daemon's API as seen from this machine: an unspecified listen
/// address (0.0.0.0, [::]) is reached through loopback.
pub fn local_base(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

/// Why the running daemon could not do what was asked.
#[derive(Debug)]
pub enum ClientError {
    /// The daemon's API did not answer at `base`.
    Unreachable {
        base: String,
        cause: ureq::Error,
    },
    /// It answered, with an error status and message.
    Refused {
        status: u16,
        message: String,
    },
    BadJson(serde_json::Error),
    /// The streamed export broke off.
    ExportBroken(std::io::Error),
    /// The admin token the daemon requires could not be read.
    Token(TokenError),
    /// The daemon has not generated its admin token yet.
    NoToken(PathBuf),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Unreachable { base, cause } => write!(
                f,
                "the store is in use by another mediasync, and its status API at {base} did not answer ({cause}); is `mediasync run` up? (systemctl status mediasync)"
            ),
            ClientError::Refused { status, message } => write!(f, "the running daemon answered {status}: {message}"),
            ClientError::BadJson(err) => write!(f, "the running daemon sent JSON that does not parse: {err}"),
            ClientError::ExportBroken(err) => write!(f, "the export from the running daemon broke off: {err}"),
            ClientError::Token(err) => write!(f, "{err}"),
            ClientError::NoToken(path) => write!(
                f,
                "no admin token in {}: the daemon generates it at its start; is `mediasync run` using this config?",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Unreachable { cause, .. } => Some(cause),
            ClientError::Refused { .. } => None,
            ClientError::BadJson(err) => Some(err),
            ClientError::ExportBroken(err) => Some(err),
            ClientError::Token(err) => Some(err),
            ClientError::NoToken(_) => None,
        }
    }
}

fn agent(timeout: Option<Duration>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(timeout)
        .timeout_connect(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .user_agent(concat!("mediasync/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn unreachable(config: &Config) -> impl FnOnce(ureq::Error) -> ClientError + '_ {
    |cause| ClientError::Unreachable { base: local_base(config.status.listen), cause }
}

/// The daemon's answer to a control, or its error body.
#[derive(Deserialize)]
struct Answer {
    message: Option<String>,
    error: Option<String>,
}

fn answer(body: &str) -> Option<Answer> {
    serde_json::from_str(body).ok()
}

fn refused(status: u16, body: &str) -> ClientError {
    let message = answer(body).and_then(|answer| answer.error).unwrap_or_else(|| body.chars().take(200).collect());
    ClientError::Refused { status, message }
}

/// GETs a JSON document from the daemon.
pub fn get_json(config: &Config, path: &str) -> Result<serde_json::Value, ClientError> {
    let url = format!("{}{path}", local_base(config.status.listen));
    let mut response = agent(Some(Duration::from_secs(30))).get(&url).call().map_err(unreachable(config))?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().map_err(unreachable(config))?;
    if status != 200 {
        return Err(refused(status, &body));
    }
    serde_json::from_str(&body).map_err(ClientError::BadJson)
}

/// `Authorization` for the controls and the export: the config's admin
/// token, or the one the daemon generated in its state directory (readable
/// by root, and by the daemon's own user).
fn bearer(config: &Config) -> Result<String, ClientError> {
    match admin_token::read(config).map_err(ClientError::Token)? {
        Some(token) => Ok(format!("Bearer {token}")),
        None => Err(ClientError::NoToken(admin_token::path(config))),
    }
}

/// Streams the daemon's export to `out`.
pub fn export(config: &Config, server: Option<&str>, out: &mut dyn Write) -> Result<(), ClientError> {
    let mut url = format!("{}/api/export", local_base(config.status.listen));
    if let Some(server) = server {
        url.push_str(&format!("?server={server}"));
    }
    let request = agent(None).get(&url).header("Authorization", &bearer(config)?);
    let mut response = request.call().map_err(unreachable(config))?;
    let status = response.status().as_u16();
    if status != 200 {
        let body = response.body_mut().read_to_string().unwrap_or_default();
        return Err(refused(status, &body));
    }
    let mut reader = response.into_body().into_reader();
    match std::io::copy(&mut reader, out) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(err) => Err(ClientError::ExportBroken(err)),
    }
}

/// How long a control's answer may take; an artwork check may take the
/// whole pass the daemon gives it.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);
const ARTWORK_CHECK_TIMEOUT: Duration = Duration::from_secs(330);

/// POSTs a control (`sync`, `check`, …) for a server to the daemon, with
/// the admin token; answers the body of an answer with status `expected`.
fn control(config: &Config, server: &str, action: &str, expected: u16) -> Result<String, ClientError> {
    control_within(config, server, action, expected, CONTROL_TIMEOUT)
}

fn control_within(
    config: &Config,
    server: &str,
    action: &str,
    expected: u16,
    timeout: Duration,
) -> Result<String, ClientError> {
    let url = format!("{}/api/servers/{server}/{action}", local_base(config.status.listen));
    let request = agent(Some(timeout)).post(&url).header("Authorization", &bearer(config)?);
    let mut response = request.send_empty().map_err(unreachable(config))?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    if status != expected {
        return Err(refused(status, &body));
    }
    Ok(body)
}

/// Asks the daemon to sync a server now, walking whole libraries with
/// `full`, allowing a mass deletion with `force`; answers the daemon's
/// message.
pub fn request_sync(config: &Config, server: &str, full: bool, force: bool) -> Result<String, ClientError> {
    let flags: Vec<&str> =
        [("full=1", full), ("force=1", force)].into_iter().filter_map(|(flag, set)| set.then_some(flag)).collect();
    let action = if flags.is_empty() { "sync".to_string() } else { format!("sync?{}", flags.join("&")) };
    let body = control(config, server, &action, 202)?;
    Ok(answer(&body).and_then(|answer| answer.message).unwrap_or_else(|| "requested".into()))
}

/// Asks the daemon to check a server (a Spotify server's session is in the
/// store the daemon holds).
pub fn check(config: &Config, server: &str) -> Result<ServerCheck, ClientError> {
    serde_json::from_str(&control(config, server, "check", 200)?).map_err(ClientError::BadJson)
}

/// Asks the daemon to check and repair a server's artwork directory
/// (`mediasync check --artwork` while it holds the store).
pub fn check_artwork(config: &Config, server: &str, recheck: bool) -> Result<ArtworkCheck, ClientError> {
    let action = if recheck { "artwork?recheck=1" } else { "artwork" };
    let body = control_within(config, server, action, 200, ARTWORK_CHECK_TIMEOUT)?;
    serde_json::from_str(&body).map_err(ClientError::BadJson)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_listen_addresses_are_reached_through_loopback() {
        assert_eq!(local_base("0.0.0.0:8787".parse().unwrap()), "http://127.0.0.1:8787");
        assert_eq!(local_base("[::]:8787".parse().unwrap()), "http://[::1]:8787");
        assert_eq!(local_base("192.168.1.5:9000".parse().unwrap()), "http://192.168.1.5:9000");
    }
}
