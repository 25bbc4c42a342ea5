//! `mediasync run`: the long-running service's runtime. A tokio runtime
//! drives one scheduler task per server (`scheduler`), a notification
//! listener thread per server that has one (`push`), the status server
//! (`web`), SIGHUP (the config read again: `App::reload`, and schedulers and
//! listeners started for servers it adds), SIGTERM/SIGINT and shutdown, and
//! tells systemd READY and feeds its watchdog (`notify`). The state the
//! controls change and the status shows is the application's (`app::App`);
//! this module only drives it.

pub mod notify;
mod push;
mod scheduler;

use crate::app::App;
use crate::config::Config;
use crate::store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long shutdown waits for running syncs to end. A stop ends their
/// waits and requests at once; only a connection being made (at most 10 s,
/// `source::http`) holds one up, and the unit's `TimeoutStopSec` leaves room.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);
/// How long the store's closing waits for threads still holding it (a sync
/// given up on, a status-page answer being written).
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Why the service could not start.
#[derive(Debug)]
pub enum DaemonError {
    Runtime(std::io::Error),
    /// The status page's address is taken or not ours.
    Listen(SocketAddr, std::io::Error),
    StatusServer(std::io::Error),
    /// No admin token could be read or generated for the controls.
    AdminToken(crate::app::admin_token::TokenError),
    Signal(&'static str, std::io::Error),
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonError::Runtime(err) => write!(f, "cannot start the async runtime: {err}"),
            DaemonError::Listen(listen, err) => write!(
                f,
                "cannot listen on {listen} for the status page: {err}; change [status] listen or stop what uses the port"
            ),
            DaemonError::StatusServer(err) => write!(f, "status server: {err}"),
            DaemonError::AdminToken(err) => write!(f, "status server: {err}"),
            DaemonError::Signal(signal, err) => write!(f, "cannot watch {signal}: {err}"),
        }
    }
}

impl std::error::Error for DaemonError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DaemonError::Runtime(err)
            | DaemonError::Listen(_, err)
            | DaemonError::StatusServer(err)
            | DaemonError::Signal(_, err) => Some(err),
            DaemonError::AdminToken(err) => Some(err),
        }
    }
}

/// Runs the service until SIGTERM or SIGINT. `store` is already open (the
/// caller reports lock and damage errors with their exit codes); it is
/// closed on every way out, so the next start needs no repair.
pub fn run(config: Config, store: Store) -> Result<(), DaemonError> {
    let app = Arc::new(App::new(config, store));
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)
        .and_then(|runtime| {
            let result = runtime.block_on(serve(Arc::clone(&app)));
            // Dropping a runtime waits for every blocking task; one that has
            // not ended by now is given up on (`close` says so).
            runtime.shutdown_timeout(Duration::from_secs(1));
            result
        });
    close(app);
    result
}

/// Drops the application, and with it the store, once no thread holds it
/// any more: redb marks the file cleanly closed only when its `Database`
/// is dropped, else the next open repairs the whole file first.
fn close(app: Arc<App>) {
    app.shut_down();
    let started = std::time::Instant::now();
    let mut app = app;
    loop {
        match Arc::try_unwrap(app) {
            Ok(app) => {
                drop(app);
                log::info!("store closed");
                return;
            }
            Err(shared) if started.elapsed() >= CLOSE_GRACE => {
                log::warn!(
                    "a thread still holds the store ({} references); the next start checks it before serving",
                    Arc::strong_count(&shared).saturating_sub(1)
                );
                return;
            }
            Err(shared) => {
                app = shared;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

async fn serve(app: Arc<App>) -> Result<(), DaemonError> {
    let listen = app.config().status.listen;
    let listener = std::net::TcpListener::bind(listen).map_err(|err| DaemonError::Listen(listen, err))?;
    let config = app.config();
    let access = crate::web::access::Access::from_config(&config).map_err(DaemonError::AdminToken)?;
    let runtime = tokio::runtime::Handle::current();
    let mut web = crate::web::start(Arc::clone(&app), access, listener, &runtime).map_err(DaemonError::StatusServer)?;
    log::info!(
        "mediasync {} running: {} servers, status page on http://{}/",
        env!("CARGO_PKG_VERSION"),
        config.servers.len(),
        web.address()
    );
    if config.status.admin_token.is_none() {
        log::info!(
            "the controls' admin token is kept in {}; `mediasync admin-token` prints it",
            crate::app::admin_token::path(&config).display()
        );
    }
    if config.servers.is_empty() {
        log::warn!(
            "no media server is configured in {}: nothing to sync; add a [[server]] entry (the file lists examples), then `systemctl reload mediasync`",
            config.path.display()
        );
    }
    let semaphore = Arc::new(tokio::sync::Semaphore::new(config.daemon.max_concurrent_syncs as usize));
    let schedule = |name: String| tokio::spawn(scheduler::server_loop(Arc::clone(&app), name, Arc::clone(&semaphore)));
    let mut tasks: Vec<_> = config.servers.iter().map(|server| schedule(server.name.clone())).collect();
    push::start(&app, &config.servers.iter().map(|server| server.name.clone()).collect::<Vec<_>>());
    notify::notify("READY=1");

    let watchdog_every = notify::watchdog_interval();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|err| DaemonError::Signal("SIGTERM", err))?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|err| DaemonError::Signal("SIGINT", err))?;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|err| DaemonError::Signal("SIGHUP", err))?;
    let mut tick = tokio::time::interval(watchdog_every.unwrap_or(Duration::from_secs(3600)));
    loop {
        tokio::select! {
            _ = terminate.recv() => { log::info!("SIGTERM: stopping"); break; }
            _ = interrupt.recv() => { log::info!("SIGINT: stopping"); break; }
            _ = hangup.recv() => {
                let path = app.config().path.clone();
                log::info!("SIGHUP: reading the config {} again", path.display());
                let added = app.reload(crate::config::load(&path));
                push::start(&app, &added);
                tasks.extend(added.into_iter().map(schedule));
            }
            _ = tick.tick() => {
                // Fed only while every scheduler task and the status server live;
                // otherwise systemd restarts a daemon that stopped working.
                let schedulers_alive = tasks.iter().all(|task| !task.is_finished());
                if watchdog_every.is_some() && schedulers_alive && web.alive() {
                    notify::notify("WATCHDOG=1");
                } else if watchdog_every.is_some() {
                    log::error!("a scheduler task or the status server stopped; not feeding the watchdog");
                }
            }
        }
    }
    notify::notify("STOPPING=1");
    app.shut_down();
    #[allow(clippy::arithmetic_side_effects, reason = "a grace of seconds after now cannot overflow")]
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while app.any_syncing() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if app.any_syncing() {
        log::warn!("a sync did not stop in time; its last committed page is kept and the next run resumes there");
    }
    web.stop();
    log::info!("stopped");
    Ok(())
}
