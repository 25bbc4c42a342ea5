//! One `[[server]]` entry, checked by its kind: a Plex, Jellyfin or Emby
//! server takes a URL and a token (Jellyfin and Emby also a user); a
//! Spotify server takes an app and no token. A key of another kind is
//! refused with what to do instead, never ignored.

use super::error::{MediaServerKey, Problem, SecretProblem, ServerProblem, UrlKey};
use super::placeholders::{is_placeholder_client_id, is_placeholder_secret};
use super::raw::RawServer;
use super::server::{
    Backend, Flavor, JellyfinConfig, Login, PlexConfig, SPOTIFY_ACCOUNTS_URL, SPOTIFY_API_URL, SPOTIFY_LIBRARIES,
    SPOTIFY_MAX_PAGE, ServerConfig, ServerKind, SpotifyConfig,
};
use super::values::{is_header_safe, is_valid_name, parse_url, secret};
use super::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// Checks the entry at `position` (1-based; its `schedule` is the caller's).
pub fn server(mut raw: RawServer, position: usize) -> Result<ServerConfig, Problem> {
    let name = match raw.name.take() {
        Some(name) if is_valid_name(&name) => name,
        Some(name) => return Err(Problem::NameInvalid { position, name }),
        None => return Err(Problem::NameMissing { position }),
    };
    match entry(raw) {
        Ok((backend, page_size, libraries)) => Ok(ServerConfig { name, libraries, page_size, backend }),
        Err(problem) => Err(Problem::Server { name, problem }),
    }
}

/// The entry's backend, page size and library selection.
type Entry = (Backend, u32, Option<Vec<String>>);

fn entry(mut raw: RawServer) -> Result<Entry, ServerProblem> {
    let backend = match raw.kind.take().as_deref() {
        Some("plex") => Backend::Plex(plex(&mut raw)?),
        Some("jellyfin") => Backend::Jellyfin(jellyfin(&mut raw, Flavor::Jellyfin)?),
        Some("emby") => Backend::Jellyfin(jellyfin(&mut raw, Flavor::Emby)?),
        Some("spotify") => Backend::Spotify(spotify(&mut raw)?),
        Some(other) => return Err(ServerProblem::KindUnknown(other.to_string())),
        None => return Err(ServerProblem::KindMissing),
    };
    let page_size = match backend {
        Backend::Spotify(_) => {
            let page_size = raw.page_size.unwrap_or(SPOTIFY_MAX_PAGE);
            if page_size == 0 || page_size > SPOTIFY_MAX_PAGE {
                return Err(ServerProblem::SpotifyPageSize(page_size));
            }
            page_size
        }
        Backend::Plex(_) | Backend::Jellyfin(_) => {
            let page_size = raw.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
            if page_size == 0 || page_size > MAX_PAGE_SIZE {
                return Err(ServerProblem::PageSize(page_size));
            }
            page_size
        }
    };
    if let Some(libraries) = &raw.libraries {
        if libraries.is_empty() {
            return Err(ServerProblem::LibrariesEmpty);
        }
        if let Backend::Spotify(_) = backend {
            if let Some(unknown) = libraries.iter().find(|name| !SPOTIFY_LIBRARIES.contains(&name.as_str())) {
                return Err(ServerProblem::SpotifyLibraryUnknown(unknown.clone()));
            }
        }
    }
    Ok((backend, page_size, raw.libraries))
}

fn plex(raw: &mut RawServer) -> Result<PlexConfig, ServerProblem> {
    refuse_spotify_keys(raw, ServerKind::Plex)?;
    if raw.user.is_some() {
        return Err(ServerProblem::UserOnPlex);
    }
    if raw.login_user.is_some() {
        return Err(ServerProblem::LoginOnPlex("login_user"));
    }
    if raw.password_file.is_some() {
        return Err(ServerProblem::LoginOnPlex("password_file"));
    }
    let (url, token) = url_and_token(raw)?;
    Ok(PlexConfig { url, token, notifications: raw.notifications.unwrap_or(true) })
}

fn jellyfin(raw: &mut RawServer, flavor: Flavor) -> Result<JellyfinConfig, ServerProblem> {
    refuse_spotify_keys(raw, flavor.kind())?;
    let user = match raw.user.take() {
        Some(user) if user.trim().is_empty() => return Err(ServerProblem::UserEmpty),
        Some(user) => Some(user.trim().to_string()),
        None => None,
    };
    let login = match (raw.login_user.take(), raw.password_file.take()) {
        (None, None) => None,
        (Some(_), None) => return Err(ServerProblem::LoginIncomplete("password_file")),
        (None, Some(_)) => return Err(ServerProblem::LoginIncomplete("login_user")),
        (Some(user), Some(_)) if user.trim().is_empty() => return Err(ServerProblem::LoginIncomplete("login_user")),
        (Some(user), Some(file)) => {
            // The whole file is the password but for a final line break;
            // spaces inside or around it are the user's.
            let password = std::fs::read_to_string(&file).map_err(|source| {
                ServerProblem::Secret(SecretProblem::Unreadable { key: "password", file: file.clone(), source })
            })?;
            let password = password.strip_suffix('\n').map(|rest| rest.strip_suffix('\r').unwrap_or(rest));
            Some(Login { user: user.trim().to_string(), password: password.unwrap_or_default().to_string() })
        }
    };
    let (url, token) = url_and_token(raw)?;
    Ok(JellyfinConfig { flavor, url, token, user, notifications: raw.notifications.unwrap_or(true), login })
}

fn refuse_spotify_keys(raw: &RawServer, kind: ServerKind) -> Result<(), ServerProblem> {
    for (key, set) in [
        ("client_id", raw.client_id.is_some()),
        ("client_secret", raw.client_secret.is_some()),
        ("client_secret_file", raw.client_secret_file.is_some()),
        ("api_url", raw.api_url.is_some()),
        ("accounts_url", raw.accounts_url.is_some()),
        ("redirect_uri", raw.redirect_uri.is_some()),
    ] {
        if set {
            return Err(ServerProblem::SpotifyOnly { key, kind });
        }
    }
    Ok(())
}

/// A media server's `url` and its token, inline or from `token_file`.
fn url_and_token(raw: &mut RawServer) -> Result<(String, String), ServerProblem> {
    let url = match raw.url.take() {
        Some(text) => parse_url(&text).map_err(|problem| ServerProblem::Url { key: UrlKey::Url, text, problem })?,
        None => return Err(ServerProblem::UrlMissing),
    };
    let Some(token) = secret(raw.token.take(), raw.token_file.take(), "token").map_err(ServerProblem::Secret)? else {
        return Err(ServerProblem::TokenMissing);
    };
    if !is_header_safe(&token) {
        return Err(ServerProblem::TokenShape);
    }
    if is_placeholder_secret(&token) {
        return Err(ServerProblem::TokenPlaceholder);
    }
    Ok((url, token))
}

/// A `kind = "spotify"` entry: an app's client id (and secret, unless it is a
/// PKCE app), no token (the user connects from the status page).
fn spotify(raw: &mut RawServer) -> Result<SpotifyConfig, ServerProblem> {
    for (key, set) in [
        (MediaServerKey::Url, raw.url.is_some()),
        (MediaServerKey::Token, raw.token.is_some()),
        (MediaServerKey::TokenFile, raw.token_file.is_some()),
        (MediaServerKey::User, raw.user.is_some()),
        (MediaServerKey::Notifications, raw.notifications.is_some()),
        (MediaServerKey::LoginUser, raw.login_user.is_some()),
        (MediaServerKey::PasswordFile, raw.password_file.is_some()),
    ] {
        if set {
            return Err(ServerProblem::NotForSpotify(key));
        }
    }
    let client_id = match raw.client_id.take().map(|id| id.trim().to_string()) {
        Some(id) if is_placeholder_client_id(&id) => return Err(ServerProblem::ClientIdPlaceholder),
        Some(id) if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()) => id,
        Some(_) => return Err(ServerProblem::ClientIdShape),
        None => return Err(ServerProblem::ClientIdMissing),
    };
    let client_secret = secret(raw.client_secret.take(), raw.client_secret_file.take(), "client_secret")
        .map_err(ServerProblem::Secret)?;
    if client_secret.as_deref().is_some_and(|secret| !is_header_safe(secret)) {
        return Err(ServerProblem::ClientSecretShape);
    }
    if client_secret.as_deref().is_some_and(is_placeholder_secret) {
        return Err(ServerProblem::ClientSecretPlaceholder);
    }
    let endpoint = |key: UrlKey, value: Option<String>, default: &str| match value {
        None => Ok(default.to_string()),
        Some(text) => parse_url(&text).map_err(|problem| ServerProblem::Url { key, text, problem }),
    };
    let api_url = endpoint(UrlKey::ApiUrl, raw.api_url.take(), SPOTIFY_API_URL)?;
    let accounts_url = endpoint(UrlKey::AccountsUrl, raw.accounts_url.take(), SPOTIFY_ACCOUNTS_URL)?;
    let redirect_uri = match raw.redirect_uri.take() {
        None => None,
        Some(text) => {
            Some(parse_url(&text).map_err(|problem| ServerProblem::Url { key: UrlKey::RedirectUri, text, problem })?)
        }
    };
    // `validate::config` sets the width of `[artwork]`.
    let image_width = super::DEFAULT_ARTWORK_WIDTH;
    Ok(SpotifyConfig { api_url, client_id, client_secret, accounts_url, redirect_uri, image_width })
}
