//! A validated `[[server]]` entry: the keys every kind has (name, library
//! selection, page size) and a `Backend` holding exactly its kind's own
//! keys, so a Spotify server has no token and a Plex server no user. The
//! secrets stay out of `Debug`.

use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    pub name: String,
    /// The libraries to sync, by title or id; `None`: every library.
    pub libraries: Option<Vec<String>>,
    pub page_size: u32,
    pub backend: Backend,
}

/// A server's own keys, by kind. `source::build` maps each to its backend.
#[derive(Clone, Debug, PartialEq)]
pub enum Backend {
    Plex(PlexConfig),
    /// Jellyfin or Emby (`Flavor`): one API, one set of keys.
    Jellyfin(JellyfinConfig),
    Spotify(SpotifyConfig),
}

/// The `kind` a server entry names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    Plex,
    Jellyfin,
    Emby,
    Spotify,
}

impl ServerKind {
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Plex => "plex",
            ServerKind::Jellyfin => "jellyfin",
            ServerKind::Emby => "emby",
            ServerKind::Spotify => "spotify",
        }
    }
}

impl ServerConfig {
    pub fn kind(&self) -> ServerKind {
        match &self.backend {
            Backend::Plex(_) => ServerKind::Plex,
            Backend::Jellyfin(jellyfin) => jellyfin.flavor.kind(),
            Backend::Spotify(_) => ServerKind::Spotify,
        }
    }

    /// Where the server's API answers (for Spotify, the Web API).
    pub fn url(&self) -> &str {
        match &self.backend {
            Backend::Plex(plex) => &plex.url,
            Backend::Jellyfin(jellyfin) => &jellyfin.url,
            Backend::Spotify(spotify) => &spotify.api_url,
        }
    }

    /// Whether the server's notifications are listened to.
    pub fn notifications(&self) -> bool {
        match &self.backend {
            Backend::Plex(plex) => plex.notifications,
            Backend::Jellyfin(jellyfin) => jellyfin.notifications,
            Backend::Spotify(_) => false,
        }
    }

    /// The Spotify app of a Spotify server.
    pub fn spotify(&self) -> Option<&SpotifyConfig> {
        match &self.backend {
            Backend::Spotify(spotify) => Some(spotify),
            _ => None,
        }
    }
}

/// A Plex Media Server: its URL, the token sent with every request, and
/// whether to listen to its notifications.
#[derive(Clone, PartialEq)]
pub struct PlexConfig {
    pub url: String,
    pub token: String,
    pub notifications: bool,
}

/// Which of the two servers speaking the Jellyfin API a server is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Jellyfin,
    Emby,
}

impl Flavor {
    pub fn kind(self) -> ServerKind {
        match self {
            Flavor::Jellyfin => ServerKind::Jellyfin,
            Flavor::Emby => ServerKind::Emby,
        }
    }
}

/// A Jellyfin or Emby server: its URL, API key, and whose views to sync.
#[derive(Clone, PartialEq)]
pub struct JellyfinConfig {
    pub flavor: Flavor,
    pub url: String,
    pub token: String,
    /// Whose views to sync, by user name; `None` means the server's first
    /// administrator.
    pub user: Option<String>,
    /// Whether to listen to the server's notifications (which need a
    /// signed-in user: `login`).
    pub notifications: bool,
    pub login: Option<Login>,
}

/// A user to sign in as for the notification socket; the password comes
/// from `password_file` only. `Debug` redacts it.
#[derive(Clone, PartialEq)]
pub struct Login {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login").field("user", &self.user).field("password", &REDACTED).finish()
    }
}

/// A Spotify account, through an app. `client_secret` is `None` for a PKCE
/// app. No token: the user connects from the status page and the tokens
/// live in the store.
#[derive(Clone, PartialEq)]
pub struct SpotifyConfig {
    /// The Web API (`SPOTIFY_API_URL` unless `api_url` is set).
    pub api_url: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub accounts_url: String,
    /// The callback Spotify sends the browser back to; `None`: the status
    /// page's own `/spotify/callback` on 127.0.0.1 (see `web::spotify`).
    pub redirect_uri: Option<String>,
    /// The image size picked of those an object lists: `[artwork] width`
    /// (`DEFAULT_ARTWORK_WIDTH` with the mirror off), set with `[artwork]`.
    pub image_width: u32,
}

pub const SPOTIFY_API_URL: &str = "https://api.spotify.com/v1";
pub const SPOTIFY_ACCOUNTS_URL: &str = "https://accounts.spotify.com";
/// The libraries of a Spotify server, in the order they are synced (the
/// history is polled on its own schedule too, `history_every`).
pub const SPOTIFY_LIBRARIES: [&str; 5] = ["history", "tracks", "albums", "artists", "playlists"];
/// Spotify's paging limit.
pub const SPOTIFY_MAX_PAGE: u32 = 50;

const REDACTED: &str = "<redacted>";

impl fmt::Debug for PlexConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlexConfig")
            .field("url", &self.url)
            .field("token", &REDACTED)
            .field("notifications", &self.notifications)
            .finish()
    }
}

impl fmt::Debug for JellyfinConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JellyfinConfig")
            .field("flavor", &self.flavor)
            .field("url", &self.url)
            .field("token", &REDACTED)
            .field("user", &self.user)
            .field("notifications", &self.notifications)
            .field("login", &self.login)
            .finish()
    }
}

impl fmt::Debug for SpotifyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpotifyConfig")
            .field("api_url", &self.api_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| REDACTED))
            .field("accounts_url", &self.accounts_url)
            .field("redirect_uri", &self.redirect_uri)
            .field("image_width", &self.image_width)
            .finish()
    }
}
