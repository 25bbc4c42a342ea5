//! What can be wrong with a config, as values. Each refusal names the key,
//! what is wrong with it and what to do, and keeps the error underneath (a
//! file that would not read, an address or schedule that would not parse)
//! as its `source`. Text is made only by `Display`, at the edge; it already
//! quotes the cause, so an edge prints `Display` alone.

use super::{MAX_PAGE_SIZE, SPOTIFY_ACCOUNTS_URL, SPOTIFY_API_URL, SPOTIFY_MAX_PAGE, ServerKind};
use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum ConfigError {
    /// The config file could not be read.
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not TOML, or holds an unknown key or a value of the wrong
    /// type. Only toml's message and the line are kept: toml's own error
    /// quotes the offending line, which may hold a token.
    Syntax { path: PathBuf, line: Option<usize>, message: String },
    /// A value is refused.
    Invalid { path: PathBuf, problem: Problem },
}

/// A refused value, by table and key.
#[derive(Debug)]
pub enum Problem {
    StorePathEmpty,
    /// `max_tombstone_age` below `MIN_TOMBSTONE_AGE`.
    TombstoneAgeTooShort(String),
    NotADuration {
        key: DurationKey,
        text: String,
    },
    DeleteShareOutOfRange(f64),
    Listen {
        text: String,
        source: std::net::AddrParseError,
    },
    AdminToken(SecretProblem),
    AdminTokenShape,
    AdminTokenPlaceholder,
    /// A `[status] hostnames` entry that is not a bare host name or address.
    Hostname(String),
    MaxConcurrentSyncs(u32),
    /// `retry_backoff` is zero, or `retry_backoff_max` below it.
    RetryBackoff {
        first: std::time::Duration,
        max: std::time::Duration,
    },
    NameUsedTwice(String),
    Artwork(super::ArtworkProblem),
    NameMissing {
        position: usize,
    },
    NameInvalid {
        position: usize,
        name: String,
    },
    /// Something wrong inside the `[[server]]` entry with this name.
    Server {
        name: String,
        problem: ServerProblem,
    },
}

/// The keys holding a duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurationKey {
    MaxTombstoneAge,
    FullEvery,
    RetryDelay,
    MaxRateLimitWait,
    Timeout,
    Freshness,
    RetryBackoff,
    RetryBackoffMax,
}

impl DurationKey {
    pub fn name(self) -> &'static str {
        match self {
            DurationKey::MaxTombstoneAge => "max_tombstone_age",
            DurationKey::FullEvery => "full_every",
            DurationKey::RetryDelay => "retry_delay",
            DurationKey::MaxRateLimitWait => "max_rate_limit_wait",
            DurationKey::Timeout => "timeout",
            DurationKey::Freshness => "freshness",
            DurationKey::RetryBackoff => "retry_backoff",
            DurationKey::RetryBackoffMax => "retry_backoff_max",
        }
    }

    /// The table the key belongs to.
    fn table(self) -> &'static str {
        match self {
            DurationKey::FullEvery | DurationKey::RetryDelay | DurationKey::MaxRateLimitWait | DurationKey::Timeout => {
                "sync"
            }
            DurationKey::Freshness | DurationKey::RetryBackoff | DurationKey::RetryBackoffMax => "daemon",
            DurationKey::MaxTombstoneAge => "store",
        }
    }
}

/// A secret given as `key` or `key_file` that could not be taken.
#[derive(Debug)]
pub enum SecretProblem {
    Both { key: &'static str },
    Unreadable { key: &'static str, file: PathBuf, source: std::io::Error },
}

/// A refused value inside one `[[server]]` entry.
#[derive(Debug)]
pub enum ServerProblem {
    KindMissing,
    KindUnknown(String),
    Schedule {
        text: String,
        problem: ScheduleProblem,
    },
    /// A Spotify key on a server of another kind.
    SpotifyOnly {
        key: &'static str,
        kind: ServerKind,
    },
    /// `history_every` is not a duration of at least a second.
    HistoryEvery(String),
    /// A Plex/Jellyfin-style key on a Spotify server.
    NotForSpotify(MediaServerKey),
    UserOnPlex,
    UserEmpty,
    /// `login_user` or `password_file` on a Plex server.
    LoginOnPlex(&'static str),
    /// One of `login_user` and `password_file` without the other.
    LoginIncomplete(&'static str),
    UrlMissing,
    Url {
        key: UrlKey,
        text: String,
        problem: UrlProblem,
    },
    Secret(SecretProblem),
    TokenMissing,
    TokenShape,
    /// The token is still the example config's.
    TokenPlaceholder,
    PageSize(u32),
    SpotifyPageSize(u32),
    LibrariesEmpty,
    SpotifyLibraryUnknown(String),
    ClientIdMissing,
    ClientIdShape,
    ClientIdPlaceholder,
    ClientSecretShape,
    ClientSecretPlaceholder,
}

/// The keys of a media server that a Spotify entry must not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaServerKey {
    Url,
    Token,
    TokenFile,
    User,
    Notifications,
    LoginUser,
    PasswordFile,
}

impl MediaServerKey {
    pub fn name(self) -> &'static str {
        match self {
            MediaServerKey::Url => "url",
            MediaServerKey::Token => "token",
            MediaServerKey::TokenFile => "token_file",
            MediaServerKey::User => "user",
            MediaServerKey::Notifications => "notifications",
            MediaServerKey::LoginUser => "login_user",
            MediaServerKey::PasswordFile => "password_file",
        }
    }

    /// What a Spotify entry does instead.
    fn instead(self) -> &'static str {
        match self {
            MediaServerKey::Url => "use api_url to point at another API",
            MediaServerKey::Token | MediaServerKey::TokenFile => "connect the account from the status page instead",
            MediaServerKey::User => "the account connected on the status page is the user",
            MediaServerKey::Notifications | MediaServerKey::LoginUser | MediaServerKey::PasswordFile => {
                "Spotify sends no change notifications; its schedule keeps it current"
            }
        }
    }
}

/// The keys holding a URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlKey {
    Url,
    ApiUrl,
    AccountsUrl,
    RedirectUri,
}

impl UrlKey {
    pub fn name(self) -> &'static str {
        match self {
            UrlKey::Url => "url",
            UrlKey::ApiUrl => "api_url",
            UrlKey::AccountsUrl => "accounts_url",
            UrlKey::RedirectUri => "redirect_uri",
        }
    }
}

#[derive(Debug)]
pub enum UrlProblem {
    Unparsable(ureq::http::uri::InvalidUri),
    NotHttp,
    NoHost,
    Credentials,
    Query,
    /// A host reserved for documentation, as in the example config.
    Placeholder,
}

#[derive(Debug)]
pub enum ScheduleProblem {
    Unparsable(cron::error::Error),
    NeverFires,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => write!(
                f,
                "cannot read config file {}: {source}; pass --config FILE or set {}",
                path.display(),
                super::ENV_VAR
            ),
            ConfigError::Syntax { path, line, message } => {
                write!(f, "config {}", path.display())?;
                if let Some(line) = line {
                    write!(f, " (line {line})")?;
                }
                write!(f, ": {message}; see config/mediasync.example.toml for every key")
            }
            ConfigError::Invalid { path, problem } => write!(f, "config {}: {problem}", path.display()),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::StorePathEmpty => {
                f.write_str("[store] path is empty; set it to a file such as /var/lib/mediasync/mediasync.redb")
            }
            Problem::TombstoneAgeTooShort(text) => write!(
                f,
                "[store] max_tombstone_age = \"{text}\" is shorter than a day: a change-feed follower would miss deletions between two polls; give at least \"1d\" (default \"90d\")"
            ),
            Problem::NotADuration { key, text } => write!(
                f,
                "[{}] {} = \"{text}\" is not a duration; write it like \"90s\", \"15m\", \"12h\" or \"7d\" (units: ms, s, m, h, d)",
                key.table(),
                key.name()
            ),
            Problem::DeleteShareOutOfRange(share) => write!(
                f,
                "[sync] max_delete_share = {share} is outside 0.0 to 1.0; 0.5 refuses to delete more than half a library in one sync"
            ),
            Problem::Listen { text, .. } => write!(
                f,
                "[status] listen = \"{text}\" is not an address and port; write \"127.0.0.1:8787\" (this machine only) or \"0.0.0.0:8787\" (the LAN)"
            ),
            Problem::AdminToken(secret) => write!(f, "[status]: {secret}"),
            Problem::AdminTokenShape => f.write_str(
                "[status] the admin token must be at least 8 characters without spaces; generate one with `openssl rand -hex 16`",
            ),
            Problem::AdminTokenPlaceholder => f.write_str(
                "[status] admin_token is still the example's placeholder; generate one with `openssl rand -hex 16`, or leave it out to use the generated one",
            ),
            Problem::Hostname(name) => write!(
                f,
                "[status] hostnames: \"{name}\" is not a host name; write the name alone, as in \"pi.example.net\" or \"192.168.1.5\" (no scheme, port or path)"
            ),
            Problem::MaxConcurrentSyncs(count) => {
                write!(f, "[daemon] max_concurrent_syncs = {count} must be between 1 and 16")
            }
            Problem::RetryBackoff { first, max } => write!(
                f,
                "[daemon] retry_backoff ({:?}) must be above zero and retry_backoff_max ({:?}) at least as long; the defaults are \"1m\" and \"1h\"",
                first, max
            ),
            Problem::Artwork(problem) => problem.fmt(f),
            Problem::NameUsedTwice(name) => {
                write!(f, "[[server]] name \"{name}\" is used twice; give each server a unique name")
            }
            Problem::NameMissing { position } => write!(
                f,
                "[[server]] #{position} has no `name`; add name = \"living-room\" (unique, used on the command line)"
            ),
            Problem::NameInvalid { position, name } => write!(
                f,
                "[[server]] #{position} name \"{name}\" must be 1 to 64 letters, digits, '-', '_' or '.'"
            ),
            Problem::Server { name, problem } => write!(f, "[[server]] \"{name}\": {problem}"),
        }
    }
}

impl fmt::Display for SecretProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretProblem::Both { key } => write!(f, "both `{key}` and `{key}_file` are set; keep one"),
            SecretProblem::Unreadable { key, file, source } => write!(
                f,
                "cannot read {key}_file {}: {source}; check the path and that mediasync may read it",
                file.display()
            ),
        }
    }
}

impl fmt::Display for ServerProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const KINDS: &str = "kind = \"plex\", \"jellyfin\", \"emby\" or \"spotify\"";
        match self {
            ServerProblem::KindMissing => write!(f, "missing `kind`; add {KINDS}"),
            ServerProblem::KindUnknown(kind) => write!(f, "kind = \"{kind}\" is not supported; use {KINDS}"),
            ServerProblem::Schedule { text, problem } => write!(
                f,
                "schedule = \"{text}\" {problem}; write six fields with seconds first, like \"0 10 */12 * * *\" (every 12 hours at minute 10)"
            ),
            ServerProblem::HistoryEvery(text) => write!(
                f,
                "history_every = \"{text}\" is not a duration of a second or more; write it like \"30m\" (units: ms, s, m, h, d)"
            ),
            ServerProblem::SpotifyOnly { key, kind } => write!(
                f,
                "`{key}` applies to kind = \"spotify\" only; remove it (this server's kind is {})",
                kind.name()
            ),
            ServerProblem::NotForSpotify(key) => write!(
                f,
                "`{}` does not apply to kind = \"spotify\"; remove it ({})",
                key.name(),
                key.instead()
            ),
            ServerProblem::UserOnPlex => f.write_str(
                "`user` applies to jellyfin and emby servers only; remove it (a Plex token already names its user)",
            ),
            ServerProblem::UserEmpty => {
                f.write_str("user = \"\" names nobody; remove the key to sync the first administrator's views")
            }
            ServerProblem::LoginOnPlex(key) => write!(
                f,
                "`{key}` applies to jellyfin and emby servers only; remove it (the Plex token already opens the notification socket)"
            ),
            ServerProblem::LoginIncomplete(missing) => write!(
                f,
                "signing in for notifications needs both login_user and password_file; add `{missing}`, or remove the other to leave notifications to the schedule"
            ),
            ServerProblem::UrlMissing => f.write_str("missing `url`; add url = \"http://192.168.1.10:32400\""),
            ServerProblem::Url { key, text, problem } => {
                write!(f, "{} = \"{text}\" {problem}; ", key.name())?;
                match key {
                    UrlKey::Url => f.write_str("write it like \"http://192.168.1.10:32400\""),
                    UrlKey::ApiUrl => write!(f, "remove it to use Spotify's ({SPOTIFY_API_URL})"),
                    UrlKey::AccountsUrl => write!(f, "remove it to use Spotify's ({SPOTIFY_ACCOUNTS_URL})"),
                    UrlKey::RedirectUri => f.write_str(
                        "write it like \"http://127.0.0.1:8787/spotify/callback\" and register the same in the Spotify app",
                    ),
                }
            }
            ServerProblem::Secret(secret) => write!(f, "{secret}"),
            ServerProblem::TokenMissing => {
                f.write_str("missing `token`; add token = \"…\" or token_file = \"/etc/mediasync/plex.token\"")
            }
            ServerProblem::TokenShape => {
                f.write_str("the token is empty or holds spaces or control characters; paste the token alone")
            }
            ServerProblem::TokenPlaceholder => f.write_str(
                "`token` is still the example's placeholder; put in your server's own (Plex: its X-Plex-Token; Jellyfin and Emby: an API key from Dashboard > API Keys)",
            ),
            ServerProblem::PageSize(size) => write!(f, "page_size = {size} must be between 1 and {MAX_PAGE_SIZE}"),
            ServerProblem::SpotifyPageSize(size) => {
                write!(f, "page_size = {size} must be between 1 and {SPOTIFY_MAX_PAGE} (Spotify's limit)")
            }
            ServerProblem::LibrariesEmpty => {
                f.write_str("libraries = [] selects nothing; remove the key to sync every library")
            }
            ServerProblem::SpotifyLibraryUnknown(name) => write!(
                f,
                "libraries names \"{name}\"; a Spotify server has \"history\", \"tracks\", \"albums\", \"artists\" and \"playlists\""
            ),
            ServerProblem::ClientIdMissing => f.write_str(
                "missing `client_id`; create an app at https://developer.spotify.com/dashboard and copy its Client ID",
            ),
            ServerProblem::ClientIdShape => f.write_str(
                "client_id must be the app's Client ID from developer.spotify.com (letters and digits)",
            ),
            ServerProblem::ClientIdPlaceholder => f.write_str(
                "client_id is still the example's placeholder; copy your app's Client ID from https://developer.spotify.com/dashboard",
            ),
            ServerProblem::ClientSecretShape => f.write_str(
                "the client secret is empty or holds spaces; paste the Client secret alone, or remove it for a PKCE app",
            ),
            ServerProblem::ClientSecretPlaceholder => f.write_str(
                "the client secret is still the example's placeholder; paste your app's Client secret, or remove it for a PKCE app",
            ),
        }
    }
}

impl fmt::Display for UrlProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlProblem::Unparsable(_) => "is not a valid URL",
            UrlProblem::NotHttp => "must start with http:// or https://",
            UrlProblem::NoHost => "has no host",
            UrlProblem::Credentials => "must not hold a user or password",
            UrlProblem::Query => "must not hold a query string (put the token in `token`)",
            UrlProblem::Placeholder => "is the example's placeholder (an address reserved for documentation)",
        })
    }
}

impl fmt::Display for ScheduleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleProblem::Unparsable(err) => write!(f, "is not a valid schedule ({err})"),
            ScheduleProblem::NeverFires => f.write_str("never fires"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            ConfigError::Syntax { .. } => None,
            ConfigError::Invalid { problem, .. } => problem.source(),
        }
    }
}

impl std::error::Error for Problem {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Problem::Listen { source, .. } => Some(source),
            Problem::AdminToken(secret) => secret.source(),
            Problem::Server { problem, .. } => problem.source(),
            _ => None,
        }
    }
}

impl std::error::Error for SecretProblem {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SecretProblem::Unreadable { source, .. } => Some(source),
            SecretProblem::Both { .. } => None,
        }
    }
}

impl std::error::Error for ServerProblem {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerProblem::Schedule { problem: ScheduleProblem::Unparsable(err), .. } => Some(err),
            ServerProblem::Url { problem: UrlProblem::Unparsable(err), .. } => Some(err),
            ServerProblem::Secret(secret) => secret.source(),
            _ => None,
        }
    }
}

impl std::error::Error for ScheduleProblem {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ScheduleProblem::Unparsable(err) => Some(err),
            ScheduleProblem::NeverFires => None,
        }
    }
}

impl std::error::Error for UrlProblem {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UrlProblem::Unparsable(err) => Some(err),
            _ => None,
        }
    }
}
