//! mediasync keeps a local catalog of media libraries (Plex, Jellyfin, Emby,
//! Spotify) in sync, incrementally, in one redb file. `main.rs` is a thin
//! shell over `cli`; ARCHITECTURE.md maps the modules and their invariants.
//! The simulated servers and the demo exist only with the `demo` feature (on
//! by default, off in the appliance binary).

pub mod app;
pub mod artwork;
pub mod cli;
pub mod config;
pub mod daemon;
#[cfg(feature = "demo")]
pub mod demo;
pub mod export;
#[cfg(feature = "demo")]
pub mod fake;
pub mod model;
pub mod push;
pub mod source;
pub mod store;
pub mod sync;
pub mod web;
