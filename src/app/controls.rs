//! The controls the status page and API offer: request a sync, pause,
//! resume, reset. Pause is persisted in the store; a reset never overlaps a
//! sync of its server. Refusals are typed (`ControlError`); the HTTP edge
//! maps them to statuses and the messages say what to do.

use super::live::SyncRequest;
use super::{App, ServerSlot};
use crate::store::StoreError;
use std::sync::Arc;

/// Why a control was refused.
#[derive(Debug)]
pub enum ControlError {
    /// No server of that name in the config.
    UnknownServer(String),
    /// The server is paused: a sync request is refused until it is resumed.
    Paused(String),
    /// The server syncs: a reset waits until the sync stopped.
    Syncing(String),
    /// The server syncs, or a reset or another check holds it: a check
    /// waits until that ended.
    Busy(String),
    Store(StoreError),
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::UnknownServer(server) => {
                write!(f, "no server named \"{server}\" in the config; see GET /api/status")
            }
            ControlError::Paused(server) => write!(f, "server \"{server}\" is paused; resume it first"),
            ControlError::Syncing(server) => {
                write!(f, "server \"{server}\" is syncing; pause it, wait for the sync to stop, then reset")
            }
            ControlError::Busy(server) => write!(
                f,
                "server \"{server}\" is syncing (which shows whether it answers) or being reset or checked; check it again when that ends"
            ),
            ControlError::Store(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for ControlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ControlError::Store(err) => Some(err),
            _ => None,
        }
    }
}

impl From<StoreError> for ControlError {
    fn from(err: StoreError) -> ControlError {
        ControlError::Store(err)
    }
}

impl App {
    /// The slot of a configured server (not of one a reload removed).
    fn slot(&self, server: &str) -> Result<Arc<ServerSlot>, ControlError> {
        self.config()
            .server(server)
            .and(self.server(server))
            .ok_or_else(|| ControlError::UnknownServer(server.to_string()))
    }

    /// Asks for a sync as soon as a slot is free (`full` walks whole
    /// libraries, `force` allows the deletions the guard refused).
    pub fn request_sync(&self, server: &str, request: SyncRequest) -> Result<(), ControlError> {
        let slot = self.slot(server)?;
        if self.store.control(server)?.paused {
            return Err(ControlError::Paused(server.to_string()));
        }
        if request.force {
            log::warn!("{server}: a sync allowing mass deletions was requested");
        }
        slot.request(request);
        slot.wake();
        Ok(())
    }

    /// Pauses a server (persisted): scheduled syncs are skipped and a
    /// running one stops at its next page boundary, keeping its checkpoint.
    pub fn pause(&self, server: &str) -> Result<(), ControlError> {
        let slot = self.slot(server)?;
        self.store.set_paused(server, true, crate::sync::now_epoch())?;
        slot.stop_run();
        log::info!("{server}: paused from the status API");
        Ok(())
    }

    pub fn resume(&self, server: &str) -> Result<(), ControlError> {
        let slot = self.slot(server)?;
        self.store.set_paused(server, false, crate::sync::now_epoch())?;
        slot.wake();
        log::info!("{server}: resumed from the status API");
        Ok(())
    }

    /// Forgets where the server's libraries stand so the next run is full;
    /// answers how many libraries were reset. Refused while the server
    /// syncs (pause it first).
    pub fn reset(&self, server: &str) -> Result<u32, ControlError> {
        let slot = self.slot(server)?;
        if !slot.hold(None) {
            return Err(ControlError::Syncing(server.to_string()));
        }
        let result = self.store.reset_server(server);
        slot.release();
        let libraries = result?;
        log::info!("{server}: reset from the status API ({libraries} libraries); the next run is a full one");
        Ok(libraries)
    }
}
