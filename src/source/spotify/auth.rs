//! Spotify's accounts service: the authorisation code flow (PKCE for apps
//! without a secret), token refresh with rotation, and what a refused
//! refresh means. Tokens are persisted in the store's `Session` and never
//! appear in a message: the token endpoint's URL holds none, and its error
//! bodies are reduced to their `error` code.

use crate::config::SpotifyConfig;
use crate::source::http::{Http, encode};
use crate::source::{Cause, ErrorKind, SourceError};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use std::time::Duration;

/// What mediasync reads: saved tracks and albums, followed artists, private
/// and collaborative playlists.
pub const SCOPES: &str = "user-library-read user-follow-read playlist-read-private playlist-read-collaborative";

/// A token endpoint answer (`refresh_token` only when issued or rotated).
#[derive(Deserialize)]
pub struct Tokens {
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<i64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
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
    pub fn new(app: &'a SpotifyConfig, timeout: Duration) -> Accounts<'a> {
        Accounts { http: Http::new(&app.accounts_url, timeout), app }
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
        let raw = self.http.send("/api/token", &headers, Some(&form)).map_err(|err| (err, Refusal::Other))?;
        let at = format!("{}/api/token", self.http.base());
        match raw.status {
            200..=299 => serde_json::from_slice::<Tokens>(&raw.body).map_err(|err| {
                (
                    SourceError::new(ErrorKind::Unavailable, format!("{at}: the answer is not a token ({err})"))
                        .caused_by(Cause::Json(err)),
                    Refusal::Other,
                )
            }),
            429 => {
                let wait = Duration::from_secs(raw.retry_after.unwrap_or(30));
                Err((
                    SourceError::new(ErrorKind::RateLimited(wait), format!("{at}: rate limited (HTTP 429)")),
                    Refusal::Other,
                ))
            }
            408 | 500..=599 => Err((
                SourceError::new(
                    ErrorKind::Unavailable,
                    format!("{at}: server error (HTTP {}); will retry", raw.status),
                ),
                Refusal::Other,
            )),
            status => {
                let code = serde_json::from_slice::<OAuthError>(&raw.body).map(|body| body.error).unwrap_or_default();
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
        };
        let url = authorize_url(&app, "http://127.0.0.1:8787/spotify/callback", "s1", Some("c1"));
        assert!(url.starts_with("https://accounts.example/authorize?client_id=abc&response_type=code"), "{url}");
        assert!(url.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A8787%2Fspotify%2Fcallback"), "{url}");
        assert!(url.contains("scope=user-library-read%20user-follow-read"), "{url}");
        assert!(url.ends_with("&state=s1&code_challenge_method=S256&code_challenge=c1"), "{url}");
    }
}
