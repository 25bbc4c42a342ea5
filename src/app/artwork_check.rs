//! `mediasync check --artwork` while the daemon holds the store: the
//! command asks the daemon (`POST /api/servers/{name}/artwork`), which
//! holds the server as a `check` does (no sync, so no artwork pass of its
//! own, runs meanwhile; two passes on one directory would remove each
//! other's temporary files) and runs the same compare, repair, compare.

use super::{App, ControlError};
use crate::artwork::{self, ArtworkCheck, ArtworkError, Budget, Pass, Recheck};
use crate::source::Stop;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest pass a check asks of the daemon: the status server gives an
/// answer 300 s (`web::server::Limits`), so the rest waits for the next
/// check or the next sync.
pub const DAEMON_CHECK_PASS: Duration = Duration::from_secs(240);

/// Why the daemon did not check a server's artwork.
#[derive(Debug)]
pub enum ArtworkCheckError {
    /// The artwork mirror is off in the config in force.
    Off,
    Control(ControlError),
    Artwork(ArtworkError),
}

impl std::fmt::Display for ArtworkCheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArtworkCheckError::Off => f.write_str(
                "the artwork mirror is off in the running daemon's config: set enabled = true in [artwork] and reload",
            ),
            ArtworkCheckError::Control(err) => write!(f, "{err}"),
            ArtworkCheckError::Artwork(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for ArtworkCheckError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ArtworkCheckError::Off => None,
            ArtworkCheckError::Control(err) => Some(err),
            ArtworkCheckError::Artwork(err) => Some(err),
        }
    }
}

impl App {
    /// Checks and repairs a server's artwork directory now, refused while
    /// the server syncs (its own pass runs then); shutdown and a pause stop
    /// it as they stop a sync.
    pub fn check_artwork(&self, name: &str, recheck: Recheck) -> Result<ArtworkCheck, ArtworkCheckError> {
        let config = self.config();
        let Some(settings) = &config.artwork else {
            return Err(ArtworkCheckError::Off);
        };
        let (Some(server), Some(slot)) = (config.server(name), self.server(name)) else {
            return Err(ArtworkCheckError::Control(ControlError::UnknownServer(name.to_string())));
        };
        let stop = Arc::new(Stop::new());
        if !slot.hold(Some(&stop)) {
            return Err(ArtworkCheckError::Control(ControlError::Busy(name.to_string())));
        }
        if self.stopping() {
            stop.set();
        }
        let budget = Budget { deadline: Instant::now().checked_add(DAEMON_CHECK_PASS) };
        let pass = Pass { timeout: config.sync.timeout, stop: &stop, recheck, budget };
        let checked = artwork::check(&self.store, server, settings, pass);
        slot.release();
        if let Ok(check) = &checked {
            log::info!("{}", check.report.summary_line(name));
        }
        checked.map_err(ArtworkCheckError::Artwork)
    }
}
