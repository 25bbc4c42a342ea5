//! From the mirror to `Config`: the `[store]`, `[sync]`, `[status]` and
//! `[daemon]` tables, then the servers (each checked by `kinds`, plus its
//! `schedule`, which goes to `DaemonConfig`), unique by name. The first
//! refused value is the error.

use super::error::{ConfigError, DurationKey, Problem, ServerProblem};
use super::placeholders::is_placeholder_secret;
use super::raw::{RawConfig, RawDaemon, RawServer, RawStatus, RawStore, RawSync};
use super::values::{is_header_safe, parse_duration, parse_hostname, parse_schedule, secret};
use super::{
    Config, DEFAULT_CACHE_MIB, DEFAULT_HISTORY_EVERY, DEFAULT_LISTEN, DEFAULT_MAX_TOMBSTONE_AGE,
    DEFAULT_MAX_TOMBSTONES, DaemonConfig, MIN_TOMBSTONE_AGE, ServerConfig, ServerKind, StatusConfig, StoreConfig,
    SyncConfig, kinds,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub fn config(raw: RawConfig, path: &Path) -> Result<Config, ConfigError> {
    let invalid = |problem| ConfigError::Invalid { path: path.to_path_buf(), problem };
    let store = store(raw.store).map_err(invalid)?;
    let sync = sync(raw.sync).map_err(invalid)?;
    let status = status(raw.status).map_err(invalid)?;
    let mut daemon = daemon(raw.daemon).map_err(invalid)?;
    let artwork =
        super::artwork::validate(raw.artwork, &store.path).map_err(|problem| invalid(Problem::Artwork(problem)))?;
    let mut servers = servers(raw.server, &mut daemon).map_err(invalid)?;
    if let Some(artwork) = &artwork {
        for server in &mut servers {
            if let super::Backend::Spotify(app) = &mut server.backend {
                app.image_width = artwork.width;
            }
        }
    }
    Ok(Config { path: path.to_path_buf(), store, sync, servers, status, daemon, artwork })
}

fn store(raw: RawStore) -> Result<StoreConfig, Problem> {
    if raw.path.as_os_str().is_empty() {
        return Err(Problem::StorePathEmpty);
    }
    let cache_mib = raw.cache_mib.unwrap_or(DEFAULT_CACHE_MIB).clamp(1, 4096);
    // 4096 MiB does not fit a 32-bit usize: there the cache is clamped to usize::MAX.
    let cache_bytes = usize::try_from(u64::from(cache_mib).saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
    let max_tombstone_age =
        duration(DurationKey::MaxTombstoneAge, raw.max_tombstone_age.clone(), DEFAULT_MAX_TOMBSTONE_AGE)?;
    if max_tombstone_age < MIN_TOMBSTONE_AGE {
        return Err(Problem::TombstoneAgeTooShort(raw.max_tombstone_age.unwrap_or_default()));
    }
    Ok(StoreConfig {
        path: raw.path,
        cache_bytes,
        max_tombstones: raw.max_tombstones.unwrap_or(DEFAULT_MAX_TOMBSTONES),
        max_tombstone_age,
    })
}

fn duration(key: DurationKey, value: Option<String>, default: Duration) -> Result<Duration, Problem> {
    match value {
        None => Ok(default),
        Some(text) => parse_duration(&text).ok_or(Problem::NotADuration { key, text }),
    }
}

fn sync(raw: RawSync) -> Result<SyncConfig, Problem> {
    let defaults = SyncConfig::default();
    let share = raw.max_delete_share.unwrap_or(defaults.max_delete_share);
    if !(0.0..=1.0).contains(&share) {
        return Err(Problem::DeleteShareOutOfRange(share));
    }
    Ok(SyncConfig {
        full_every: duration(DurationKey::FullEvery, raw.full_every, defaults.full_every)?,
        max_delete_share: share,
        history: raw.history.unwrap_or(defaults.history).clamp(1, 1000),
        retries: raw.retries.unwrap_or(defaults.retries).min(20),
        retry_delay: duration(DurationKey::RetryDelay, raw.retry_delay, defaults.retry_delay)?,
        max_rate_limit_wait: duration(
            DurationKey::MaxRateLimitWait,
            raw.max_rate_limit_wait,
            defaults.max_rate_limit_wait,
        )?,
        timeout: duration(DurationKey::Timeout, raw.timeout, defaults.timeout)?,
    })
}

fn status(raw: RawStatus) -> Result<StatusConfig, Problem> {
    let text = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let listen = match text.parse() {
        Ok(listen) => listen,
        Err(source) => return Err(Problem::Listen { text, source }),
    };
    let admin_token = secret(raw.admin_token, raw.admin_token_file, "admin_token").map_err(Problem::AdminToken)?;
    if admin_token.as_deref().is_some_and(|token| token.len() < 8 || !is_header_safe(token)) {
        return Err(Problem::AdminTokenShape);
    }
    if admin_token.as_deref().is_some_and(is_placeholder_secret) {
        return Err(Problem::AdminTokenPlaceholder);
    }
    let hostnames =
        raw.hostnames.unwrap_or_default().iter().map(|name| parse_hostname(name)).collect::<Result<_, _>>()?;
    Ok(StatusConfig { listen, admin_token, hostnames })
}

fn daemon(raw: RawDaemon) -> Result<DaemonConfig, Problem> {
    let defaults = DaemonConfig::default();
    let max_concurrent_syncs = raw.max_concurrent_syncs.unwrap_or(defaults.max_concurrent_syncs);
    if !(1..=16).contains(&max_concurrent_syncs) {
        return Err(Problem::MaxConcurrentSyncs(max_concurrent_syncs));
    }
    let freshness = match raw.freshness {
        Some(text) => Some(parse_duration(&text).ok_or(Problem::NotADuration { key: DurationKey::Freshness, text })?),
        None => None,
    };
    let retry_backoff = duration(DurationKey::RetryBackoff, raw.retry_backoff, defaults.retry_backoff)?;
    let retry_backoff_max = duration(DurationKey::RetryBackoffMax, raw.retry_backoff_max, defaults.retry_backoff_max)?;
    if retry_backoff.is_zero() || retry_backoff_max < retry_backoff {
        return Err(Problem::RetryBackoff { first: retry_backoff, max: retry_backoff_max });
    }
    Ok(DaemonConfig {
        max_concurrent_syncs,
        freshness,
        retry_backoff,
        retry_backoff_max,
        schedules: BTreeMap::new(),
        history_every: BTreeMap::new(),
    })
}

/// The servers in file order (none is fine: the daemon then waits for a
/// reload that adds one); each explicit `schedule` goes into the daemon's
/// `schedules`, each Spotify server's history interval into its
/// `history_every`.
fn servers(raw: Vec<RawServer>, daemon: &mut DaemonConfig) -> Result<Vec<ServerConfig>, Problem> {
    let mut servers: Vec<ServerConfig> = Vec::new();
    for (index, mut raw_server) in raw.into_iter().enumerate() {
        let schedule = raw_server.schedule.take();
        let history_every = raw_server.history_every.take();
        let server = kinds::server(raw_server, index.saturating_add(1))?;
        let refused = |problem| Problem::Server { name: server.name.clone(), problem };
        if let Some(text) = schedule {
            match parse_schedule(&text) {
                Ok(schedule) => daemon.schedules.insert(server.name.clone(), schedule),
                Err(problem) => return Err(refused(ServerProblem::Schedule { text, problem })),
            };
        }
        match (server.kind(), history_every) {
            (ServerKind::Spotify, text) => {
                let every = match text {
                    None => DEFAULT_HISTORY_EVERY,
                    Some(text) => match parse_duration(&text) {
                        Some(every) if every >= Duration::from_secs(1) => every,
                        _ => return Err(refused(ServerProblem::HistoryEvery(text))),
                    },
                };
                daemon.history_every.insert(server.name.clone(), every);
            }
            (kind, Some(_)) => return Err(refused(ServerProblem::SpotifyOnly { key: "history_every", kind })),
            (_, None) => {}
        }
        if servers.iter().any(|other| other.name == server.name) {
            return Err(Problem::NameUsedTwice(server.name));
        }
        servers.push(server);
    }
    Ok(servers)
}
