//! mediasync keeps a local catalog of media libraries (Plex, Jellyfin, Emby) in sync,
//! incrementally, in one redb file. `main.rs` is a thin shell over `cli`;
//! ARCHITECTURE.md maps the modules and their invariants.

pub mod app;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod export;
pub mod fake;
pub mod model;
pub mod source;
pub mod store;
pub mod sync;
pub mod web;
