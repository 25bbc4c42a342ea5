//! Schedule maths as pure functions over an explicit clock, so they are
//! tested with fixed times: the staggered default schedules, the next run
//! after a moment, a schedule's interval, the rule that decides whether a
//! server syncs as soon as the daemon starts, the backoff of retries after
//! failed runs, and which of the slot, a retry or a server's wait comes
//! first.

use chrono::{DateTime, TimeZone};
use cron::Schedule;
use std::str::FromStr;
use std::time::Duration;

/// Minute of the first server's default slot, and the gap between servers.
const FIRST_MINUTE: usize = 10;
const STAGGER_MINUTES: usize = 4;

/// The default schedule of the server at `position` (0-based) in the
/// config: every 12 hours, at minute 10 for the first server, 14 for the
/// second, 18 for the third, and so on, so servers never hit the network or
/// the SD card at the same time. Past minute 59 the slot moves to the next
/// hour (the 14th server syncs at 01:02 and 13:02).
#[allow(clippy::expect_used, reason = "minute < 60 and hour < 24 make a valid cron line")]
pub fn default_for(position: usize) -> Schedule {
    let offset = STAGGER_MINUTES.saturating_mul(position).saturating_add(FIRST_MINUTE);
    let minute = offset % 60;
    let hour = (offset / 60) % 12;
    let text = format!("0 {minute} {hour},{} * * *", hour.saturating_add(12));
    Schedule::from_str(&text).expect("the default schedule is valid cron")
}

/// The schedule of one server: its configured one, else the staggered default.
pub fn for_server(config: &crate::config::Config, name: &str) -> Schedule {
    if let Some(schedule) = config.daemon.schedules.get(name) {
        return schedule.clone();
    }
    let position = config.servers.iter().position(|server| server.name == name).unwrap_or(0);
    default_for(position)
}

/// The first firing strictly after `now`.
pub fn next_after<Tz: TimeZone>(schedule: &Schedule, now: &DateTime<Tz>) -> Option<DateTime<Tz>> {
    schedule.after(now).next()
}

/// The gap between the next two firings after `now`: the schedule's
/// interval, used as the default freshness window.
pub fn interval<Tz: TimeZone>(schedule: &Schedule, now: &DateTime<Tz>) -> Duration {
    let mut upcoming = schedule.after(now);
    match (upcoming.next(), upcoming.next()) {
        (Some(first), Some(second)) => second.signed_duration_since(first).to_std().unwrap_or(Duration::ZERO),
        _ => Duration::from_secs(12 * 3600),
    }
}

/// Whether a server syncs as soon as the daemon starts (or a reload changes
/// it): when its last run did not finish (it failed, or a library holds an
/// interrupted run's checkpoint), it never succeeded, or its last success
/// (epoch seconds) is at least `freshness` old. A last success in the
/// future (a clock that jumped back) counts as fresh, so a wrong clock
/// never causes a burst of syncs.
pub fn due_at_start(last_success: Option<i64>, unfinished: bool, freshness: Duration, now: i64) -> bool {
    match last_success {
        _ if unfinished => true,
        None => true,
        Some(last) => now.saturating_sub(last) >= i64::try_from(freshness.as_secs()).unwrap_or(i64::MAX),
    }
}

/// The wait before the retry that follows `failures` failed runs in a row
/// (1 or more): `first`, doubled for every failure before the last, at most
/// `max`, then varied by up to a fifth either way by `jitter` (0 to 1), so
/// boxes that restarted together do not retry together.
pub fn retry_delay(first: Duration, max: Duration, failures: u32, jitter: f64) -> Duration {
    let doubling = 1u32.checked_shl(failures.saturating_sub(1)).unwrap_or(u32::MAX);
    let base = first.saturating_mul(doubling).min(max);
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(base)
}

/// When the next run starts (epoch milliseconds, like every argument): at
/// once when `due`, else at the schedule's `slot` or an earlier retry. A
/// wait the server asked for (`server_wait`, Spotify's stored rate limit or
/// quota) takes the retry's place: a run never starts before it when due,
/// nor does a retry hasten it.
pub fn next_run(slot: i64, due: bool, retry: Option<i64>, server_wait: Option<i64>, now: i64) -> i64 {
    match (server_wait, due) {
        (Some(wait), true) => wait.max(now),
        (Some(wait), false) => wait.min(slot),
        (None, true) => now,
        (None, false) => retry.map_or(slot, |retry| retry.min(slot)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Timelike, Utc};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn defaults_are_staggered_by_position() {
        let midnight = at("2026-01-01T00:00:00Z");
        let minutes: Vec<u32> =
            (0..4).map(|position| next_after(&default_for(position), &midnight).unwrap().minute()).collect();
        assert_eq!(minutes, vec![10, 14, 18, 22]);
        for position in 0..20 {
            let next = next_after(&default_for(position), &midnight).unwrap();
            assert_eq!(next.second(), 0);
            assert_eq!(interval(&default_for(position), &midnight), Duration::from_secs(12 * 3600));
        }
        // The 13th server wraps past minute 59 into the next hour.
        assert_eq!(next_after(&default_for(13), &midnight).unwrap(), at("2026-01-01T01:02:00Z"));
        let slots: std::collections::BTreeSet<_> =
            (0..30).map(|position| next_after(&default_for(position), &midnight).unwrap()).collect();
        assert_eq!(slots.len(), 30, "two servers share a slot");
    }

    #[test]
    fn next_run_is_strictly_after_now() {
        let schedule = default_for(0);
        assert_eq!(next_after(&schedule, &at("2026-01-01T00:00:00Z")).unwrap(), at("2026-01-01T00:10:00Z"));
        assert_eq!(next_after(&schedule, &at("2026-01-01T00:10:00Z")).unwrap(), at("2026-01-01T12:10:00Z"));
        assert_eq!(next_after(&schedule, &at("2026-01-01T23:59:59Z")).unwrap(), at("2026-01-02T00:10:00Z"));
        let nightly = crate::config::parse_schedule("0 30 3 * * *").unwrap();
        assert_eq!(next_after(&nightly, &at("2026-01-01T04:00:00Z")).unwrap(), at("2026-01-02T03:30:00Z"));
        assert_eq!(interval(&nightly, &at("2026-01-01T04:00:00Z")), Duration::from_secs(86_400));
        let fast = crate::config::parse_schedule("*/20 * * * * *").unwrap();
        assert_eq!(interval(&fast, &at("2026-01-01T04:00:05Z")), Duration::from_secs(20));
    }

    #[test]
    fn freshness_window_decides_the_start() {
        let now = at("2026-01-01T12:00:00Z").timestamp();
        let twelve_hours = Duration::from_secs(12 * 3600);
        assert!(due_at_start(None, false, twelve_hours, now), "never synced: sync now");
        assert!(!due_at_start(Some(now - 3600), false, twelve_hours, now), "fresh: wait for the slot");
        assert!(due_at_start(Some(now - 12 * 3600), false, twelve_hours, now), "exactly stale: sync now");
        assert!(due_at_start(Some(now - 13 * 3600), false, twelve_hours, now));
        assert!(!due_at_start(Some(now + 3600), false, twelve_hours, now), "a future success counts as fresh");
        assert!(due_at_start(Some(now - 60), true, twelve_hours, now), "a failed or interrupted last run: sync now");
    }

    #[test]
    fn retries_back_off_from_the_first_wait_to_the_cap_with_a_fifth_of_jitter() {
        let minute = Duration::from_secs(60);
        let hour = Duration::from_secs(3600);
        let minutes = |failures| retry_delay(minute, hour, failures, 0.5).as_secs() / 60;
        let waits: Vec<u64> = (1..=9).map(minutes).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(minute, hour, 1, 0.0), Duration::from_secs(48));
        assert_eq!(retry_delay(minute, hour, 1, 1.0), Duration::from_secs(72));
        assert_eq!(retry_delay(minute, hour, 40, 1.0), Duration::from_secs(72 * 60), "no overflow past 32 doublings");
        assert_eq!(retry_delay(minute, hour, u32::MAX, 2.0), Duration::from_secs(72 * 60), "jitter is clamped");
        assert_eq!(retry_delay(Duration::from_millis(100), Duration::from_secs(1), 3, 0.5), Duration::from_millis(400));
    }

    #[test]
    fn the_next_run_is_the_slot_a_retry_or_the_servers_wait() {
        let (now, slot) = (1_000, 50_000);
        assert_eq!(next_run(slot, false, None, None, now), slot);
        assert_eq!(next_run(slot, true, None, None, now), now);
        assert_eq!(next_run(slot, false, Some(2_000), None, now), 2_000, "a retry before the slot");
        assert_eq!(next_run(slot, false, Some(90_000), None, now), slot, "the slot before a late retry");
        assert_eq!(next_run(slot, false, Some(2_000), Some(30_000), now), 30_000, "the wait, not the retry");
        assert_eq!(next_run(slot, true, None, Some(30_000), now), 30_000, "due, but after the wait");
        assert_eq!(next_run(slot, false, None, Some(90_000), now), slot);
        assert_eq!(next_run(slot, true, None, Some(500), now), now, "a wait already over");
    }
}
