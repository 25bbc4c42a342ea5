//! Signing in to Jellyfin or Emby as a user, for the notification socket:
//! the servers send library events only to sessions of a signed-in user,
//! never to an API key's: `/Users/AuthenticateByName` with the configured
//! user and the password from `password_file`, or Jellyfin's Quick Connect
//! (a code the user authorises in an app already signed in). The access
//! token either gives is kept in the store and never shown.

use super::http::{Body, Http, body_cap};
use super::lenient::{Object, Text};
use super::{ErrorKind, SourceError, Stop};
use crate::config::{JellyfinConfig, ServerConfig};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// What a sign-in gives. `Debug` hides the token.
pub struct SignedIn {
    pub access_token: String,
    pub user: String,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn").field("access_token", &"<redacted>").field("user", &self.user).finish()
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct AuthenticationResult {
    #[serde(rename = "AccessToken")]
    access_token: Text,
    #[serde(rename = "User")]
    user: Object<User>,
}

/// A Quick Connect request: `code` is for the user to enter in a signed-in
/// Jellyfin app; `secret` fetches the sign-in once the code is authorised.
/// `Debug` hides the secret.
pub struct QuickConnect {
    pub code: String,
    pub secret: String,
}

impl std::fmt::Debug for QuickConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuickConnect").field("code", &self.code).field("secret", &"<redacted>").finish()
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct QuickConnectResult {
    #[serde(rename = "Secret")]
    secret: Text,
    #[serde(rename = "Code")]
    code: Text,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct User {
    #[serde(rename = "Name")]
    name: Text,
}

/// One server's sign-in client.
pub struct SignIn {
    http: Http,
    server: String,
    /// `Authorization: MediaBrowser …` without a token: who is signing in.
    authorization: String,
}

impl SignIn {
    pub fn new(server: &ServerConfig, jellyfin: &JellyfinConfig, timeout: Duration, stop: &Arc<Stop>) -> SignIn {
        SignIn {
            http: Http::new(&jellyfin.url, timeout, stop),
            server: server.name.clone(),
            authorization: super::jellyfin::authorization(&server.name, None),
        }
    }

    fn headers(&self) -> [(&str, &str); 2] {
        [("Accept", "application/json"), ("Authorization", self.authorization.as_str())]
    }

    /// `/Users/AuthenticateByName`; a refused password is `Unauthorized`.
    pub fn by_name(&self, user: &str, password: &str) -> Result<SignedIn, SourceError> {
        let body = serde_json::json!({"Username": user, "Pw": password}).to_string();
        let reply = self.http.send("/Users/AuthenticateByName", &self.headers(), Some(Body::Json(&body)))?;
        match reply.status {
            200..=299 => signed_in(
                reply.json(body_cap(0), "an authentication result")?,
                &reply_at(&self.http, "/Users/AuthenticateByName"),
            ),
            401 | 403 => Err(SourceError::new(
                ErrorKind::Unauthorized,
                format!(
                    "{}: the server refused user \"{user}\" with the password from password_file; fix `login_user` or the file of [[server]] \"{}\"",
                    reply.at(),
                    self.server
                ),
            )),
            status => Err(unexpected(reply.at(), status)),
        }
    }
}

impl SignIn {
    /// Starts Quick Connect: `POST /QuickConnect/Initiate` (a GET on
    /// Jellyfin before 10.9, which answers the POST with 405).
    pub fn start_quick_connect(&self) -> Result<QuickConnect, SourceError> {
        const INITIATE: &str = "/QuickConnect/Initiate";
        let mut reply = self.http.send(INITIATE, &self.headers(), Some(Body::Json("")))?;
        if reply.status == 405 {
            reply = self.http.send(INITIATE, &self.headers(), None)?;
        }
        match reply.status {
            200..=299 => {
                let at = reply_at(&self.http, INITIATE);
                let result: QuickConnectResult = reply.json(body_cap(0), "a Quick Connect result")?;
                match (result.code.as_str(), result.secret.as_str()) {
                    (Some(code), Some(secret)) if !code.is_empty() && !secret.is_empty() => {
                        Ok(QuickConnect { code: code.to_string(), secret: secret.to_string() })
                    }
                    _ => Err(SourceError::new(ErrorKind::Rejected, format!("{at}: the answer holds no code"))),
                }
            }
            401 | 403 => Err(self.quick_connect_disabled(reply.at())),
            404 => Err(SourceError::new(
                ErrorKind::Rejected,
                format!(
                    "{}: the server has no Quick Connect (Emby, or Jellyfin before 10.7); set login_user and password_file of [[server]] \"{}\"",
                    reply.at(),
                    self.server
                ),
            )),
            status => Err(unexpected(reply.at(), status)),
        }
    }

    /// The sign-in of an authorised Quick Connect request, `None` while the
    /// code is not authorised yet. Asks `/Users/AuthenticateWithQuickConnect`
    /// with the secret in the body (the server answers 404 until then)
    /// rather than `/QuickConnect/Connect`, whose secret would be in the
    /// query, and URLs end up in messages.
    pub fn by_quick_connect(&self, secret: &str) -> Result<Option<SignedIn>, SourceError> {
        const AUTHENTICATE: &str = "/Users/AuthenticateWithQuickConnect";
        let body = serde_json::json!({ "Secret": secret }).to_string();
        let reply = self.http.send(AUTHENTICATE, &self.headers(), Some(Body::Json(&body)))?;
        match reply.status {
            200..=299 => {
                signed_in(reply.json(body_cap(0), "an authentication result")?, &reply_at(&self.http, AUTHENTICATE))
                    .map(Some)
            }
            404 => Ok(None),
            401 | 403 => Err(self.quick_connect_disabled(reply.at())),
            status => Err(unexpected(reply.at(), status)),
        }
    }

    fn quick_connect_disabled(&self, at: &str) -> SourceError {
        SourceError::new(
            ErrorKind::Rejected,
            format!(
                "{at}: Quick Connect is disabled on the server; enable it in Jellyfin's dashboard (General), or set login_user and password_file of [[server]] \"{}\"",
                self.server
            ),
        )
    }
}

fn reply_at(http: &Http, path: &str) -> String {
    format!("{}{path}", http.base())
}

fn signed_in(result: AuthenticationResult, at: &str) -> Result<SignedIn, SourceError> {
    let user = result.user.0.and_then(|user| user.name.as_str().map(str::to_string)).unwrap_or_default();
    match result.access_token.as_str() {
        Some(token) if crate::config::is_header_safe(token) => Ok(SignedIn { access_token: token.to_string(), user }),
        _ => Err(SourceError::new(ErrorKind::Rejected, format!("{at}: the sign-in gave no usable access token"))),
    }
}

fn unexpected(at: &str, status: u16) -> SourceError {
    let kind = if status == 408 || status >= 500 { ErrorKind::Unavailable } else { ErrorKind::Rejected };
    SourceError::new(kind, format!("{at}: unexpected HTTP {status}"))
}
