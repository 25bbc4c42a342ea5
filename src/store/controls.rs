//! What the daemon's controls persist: a server paused from the status page
//! stays paused across restarts, and a reset makes the server's next run a
//! full one. Kept apart from `ServerState`, which the engine rewrites after
//! every run, so a control never races with a sync's bookkeeping.

use super::tables::{CONTROLS, LIBRARY_STATE};
use super::{Store, StoreError};
use serde::{Deserialize, Serialize};

/// The `controls` record of one server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerControl {
    pub paused: bool,
    /// When it was paused (epoch seconds).
    pub paused_at: Option<i64>,
}

/// Why a reset library's next run is a full pass (shown in status).
pub const RESET_REASON: &str = "reset from the status page";

impl Store {
    pub fn control(&self, server: &str) -> Result<ServerControl, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CONTROLS)?;
        let value = table.get(server)?;
        match value {
            Some(value) => serde_json::from_slice(value.value()).map_err(StoreError::Record),
            None => Ok(ServerControl::default()),
        }
    }

    pub fn set_paused(&self, server: &str, paused: bool, now: i64) -> Result<(), StoreError> {
        let control = ServerControl { paused, paused_at: paused.then_some(now) };
        let json = serde_json::to_vec(&control).map_err(StoreError::Record)?;
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(CONTROLS)?;
            table.insert(server, json.as_slice())?;
        }
        self.commit(txn)?;
        Ok(())
    }

    /// Forgets where the server's libraries stand: drops their checkpoints
    /// and errors and marks them for a full pass, in one transaction. The
    /// items stay (the full pass reconciles them, guarded as usual). Returns
    /// the number of libraries reset. Callers make sure no sync of the
    /// server runs meanwhile.
    pub fn reset_server(&self, server: &str) -> Result<u32, StoreError> {
        let libraries = self.libraries()?;
        let txn = self.db.begin_write()?;
        let mut reset = 0u32;
        {
            let mut table = txn.open_table(LIBRARY_STATE)?;
            for (number, mut state) in libraries.into_iter().filter(|(_, state)| state.server == server) {
                state.checkpoint = None;
                state.last_error = None;
                state.needs_full = Some(RESET_REASON.to_string());
                let json = serde_json::to_vec(&state).map_err(StoreError::Record)?;
                table.insert(number, json.as_slice())?;
                reset = reset.saturating_add(1);
            }
        }
        self.commit(txn)?;
        Ok(reset)
    }
}
