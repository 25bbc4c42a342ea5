//! Command-line parsing and the one-shot commands (`sync`, `export`,
//! `status`, `check` in `check`, `admin-token`), plus `fake-plex`, a
//! simulated server for trying mediasync and for benchmarks. Errors carry
//! the exit code `main` returns. While a running daemon holds the store, the
//! commands go through `client`.

mod artwork;
mod check;
pub mod client;

use crate::config::{self, Config, ConfigError};
use crate::store::{Store, StoreError, StoreErrorKind, TombstoneLimits};
use crate::sync::{self, Options, UnchangedRuns};
use std::io::Write;
use std::path::PathBuf;

const USAGE: &str = "\
usage: mediasync [--config FILE] COMMAND [OPTIONS]

commands:
  sync [--server NAME] [--full] [--force]
        one sync pass over every configured server (or one), then exit;
        --full walks whole libraries, --force allows a sweep that deletes
        more than [sync] max_delete_share of a library
  export [--server NAME]
        stored items as JSON Lines on stdout
  status
        per server and library state, as JSON on stdout
  check
        each server with one request: reachable, token accepted, libraries
        found, clock offset; a table on stdout, exit 1 on any problem
  check --artwork [--recheck] [--server NAME]
        compare the artwork directory with the store and repair it (fetch
        what is missing, remove what is stale); --recheck also revalidates
        every image the server gave validators for (a 304 writes nothing)
  (sync, export and status go through the daemon's local API when
  `mediasync run` holds the store; check needs it for Spotify only)
  admin-token
        print the admin token the status page's controls and the export
        need: [status] admin_token, or the one the daemon generated next to
        the store at its first start (readable by root)
  run
        the daemon: sync each server on its schedule, serve the status
        page and API on [status] listen; reads the config again on SIGHUP,
        stops on SIGTERM/SIGINT
";

/// The simulated servers' commands, listed only by a build that has them.
#[cfg(feature = "demo")]
const DEMO_USAGE: &str = "  demo [--listen ADDR] [--items N]
        the daemon against built-in simulated Plex and Jellyfin servers
        (Plex's library changes every minute), fast schedules, a temporary store;
        status page on http://127.0.0.1:8787/ (no config needed)
  fake-plex [--listen ADDR] [--items N] [--token TOKEN] [--hostile SPEC]
        run a simulated Plex server with a generated library (for trying
        mediasync and for benchmarks); prints its URL, runs until stopped;
        --hostile makes every answer after the library list hostile:
        retry-after:VALUE, giant:BYTES, giant-title:BYTES, wrong-types,
        deep:DEPTH, garbage, truncated or slow-drip:BYTES:MILLIS
";
#[cfg(not(feature = "demo"))]
const DEMO_USAGE: &str = "";

const USAGE_FOOTER: &str = "
--config FILE defaults to $MEDIASYNC_CONFIG, then /etc/mediasync/config.toml.
Logging: RUST_LOG=debug|info|warn|error (default info), on stderr.";

/// The `--help` text: the commands this build has, then the options.
pub fn usage() -> String {
    format!("{USAGE}{DEMO_USAGE}{USAGE_FOOTER}")
}

#[derive(Debug)]
pub enum CliError {
    Usage(String),
    Config(ConfigError),
    /// The config at this path has no `[[server]]` (as shipped).
    NoServers(PathBuf),
    Store(StoreError),
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) | CliError::Config(_) | CliError::NoServers(_) => 2,
            CliError::Store(_) => 3,
            CliError::Failed(_) => 1,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(message) => write!(f, "{message}\n\n{}", usage()),
            CliError::Config(err) => write!(f, "{err}"),
            CliError::NoServers(path) => write!(
                f,
                "no media server is configured in {}; its [[server]] entries are commented out: remove the \"#\" in front of the lines of one and put in your server's address and token",
                path.display()
            ),
            CliError::Store(err) => write!(f, "{err}"),
            CliError::Failed(message) => f.write_str(message),
        }
    }
}

/// A failure reported by its message (exit code 1).
fn failed(err: impl std::fmt::Display) -> CliError {
    CliError::Failed(err.to_string())
}

impl From<ConfigError> for CliError {
    fn from(err: ConfigError) -> CliError {
        CliError::Config(err)
    }
}

impl From<StoreError> for CliError {
    fn from(err: StoreError) -> CliError {
        CliError::Store(err)
    }
}

#[derive(Default)]
struct Args {
    config: Option<PathBuf>,
    command: Option<String>,
    server: Option<String>,
    full: bool,
    force: bool,
    /// `check --artwork` (repair) or `--recheck` (repair and revalidate).
    artwork: Option<crate::artwork::Recheck>,
    // Read by the demo commands only.
    #[cfg_attr(not(feature = "demo"), allow(dead_code))]
    listen: Option<String>,
    #[cfg_attr(not(feature = "demo"), allow(dead_code))]
    items: Option<usize>,
    #[cfg_attr(not(feature = "demo"), allow(dead_code))]
    token: Option<String>,
    #[cfg_attr(not(feature = "demo"), allow(dead_code))]
    hostile: Option<String>,
}

fn parse(args: &[String]) -> Result<Args, CliError> {
    let mut parsed = Args::default();
    let mut rest = args.iter();
    let value = |rest: &mut std::slice::Iter<'_, String>, flag: &str| {
        rest.next().cloned().ok_or_else(|| CliError::Usage(format!("{flag} needs a value")))
    };
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, inline)) if flag.starts_with("--") => (flag, Some(inline.to_string())),
            _ => (arg.as_str(), None),
        };
        let take = |rest: &mut std::slice::Iter<'_, String>| match &inline {
            Some(inline) => Ok(inline.clone()),
            None => value(rest, flag),
        };
        match flag {
            "--config" | "-c" => parsed.config = Some(PathBuf::from(take(&mut rest)?)),
            "--server" => parsed.server = Some(take(&mut rest)?),
            "--listen" => parsed.listen = Some(take(&mut rest)?),
            "--token" => parsed.token = Some(take(&mut rest)?),
            "--hostile" => parsed.hostile = Some(take(&mut rest)?),
            "--items" => {
                let text = take(&mut rest)?;
                parsed.items =
                    Some(text.parse().map_err(|_| CliError::Usage(format!("--items {text}: not a number")))?);
            }
            "--full" => parsed.full = true,
            "--force" => parsed.force = true,
            "--artwork" => {
                parsed.artwork.get_or_insert(crate::artwork::Recheck::Missing);
            }
            "--recheck" => parsed.artwork = Some(crate::artwork::Recheck::WithValidators),
            "--help" | "-h" | "help" => parsed.command = Some("help".into()),
            "--version" | "-V" => parsed.command = Some("version".into()),
            other if other.starts_with('-') => return Err(CliError::Usage(format!("unknown option {other}"))),
            other if parsed.command.is_none() => parsed.command = Some(other.to_string()),
            other => return Err(CliError::Usage(format!("unexpected argument {other}"))),
        }
    }
    Ok(parsed)
}

pub fn run(args: &[String]) -> Result<i32, CliError> {
    let args = parse(args)?;
    match args.command.as_deref() {
        Some("help") => {
            println!("{}", usage());
            Ok(0)
        }
        Some("version") => {
            println!("mediasync {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        Some("sync") => sync_command(&args),
        Some("export") => export_command(&args),
        Some("status") => status_command(&args),
        Some("check") => match args.artwork {
            Some(recheck) => artwork::run(&load_config(&args)?, args.server.as_deref(), recheck),
            None => check::run(&load_config(&args)?),
        },
        Some("admin-token") => admin_token_command(&args),
        #[cfg(feature = "demo")]
        Some("fake-plex") => fake_plex_command(&args),
        Some("run") => run_command(&args),
        #[cfg(feature = "demo")]
        Some("demo") => crate::demo::run(args.listen.as_deref(), args.items).map(|()| 0).map_err(CliError::Failed),
        // scripts/package-deb.sh recognises the appliance build by this text.
        #[cfg(not(feature = "demo"))]
        Some(command @ ("demo" | "fake-plex")) => Err(CliError::Usage(format!(
            "{command}: this build has no simulated servers (built without the `demo` feature); \
             use a build with the default features, e.g. `cargo run --release -- {command}`"
        ))),
        Some(other) => Err(CliError::Usage(format!("unknown command {other}"))),
        None => Err(CliError::Usage("no command given".into())),
    }
}

fn load_config(args: &Args) -> Result<Config, CliError> {
    let path = config::locate(args.config.as_deref());
    Ok(config::load(&path)?)
}

fn check_server(config: &Config, server: Option<&str>) -> Result<(), CliError> {
    match server {
        Some(name) if !config.servers.iter().any(|server| server.name == name) => {
            let known: Vec<&str> = config.servers.iter().map(|server| server.name.as_str()).collect();
            Err(CliError::Usage(format!(
                "--server {name}: no such server in {}; configured: {}",
                config.path.display(),
                known.join(", ")
            )))
        }
        _ => Ok(()),
    }
}

fn sync_command(args: &Args) -> Result<i32, CliError> {
    let config = load_config(args)?;
    if config.servers.is_empty() {
        return Err(CliError::NoServers(config.path.clone()));
    }
    check_server(&config, args.server.as_deref())?;
    let store = match Store::open(&config.store.path, config.store.cache_bytes) {
        Err(err) if err.kind() == StoreErrorKind::Locked => return sync_through_daemon(&config, args),
        opened => opened?,
    };
    let stop = std::sync::Arc::new(crate::source::Stop::new());
    let mut all_ok = true;
    let mut stdout = std::io::stdout().lock();
    for server in &config.servers {
        if args.server.as_deref().is_some_and(|name| name != server.name) {
            continue;
        }
        let source = crate::source::build(server, &config.sync, &store, &stop);
        let options = Options {
            full: args.full,
            force: args.force,
            full_every: config.sync.full_every,
            max_delete_share: config.sync.max_delete_share,
            history: config.sync.history,
            page_size: server.page_size,
            unchanged_runs: UnchangedRuns::Unrecorded,
        };
        let report = sync::sync_server(&server.name, source.as_ref(), &store, &options, stop.flag());
        sync::compact_feed(&store, TombstoneLimits::new(config.store.max_tombstones, config.store.max_tombstone_age));
        for library in &report.libraries {
            let _ = writeln!(stdout, "{}", sync::summary_line(&server.name, library));
        }
        if let Some(artwork) = &config.artwork {
            let budget = crate::artwork::Budget { deadline: None };
            let recheck = crate::artwork::Recheck::Missing;
            let pass = crate::artwork::Pass { timeout: config.sync.timeout, stop: &stop, recheck, budget };
            let mirrored = crate::artwork::mirror_server(&store, server, artwork, pass)?;
            let _ = writeln!(stdout, "{}", mirrored.summary_line(&server.name));
        }
        match &report.error {
            Some(error) => {
                let _ = writeln!(stdout, "{}: FAILED: {error} (requests={})", server.name, report.requests);
            }
            None => {
                let _ = writeln!(stdout, "{}: requests={}", server.name, report.requests);
            }
        }
        all_ok &= report.ok();
    }
    report_peak_memory();
    if all_ok { Ok(0) } else { Err(CliError::Failed("some libraries did not sync; see the lines above".into())) }
}

fn export_command(args: &Args) -> Result<i32, CliError> {
    let config = load_config(args)?;
    check_server(&config, args.server.as_deref())?;
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let store = match Store::open(&config.store.path, config.store.cache_bytes) {
        Err(err) if err.kind() == StoreErrorKind::Locked => {
            client::export(&config, args.server.as_deref(), &mut stdout).map_err(failed)?;
            let _ = stdout.flush();
            return Ok(0);
        }
        opened => opened?,
    };
    crate::export::write(&store, args.server.as_deref(), &mut stdout)?;
    report_peak_memory();
    Ok(0)
}

fn status_command(args: &Args) -> Result<i32, CliError> {
    let config = load_config(args)?;
    let document = match Store::open(&config.store.path, config.store.cache_bytes) {
        Err(err) if err.kind() == StoreErrorKind::Locked => client::get_json(&config, "/api/status").map_err(failed)?,
        opened => crate::app::status::document(&config, &opened?)?.to_json().map_err(failed)?,
    };
    #[allow(clippy::expect_used, reason = "a serde_json Value always serializes")]
    let text = serde_json::to_string_pretty(&document).expect("JSON values serialize");
    println!("{text}");
    Ok(0)
}

/// Prints the token the daemon's controls and export require.
fn admin_token_command(args: &Args) -> Result<i32, CliError> {
    let config = load_config(args)?;
    match crate::app::admin_token::read(&config).map_err(failed)? {
        Some(token) => {
            println!("{token}");
            Ok(0)
        }
        None => Err(CliError::Failed(format!(
            "no admin token yet: the daemon generates one in {} at its first start (systemctl start mediasync), or set [status] admin_token",
            crate::app::admin_token::path(&config).display()
        ))),
    }
}

/// `sync` while the daemon holds the store: ask it to sync each server (or
/// the one named) as soon as it can, and say how to follow the runs.
fn sync_through_daemon(config: &Config, args: &Args) -> Result<i32, CliError> {
    for server in &config.servers {
        if args.server.as_deref().is_some_and(|name| name != server.name) {
            continue;
        }
        let message = client::request_sync(config, &server.name, args.full, args.force).map_err(failed)?;
        println!("{}: {message} from the running daemon; follow it with `mediasync status`", server.name);
    }
    Ok(0)
}

/// `mediasync run`: the daemon. The store is opened first so a lock or a
/// damaged file is reported with the store's exit code.
fn run_command(args: &Args) -> Result<i32, CliError> {
    let config = load_config(args)?;
    let store = Store::open(&config.store.path, config.store.cache_bytes)?;
    crate::daemon::run(config, store).map_err(failed)?;
    Ok(0)
}

#[cfg(feature = "demo")]
fn fake_plex_command(args: &Args) -> Result<i32, CliError> {
    let listen = args.listen.clone().unwrap_or_else(|| "127.0.0.1:0".into());
    let token = args.token.clone().unwrap_or_else(|| "fake-token".into());
    let fake = crate::fake::plex::FakePlex::start_on(&listen, &token).map_err(CliError::Failed)?;
    fake.add_library_of(args.items.unwrap_or(2_000));
    // Its clock (its `Date`, what changes are stamped with) is this
    // machine's, as a real server's would be: `mediasync check` against it
    // shows no offset.
    fake.state().clock = crate::sync::now_epoch();
    if let Some(spec) = &args.hostile {
        // The library list answers; every request after it is hostile.
        let failure = crate::fake::Failure::from_spec(spec).map_err(CliError::Usage)?;
        fake.fail_from(2, failure);
    }
    println!("url={} items={}", fake.url(), fake.item_count());
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}

/// With MEDIASYNC_REPORT_PEAK_RSS set, prints the process's peak resident
/// memory to stderr (benchmarks read it).
fn report_peak_memory() {
    if std::env::var_os("MEDIASYNC_REPORT_PEAK_RSS").is_none() {
        return;
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(line) = status.lines().find(|line| line.starts_with("VmHWM:")) {
            let kib: String = line.chars().filter(char::is_ascii_digit).collect();
            eprintln!("peak_rss_kib={kib}");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn help_lists_the_simulated_servers_only_in_a_build_that_has_them() {
        let text = super::usage();
        assert!(text.contains("\n  run\n"), "{text}");
        assert!(text.contains("--config FILE defaults to"), "{text}");
        assert_eq!(text.contains("\n  demo ["), cfg!(feature = "demo"), "{text}");
        assert_eq!(text.contains("fake-plex"), cfg!(feature = "demo"), "{text}");
    }
}
