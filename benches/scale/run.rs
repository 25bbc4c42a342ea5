//! One run of the release binary and what it cost, measured from outside
//! our code: requests by the fake server's counter, bytes dirtied by the
//! kernel's write accounting (this process's `/proc/self/io` gains a reaped
//! child's `write_bytes`), fsync-family calls by `strace -f -c`, peak memory
//! by the binary's own VmHWM (MEDIASYNC_REPORT_PEAK_RSS), and wall time.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The calls that force data to the disk: what wears an SD card.
pub const FSYNC_FAMILY: [&str; 4] = ["fsync", "fdatasync", "sync_file_range", "msync"];

#[derive(Clone, Copy, Debug, Default)]
pub struct Cost {
    pub requests: u64,
    pub dirtied_bytes: u64,
    pub fsyncs: u64,
    /// None for commands that do not report it.
    pub peak_rss_kib: Option<u64>,
    pub seconds: f64,
}

pub struct Binary {
    path: PathBuf,
    scratch: tempfile::TempDir,
}

impl Binary {
    /// The release binary cargo built for this benchmark, and `strace`.
    pub fn new() -> Result<Binary, String> {
        let strace = Command::new("strace").arg("-V").output();
        if !strace.is_ok_and(|output| output.status.success()) {
            return Err("strace is needed to count fsync-family calls: install it (apt-get install strace)".into());
        }
        let scratch = tempfile::tempdir().map_err(|err| format!("no temporary directory: {err}"))?;
        Ok(Binary { path: PathBuf::from(env!("CARGO_BIN_EXE_mediasync")), scratch })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    /// Runs `mediasync --config CONFIG ARGS` under strace; `requests` reads
    /// the fake server's request counter. Fails unless the command succeeds.
    pub fn measure(&self, config: &Path, args: &[&str], requests: impl Fn() -> u64) -> Result<(Cost, String), String> {
        let summary = self.scratch.path().join("strace.txt");
        let mut command = Command::new("strace");
        command
            .args(["-f", "-c", "-o"])
            .arg(&summary)
            .arg("-e")
            .arg(format!("trace={}", FSYNC_FAMILY.join(",")))
            .arg("--")
            .arg(&self.path)
            .arg("--config")
            .arg(config)
            .args(args)
            .env("RUST_LOG", "warn")
            .env("MEDIASYNC_REPORT_PEAK_RSS", "1");
        let requests_before = requests();
        let written_before = written_bytes()?;
        let started = Instant::now();
        let output = command.output().map_err(|err| format!("cannot run strace: {err}"))?;
        let seconds = started.elapsed().as_secs_f64();
        let dirtied_bytes = written_bytes()?.saturating_sub(written_before);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(format!("mediasync {} failed:\n{stdout}\n{stderr}", args.join(" ")));
        }
        let fsyncs = std::fs::read_to_string(&summary).map(|text| fsync_calls(&text)).map_err(|err| err.to_string())?;
        let peak_rss_kib = stderr
            .lines()
            .find_map(|line| line.strip_prefix("peak_rss_kib="))
            .and_then(|value| value.trim().parse().ok());
        let cost =
            Cost { requests: requests().saturating_sub(requests_before), dirtied_bytes, fsyncs, peak_rss_kib, seconds };
        Ok((cost, stdout))
    }
}

/// Bytes this process and its reaped children caused to be written to
/// storage (page-cache dirtying, counted when it happens).
fn written_bytes() -> Result<u64, String> {
    let io = std::fs::read_to_string("/proc/self/io").map_err(|err| format!("cannot read /proc/self/io: {err}"))?;
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes:"))
        .and_then(|value| value.trim().parse().ok())
        .ok_or_else(|| "/proc/self/io has no write_bytes".to_string())
}

/// The calls column of `strace -c`'s rows for the fsync family.
fn fsync_calls(summary: &str) -> u64 {
    summary
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let name = fields.last()?;
            if !FSYNC_FAMILY.contains(name) {
                return None;
            }
            fields.get(3)?.parse::<u64>().ok()
        })
        .sum()
}
