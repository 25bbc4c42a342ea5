//! Memory against a hostile server: the release binary syncs, with the
//! largest page size allowed (5,000), a simulated Plex server (its own
//! process, so its memory is not counted) that answers every listing with
//! a 60 MiB body, or with a 10 MB title in the first entry, or with values
//! of the wrong type, and prints the binary's peak resident memory next to
//! a sync of the same library from a well-behaved server. The unit's limit
//! is `MemoryMax=256M`.
//!
//! Run: `cargo bench --bench hostile` (items: MEDIASYNC_BENCH_ITEMS,
//! default 20000).

#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark harness: a panic is a failed run, and sizes and figures are small and known"
)]

mod common;

use common::{TOKEN, binary, start_fake};
use std::path::Path;

/// One `mediasync sync`: its peak memory (KiB) and whether it succeeded.
fn sync(config: &Path) -> (u64, bool) {
    let output = binary("error")
        .env("MEDIASYNC_REPORT_PEAK_RSS", "1")
        .arg("--config")
        .arg(config)
        .arg("sync")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let peak = stderr
        .lines()
        .find_map(|line| line.strip_prefix("peak_rss_kib="))
        .and_then(|value| value.trim().parse().ok())
        .expect("the binary reports its peak memory");
    (peak, output.status.success())
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let items: usize = std::env::var("MEDIASYNC_BENCH_ITEMS").ok().and_then(|n| n.parse().ok()).unwrap_or(20_000);
    println!("server answers (page_size 5000, {items} items)      peak_rss_MiB  sync");
    for (label, hostile) in [
        ("well-behaved", None),
        ("a 60 MiB body on every listing", Some("giant:62914560")),
        ("a 10 MB title in every listing", Some("giant-title:10485760")),
        ("values of the wrong type", Some("wrong-types")),
    ] {
        let fake = start_fake(items, hostile, None);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[store]\npath = \"{}\"\n[sync]\nretries = 1\nretry_delay = \"100ms\"\n[[server]]\nname = \"home\"\nkind = \"plex\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\npage_size = 5000\n",
                dir.path().join("catalog.redb").display(),
                fake.url
            ),
        )
        .expect("the config is written");
        let (peak_kib, ok) = sync(&config);
        println!("{label:<46} {:<13.1} {}", peak_kib as f64 / 1024.0, if ok { "ok" } else { "failed, as it should" });
        assert!(peak_kib < 256 * 1024, "{label}: {peak_kib} KiB is past the unit's MemoryMax");
    }
}
