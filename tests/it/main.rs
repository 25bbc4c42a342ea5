//! mediasync's integration tests: one binary, every module a scenario family.
//! Media servers are faked on 127.0.0.1 with port 0; nothing talks to the
//! internet, and nothing reads outside the repository. The fakes need the
//! `demo` feature (on by default; Cargo.toml makes it this binary's
//! required feature).
//!
//! - `support`: fixtures (fake server, store in a temp dir, sync helpers)
//! - `fake_plex`: the fake behaves like PMS (XML default, 401, paging, quirks)
//! - `plex_sync`: the engine against the fake: exact mirrors, incremental
//!   request counts, mutations, resume, guard, bad answers, failures
//! - `jellyfin_sync`: the engine against the fake Jellyfin/Emby server, every
//!   scenario for every version behaviour (10.8, 10.10, 10.11, 12, Emby),
//!   the filter fallback, and the fake's own fidelity
//! - `fake_spotify`: the fake Spotify API and accounts service behave like
//!   the real ones (paging, cursors, snapshots, 403s, tokens, 429s, quota)
//! - `spotify_sync`: the engine and the Spotify source against that fake:
//!   exact mirrors, resync cost, rate limits and quota across restarts,
//!   token refresh and re-authorisation, Connect Spotify over HTTP
//! - `hostile`: every source against its fake in hostile mode (extreme and
//!   dated `Retry-After`, garbage, giant bodies and titles, wrong types,
//!   deep nesting, slow drips): no panic, the catalog intact
//! - `fuzz`: property tests of every source's parsers (proptest): random,
//!   shaped and mutated answers and headers, zero panics, figures printed
//!   (cases: MEDIASYNC_FUZZ_CASES)
//! - `history`: the Spotify and Plex histories against their fakes: exact
//!   after a first poll, new plays, a restart, plays arriving mid-walk and a
//!   SIGKILL mid-poll; one request per idle poll; possible gaps; plays the
//!   server forgets are kept; no poll without the scope
//! - `history_daemon`: the history under `mediasync run`: its own schedule,
//!   a quota wait holding it and the history first when it ends, a long
//!   library sync making way for it, the page, `/api/history`, metrics
//! - `cli`: the binary as a user runs it: configs, exit codes, SIGKILL resume
//! - `artwork`: the artwork mirror against the simulated servers' images:
//!   exact after adds, poster changes and deletions, zero image requests
//!   unchanged, no torn image after SIGKILL, 304-only re-checks, the budget,
//!   the artwork route, page and feed
//! - `churn`: property tests: seeded syncs while every simulated server
//!   changes between pages (some killed and resumed): nothing live dropped,
//!   no deletion the server did not make, exact one quiet sync later
//! - `migration`: version-1 stores migrate on open, crash-safely and
//!   resumably
//! - `portability`: a store written on x86_64 reads identically on ARM
//! - `disk`: a storage backend that loses power on cue (for `power_loss`
//!   and `migration`)
//! - `power_loss`: the store under thousands of simulated power cuts
//! - `push`: the servers' notifications drive near-real-time syncs: a change
//!   mirrored seconds after its notice, a scan's burst, reconnection and
//!   catch-up, no request while idle
//! - `under_changes`: syncs while the server changes between two requests:
//!   no live item dropped, lookups before deletions, moving listings,
//!   cursors and clocks, playlist entries
//! - `status_server`: the status page and API over real HTTP: endpoints,
//!   control auth, Host checks (DNS rebinding), the change feed, HTTP as
//!   hyper reads it, limits against slow and flooding clients and slow
//!   export readers
//! - `status_fuzz`: random and mutated requests against the status server
//!   (proptest; `MEDIASYNC_FUZZ_CASES` cases): no panic, nothing granted
//!   without the token
//! - `stop`: SIGTERM and pause during a 15-minute rate-limit wait: nothing
//!   more is sent, the store is closed, the next start does no repair
//! - `browser`: the status page rendered by headless Chromium (screenshot kept)
//! - `daemon`: `mediasync run` as systemd runs it: READY and watchdog,
//!   one-shot commands through the running daemon, SIGTERM mid-sync resumes,
//!   sync slots, pause and resume, rate-limit waits, the demo, the unedited
//!   packaged config, a server that comes up late (retries)
//! - `reload`: SIGHUP adds, changes and removes servers; a bad file keeps
//!   the running config
//! - `check`: `mediasync check` and the page's check, with and without a
//!   running daemon

#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a panic is a failed test, and sizes and counts are small and known"
)]

mod artwork;
mod browser;
mod check;
mod churn;
mod cli;
mod daemon;
mod disk;
mod fake_plex;
mod fake_spotify;
mod fuzz;
mod history;
mod history_daemon;
mod hostile;
mod jellyfin_sync;
mod migration;
mod plex_sync;
mod portability;
mod power_loss;
mod push;
mod reload;
mod spotify_sync;
mod status_fuzz;
mod status_server;
mod stop;
mod support;
mod under_changes;
