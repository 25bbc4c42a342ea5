//! One thread per server whose notifications are listened to (`push`): it
//! keeps the server's socket open and hands every report to the
//! application. The threads hold the application weakly, so closing the
//! store never waits for a socket; they stop with the application's
//! shutdown signal, which ends a wait, a sign-in in flight and the read
//! loop within a tick, whichever way the service stops.

use crate::app::App;
use crate::config::Backend;
use crate::push::{self, Protocol};
use std::sync::Arc;

/// Starts the listeners of the servers named that listen (at the start, and
/// for servers a reload adds).
pub(super) fn start(app: &Arc<App>, names: &[String]) {
    let config = app.config();
    for server in names.iter().filter_map(|name| config.server(name)).filter(|server| server.notifications()) {
        let protocol = match server.backend {
            Backend::Plex(_) => Protocol::Plex,
            Backend::Jellyfin(_) => Protocol::MediaBrowser,
            Backend::Spotify(_) => continue,
        };
        let stop = app.shutdown_signal();
        let name = server.name.clone();
        let weak = Arc::downgrade(app);
        let started = std::thread::Builder::new().name(format!("push-{name}")).spawn(move || {
            let mut endpoint = || match weak.upgrade() {
                Some(app) => app.push_endpoint(&name, &stop),
                None => {
                    stop.set();
                    Err("stopped".into())
                }
            };
            let mut report = |event| {
                if let Some(app) = weak.upgrade() {
                    app.on_push(&name, event);
                }
            };
            push::listen(protocol, &stop, &mut endpoint, &mut report);
        });
        if let Err(err) = started {
            log::error!("{}: cannot start the notification listener: {err}", server.name);
        }
    }
}
