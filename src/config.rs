//! Configuration in two stages: `RawConfig` mirrors the TOML file and rejects
//! unknown keys; `Config` holds parsed, validated values. Everything that can
//! be wrong with a config is found here, before any request is made.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_PATH: &str = "/etc/mediasync/config.toml";
pub const ENV_VAR: &str = "MEDIASYNC_CONFIG";

#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    store: RawStore,
    #[serde(default)]
    sync: RawSync,
    #[serde(default)]
    server: Vec<RawServer>,
    #[serde(default)]
    status: RawStatus,
    #[serde(default)]
    daemon: RawDaemon,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStatus {
    listen: Option<String>,
    admin_token: Option<String>,
    admin_token_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    max_concurrent_syncs: Option<u32>,
    freshness: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: PathBuf,
    cache_mib: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSync {
    full_every: Option<String>,
    max_delete_share: Option<f64>,
    history: Option<u32>,
    retries: Option<u32>,
    retry_delay: Option<String>,
    max_rate_limit_wait: Option<String>,
    timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    name: Option<String>,
    kind: Option<String>,
    url: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    libraries: Option<Vec<String>>,
    page_size: Option<u32>,
    user: Option<String>,
    schedule: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_file: Option<PathBuf>,
    api_url: Option<String>,
    accounts_url: Option<String>,
    redirect_uri: Option<String>,
}

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

#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub store: StoreConfig,
    pub sync: SyncConfig,
    pub servers: Vec<ServerConfig>,
    pub status: StatusConfig,
    pub daemon: DaemonConfig,
}

/// `[status]`: where the status page and API listen, and the token the
/// control endpoints require. `Debug` redacts the token.
#[derive(Clone)]
pub struct StatusConfig {
    pub listen: std::net::SocketAddr,
    pub admin_token: Option<String>,
}

impl std::fmt::Debug for StatusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusConfig")
            .field("listen", &self.listen)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";

impl Default for StatusConfig {
    fn default() -> StatusConfig {
        StatusConfig { listen: DEFAULT_LISTEN.parse().expect("a valid address"), admin_token: None }
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
    /// Explicit `schedule` per server name; servers without one get a
    /// staggered default (`daemon::schedule::default_for`).
    pub schedules: std::collections::BTreeMap<String, cron::Schedule>,
}

impl Default for DaemonConfig {
    fn default() -> DaemonConfig {
        DaemonConfig { max_concurrent_syncs: 1, freshness: None, schedules: Default::default() }
    }
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub cache_bytes: usize,
}

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

/// A validated server entry. `Debug` is written by hand so the token can
/// never reach a log line through `{:?}`.
#[derive(Clone)]
pub struct ServerConfig {
    pub name: String,
    pub kind: ServerKind,
    pub url: String,
    pub token: String,
    pub libraries: Option<Vec<String>>,
    pub page_size: u32,
    /// Jellyfin/Emby: whose views to sync, by user name; `None` means the
    /// server's first administrator.
    pub user: Option<String>,
    /// Spotify only: the app's credentials and endpoints (`url` holds the
    /// API URL and `token` is empty: the tokens live in the store).
    pub spotify: Option<SpotifyConfig>,
}

/// A Spotify app. `client_secret` is `None` for a PKCE app. `Debug` redacts
/// the secret.
#[derive(Clone)]
pub struct SpotifyConfig {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub accounts_url: String,
    /// The callback Spotify sends the browser back to; `None`: the status
    /// page's own `/spotify/callback` on 127.0.0.1 (see `web::spotify`).
    pub redirect_uri: Option<String>,
}

impl std::fmt::Debug for SpotifyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpotifyConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("accounts_url", &self.accounts_url)
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

pub const SPOTIFY_API_URL: &str = "https://api.spotify.com/v1";
pub const SPOTIFY_ACCOUNTS_URL: &str = "https://accounts.spotify.com";
/// The libraries of a Spotify server, in the order they are synced.
pub const SPOTIFY_LIBRARIES: [&str; 4] = ["tracks", "albums", "artists", "playlists"];
/// Spotify's paging limit.
pub const SPOTIFY_MAX_PAGE: u32 = 50;

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("libraries", &self.libraries)
            .field("page_size", &self.page_size)
            .field("user", &self.user)
            .field("spotify", &self.spotify)
            .finish()
    }
}

pub const DEFAULT_PAGE_SIZE: u32 = 200;
/// redb's own cache. The kernel's page cache serves the rest of the file,
/// so a small cache keeps mediasync's memory flat as libraries grow
/// (`cargo bench --bench scale`).
pub const DEFAULT_CACHE_MIB: u32 = 2;
const MAX_PAGE_SIZE: u32 = 5_000;

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
    let text = std::fs::read_to_string(path).map_err(|err| {
        ConfigError(format!("cannot read config file {}: {err}; pass --config FILE or set {ENV_VAR}", path.display()))
    })?;
    parse(&text, path)
}

pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let where_ = path.display();
    let raw: RawConfig = toml::from_str(text).map_err(|err| {
        // toml's message names the key and the line; keep it, minus the
        // source excerpt, which could show a token.
        let message = err.message().to_string();
        let line = err
            .span()
            .map(|span| format!(" (line {})", 1 + text[..span.start].matches('\n').count()))
            .unwrap_or_default();
        ConfigError(format!("config {where_}{line}: {message}; see config/mediasync.example.toml for every key"))
    })?;

    let store = StoreConfig {
        path: raw.store.path,
        cache_bytes: raw.store.cache_mib.unwrap_or(DEFAULT_CACHE_MIB).clamp(1, 4096) as usize * 1024 * 1024,
    };
    if store.path.as_os_str().is_empty() {
        return Err(ConfigError(format!(
            "config {where_}: [store] path is empty; set it to a file such as /var/lib/mediasync/mediasync.redb"
        )));
    }

    let sync = parse_sync(raw.sync, &where_.to_string())?;

    let status = parse_status(raw.status, &where_.to_string())?;
    let mut daemon = parse_daemon(raw.daemon, &where_.to_string())?;

    let mut servers: Vec<ServerConfig> = Vec::new();
    for (position, mut raw_server) in raw.server.into_iter().enumerate() {
        let schedule = raw_server.schedule.take();
        let server = parse_server(raw_server, position + 1, path)?;
        if let Some(text) = schedule {
            let schedule = parse_schedule(&text).map_err(|why| {
                ConfigError(format!(
                    "config {where_}: [[server]] \"{}\": schedule = \"{text}\" {why}; write six fields with seconds first, like \"0 10 */12 * * *\" (every 12 hours at minute 10)",
                    server.name
                ))
            })?;
            daemon.schedules.insert(server.name.clone(), schedule);
        }
        if servers.iter().any(|other| other.name == server.name) {
            return Err(ConfigError(format!(
                "config {where_}: [[server]] name \"{}\" is used twice; give each server a unique name",
                server.name
            )));
        }
        servers.push(server);
    }
    if servers.is_empty() {
        return Err(ConfigError(format!(
            "config {where_}: no [[server]] entries; add one (see config/mediasync.example.toml)"
        )));
    }
    Ok(Config { path: path.to_path_buf(), store, sync, servers, status, daemon })
}

/// Parses a cron expression (cron crate syntax: seconds, minutes, hours, day
/// of month, month, day of week, optional year) that fires at least once.
pub fn parse_schedule(text: &str) -> Result<cron::Schedule, String> {
    use std::str::FromStr;
    let schedule = cron::Schedule::from_str(text.trim()).map_err(|err| format!("is not a valid schedule ({err})"))?;
    if schedule.upcoming(chrono::Utc).next().is_none() {
        return Err("never fires".into());
    }
    Ok(schedule)
}

fn parse_status(raw: RawStatus, where_: &str) -> Result<StatusConfig, ConfigError> {
    let listen_text = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let listen = listen_text.parse().map_err(|_| {
        ConfigError(format!(
            "config {where_}: [status] listen = \"{listen_text}\" is not an address and port; write \"127.0.0.1:8787\" (this machine only) or \"0.0.0.0:8787\" (the LAN)"
        ))
    })?;
    let admin_token =
        inline_or_file(raw.admin_token, raw.admin_token_file, &format!("config {where_}: [status]"), "admin_token")?;
    if let Some(token) = &admin_token {
        if token.len() < 8 || token.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ConfigError(format!(
                "config {where_}: [status] the admin token must be at least 8 characters without spaces; generate one with `openssl rand -hex 16`"
            )));
        }
    }
    Ok(StatusConfig { listen, admin_token })
}

fn parse_daemon(raw: RawDaemon, where_: &str) -> Result<DaemonConfig, ConfigError> {
    let max_concurrent_syncs = raw.max_concurrent_syncs.unwrap_or(1);
    if !(1..=16).contains(&max_concurrent_syncs) {
        return Err(ConfigError(format!(
            "config {where_}: [daemon] max_concurrent_syncs = {max_concurrent_syncs} must be between 1 and 16"
        )));
    }
    let freshness = match raw.freshness {
        Some(text) => Some(parse_duration(&text).ok_or_else(|| {
            ConfigError(format!(
                "config {where_}: [daemon] freshness = \"{text}\" is not a duration; write it like \"12h\" (units: ms, s, m, h, d)"
            ))
        })?),
        None => None,
    };
    Ok(DaemonConfig { max_concurrent_syncs, freshness, schedules: Default::default() })
}

fn parse_sync(raw: RawSync, where_: &str) -> Result<SyncConfig, ConfigError> {
    let defaults = SyncConfig::default();
    let duration = |key: &str, value: Option<String>, default: Duration| {
        match value {
        None => Ok(default),
        Some(text) => parse_duration(&text).ok_or_else(|| {
            ConfigError(format!(
                "config {where_}: [sync] {key} = \"{text}\" is not a duration; write it like \"90s\", \"15m\", \"12h\" or \"7d\""
            ))
        }),
    }
    };
    let share = raw.max_delete_share.unwrap_or(defaults.max_delete_share);
    if !(0.0..=1.0).contains(&share) {
        return Err(ConfigError(format!(
            "config {where_}: [sync] max_delete_share = {share} is outside 0.0 to 1.0; 0.5 refuses to delete more than half a library in one sync"
        )));
    }
    Ok(SyncConfig {
        full_every: duration("full_every", raw.full_every, defaults.full_every)?,
        max_delete_share: share,
        history: raw.history.unwrap_or(defaults.history).clamp(1, 1000),
        retries: raw.retries.unwrap_or(defaults.retries).min(20),
        retry_delay: duration("retry_delay", raw.retry_delay, defaults.retry_delay)?,
        max_rate_limit_wait: duration("max_rate_limit_wait", raw.max_rate_limit_wait, defaults.max_rate_limit_wait)?,
        timeout: duration("timeout", raw.timeout, defaults.timeout)?,
    })
}

fn parse_server(mut raw: RawServer, position: usize, path: &Path) -> Result<ServerConfig, ConfigError> {
    let where_ = path.display();
    let name = match raw.name.take() {
        Some(name) if valid_name(&name) => name,
        Some(name) => {
            return Err(ConfigError(format!(
                "config {where_}: [[server]] #{position} name \"{name}\" must be 1 to 64 letters, digits, '-', '_' or '.'"
            )));
        }
        None => {
            return Err(ConfigError(format!(
                "config {where_}: [[server]] #{position} has no `name`; add name = \"living-room\" (unique, used on the command line)"
            )));
        }
    };
    let at = format!("config {where_}: [[server]] \"{name}\"");
    let kind = match raw.kind.as_deref() {
        Some("plex") => ServerKind::Plex,
        Some("jellyfin") => ServerKind::Jellyfin,
        Some("emby") => ServerKind::Emby,
        Some("spotify") => return parse_spotify(raw, name, &at),
        Some(other) => {
            return Err(ConfigError(format!(
                "{at}: kind = \"{other}\" is not supported; use kind = \"plex\", \"jellyfin\", \"emby\" or \"spotify\""
            )));
        }
        None => {
            return Err(ConfigError(format!(
                "{at}: missing `kind`; add kind = \"plex\", \"jellyfin\", \"emby\" or \"spotify\""
            )));
        }
    };
    for (key, set) in [
        ("client_id", raw.client_id.is_some()),
        ("client_secret", raw.client_secret.is_some()),
        ("client_secret_file", raw.client_secret_file.is_some()),
        ("api_url", raw.api_url.is_some()),
        ("accounts_url", raw.accounts_url.is_some()),
        ("redirect_uri", raw.redirect_uri.is_some()),
    ] {
        if set {
            return Err(ConfigError(format!(
                "{at}: `{key}` applies to kind = \"spotify\" only; remove it (this server's kind is {})",
                kind.name()
            )));
        }
    }
    let user = match raw.user {
        Some(_) if kind == ServerKind::Plex => {
            return Err(ConfigError(format!(
                "{at}: `user` applies to jellyfin and emby servers only; remove it (a Plex token already names its user)"
            )));
        }
        Some(user) if user.trim().is_empty() => {
            return Err(ConfigError(format!(
                "{at}: user = \"\" names nobody; remove the key to sync the first administrator's views"
            )));
        }
        Some(user) => Some(user.trim().to_string()),
        None => None,
    };
    let url = match raw.url {
        Some(url) => validate_url(&url).map_err(|why| {
            ConfigError(format!("{at}: url = \"{url}\" {why}; write it like \"http://192.168.1.10:32400\""))
        })?,
        None => {
            return Err(ConfigError(format!("{at}: missing `url`; add url = \"http://192.168.1.10:32400\"")));
        }
    };
    let Some(token) = inline_or_file(raw.token, raw.token_file, &at, "token")? else {
        return Err(ConfigError(format!(
            "{at}: missing `token`; add token = \"…\" or token_file = \"/etc/mediasync/plex.token\""
        )));
    };
    if token.is_empty() || token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ConfigError(format!(
            "{at}: the token is empty or holds spaces or control characters; paste the token alone"
        )));
    }
    let page_size = raw.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if page_size == 0 || page_size > MAX_PAGE_SIZE {
        return Err(ConfigError(format!("{at}: page_size = {page_size} must be between 1 and {MAX_PAGE_SIZE}")));
    }
    if let Some(libraries) = &raw.libraries {
        if libraries.is_empty() {
            return Err(ConfigError(format!(
                "{at}: libraries = [] selects nothing; remove the key to sync every library"
            )));
        }
    }
    Ok(ServerConfig { name, kind, url, token, libraries: raw.libraries, page_size, user, spotify: None })
}

/// A `kind = "spotify"` entry: an app's client id (and secret, unless it is a
/// PKCE app), no token (the user connects from the status page).
fn parse_spotify(raw: RawServer, name: String, at: &str) -> Result<ServerConfig, ConfigError> {
    for (key, set, why) in [
        ("url", raw.url.is_some(), "use api_url to point at another API"),
        ("token", raw.token.is_some(), "connect the account from the status page instead"),
        ("token_file", raw.token_file.is_some(), "connect the account from the status page instead"),
        ("user", raw.user.is_some(), "the account connected on the status page is the user"),
    ] {
        if set {
            return Err(ConfigError(format!("{at}: `{key}` does not apply to kind = \"spotify\"; remove it ({why})")));
        }
    }
    let client_id = match raw.client_id.map(|id| id.trim().to_string()) {
        Some(id) if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()) => id,
        Some(_) => {
            return Err(ConfigError(format!(
                "{at}: client_id must be the app's Client ID from developer.spotify.com (letters and digits)"
            )));
        }
        None => {
            return Err(ConfigError(format!(
                "{at}: missing `client_id`; create an app at https://developer.spotify.com/dashboard and copy its Client ID"
            )));
        }
    };
    let client_secret = inline_or_file(raw.client_secret, raw.client_secret_file, at, "client_secret")?;
    if client_secret
        .as_ref()
        .is_some_and(|secret| secret.is_empty() || secret.chars().any(|c| c.is_control() || c.is_whitespace()))
    {
        return Err(ConfigError(format!(
            "{at}: the client secret is empty or holds spaces; paste the Client secret alone, or remove it for a PKCE app"
        )));
    }
    let endpoint = |key: &str, value: Option<String>, default: &str| match value {
        None => Ok(default.to_string()),
        Some(url) => validate_url(&url).map_err(|why| {
            ConfigError(format!("{at}: {key} = \"{url}\" {why}; remove it to use Spotify's ({default})"))
        }),
    };
    let url = endpoint("api_url", raw.api_url, SPOTIFY_API_URL)?;
    let accounts_url = endpoint("accounts_url", raw.accounts_url, SPOTIFY_ACCOUNTS_URL)?;
    let redirect_uri = match raw.redirect_uri {
        None => None,
        Some(uri) => Some(validate_url(&uri).map_err(|why| {
            ConfigError(format!(
                "{at}: redirect_uri = \"{uri}\" {why}; write it like \"http://127.0.0.1:8787/spotify/callback\" and register the same in the Spotify app"
            ))
        })?),
    };
    let page_size = raw.page_size.unwrap_or(SPOTIFY_MAX_PAGE);
    if page_size == 0 || page_size > SPOTIFY_MAX_PAGE {
        return Err(ConfigError(format!(
            "{at}: page_size = {page_size} must be between 1 and {SPOTIFY_MAX_PAGE} (Spotify's limit)"
        )));
    }
    if let Some(libraries) = &raw.libraries {
        if libraries.is_empty() {
            return Err(ConfigError(format!(
                "{at}: libraries = [] selects nothing; remove the key to sync every library"
            )));
        }
        if let Some(unknown) = libraries.iter().find(|name| !SPOTIFY_LIBRARIES.contains(&name.as_str())) {
            return Err(ConfigError(format!(
                "{at}: libraries names \"{unknown}\"; a Spotify server has \"tracks\", \"albums\", \"artists\" and \"playlists\""
            )));
        }
    }
    Ok(ServerConfig {
        name,
        kind: ServerKind::Spotify,
        url,
        token: String::new(),
        libraries: raw.libraries,
        page_size,
        user: None,
        spotify: Some(SpotifyConfig { client_id, client_secret, accounts_url, redirect_uri }),
    })
}

/// A secret given inline as `key` or in the file `key_file` (one of them at
/// most), trimmed.
fn inline_or_file(
    inline: Option<String>,
    file: Option<PathBuf>,
    at: &str,
    key: &str,
) -> Result<Option<String>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(ConfigError(format!("{at}: both `{key}` and `{key}_file` are set; keep one"))),
        (Some(value), None) => Ok(Some(value.trim().to_string())),
        (None, Some(file)) => std::fs::read_to_string(&file).map(|text| Some(text.trim().to_string())).map_err(|err| {
            ConfigError(format!(
                "{at}: cannot read {key}_file {}: {err}; check the path and that mediasync may read it",
                file.display()
            ))
        }),
        (None, None) => Ok(None),
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Checks a server URL and returns it without a trailing slash.
fn validate_url(url: &str) -> Result<String, &'static str> {
    let uri: ureq::http::Uri = url.parse().map_err(|_| "is not a valid URL")?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err("must start with http:// or https://"),
    }
    let Some(authority) = uri.authority() else {
        return Err("has no host");
    };
    if authority.host().is_empty() {
        return Err("has no host");
    }
    if authority.as_str().contains('@') {
        return Err("must not hold a user or password");
    }
    if uri.query().is_some() {
        return Err("must not hold a query string (put the token in `token`)");
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Parses "500ms", "90s", "15m", "12h", "7d" (one number, one unit).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let millis = match unit.trim() {
        "ms" => number,
        "s" => number.checked_mul(1_000)?,
        "m" => number.checked_mul(60_000)?,
        "h" => number.checked_mul(3_600_000)?,
        "d" => number.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("test.toml"))
    }

    const GOOD: &str = r#"
[store]
path = "/tmp/x.redb"
[[server]]
name = "living-room"
kind = "plex"
url = "http://127.0.0.1:32400/"
token = "abc"
"#;

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mediasync.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        // The example points token_file nowhere; it uses an inline token.
        let config = parse(&text, &path).unwrap();
        assert_eq!(config.servers[0].name, "living-room");
        assert_eq!(config.servers[0].page_size, DEFAULT_PAGE_SIZE);
        assert_eq!(config.sync.full_every, Duration::from_secs(7 * 86_400));
        let kinds: Vec<ServerKind> = config.servers.iter().map(|server| server.kind).collect();
        assert_eq!(kinds, vec![ServerKind::Plex, ServerKind::Jellyfin, ServerKind::Emby, ServerKind::Spotify]);
        assert_eq!(config.servers[2].user.as_deref(), Some("alice"));
        let spotify = &config.servers[3];
        assert_eq!((spotify.url.as_str(), spotify.page_size), (SPOTIFY_API_URL, SPOTIFY_MAX_PAGE));
        let app = spotify.spotify.as_ref().unwrap();
        assert_eq!((app.accounts_url.as_str(), app.client_secret.as_deref()), (SPOTIFY_ACCOUNTS_URL, None));
    }

    #[test]
    fn spotify_entries_take_an_app_and_refuse_tokens() {
        let base = "[store]\npath = \"/tmp/x.redb\"\n[[server]]\nname = \"s\"\nkind = \"spotify\"\n";
        let config = parse_str(&format!("{base}client_id = \"abc123\"\nclient_secret = \"s3cret\"\n")).unwrap();
        let shown = format!("{:?}", config.servers[0]);
        assert!(!shown.contains("s3cret") && shown.contains("<redacted>"), "{shown}");
        for (extra, wanted) in [
            ("", "missing `client_id`"),
            ("client_id = \"has-dash\"\n", "client_id must be"),
            ("client_id = \"abc\"\ntoken = \"t\"\n", "`token` does not apply"),
            ("client_id = \"abc\"\npage_size = 51\n", "between 1 and 50"),
            ("client_id = \"abc\"\nlibraries = [\"podcasts\"]\n", "\"tracks\", \"albums\""),
            ("client_id = \"abc\"\nredirect_uri = \"ftp://x\"\n", "redirect_uri"),
        ] {
            let error = error_of(&format!("{base}{extra}"));
            assert!(error.contains(wanted), "{extra}: {error}");
        }
        let plex = "[store]\npath = \"/tmp/x.redb\"\n[[server]]\nname = \"p\"\nkind = \"plex\"\nurl = \"http://h\"\ntoken = \"t\"\nclient_id = \"a\"\n";
        assert!(error_of(plex).contains("applies to kind = \"spotify\" only"), "{}", error_of(plex));
    }

    #[test]
    fn good_config_trims_url() {
        let config = parse_str(GOOD).unwrap();
        assert_eq!(config.servers[0].url, "http://127.0.0.1:32400");
        assert!(!format!("{:?}", config).contains("abc"), "token leaked through Debug");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("12 h"), Some(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("3 weeks"), None);
    }

    fn error_of(text: &str) -> String {
        parse_str(text).unwrap_err().0
    }

    #[test]
    fn bad_configs_name_the_key() {
        let unknown = error_of(&GOOD.replace("token = ", "tokn = "));
        assert!(unknown.contains("tokn"), "{unknown}");
        assert!(unknown.contains("line 8"), "{unknown}");
        let missing = error_of(&GOOD.replace("token = \"abc\"", ""));
        assert!(missing.contains("missing `token`"), "{missing}");
        let url = error_of(&GOOD.replace("http://127.0.0.1:32400/", "ftp://x"));
        assert!(url.contains("url") && url.contains("http://"), "{url}");
        let url = error_of(&GOOD.replace("http://127.0.0.1:32400/", "not a url"));
        assert!(url.contains("not a valid URL"), "{url}");
        let twice = format!(
            "{GOOD}\n[[server]]\nname = \"living-room\"\nkind = \"plex\"\nurl = \"http://a:1\"\ntoken = \"t\"\n"
        );
        assert!(error_of(&twice).contains("used twice"));
        let kind = error_of(&GOOD.replace("\"plex\"", "\"kodi\""));
        assert!(kind.contains("kodi"), "{kind}");
        let share = error_of(&format!("{GOOD}\n[sync]\nmax_delete_share = 2.0\n"));
        assert!(share.contains("max_delete_share"), "{share}");
        let duration = error_of(&format!("{GOOD}\n[sync]\nfull_every = \"weekly\"\n"));
        assert!(duration.contains("full_every"), "{duration}");
        let page = error_of(&GOOD.replace("token = \"abc\"", "token = \"abc\"\npage_size = 0"));
        assert!(page.contains("page_size"), "{page}");
    }

    #[test]
    fn jellyfin_and_emby_kinds_take_an_optional_user() {
        let jellyfin = parse_str(&GOOD.replace("\"plex\"", "\"jellyfin\"")).unwrap();
        assert_eq!(jellyfin.servers[0].kind, ServerKind::Jellyfin);
        assert_eq!(jellyfin.servers[0].user, None);
        let emby = parse_str(
            &GOOD.replace("\"plex\"", "\"emby\"").replace("token = \"abc\"", "token = \"abc\"\nuser = \" alice \""),
        )
        .unwrap();
        assert_eq!(emby.servers[0].kind, ServerKind::Emby);
        assert_eq!(emby.servers[0].user.as_deref(), Some("alice"));
        let plex_user = error_of(&GOOD.replace("token = \"abc\"", "token = \"abc\"\nuser = \"alice\""));
        assert!(plex_user.contains("`user`"), "{plex_user}");
        let empty = error_of(
            &GOOD.replace("\"plex\"", "\"jellyfin\"").replace("token = \"abc\"", "token = \"abc\"\nuser = \"\""),
        );
        assert!(empty.contains("user"), "{empty}");
    }

    #[test]
    fn daemon_and_status_defaults() {
        let config = parse_str(GOOD).unwrap();
        assert_eq!(config.status.listen.to_string(), DEFAULT_LISTEN);
        assert!(config.status.admin_token.is_none());
        assert_eq!(config.daemon.max_concurrent_syncs, 1);
        assert!(config.daemon.freshness.is_none());
        assert!(config.daemon.schedules.is_empty());
    }

    #[test]
    fn daemon_and_status_keys() {
        let text = format!(
            "{}\n[status]\nlisten = \"0.0.0.0:9000\"\nadmin_token = \"s3cret-admin-token\"\n[daemon]\nmax_concurrent_syncs = 2\nfreshness = \"6h\"\n",
            GOOD.replace("token = \"abc\"", "token = \"abc\"\nschedule = \"0 30 3 * * *\"")
        );
        let config = parse_str(&text).unwrap();
        assert_eq!(config.status.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(config.status.admin_token.as_deref(), Some("s3cret-admin-token"));
        assert!(!format!("{config:?}").contains("s3cret-admin-token"), "admin token leaked through Debug");
        assert_eq!(config.daemon.max_concurrent_syncs, 2);
        assert_eq!(config.daemon.freshness, Some(Duration::from_secs(6 * 3600)));
        assert!(config.daemon.schedules.contains_key("living-room"));
    }

    #[test]
    fn bad_daemon_keys_name_the_key() {
        let schedule = error_of(&GOOD.replace("token = \"abc\"", "token = \"abc\"\nschedule = \"every night\""));
        assert!(schedule.contains("schedule") && schedule.contains("seconds first"), "{schedule}");
        let five_fields = error_of(&GOOD.replace("token = \"abc\"", "token = \"abc\"\nschedule = \"10 */12 * * *\""));
        assert!(five_fields.contains("schedule"), "{five_fields}");
        let listen = error_of(&format!("{GOOD}\n[status]\nlisten = \"8787\"\n"));
        assert!(listen.contains("[status] listen"), "{listen}");
        let short = error_of(&format!("{GOOD}\n[status]\nadmin_token = \"x y\"\n"));
        assert!(short.contains("admin token") && !short.contains("x y"), "{short}");
        let concurrent = error_of(&format!("{GOOD}\n[daemon]\nmax_concurrent_syncs = 0\n"));
        assert!(concurrent.contains("max_concurrent_syncs"), "{concurrent}");
        let freshness = error_of(&format!("{GOOD}\n[daemon]\nfreshness = \"soon\"\n"));
        assert!(freshness.contains("freshness"), "{freshness}");
    }

    #[test]
    fn token_never_in_errors() {
        let text = GOOD.replace("url = \"http://127.0.0.1:32400/\"", "url = \"nope\"");
        let text = text.replace("\"abc\"", "\"secret-token-xyz\"");
        assert!(!error_of(&text).contains("secret-token-xyz"));
        let text = GOOD.replace("token = \"abc\"", "token = \"secret-token-xyz\"\nbogus = 1");
        assert!(!error_of(&text).contains("secret-token-xyz"));
    }
}
