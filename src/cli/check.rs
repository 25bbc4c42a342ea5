//! `mediasync check`: every configured server checked with one cheap
//! authenticated request (`app::check`), printed as a table with the
//! problems under it; exit 1 on any problem. Media servers need no store,
//! so it works while a daemon holds the store file; a Spotify server's
//! session lives in the store, so the running daemon checks it then. It
//! never creates the store: the service does, owned by its own user.

use super::{CliError, client};
use crate::app::check::{ServerCheck, check_server};
use crate::config::{Config, ServerConfig};
use crate::store::{Store, StoreErrorKind};
use std::fmt::Write as _;

/// Where the check finds a Spotify server's session.
enum Sessions {
    /// In this store: the store file, or an empty store in memory when
    /// there is no store file yet (nothing is connected then).
    Here(Store),
    /// With the running daemon, which holds the store file; the store in
    /// memory serves the other kinds.
    Daemon(Store),
}

pub fn run(config: &Config) -> Result<i32, CliError> {
    if config.servers.is_empty() {
        return Err(CliError::NoServers(config.path.clone()));
    }
    let sessions = if config.store.path.exists() {
        match Store::open(&config.store.path, config.store.cache_bytes) {
            Ok(store) => Sessions::Here(store),
            Err(err) if err.kind() == StoreErrorKind::Locked => Sessions::Daemon(Store::in_memory()?),
            Err(err) => return Err(err.into()),
        }
    } else {
        Sessions::Here(Store::in_memory()?)
    };
    let checks: Vec<(&ServerConfig, ServerCheck)> = config
        .servers
        .iter()
        .map(|server| {
            let check = match &sessions {
                Sessions::Daemon(_) if server.spotify().is_some() => client::check(config, &server.name)
                    .unwrap_or_else(|err| ServerCheck::not_made(format!("checked by the running daemon: {err}"))),
                Sessions::Here(store) | Sessions::Daemon(store) => {
                    check_server(server, &config.sync, store, &Default::default())
                }
            };
            (server, check)
        })
        .collect();
    print!("{}", table(&checks));
    let problems = checks.iter().filter(|(_, check)| !check.ok()).count();
    match problems {
        0 => Ok(0),
        _ => Err(CliError::Failed(format!("{problems} of {} servers have a problem; see above", checks.len()))),
    }
}

/// The table, then one line per problem.
fn table(checks: &[(&ServerConfig, ServerCheck)]) -> String {
    let yes_no = |value: Option<bool>, yes: &str, no: &str| {
        match value {
            Some(true) => yes,
            Some(false) => no,
            None => "-",
        }
        .to_string()
    };
    let mut rows = vec![["SERVER", "KIND", "URL", "REACHABLE", "CREDENTIALS", "LIBRARIES", "CLOCK"].map(String::from)];
    for (server, check) in checks {
        rows.push([
            server.name.clone(),
            server.kind().name().to_string(),
            server.url().to_string(),
            yes_no(check.reachable, "yes", "no"),
            yes_no(check.credentials_accepted, "accepted", "refused"),
            check.libraries.as_ref().map_or_else(
                || "-".to_string(),
                |titles| format!("{}: {}", titles.len(), titles.join(", ")).trim_end_matches(": ").to_string(),
            ),
            check.clock_offset_seconds.map_or_else(|| "-".to_string(), |offset| format!("{offset:+} s")),
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    for (server, check) in checks {
        if let Some(problem) = &check.problem {
            let _ = writeln!(out, "{}: {problem}", server.name);
        }
    }
    out
}
