//! What a sync tells people: the per-library and per-server reports `sync`
//! prints and the daemon shows, the one-line summary, the mode names
//! ("incremental+reconcile"), and the run record kept in the history.

use crate::model::{Kind, LibraryInfo};
use crate::store::records::{Checkpoint, Counters, Pass, RunRecord};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct LibraryReport {
    pub library_id: String,
    pub title: String,
    pub mode: String,
    pub counters: Counters,
    pub duration: Duration,
    pub error: Option<String>,
}

impl LibraryReport {
    /// The report of a run that has not got anywhere yet.
    pub(super) fn new(library: &LibraryInfo) -> LibraryReport {
        LibraryReport {
            library_id: library.id.clone(),
            title: library.title.clone(),
            mode: "full".into(),
            counters: Counters::default(),
            duration: Duration::ZERO,
            error: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ServerReport {
    pub server: String,
    pub libraries: Vec<LibraryReport>,
    /// Set when the server could not be synced at all (or was stopped).
    pub error: Option<String>,
    pub requests: u64,
}

impl ServerReport {
    pub fn ok(&self) -> bool {
        self.first_error().is_none()
    }

    /// The server's error, else the first library's: what failed.
    pub fn first_error(&self) -> Option<&str> {
        self.error.as_deref().or_else(|| self.libraries.iter().find_map(|library| library.error.as_deref()))
    }
}

/// One line per library, as `sync` prints it.
pub fn summary_line(server: &str, report: &LibraryReport) -> String {
    let counters = &report.counters;
    let outcome = match &report.error {
        None => "ok".to_string(),
        Some(error) => format!("FAILED: {error}"),
    };
    format!(
        "{server}/{} ({}): mode={} new={} changed={} deleted={} unchanged={} bad={} requests={} duration={:.1}s {outcome}",
        report.library_id,
        report.title,
        report.mode,
        counters.new,
        counters.changed,
        counters.deleted,
        counters.unchanged,
        counters.bad,
        counters.requests,
        report.duration.as_secs_f64(),
    )
}

/// "full", "incremental" or "resumed", with "+reconcile" when an
/// incremental run turned into a full pass.
pub(super) fn mode_name(checkpoint: &Checkpoint) -> String {
    let base = if checkpoint.resumed {
        "resumed"
    } else {
        match checkpoint.started_as {
            Pass::Full => "full",
            Pass::Incremental => "incremental",
        }
    };
    if checkpoint.started_as == Pass::Incremental && checkpoint.pass == Pass::Full {
        format!("{base}+reconcile")
    } else {
        base.to_string()
    }
}

/// The history entry of a run that ended (`error` when it failed).
pub(super) fn run_record(checkpoint: &Checkpoint, now: i64, elapsed_ms: u64, error: Option<&str>) -> RunRecord {
    RunRecord {
        run: checkpoint.run,
        mode: mode_name(checkpoint),
        started_at: checkpoint.started_at,
        finished_at: now,
        duration_ms: elapsed_ms,
        counters: checkpoint.counters,
        error: error.map(str::to_string),
    }
}

/// "show, season, episode", for messages.
pub(super) fn kind_list(kinds: &[Kind]) -> String {
    kinds.iter().map(|kind| kind.name()).collect::<Vec<_>>().join(", ")
}
