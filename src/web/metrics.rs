//! `GET /metrics`: Prometheus text format. Per server the daemon's run,
//! failure, request and time counters since start; per library the stored
//! items by kind, the last success and the last run's duration, requests
//! and outcome, read from the store.

use super::http::Response;
use crate::app::{App, Live};
use std::fmt::Write;

fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

pub fn render(app: &App) -> Response {
    match text(app) {
        Ok(text) => Response::new(200, "text/plain; version=0.0.4; charset=utf-8", text),
        Err(err) => Response::error(500, &format!("reading the store failed: {err}")),
    }
}

pub fn text(app: &App) -> Result<String, crate::store::StoreError> {
    let mut out = String::new();
    let servers: Vec<(String, Live, bool)> = app
        .config()
        .servers
        .iter()
        .map(|server| {
            let paused = app.store.control(&server.name).map(|control| control.paused).unwrap_or(false);
            (server.name.clone(), app.live(&server.name).unwrap_or_default(), paused)
        })
        .collect();
    type Field = fn(&Live, bool) -> f64;
    let per_server: [(&str, &str, &str, Field); 7] = [
        ("mediasync_runs_total", "counter", "Sync runs since the daemon started.", |live, _| live.runs as f64),
        ("mediasync_failed_runs_total", "counter", "Sync runs that failed since the daemon started.", |live, _| {
            live.failed_runs as f64
        }),
        (
            "mediasync_requests_total",
            "counter",
            "Requests made to the media server since the daemon started.",
            |live, _| live.requests as f64,
        ),
        ("mediasync_sync_seconds_total", "counter", "Seconds spent syncing since the daemon started.", |live, _| {
            live.run_seconds
        }),
        ("mediasync_syncing", "gauge", "1 while the server syncs.", |live, _| f64::from(u8::from(live.syncing))),
        ("mediasync_paused", "gauge", "1 while the server is paused.", |_, paused| f64::from(u8::from(paused))),
        ("mediasync_next_run_timestamp_seconds", "gauge", "When the next scheduled sync starts.", |live, _| {
            live.next_run_at.unwrap_or(0) as f64
        }),
    ];
    for (name, kind, help, field) in per_server {
        header(&mut out, name, kind, help);
        for (server, live, paused) in &servers {
            let _ = writeln!(out, "{name}{{server=\"{}\"}} {}", label(server), field(live, *paused));
        }
    }

    let libraries = app.store.libraries()?;
    header(&mut out, "mediasync_items", "gauge", "Stored items by library and kind.");
    for (_, state) in &libraries {
        for (kind, count) in &state.counts {
            let _ = writeln!(
                out,
                "mediasync_items{{server=\"{}\",library=\"{}\",kind=\"{kind}\"}} {count}",
                label(&state.server),
                label(&state.library_id)
            );
        }
    }
    header(&mut out, "mediasync_last_success_timestamp_seconds", "gauge", "When the library last synced successfully.");
    for (_, state) in &libraries {
        if let Some(at) = state.last_success_at {
            let _ = writeln!(
                out,
                "mediasync_last_success_timestamp_seconds{{server=\"{}\",library=\"{}\"}} {at}",
                label(&state.server),
                label(&state.library_id)
            );
        }
    }
    header(&mut out, "mediasync_library_failed", "gauge", "1 when the library's last run failed.");
    for (_, state) in &libraries {
        let _ = writeln!(
            out,
            "mediasync_library_failed{{server=\"{}\",library=\"{}\"}} {}",
            label(&state.server),
            label(&state.library_id),
            u8::from(state.last_error.is_some())
        );
    }
    header(&mut out, "mediasync_last_run_duration_seconds", "gauge", "Duration of the library's last run.");
    let mut requests = String::new();
    for (number, state) in &libraries {
        if let Some(run) = app.store.runs(*number)?.last() {
            let labels = format!("server=\"{}\",library=\"{}\"", label(&state.server), label(&state.library_id));
            let _ =
                writeln!(out, "mediasync_last_run_duration_seconds{{{labels}}} {}", run.duration_ms as f64 / 1000.0);
            let _ = writeln!(requests, "mediasync_last_run_requests{{{labels}}} {}", run.counters.requests);
        }
    }
    header(&mut out, "mediasync_last_run_requests", "gauge", "Requests made by the library's last run.");
    out.push_str(&requests);
    header(&mut out, "mediasync_up_since_timestamp_seconds", "gauge", "When the daemon started.");
    let _ = writeln!(out, "mediasync_up_since_timestamp_seconds {}", app.started_at);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
