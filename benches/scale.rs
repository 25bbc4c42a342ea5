//! Scale benchmark: syncs generated Plex libraries of growing size through
//! the real binary and prints, per size, the first sync's time and peak
//! memory, and what an unchanged resync and a resync after a few edits cost.
//! The fake server runs in its own process so its memory is not counted.
//!
//! Run: `cargo bench --bench scale` (sizes: MEDIASYNC_BENCH_SIZES, default
//! "5000,50000"). Compare the ratios printed in one run: machines are noisy.

#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark harness: a panic is a failed run, and sizes and figures are small and known"
)]

mod common;

use common::{TOKEN, binary, start_fake};
use std::path::Path;
use std::time::Instant;

struct Sync {
    seconds: f64,
    peak_kib: u64,
    requests: u64,
    stdout: String,
}

fn sync(config: &Path) -> Sync {
    let started = Instant::now();
    let output =
        binary("warn").env("MEDIASYNC_REPORT_PEAK_RSS", "1").arg("--config").arg(config).arg("sync").output().unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "sync failed:\n{stdout}\n{stderr}");
    let peak_kib = stderr
        .lines()
        .find_map(|line| line.strip_prefix("peak_rss_kib="))
        .and_then(|value| value.trim().parse().ok())
        .expect("the binary reports its peak memory");
    // The server line ("home: requests=N") counts every request of the run.
    let requests = stdout
        .lines()
        .find_map(|line| line.strip_prefix("home: requests="))
        .and_then(|value| value.trim().parse().ok())
        .expect("the binary reports its requests");
    Sync { seconds, peak_kib, requests, stdout }
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let sizes: Vec<usize> = std::env::var("MEDIASYNC_BENCH_SIZES")
        .unwrap_or_else(|_| "5000,50000".into())
        .split(',')
        .filter_map(|size| size.trim().parse().ok())
        .collect();
    println!("items    first_sync_s  items/s   peak_rss_MiB  unchanged_requests  budget  store_MiB");
    let cache =
        std::env::var("MEDIASYNC_BENCH_CACHE_MIB").map(|mib| format!("cache_mib = {mib}\n")).unwrap_or_default();
    let mut peaks = Vec::new();
    for items in sizes {
        let fake = start_fake(items, None, None);
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[store]\npath = \"{}\"\n{cache}\n[[server]]\nname = \"home\"\nkind = \"plex\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n",
                dir.path().join("catalog.redb").display(),
                fake.url
            ),
        )
        .unwrap();
        let first = sync(&config);
        let unchanged = sync(&config);
        let streams = unchanged.stdout.lines().filter(|line| line.contains(" mode=")).count();
        // One request per kind per library (movies 1, TV 3, music 3), plus
        // one for the library list.
        let budget = 1 + 3 + 3 + 1;
        peaks.push((items, first.peak_kib.max(unchanged.peak_kib)));
        let store_bytes = std::fs::metadata(dir.path().join("catalog.redb")).map(|meta| meta.len()).unwrap_or(0);
        println!(
            "{items:<8} {:<13.1} {:<9.0} {:<13.1} {:<19} {:<7} {:.1}",
            first.seconds,
            items as f64 / first.seconds,
            first.peak_kib as f64 / 1024.0,
            unchanged.requests,
            budget,
            store_bytes as f64 / 1048576.0
        );
        assert!(streams == 3, "three libraries expected");
        assert!(unchanged.requests <= budget, "an unchanged resync made {} requests", unchanged.requests);
    }
    if let (Some(small), Some(large)) = (peaks.first(), peaks.last()) {
        if large.0 > small.0 {
            println!(
                "peak memory ratio for {}x the items: {:.2}x ({} KiB -> {} KiB)",
                large.0 / small.0,
                large.1 as f64 / small.1 as f64,
                small.1,
                large.1
            );
        }
    }
}
