//! The status document: per server and library, what is stored and how the
//! last runs went. `mediasync status` prints it; it is read from the store
//! alone and never makes a request.

use crate::config::Config;
use crate::store::records::LibraryState;
use crate::store::{Session, Store, StoreError};
use serde_json::{Value, json};

pub fn document(config: &Config, store: &Store) -> Result<Value, StoreError> {
    let libraries = store.libraries()?;
    let mut servers = Vec::new();
    for server in &config.servers {
        let server_state = store.server_state(&server.name)?;
        let mut entries = Vec::new();
        for (number, state) in libraries.iter().filter(|(_, state)| state.server == server.name) {
            let runs = store.runs(*number)?;
            entries.push(library(state, runs.last()));
        }
        let mut entry = json!({
            "name": server.name,
            "kind": server.kind().name(),
            "url": server.url(),
            "last_attempt_at": server_state.last_attempt_at,
            "last_success_at": server_state.last_success_at,
            "last_error": server_state.last_error,
            "libraries": entries,
        });
        if server.spotify().is_some() {
            entry["account"] = account(&store.session(&server.name)?);
        }
        servers.push(entry);
    }
    Ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "store": config.store.path.display().to_string(),
        "servers": servers,
    }))
}

/// A Spotify account as the status shows it: never a token.
fn account(session: &Session) -> Value {
    let now = crate::sync::now_epoch();
    let waiting_until = session.waiting_until(now);
    json!({
        "connected": session.connected(),
        "connected_at": session.connected_at,
        "reauthorize": session.reauthorize,
        "scope": session.scope,
        "waiting_until": waiting_until,
        "waiting_for": waiting_until.and(session.not_before_reason.clone()),
    })
}

fn library(state: &LibraryState, last_run: Option<&crate::store::records::RunRecord>) -> Value {
    let status = match (&state.checkpoint, &state.last_error) {
        (Some(_), Some(_)) => "failed",
        (None, Some(_)) => "failed",
        (Some(_), None) => "interrupted",
        (None, None) if state.last_success_at.is_some() => "idle",
        (None, None) => "new",
    };
    let checkpoint = state.checkpoint.as_ref().map(|checkpoint| {
        json!({
            "pass": checkpoint.pass,
            "kind": checkpoint.kinds.get(checkpoint.kind_index as usize),
            "position": checkpoint.start,
            "counters": checkpoint.counters,
        })
    });
    json!({
        "id": state.library_id,
        "title": state.title,
        "state": status,
        "items": state.total(),
        "counts": state.counts,
        "last_success_at": state.last_success_at,
        "last_full_at": state.last_full_at,
        "last_error": state.last_error,
        "needs_full": state.needs_full,
        "skipped": state.skipped,
        "checkpoint": checkpoint,
        "last_run": last_run,
    })
}
