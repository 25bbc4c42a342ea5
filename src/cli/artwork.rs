//! `mediasync check --artwork [--recheck] [--server NAME]`: each server's
//! artwork directory compared with the store (missing images, stale ones,
//! leftovers of cut-short writes), then repaired by an artwork pass;
//! `--recheck` also revalidates every present image the server gave
//! validators for. While the daemon holds the store it is asked to do the
//! same (`app::artwork_check`). Exit 1 when a directory is still not exact.

use super::{CliError, client};
use crate::artwork::{self, ArtworkCheck, ArtworkError, Budget, Pass, Recheck};
use crate::config::Config;
use crate::store::{Store, StoreErrorKind};
use std::sync::Arc;

pub fn run(config: &Config, server: Option<&str>, recheck: Recheck) -> Result<i32, CliError> {
    let Some(settings) = &config.artwork else {
        return Err(CliError::Failed(
            "the artwork mirror is off: set enabled = true in [artwork] of the config first".into(),
        ));
    };
    let servers = config.servers.iter().filter(|entry| server.is_none_or(|name| name == entry.name));
    let store = match Store::open(&config.store.path, config.store.cache_bytes) {
        Err(err) if err.kind() == StoreErrorKind::Locked => {
            let mut all_exact = true;
            for entry in servers {
                let check = client::check_artwork(config, &entry.name, recheck == Recheck::WithValidators)
                    .map_err(|err| CliError::Failed(format!("{}: {err}", entry.name)))?;
                all_exact &= print(&entry.name, &check);
            }
            return Ok(if all_exact { 0 } else { 1 });
        }
        opened => opened?,
    };
    let stop = Arc::new(crate::source::Stop::new());
    let mut all_exact = true;
    for entry in servers {
        let budget = Budget { deadline: None };
        let pass = Pass { timeout: config.sync.timeout, stop: &stop, recheck, budget };
        let check = match artwork::check(&store, entry, settings, pass) {
            Ok(check) => check,
            Err(ArtworkError::Store(err)) => return Err(err.into()),
            Err(err) => return Err(CliError::Failed(format!("{}: {err}", entry.name))),
        };
        all_exact &= print(&entry.name, &check);
    }
    Ok(if all_exact { 0 } else { 1 })
}

/// Prints a server's check; whether its directory now matches the store.
fn print(name: &str, check: &ArtworkCheck) -> bool {
    let before = &check.before;
    println!(
        "{name}: artwork wanted={} on_disk={} missing={} stale={} leftovers={}",
        before.wanted, before.on_disk, before.missing, before.stale, before.leftovers
    );
    println!("{}", check.report.summary_line(name));
    if check.after.exact() {
        println!("{name}: artwork matches the store");
        return true;
    }
    println!(
        "{name}: artwork still differs: missing={} stale={} (the server may be down, the budget full or the pass out of time; see `mediasync status`)",
        check.after.missing, check.after.stale
    );
    false
}
