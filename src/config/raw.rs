//! The config file as written: a serde mirror of the TOML that refuses
//! unknown keys and holds values as text. `[[server]]` entries are one flat
//! struct with every kind's keys, so a key on the wrong kind gets a message
//! naming the kind (`kinds`) rather than serde's list of field names.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub store: RawStore,
    #[serde(default)]
    pub sync: RawSync,
    #[serde(default)]
    pub server: Vec<RawServer>,
    #[serde(default)]
    pub status: RawStatus,
    #[serde(default)]
    pub daemon: RawDaemon,
    pub artwork: Option<super::artwork::RawArtwork>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub path: PathBuf,
    pub cache_mib: Option<u32>,
    pub max_tombstones: Option<u64>,
    pub max_tombstone_age: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    pub full_every: Option<String>,
    pub max_delete_share: Option<f64>,
    pub history: Option<u32>,
    pub retries: Option<u32>,
    pub retry_delay: Option<String>,
    pub max_rate_limit_wait: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawStatus {
    pub listen: Option<String>,
    pub admin_token: Option<String>,
    pub admin_token_file: Option<PathBuf>,
    pub hostnames: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    pub max_concurrent_syncs: Option<u32>,
    pub freshness: Option<String>,
    pub retry_backoff: Option<String>,
    pub retry_backoff_max: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub url: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub libraries: Option<Vec<String>>,
    pub page_size: Option<u32>,
    pub user: Option<String>,
    pub notifications: Option<bool>,
    pub login_user: Option<String>,
    pub password_file: Option<PathBuf>,
    pub schedule: Option<String>,
    pub history_every: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    pub api_url: Option<String>,
    pub accounts_url: Option<String>,
    pub redirect_uri: Option<String>,
}
