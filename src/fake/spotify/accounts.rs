//! A fake Spotify's accounts service: the consent page (`/authorize`) and
//! the token endpoint (`/api/token`), issuing codes, access tokens and
//! refresh tokens that rotate or get revoked.

use super::catalog::encode;
use super::serve::{Answer, Params, html, json_answer, oauth_error, param, redirect};
use super::{Code, Grant, SpotifyState};
use crate::fake::{header, query};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use std::time::{Duration, Instant};

impl SpotifyState {
    pub(super) fn accounts(
        &mut self,
        request: &tiny_http::Request,
        method: &str,
        path: &str,
        params: &Params,
        body: &str,
    ) -> Answer {
        match (method, path) {
            ("GET", "/authorize") => self.authorize(params),
            ("POST", "/api/token") => {
                self.token_requests += 1;
                self.token(request, body)
            }
            (_, "/authorize" | "/api/token") => html(405, "Method Not Allowed"),
            _ => html(404, "Not Found"),
        }
    }

    /// The consent page, approved (or denied) at once by the user.
    pub(super) fn authorize(&mut self, params: &Params) -> Answer {
        if param(params, "client_id") != Some(self.client_id.as_str()) {
            return html(400, "INVALID_CLIENT: Invalid client");
        }
        let Some(redirect_uri) = param(params, "redirect_uri") else {
            return html(400, "INVALID_CLIENT: Invalid redirect URI");
        };
        // Since November 2025: https, or http only to a loopback IP literal.
        let loopback = ["http://127.0.0.1", "http://[::1]"].iter().any(|prefix| {
            redirect_uri.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
        });
        if !(redirect_uri.starts_with("https://") || loopback) {
            return html(400, "INVALID_CLIENT: Insecure redirect URI");
        }
        let separator = if redirect_uri.contains('?') { '&' } else { '?' };
        let state = param(params, "state").map(|state| format!("&state={}", encode(state))).unwrap_or_default();
        let back = |outcome: String| redirect(format!("{redirect_uri}{separator}{outcome}{state}"));
        if param(params, "response_type") != Some("code") {
            return back("error=unsupported_response_type".into());
        }
        let challenge = param(params, "code_challenge").map(str::to_string);
        if challenge.is_some() && param(params, "code_challenge_method") != Some("S256") {
            return back("error=invalid_request&error_description=code_challenge_method%20must%20be%20S256".into());
        }
        if challenge.is_none() && self.client_secret.is_none() {
            return back("error=invalid_request&error_description=code_challenge%20required".into());
        }
        if self.deny_authorization {
            return back("error=access_denied".into());
        }
        let code = self.secret("AQ");
        let scope = param(params, "scope").unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" ");
        self.codes.insert(code.clone(), Code { redirect_uri: redirect_uri.to_string(), challenge, scope });
        back(format!("code={}", encode(&code)))
    }

    pub(super) fn token(&mut self, request: &tiny_http::Request, body: &str) -> Answer {
        if let Some(status) = self.token_failure {
            return oauth_error(status, "server_error", "Service unavailable");
        }
        let (_, form) = query::split(&format!("?{body}"));
        let field = |name: &str| param(&form, name).map(str::to_string);
        let (client_id, secret) = match header(request, "Authorization") {
            Some(value) => {
                let decoded = value.strip_prefix("Basic ").and_then(|encoded| STANDARD.decode(encoded.trim()).ok());
                let decoded = decoded.and_then(|bytes| String::from_utf8(bytes).ok());
                match decoded.as_deref().and_then(|text| text.split_once(':')) {
                    Some((id, secret)) => (Some(id.to_string()), Some(secret.to_string())),
                    None => return oauth_error(400, "invalid_client", "Invalid client"),
                }
            }
            None => (field("client_id"), field("client_secret")),
        };
        if client_id.as_deref() != Some(self.client_id.as_str()) {
            return oauth_error(400, "invalid_client", "Invalid client");
        }
        if secret.is_some() && secret != self.client_secret {
            return oauth_error(401, "invalid_client", "Invalid client secret");
        }
        let public = secret.is_none();
        let lifetime = self.token_lifetime_secs;
        match field("grant_type").as_deref() {
            Some("authorization_code") => {
                let Some(code) = field("code").and_then(|code| self.codes.remove(&code)) else {
                    return oauth_error(400, "invalid_grant", "Invalid authorization code");
                };
                if field("redirect_uri").as_deref() != Some(code.redirect_uri.as_str()) {
                    return oauth_error(400, "invalid_grant", "Invalid redirect URI");
                }
                if public || code.challenge.is_some() {
                    let Some(verifier) = field("code_verifier") else {
                        return oauth_error(400, "invalid_request", "code_verifier required");
                    };
                    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
                    if code.challenge.as_deref() != Some(URL_SAFE_NO_PAD.encode(digest.as_ref()).as_str()) {
                        return oauth_error(400, "invalid_grant", "code_verifier was incorrect");
                    }
                }
                let access_token = self.issue_access(&code.scope);
                let refresh_token = self.secret("AQ");
                self.refresh_tokens.push((refresh_token.clone(), code.scope.clone()));
                json_answer(
                    200,
                    &json!({"access_token": access_token, "token_type": "Bearer", "scope": code.scope,
                        "expires_in": lifetime, "refresh_token": refresh_token}),
                )
            }
            Some("refresh_token") => {
                let Some(presented) = field("refresh_token") else {
                    return oauth_error(400, "invalid_request", "refresh_token must be supplied");
                };
                if self.revoked.contains(&presented) {
                    return oauth_error(400, "invalid_grant", "Refresh token revoked");
                }
                let Some(index) = self.refresh_tokens.iter().position(|(token, _)| *token == presented) else {
                    return oauth_error(400, "invalid_grant", "Invalid refresh token");
                };
                let scope = self.refresh_tokens[index].1.clone();
                let access_token = self.issue_access(&scope);
                let mut answer = json!({"access_token": access_token, "token_type": "Bearer", "scope": scope, "expires_in": lifetime});
                if self.rotate_refresh_tokens {
                    self.refresh_tokens.remove(index);
                    let rotated = self.secret("AQ");
                    self.refresh_tokens.push((rotated.clone(), scope));
                    answer["refresh_token"] = json!(rotated);
                }
                json_answer(200, &answer)
            }
            None => oauth_error(400, "unsupported_grant_type", "grant_type parameter is missing"),
            Some(_) => oauth_error(400, "unsupported_grant_type", "grant_type parameter is invalid"),
        }
    }

    /// A random-looking secret (token or code), unique per fake and call.
    pub(super) fn secret(&mut self, prefix: &str) -> String {
        let serial = self.next_serial();
        let material = format!("{}:{serial}", self.seed);
        let digest = ring::digest::digest(&ring::digest::SHA256, material.as_bytes());
        format!("{prefix}{}", URL_SAFE_NO_PAD.encode(digest.as_ref()))
    }

    pub(super) fn issue_access(&mut self, scope: &str) -> String {
        let token = self.secret("BQ");
        let expires = Instant::now() + Duration::from_secs(self.token_lifetime_secs);
        self.access_tokens.insert(token.clone(), Grant { expires, scope: scope.to_string() });
        token
    }
}
