//! The write budgets of issue 13 the benchmark holds every source to: an
//! unchanged resync (one-shot or through the daemon) dirties at most
//! 128 KiB with at most 4 fsync-family calls, and a first sync dirties at
//! most twice the store file it leaves. Overruns are collected so the whole
//! table prints before the benchmark fails.

use crate::run::Cost;
use crate::servers::Served;

const UNCHANGED_DIRTIED_BYTES: u64 = 128 * 1024;
const UNCHANGED_FSYNCS: u64 = 4;
const FIRST_SYNC_TIMES_THE_FILE: u64 = 2;

/// The runs held to the unchanged-resync budget.
pub const UNCHANGED_RUNS: [&str; 4] = ["unchanged", "unchanged again", "daemon unchanged", "daemon again"];

#[derive(Default)]
pub struct Overruns {
    found: Vec<String>,
}

impl Overruns {
    pub fn check_unchanged(&mut self, served: &Served, run: &str, cost: &Cost) {
        if cost.dirtied_bytes <= UNCHANGED_DIRTIED_BYTES && cost.fsyncs <= UNCHANGED_FSYNCS {
            return;
        }
        self.found.push(format!(
            "{} {run}: dirtied {} bytes with {} fsync-family calls (budget {UNCHANGED_DIRTIED_BYTES} bytes, {UNCHANGED_FSYNCS} calls)",
            served.label(),
            cost.dirtied_bytes,
            cost.fsyncs
        ));
    }

    pub fn check_first_sync(&mut self, label: &str, cost: &Cost, store_bytes: u64) {
        if cost.dirtied_bytes > store_bytes.saturating_mul(FIRST_SYNC_TIMES_THE_FILE) {
            self.found.push(format!(
                "{label} first sync: dirtied {} bytes for a store file of {store_bytes} (budget {FIRST_SYNC_TIMES_THE_FILE} times the file)",
                cost.dirtied_bytes
            ));
        }
    }

    /// Fails with every overrun, after printing them.
    pub fn verdict(self) -> Result<(), String> {
        if self.found.is_empty() {
            println!("\nevery run is within its write budget");
            return Ok(());
        }
        println!("\nover budget:");
        for overrun in &self.found {
            println!("  {overrun}");
        }
        Err(format!("{} runs over their write budget (listed above)", self.found.len()))
    }
}
