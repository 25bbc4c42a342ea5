//! `mediasync check --artwork [--recheck] [--server NAME]`: each server's
//! artwork directory compared with the store (missing images, stale ones,
//! leftovers of cut-short writes), then repaired by an artwork pass;
//! `--recheck` also revalidates every present image the server gave
//! validators for. Exit 1 when a directory is still not exact after it.

use super::CliError;
use crate::artwork::{self, Budget, Recheck};
use crate::config::Config;
use crate::store::{Store, StoreErrorKind};
use std::sync::Arc;

pub fn run(config: &Config, server: Option<&str>, recheck: Recheck) -> Result<i32, CliError> {
    let Some(settings) = &config.artwork else {
        return Err(CliError::Failed(
            "the artwork mirror is off: set enabled = true in [artwork] of the config first".into(),
        ));
    };
    let store = match Store::open(&config.store.path, config.store.cache_bytes) {
        Err(err) if err.kind() == StoreErrorKind::Locked => {
            return Err(CliError::Failed(
                "the running service holds the store: it repairs the artwork after each sync; to check now, `sudo systemctl stop mediasync` first".into(),
            ));
        }
        opened => opened?,
    };
    let stop = Arc::new(crate::source::Stop::new());
    let mut all_exact = true;
    for entry in config.servers.iter().filter(|entry| server.is_none_or(|name| name == entry.name)) {
        let before = artwork::compare(&store, entry, settings).map_err(|err| CliError::Failed(err.to_string()))?;
        let budget = Budget { deadline: None };
        let report = artwork::mirror_server(&store, entry, settings, config.sync.timeout, &stop, recheck, budget)?;
        let after = artwork::compare(&store, entry, settings).map_err(|err| CliError::Failed(err.to_string()))?;
        println!(
            "{}: artwork wanted={} on_disk={} missing={} stale={} leftovers={}",
            entry.name, before.wanted, before.on_disk, before.missing, before.stale, before.leftovers
        );
        println!("{}", report.summary_line(&entry.name));
        if after.exact() {
            println!("{}: artwork matches the store", entry.name);
        } else {
            all_exact = false;
            println!(
                "{}: artwork still differs: missing={} stale={} (the server may be down, or the budget full; see `mediasync status`)",
                entry.name, after.missing, after.stale
            );
        }
    }
    Ok(if all_exact { 0 } else { 1 })
}
