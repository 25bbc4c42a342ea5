//! The appliance's normal path: `mediasync run` under `strace -f`, its store
//! kept open, while `mediasync sync` asks it for runs. A run's cost is what
//! the daemon's process did from the ask until the server shows idle again:
//! requests (the fake server's counter), bytes dirtied (the daemon's
//! `/proc/PID/io`), fsync-family calls (lines of strace's log).

use crate::run::{Cost, FSYNC_FAMILY};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A daemon run that takes longer than this is reported as stuck.
const RUN_DEADLINE: Duration = Duration::from_secs(600);

pub struct Daemon {
    strace: Child,
    pid: u32,
    trace: PathBuf,
    config: PathBuf,
    address: SocketAddr,
    binary: PathBuf,
    runs: u64,
}

/// The config's text plus a status listener on a free port and a schedule
/// that never comes due during the benchmark (runs come only when asked).
pub fn daemon_config(text: &str) -> Result<(String, SocketAddr), String> {
    let address = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|err| format!("no free port: {err}"))?;
    let scheduled = text.replace("[[server]]\n", "[[server]]\nschedule = \"0 0 0 1 1 *\"\n");
    Ok((format!("[status]\nlisten = \"{address}\"\n\n{scheduled}"), address))
}

/// Whether the status shows a check at start for every server.
fn every_server_checked(status: &serde_json::Value) -> bool {
    status.get("servers").and_then(serde_json::Value::as_array).is_some_and(|servers| {
        servers
            .iter()
            .all(|server| server.get("live").and_then(|live| live.get("check")).is_some_and(|check| !check.is_null()))
    })
}

impl Daemon {
    /// Starts `binary --config CONFIG run` under strace, and waits until its
    /// status API answers.
    pub fn start(binary: &Path, config: &Path, address: SocketAddr, scratch: &Path) -> Result<Daemon, String> {
        let trace = scratch.join("daemon-strace.txt");
        let strace = Command::new("strace")
            .args(["-f", "-qq", "-o"])
            .arg(&trace)
            .arg("-e")
            .arg(format!("trace={}", FSYNC_FAMILY.join(",")))
            .arg("--")
            .arg(binary)
            .arg("--config")
            .arg(config)
            .arg("run")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("cannot run strace: {err}"))?;
        let mut daemon = Daemon {
            pid: 0,
            strace,
            trace,
            config: config.to_path_buf(),
            address,
            binary: binary.to_path_buf(),
            runs: 0,
        };
        let started = Instant::now();
        loop {
            // Measured runs start once every server's check at start (its
            // own requests) is done: on a busy machine it can otherwise land
            // in the first run's count.
            if daemon.status().is_ok_and(|status| every_server_checked(&status)) {
                daemon.pid = traced_daemon(daemon.strace.id()).ok_or("strace runs no `mediasync run`")?;
                return Ok(daemon);
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(
                    "the daemon's status API did not answer, or did not show every server checked, within a minute"
                        .into(),
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Asks the daemon for a sync through `mediasync sync` and waits for it.
    pub fn sync(&mut self, requests: impl Fn() -> u64) -> Result<Cost, String> {
        let requests_before = requests();
        let written_before = self.written_bytes()?;
        let fsyncs_before = self.fsyncs()?;
        let started = Instant::now();
        let output = Command::new(&self.binary)
            .arg("--config")
            .arg(&self.config)
            .arg("sync")
            .env("RUST_LOG", "warn")
            .output()
            .map_err(|err| format!("cannot run mediasync sync: {err}"))?;
        if !output.status.success() {
            return Err(format!("mediasync sync failed: {}", String::from_utf8_lossy(&output.stderr)));
        }
        self.runs = self.runs.saturating_add(1);
        loop {
            let status = self.status()?;
            let server = status.get("servers").and_then(|servers| servers.get(0)).cloned().unwrap_or_default();
            let runs = server.get("live").and_then(|live| live.get("runs")).and_then(serde_json::Value::as_u64);
            if runs >= Some(self.runs) && server.get("state").and_then(serde_json::Value::as_str) == Some("idle") {
                if server.get("last_error").is_some_and(|error| !error.is_null()) {
                    return Err(format!("the daemon's run failed: {server}"));
                }
                break;
            }
            if started.elapsed() > RUN_DEADLINE {
                return Err(format!("the daemon's run did not end: {server}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let seconds = started.elapsed().as_secs_f64();
        Ok(Cost {
            requests: requests().saturating_sub(requests_before),
            dirtied_bytes: self.written_bytes()?.saturating_sub(written_before),
            fsyncs: self.fsyncs()?.saturating_sub(fsyncs_before),
            peak_rss_kib: None,
            seconds,
        })
    }

    fn status(&self) -> Result<serde_json::Value, String> {
        let url = format!("http://{}/api/status", self.address);
        let mut response = ureq::get(&url).call().map_err(|err| format!("GET {url}: {err}"))?;
        let body = response.body_mut().read_to_string().map_err(|err| format!("GET {url}: {err}"))?;
        serde_json::from_str(&body).map_err(|err| format!("GET {url}: {err}"))
    }

    /// Bytes the daemon's process caused to be written to storage so far.
    fn written_bytes(&self) -> Result<u64, String> {
        let path = format!("/proc/{}/io", self.pid);
        let io = std::fs::read_to_string(&path).map_err(|err| format!("cannot read {path}: {err}"))?;
        io.lines()
            .find_map(|line| line.strip_prefix("write_bytes:"))
            .and_then(|value| value.trim().parse().ok())
            .ok_or_else(|| format!("{path} has no write_bytes"))
    }

    /// fsync-family calls the daemon began so far (strace logs one line per
    /// call, or an "unfinished" line and a "resumed" one).
    fn fsyncs(&self) -> Result<u64, String> {
        let text = std::fs::read_to_string(&self.trace).map_err(|err| format!("cannot read the strace log: {err}"))?;
        let calls = text
            .lines()
            .filter(|line| {
                let call = line.split_whitespace().nth(1).unwrap_or_default();
                FSYNC_FAMILY.iter().any(|name| call.strip_prefix(name).is_some_and(|rest| rest.starts_with('(')))
            })
            .count();
        Ok(u64::try_from(calls).unwrap_or(u64::MAX))
    }
}

impl Drop for Daemon {
    /// SIGTERM to the daemon (its store closes), then strace ends with it;
    /// a daemon not found is ended with strace.
    fn drop(&mut self) {
        if self.pid == 0 {
            let _ = self.strace.kill();
        } else {
            let _ = Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status();
        }
        let _ = self.strace.wait();
    }
}

/// The `mediasync run` process among strace's children.
fn traced_daemon(strace: u32) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{strace}/task/{strace}/children")).ok()?;
    children.split_whitespace().filter_map(|pid| pid.parse().ok()).find(|pid| {
        let arguments = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        arguments.split(|&byte| byte == 0).any(|argument| argument == b"run")
    })
}
