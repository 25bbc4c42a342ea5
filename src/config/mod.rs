//! Configuration in two stages: `raw` mirrors the TOML file and refuses
//! unknown keys; `validate` (and `kinds`, per server kind) turns it into a
//! `Config` whose values are parsed (`values`) and checked, each server
//! carrying exactly its kind's keys. Everything that can be wrong with a
//! config is found here, before any request is made; `error` says what.

mod artwork;
mod error;
mod kinds;
mod placeholders;
mod raw;
mod server;
#[cfg(test)]
mod tests;
mod validate;
mod values;

pub use artwork::{ArtworkConfig, ArtworkProblem, DEFAULT_ARTWORK_WIDTH};
pub use error::{
    ConfigError, DurationKey, MediaServerKey, Problem, ScheduleProblem, SecretProblem, ServerProblem, UrlKey,
    UrlProblem,
};
pub use server::{
    Backend, Flavor, JellyfinConfig, Login, PlexConfig, SPOTIFY_ACCOUNTS_URL, SPOTIFY_API_URL, SPOTIFY_LIBRARIES,
    SPOTIFY_MAX_PAGE, ServerConfig, ServerKind, SpotifyConfig,
};
pub use values::{is_header_safe, parse_duration, parse_schedule};

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_PATH: &str = "/etc/mediasync/config.toml";
pub const ENV_VAR: &str = "MEDIASYNC_CONFIG";

#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub store: StoreConfig,
    pub sync: SyncConfig,
    pub servers: Vec<ServerConfig>,
    pub status: StatusConfig,
    pub daemon: DaemonConfig,
    /// `[artwork]`, when the artwork mirror is enabled.
    pub artwork: Option<ArtworkConfig>,
}

impl Config {
    /// The configured server of that name.
    pub fn server(&self, name: &str) -> Option<&ServerConfig> {
        self.servers.iter().find(|server| server.name == name)
    }
}

/// `[status]`: where the status page and API listen, the token the
/// control endpoints require (`None`: the one generated in the state
/// directory, `app::admin_token`), and the names besides the listen
/// address, `localhost` and the machine's hostname that the box answers
/// to (lowercase, without a trailing dot). `Debug` redacts the token.
#[derive(Clone)]
pub struct StatusConfig {
    pub listen: SocketAddr,
    pub admin_token: Option<String>,
    pub hostnames: Vec<String>,
}

impl std::fmt::Debug for StatusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusConfig")
            .field("listen", &self.listen)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<redacted>"))
            .field("hostnames", &self.hostnames)
            .finish()
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";

impl Default for StatusConfig {
    fn default() -> StatusConfig {
        // `DEFAULT_LISTEN` as a value.
        StatusConfig { listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8787)), admin_token: None, hostnames: Vec::new() }
    }
}

/// `[daemon]` plus each server's `schedule`, kept apart from `ServerConfig`
/// so one-shot commands never see them.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub max_concurrent_syncs: u32,
    /// Sync at start when the last success is older than this; `None`: the
    /// server's schedule interval.
    pub freshness: Option<Duration>,
    /// The wait before retrying a server whose run failed, doubled after
    /// every further failure up to `retry_backoff_max` (and jittered), apart
    /// from the schedule.
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    /// Explicit `schedule` per server name; servers without one get a
    /// staggered default (`app::schedule::default_for`).
    pub schedules: std::collections::BTreeMap<String, cron::Schedule>,
    /// How often each Spotify server's history is polled (`history_every`,
    /// else `DEFAULT_HISTORY_EVERY`), apart from its library syncs.
    pub history_every: std::collections::BTreeMap<String, Duration>,
}

impl Default for DaemonConfig {
    fn default() -> DaemonConfig {
        DaemonConfig {
            max_concurrent_syncs: 1,
            freshness: None,
            retry_backoff: Duration::from_secs(60),
            retry_backoff_max: Duration::from_secs(3600),
            schedules: Default::default(),
            history_every: Default::default(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub cache_bytes: usize,
    /// The change feed keeps at most this many deletions, the newest…
    pub max_tombstones: u64,
    /// …and none older than this.
    pub max_tombstone_age: Duration,
}

/// Deletions the change feed keeps by default: the newest 100,000, none
/// older than 90 days. A follower polling every few weeks misses none.
pub const DEFAULT_MAX_TOMBSTONES: u64 = 100_000;
pub const DEFAULT_MAX_TOMBSTONE_AGE: Duration = Duration::from_secs(90 * 86_400);
/// The shortest `max_tombstone_age`: a follower must have a day to catch up.
pub const MIN_TOMBSTONE_AGE: Duration = Duration::from_secs(86_400);

#[derive(Clone, Debug)]
pub struct SyncConfig {
    pub full_every: Duration,
    pub max_delete_share: f64,
    pub history: u32,
    pub retries: u32,
    pub retry_delay: Duration,
    pub max_rate_limit_wait: Duration,
    pub timeout: Duration,
}

impl Default for SyncConfig {
    fn default() -> SyncConfig {
        SyncConfig {
            full_every: Duration::from_secs(7 * 86_400),
            max_delete_share: 0.5,
            history: 20,
            retries: 4,
            retry_delay: Duration::from_secs(2),
            max_rate_limit_wait: Duration::from_secs(15 * 60),
            timeout: Duration::from_secs(60),
        }
    }
}

pub const DEFAULT_PAGE_SIZE: u32 = 200;
/// A Spotify history poll's default interval: Spotify lists only the last
/// 50 plays, about three hours of listening.
pub const DEFAULT_HISTORY_EVERY: Duration = Duration::from_secs(30 * 60);
/// The largest `page_size` of a Plex, Jellyfin or Emby server.
pub const MAX_PAGE_SIZE: u32 = 5_000;
/// redb's own cache. The kernel's page cache serves the rest of the file,
/// so a small cache keeps mediasync's memory flat as libraries grow
/// (`cargo bench --bench scale`).
pub const DEFAULT_CACHE_MIB: u32 = 2;

/// Where the config file is: `--config`, else `$MEDIASYNC_CONFIG`, else the
/// system default.
pub fn locate(flag: Option<&Path>) -> PathBuf {
    if let Some(path) = flag {
        return path.to_path_buf();
    }
    match std::env::var_os(ENV_VAR) {
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => PathBuf::from(DEFAULT_PATH),
    }
}

pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    parse(&text, path)
}

/// Parses and validates the text of the config file at `path` (the path is
/// only named in errors and kept in `Config::path`).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let raw: raw::RawConfig = toml::from_str(text).map_err(|err| ConfigError::Syntax {
        path: path.to_path_buf(),
        line: err
            .span()
            .map(|span| text.get(..span.start).map_or(0, |before| before.matches('\n').count()).saturating_add(1)),
        message: err.message().to_string(),
    })?;
    validate::config(raw, path)
}
