//! What listening to a server's notifications costs: when nothing happens,
//! the release daemon synced against a simulated Plex server (its own
//! process), then left idle with `notifications` off and on (the daemon's
//! resident memory, now and peak, its threads, whether the socket is open,
//! from `/proc`); and per notice, the requests a change on simulated Plex,
//! Jellyfin and Emby servers cost until the mirror is exact (`notices.rs`).
//!
//! Run: `cargo bench --bench push` (items: MEDIASYNC_BENCH_ITEMS, default
//! 20000; idle seconds: MEDIASYNC_BENCH_IDLE_SECONDS, default 10).

#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "benchmark harness: a panic is a failed run (serde_json's Value indexing does not panic), and sizes and figures are small and known"
)]

#[path = "../common/mod.rs"]
mod common;
mod notices;

use common::{Process, TOKEN, binary, free_port, start_fake};
use std::time::{Duration, Instant};

fn status(address: &str) -> serde_json::Value {
    ureq::get(&format!("http://{address}/api/status"))
        .call()
        .ok()
        .and_then(|mut answer| answer.body_mut().read_to_string().ok())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// A field of `/proc/PID/status`, in KiB for the memory ones.
fn proc_status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc is readable");
    text.lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .expect("the field is there")
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let number = |name: &str, default: u64| std::env::var(name).ok().and_then(|n| n.parse().ok()).unwrap_or(default);
    let items = number("MEDIASYNC_BENCH_ITEMS", 20_000);
    let idle = Duration::from_secs(number("MEDIASYNC_BENCH_IDLE_SECONDS", 10));
    let fake = start_fake(usize::try_from(items).unwrap(), None, None);
    println!("idle daemon after syncing {items} items, then {} s idle", idle.as_secs());
    println!("notifications  rss_MiB  peak_rss_MiB  threads  socket");
    for notifications in [false, true] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = dir.path().join("config.toml");
        let address = format!("127.0.0.1:{}", free_port());
        std::fs::write(
            &config,
            format!(
                "[store]\npath = \"{}\"\n[status]\nlisten = \"{address}\"\n[[server]]\nname = \"home\"\nkind = \"plex\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\npage_size = 5000\nschedule = \"0 0 3 1 1 *\"\nnotifications = {notifications}\n",
                dir.path().join("catalog.redb").display(),
                fake.url
            ),
        )
        .expect("the config is written");
        let daemon =
            Process(binary("error").arg("--config").arg(&config).arg("run").spawn().expect("the daemon starts"));
        let deadline = Instant::now() + Duration::from_secs(600);
        let settled = |status: &serde_json::Value| {
            let server = &status["servers"][0];
            let connected = !notifications || server["live"]["notifications"]["connection"] == "connected";
            server["last_success_at"].is_i64() && server["live"]["syncing"] == false && connected
        };
        while !settled(&status(&address)) {
            assert!(Instant::now() < deadline, "the daemon never settled: {}", status(&address));
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(idle);
        let pid = daemon.0.id();
        let socket = status(&address)["servers"][0]["live"]["notifications"]["connection"].as_str().map(str::to_string);
        println!(
            "{:<14} {:<8.1} {:<13.1} {:<8} {}",
            if notifications { "on" } else { "off" },
            proc_status(pid, "VmRSS") as f64 / 1024.0,
            proc_status(pid, "VmHWM") as f64 / 1024.0,
            proc_status(pid, "Threads"),
            socket.as_deref().unwrap_or("none"),
        );
    }
    notices::print_costs();
}
