//! `systemctl reload` (SIGHUP): the config file read again and applied to
//! the running service. Servers added get a slot (the daemon starts their
//! schedulers), removed and changed ones have their running sync stopped at
//! its next page boundary, and every scheduler is woken to plan with the
//! new config. A file that does not load changes nothing: the previous
//! config keeps running, and the journal and the page say why. Settings the
//! running service cannot change (the store, the status server's listen
//! address, admin token and host names, the sync slots) keep their running
//! values until a restart, which the page says.

use super::{App, ServerSlot};
use crate::config::{Config, ConfigError};
use serde::Serialize;
use std::sync::Arc;

/// The outcome of the last reload, as the status shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReloadStatus {
    pub at: i64,
    /// Why the file was not applied; the previous config keeps running.
    pub refused: Option<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Servers whose entry changed (a running sync stopped at its page
    /// boundary and starts again with the new settings).
    pub changed: Vec<String>,
    /// Changed settings that keep their running value until a restart.
    pub needs_restart: Vec<&'static str>,
}

impl App {
    /// Applies the config read again from its file (or says why not) and
    /// answers the servers new to this service, whose schedulers the
    /// caller starts.
    pub fn reload(&self, loaded: Result<Config, ConfigError>) -> Vec<String> {
        let at = crate::sync::now_epoch();
        let mut new = match loaded {
            Ok(config) => config,
            Err(err) => {
                log::error!("reload: {err}; the previous config keeps running");
                self.set_reload(ReloadStatus { at, refused: Some(err.to_string()), ..ReloadStatus::default() });
                return Vec::new();
            }
        };
        let old = self.config();
        let needs_restart = keep_running_values(&old, &mut new);
        let names = |config: &Config| config.servers.iter().map(|server| server.name.clone()).collect::<Vec<_>>();
        let added: Vec<String> = names(&new).into_iter().filter(|name| old.server(name).is_none()).collect();
        let removed: Vec<String> = names(&old).into_iter().filter(|name| new.server(name).is_none()).collect();
        let changed: Vec<String> = new
            .servers
            .iter()
            .filter(|server| old.server(&server.name).is_some_and(|before| before != *server))
            .map(|server| server.name.clone())
            .collect();
        self.set_config(new);
        let mut started = Vec::new();
        {
            let mut slots = self.slots_mut();
            for name in &added {
                slots.entry(name.clone()).or_insert_with(|| {
                    started.push(name.clone());
                    Arc::new(ServerSlot::default())
                });
            }
            for name in removed.iter().chain(&changed) {
                if let Some(slot) = slots.get(name) {
                    slot.stop_run();
                }
            }
            for slot in slots.values() {
                slot.wake();
            }
        }
        log::info!(
            "reload: config applied; servers added: [{}], removed: [{}], changed: [{}]",
            added.join(", "),
            removed.join(", "),
            changed.join(", ")
        );
        if !needs_restart.is_empty() {
            log::warn!(
                "reload: {} changed, which takes a restart to apply (systemctl restart mediasync); the running values stay until then",
                needs_restart.join(", ")
            );
        }
        self.set_reload(ReloadStatus { at, refused: None, added, removed, changed, needs_restart });
        started
    }
}

/// Puts the running values of the settings a running service cannot change
/// into `new`, and names those that differ.
fn keep_running_values(old: &Config, new: &mut Config) -> Vec<&'static str> {
    // The status server enforces the listen address, token and names it
    // was started with.
    let differ = [
        ("[store] path", new.store.path != old.store.path),
        ("[store] cache_mib", new.store.cache_bytes != old.store.cache_bytes),
        ("[status] listen", new.status.listen != old.status.listen),
        ("[status] admin_token", new.status.admin_token != old.status.admin_token),
        ("[status] hostnames", new.status.hostnames != old.status.hostnames),
        ("[daemon] max_concurrent_syncs", new.daemon.max_concurrent_syncs != old.daemon.max_concurrent_syncs),
    ]
    .into_iter()
    .filter_map(|(setting, changed)| changed.then_some(setting))
    .collect();
    new.store = old.store.clone();
    new.status = old.status.clone();
    new.daemon.max_concurrent_syncs = old.daemon.max_concurrent_syncs;
    differ
}
