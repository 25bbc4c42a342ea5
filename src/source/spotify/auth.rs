//! Spotify's accounts service: the authorisation code flow (PKCE for apps
//! without a secret), token refresh with rotation, and what a refused
//! refresh means. Tokens are persisted in the store's `Session` and never
//! appear in a message: the token endpoint's URL holds none, and its error
//! bodies are reduced to their `error` code.

use crate::config::SpotifyConfig;
use crate::source::http::{Body, Http, body_cap, encode, rate_limited};
use crate::source::lenient::{Int, Text};
use crate::source::{ErrorKind, SourceError, Stop};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// What mediasync reads: saved tracks and albums, followed artists, private
/// and collaborative playlists, and the recently played tracks.
pub const SCOPES: &str =
    "user-library-read user-follow-read playlist-read-private playlist-read-collaborative user-read-recently-played";
/// The scope of `/me/player/recently-played`. Accounts connected before
/// mediasync asked for it lack it: their history waits until the user
/// connects again.
pub const HISTORY_SCOPE: &str = "user-read-recently-played";

/// Whether a granted scope (space-separated, as the token endpoint answers
/// it) holds `wanted`.
pub fn grants(scope: Option<&str>, wanted: &str) -> bool {
    scope.is_some_and(|scope| scope.split_whitespace().any(|granted| granted == wanted))
}

/// The lifetime assumed when the token endpoint gives none, and the
/// longest believed (Spotify's tokens last an hour).
const DEFAULT_LIFETIME_SECS: i64 = 3600;
const MAX_LIFETIME_SECS: i64 = 86_400;

/// A token endpoint answer (`refresh_token` only when issued or rotated).
pub struct Tokens {
    pub access_token: String,
    pub expires_in: Option<i64>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
}

impl Tokens {
    /// When the access token expires, `now` being epoch seconds: a lifetime
    /// past a day, negative or missing is not believed.
    pub fn expires_at(&self, now: i64) -> i64 {
        now.saturating_add(self.expires_in.unwrap_or(DEFAULT_LIFETIME_SECS).clamp(0, MAX_LIFETIME_SECS))
    }
}

/// The token endpoint's answer as sent.
#[derive(Default, Deserialize)]
#[serde(default)]
struct TokenAnswer {
    access_token: Text,
    expires_in: Int,
    refresh_token: Text,
    scope: Text,
}

impl TokenAnswer {
    fn tokens(self) -> Result<Tokens, String> {
        Ok(Tokens {
            access_token: self.access_token.read("access_token")?.ok_or("it has no access_token")?,
            expires_in: self.expires_in.get(),
            refresh_token: self.refresh_token.read("refresh_token")?,
            scope: self.scope.read("scope")?,
        })
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct OAuthError {
    error: Text,
}

/// What a refused grant means for the user.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `invalid_grant`: the authorisation expired (six months) or was
    /// revoked; the account must be connected again.
    Grant,
    /// Anything else: the app's credentials or the request.
    Other,
}

pub struct Accounts<'a> {
    http: Http,
    app: &'a SpotifyConfig,
}

impl<'a> Accounts<'a> {
    /// `stop` interrupts its requests.
    pub fn new(app: &'a SpotifyConfig, timeout: Duration, stop: &Arc<Stop>) -> Accounts<'a> {
        Accounts { http: Http::new(&app.accounts_url, timeout, stop), app }
    }

    pub fn requests(&self) -> u64 {
        self.http.requests()
    }

    /// Exchanges a refresh token for a fresh access token.
    pub fn refresh(&self, refresh_token: &str) -> Result<Tokens, (SourceError, Refusal)> {
        self.token(&format!("grant_type=refresh_token&refresh_token={}", encode(refresh_token)))
    }

    /// Exchanges an authorisation code (with the PKCE verifier of the flow
    /// that asked for it, for apps without a secret).
    pub fn exchange(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
    ) -> Result<Tokens, (SourceError, Refusal)> {
        let mut form =
            format!("grant_type=authorization_code&code={}&redirect_uri={}", encode(code), encode(redirect_uri));
        if let Some(verifier) = verifier {
            form.push_str(&format!("&code_verifier={}", encode(verifier)));
        }
        self.token(&form)
    }

    fn token(&self, form: &str) -> Result<Tokens, (SourceError, Refusal)> {
        let basic;
        let mut headers = vec![("Accept", "application/json")];
        let mut form = form.to_string();
        match &self.app.client_secret {
            Some(secret) => {
                basic = format!("Basic {}", STANDARD.encode(format!("{}:{secret}", self.app.client_id)));
                headers.push(("Authorization", basic.as_str()));
            }
            None => form.push_str(&format!("&client_id={}", encode(&self.app.client_id))),
        }
        let reply =
            self.http.send("/api/token", &headers, Some(Body::Form(&form))).map_err(|err| (err, Refusal::Other))?;
        let at = reply.at().to_string();
        match reply.status {
            200..=299 => {
                let answer: TokenAnswer = reply.json(body_cap(0), "a token").map_err(|err| (err, Refusal::Other))?;
                answer.tokens().map_err(|problem| {
                    let message = format!("{at}: the answer is not a usable token ({problem})");
                    (SourceError::new(ErrorKind::Unavailable, message), Refusal::Other)
                })
            }
            429 => Err((rate_limited(&at, reply.retry_after), Refusal::Other)),
            408 | 500..=599 => Err((
                SourceError::new(
                    ErrorKind::Unavailable,
                    format!("{at}: server error (HTTP {}); will retry", reply.status),
                ),
                Refusal::Other,
            )),
            status => {
                let body = serde_json::from_slice::<OAuthError>(&reply.error_body()).unwrap_or_default();
                let code = body.error.as_str().unwrap_or_default().chars().take(100).collect::<String>();
                let (message, refusal) = match code.as_str() {
                    "invalid_grant" => (
                        "Spotify no longer accepts the saved authorisation (invalid_grant: it expires six months after connecting, or was revoked); connect the account again on the status page".to_string(),
                        Refusal::Grant,
                    ),
                    "invalid_client" => (
                        "Spotify refused the app's credentials (invalid_client); check client_id and client_secret in the config".to_string(),
                        Refusal::Other,
                    ),
                    _ => (format!("{at}: Spotify refused the token request (HTTP {status} {code})"), Refusal::Other),
                };
                Err((SourceError::new(ErrorKind::Unauthorized, message), refusal))
            }
        }
    }
}

/// The address to send the user's browser to.
pub fn authorize_url(app: &SpotifyConfig, redirect_uri: &str, state: &str, challenge: Option<&str>) -> String {
    let mut url = format!(
        "{}/authorize?client_id={}&response_type=code&redirect_uri={}&scope={}&state={}",
        app.accounts_url,
        encode(&app.client_id),
        encode(redirect_uri),
        encode(SCOPES),
        encode(state)
    );
    if let Some(challenge) = challenge {
        url.push_str(&format!("&code_challenge_method=S256&code_challenge={}", encode(challenge)));
    }
    url
}

/// A random URL-safe string from `bytes` random bytes (state, verifier).
pub fn random_token(bytes: usize) -> Result<String, String> {
    use ring::rand::SecureRandom;
    let mut buffer = vec![0u8; bytes];
    ring::rand::SystemRandom::new().fill(&mut buffer).map_err(|_| "the system's random source failed".to_string())?;
    Ok(URL_SAFE_NO_PAD.encode(buffer))
}

/// PKCE's S256 challenge of a verifier.
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc7636_appendix_b() {
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let verifier = random_token(48).unwrap();
        assert_eq!(verifier.len(), 64);
        assert_ne!(verifier, random_token(48).unwrap());
    }

    #[test]
    fn authorize_url_carries_scopes_state_and_challenge() {
        let app = SpotifyConfig {
            api_url: "https://api.example/v1".into(),
            client_id: "abc".into(),
            client_secret: None,
            accounts_url: "https://accounts.example".into(),
            redirect_uri: None,
            image_width: crate::config::DEFAULT_ARTWORK_WIDTH,
        };
        let url = authorize_url(&app, "http://127.0.0.1:8787/spotify/callback", "s1", Some("c1"));
        assert!(url.starts_with("https://accounts.example/authorize?client_id=abc&response_type=code"), "{url}");
        assert!(url.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A8787%2Fspotify%2Fcallback"), "{url}");
        assert!(url.contains("scope=user-library-read%20user-follow-read"), "{url}");
        assert!(url.ends_with("&state=s1&code_challenge_method=S256&code_challenge=c1"), "{url}");
    }
}
