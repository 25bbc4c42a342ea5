//! Simulated media servers for tests, benchmarks and the demo. They run on
//! 127.0.0.1 with an OS-chosen port and answer like the real servers,
//! quirks included (`../shared/api-notes.md`): a fake kinder than the real
//! server would hide bugs.

pub mod plex;
mod query;
