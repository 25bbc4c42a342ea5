//! Stopping during a 15-minute rate-limit wait, and the next start: the
//! release daemon, a store of a generated library, and a simulated Plex
//! server (its own process) that answers every listing with
//! `429 Retry-After: 900`. Prints the time from SIGTERM to exit, and the
//! time from start to READY (sd_notify) after that stop, which closes the
//! store, and after a SIGKILL, which leaves it unclosed as every stop did
//! before issue 12 (the `Database` was never dropped), so redb repairs the
//! whole file before READY.
//!
//! Run: `cargo bench --bench stop` (items: MEDIASYNC_BENCH_ITEMS, default
//! 100000).

#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark harness: a panic is a failed run, and sizes and figures are small and known"
)]

mod common;

use common::{Process, TOKEN, binary, free_port, start_fake};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ADMIN: &str = "bench-admin-token";

struct Bench {
    dir: PathBuf,
    config: PathBuf,
    status: String,
}

impl Bench {
    /// Starts the daemon; answers it and the time to READY.
    fn start(&self) -> (Process, Duration) {
        let socket_path = self.dir.join("notify.sock");
        let _ = std::fs::remove_file(&socket_path);
        let socket = UnixDatagram::bind(&socket_path).expect("a notify socket");
        socket.set_read_timeout(Some(Duration::from_secs(600))).expect("a timeout");
        let started = Instant::now();
        let daemon = Process(
            binary("error")
                .env("NOTIFY_SOCKET", &socket_path)
                .arg("--config")
                .arg(&self.config)
                .arg("run")
                .spawn()
                .expect("the daemon starts"),
        );
        let mut buffer = [0u8; 256];
        loop {
            let read = socket.recv(&mut buffer).expect("the daemon tells READY");
            if String::from_utf8_lossy(buffer.get(..read).unwrap_or_default()).contains("READY=1") {
                return (daemon, started.elapsed());
            }
        }
    }

    fn get_status(&self) -> String {
        ureq::get(&format!("{}/api/status", self.status))
            .call()
            .and_then(|mut answer| answer.body_mut().read_to_string())
            .unwrap_or_default()
    }

    /// Asks for a sync and waits until it waits for the rate limit.
    fn until_waiting(&self) {
        ureq::post(&format!("{}/api/servers/home/sync", self.status))
            .header("Authorization", &format!("Bearer {ADMIN}"))
            .send_empty()
            .expect("the daemon takes the request");
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.get_status().contains("\"waiting\"") {
            assert!(Instant::now() < deadline, "the daemon never waited: {}", self.get_status());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn signal(process: &Process, name: &str) {
    let sent = Command::new("kill").arg(format!("-{name}")).arg(process.0.id().to_string()).status();
    assert!(sent.is_ok_and(|status| status.success()), "kill -{name}");
}

fn write_config(path: &Path, store: &Path, plex: &str, status: &str) {
    std::fs::write(
        path,
        format!(
            "[store]\npath = \"{}\"\n[status]\nlisten = \"{status}\"\nadmin_token = \"{ADMIN}\"\n[[server]]\nname = \"home\"\nkind = \"plex\"\nurl = \"http://{plex}\"\ntoken = \"{TOKEN}\"\npage_size = 5000\n",
            store.display()
        ),
    )
    .expect("the config is written");
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let items: usize = std::env::var("MEDIASYNC_BENCH_ITEMS").ok().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = dir.path().join("catalog.redb");
    let config = dir.path().join("config.toml");
    let plex = format!("127.0.0.1:{}", free_port());
    let status = format!("127.0.0.1:{}", free_port());
    write_config(&config, &store, &plex, &status);
    {
        let _server = start_fake(items, None, Some(&plex));
        let synced = binary("error").arg("--config").arg(&config).arg("sync").output().expect("a sync runs");
        assert!(synced.status.success(), "{}", String::from_utf8_lossy(&synced.stdout));
    }
    let store_mib = std::fs::metadata(&store).map(|meta| meta.len()).unwrap_or(0) as f64 / 1_048_576.0;
    let _server = start_fake(items, Some("retry-after:900"), Some(&plex));
    let bench = Bench { dir: dir.path().to_path_buf(), config, status: format!("http://{status}") };

    let (daemon, first_ready) = bench.start();
    bench.until_waiting();
    let stopping = Instant::now();
    signal(&daemon, "TERM");
    let mut daemon = daemon;
    let exited = daemon.0.wait().expect("the daemon exits");
    let stop = stopping.elapsed();
    assert!(exited.success(), "{exited}");

    let (daemon, ready_after_sigterm) = bench.start();
    bench.until_waiting();
    signal(&daemon, "KILL");
    drop(daemon);
    let (daemon, ready_after_sigkill) = bench.start();
    signal(&daemon, "TERM");
    drop(daemon);

    println!("store: {items} items, {store_mib:.1} MiB");
    println!("start to READY, first start:                                {:>7.3} s", first_ready.as_secs_f64());
    println!("SIGTERM during the 15-minute rate-limit wait to exit:       {:>7.3} s", stop.as_secs_f64());
    println!(
        "start to READY after that stop (store closed):              {:>7.3} s",
        ready_after_sigterm.as_secs_f64()
    );
    println!(
        "start to READY after a SIGKILL mid-wait (store not closed): {:>7.3} s  (every stop before issue 12)",
        ready_after_sigkill.as_secs_f64()
    );
}
