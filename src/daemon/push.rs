//! One thread per server whose notifications are listened to (`push`): it
//! keeps the server's socket open and hands every report to the
//! application. The threads hold the application weakly, so closing the
//! store never waits for a socket; shutdown sets their stop, which ends a
//! wait, a sign-in in flight and the read loop within a tick.

use crate::app::App;
use crate::config::Backend;
use crate::push::{self, Protocol};
use crate::source::Stop;
use std::sync::Arc;

/// The running listeners' stop signals.
pub(super) struct Listeners {
    stops: Vec<Arc<Stop>>,
}

impl Listeners {
    pub(super) fn stop(&self) {
        for stop in &self.stops {
            stop.set();
        }
    }
}

pub(super) fn start(app: &Arc<App>) -> Listeners {
    let mut stops = Vec::new();
    for server in app.config.servers.iter().filter(|server| server.notifications()) {
        let protocol = match server.backend {
            Backend::Plex(_) => Protocol::Plex,
            Backend::Jellyfin(_) => Protocol::MediaBrowser,
            Backend::Spotify(_) => continue,
        };
        let stop = Arc::new(Stop::new());
        let name = server.name.clone();
        let weak = Arc::downgrade(app);
        let listening = Arc::clone(&stop);
        let started = std::thread::Builder::new().name(format!("push-{name}")).spawn(move || {
            let mut endpoint = || match weak.upgrade() {
                Some(app) => app.push_endpoint(&name, &listening),
                None => {
                    listening.set();
                    Err("stopped".into())
                }
            };
            let mut report = |event| {
                if let Some(app) = weak.upgrade() {
                    app.on_push(&name, event);
                }
            };
            push::listen(protocol, &listening, &mut endpoint, &mut report);
        });
        match started {
            Ok(_) => stops.push(stop),
            Err(err) => log::error!("{}: cannot start the notification listener: {err}", server.name),
        }
    }
    Listeners { stops }
}
