//! What the benchmark programs share: the binary under test and a
//! simulated Plex server in a process of its own (so its memory is not
//! counted), optionally hostile.

#![allow(dead_code, clippy::expect_used, reason = "each benchmark uses part of this; a panic is a failed run")]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

pub const TOKEN: &str = "bench-token";

/// A running `mediasync fake-plex`, killed when dropped.
pub struct FakeServer {
    child: Child,
    pub url: String,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The release binary, logging `level` and up.
pub fn binary(level: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mediasync"));
    command.env("RUST_LOG", level).env_remove("NOTIFY_SOCKET");
    command
}

/// A fake of `items` items on `listen` (or a free port), every answer after
/// the library list `hostile` when given (`fake-plex --hostile`).
pub fn start_fake(items: usize, hostile: Option<&str>, listen: Option<&str>) -> FakeServer {
    let mut command = binary("warn");
    command.args(["fake-plex", "--items", &items.to_string(), "--token", TOKEN]);
    if let Some(spec) = hostile {
        command.args(["--hostile", spec]);
    }
    if let Some(address) = listen {
        command.args(["--listen", address]);
    }
    let mut child = command.stdout(Stdio::piped()).spawn().expect("the mediasync binary runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("fake-plex prints its url");
    let url = line.split_whitespace().find_map(|field| field.strip_prefix("url=")).expect("a url").to_string();
    FakeServer { child, url }
}

/// A daemon (or any child), killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or(0)
}
