//! Deciding how a library is synced this time, as a pure function of its
//! stored state, the options and the clock, so every rule is unit-tested.

use crate::model::{LibraryInfo, Strategy};
use crate::store::records::{Checkpoint, FilterCheck, LibraryState, Pass};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Continue the interrupted run recorded in the checkpoint.
    Resume,
    /// Start a new run of this pass, for this reason.
    Start(Pass, String),
}

/// The whole decision: resume the interrupted run the state holds, or start
/// a pass. `Run::begin` takes it in its two steps (`interrupted`, `fresh`),
/// so that resuming takes the checkpoint out of the state.
pub fn plan(state: &LibraryState, library: &LibraryInfo, full: bool, full_every: Duration, now: i64) -> Plan {
    match &state.checkpoint {
        Some(checkpoint) => interrupted(checkpoint, library, full),
        None => {
            let (pass, reason) = fresh(state, library.strategy, full, full_every, now);
            Plan::Start(pass, reason)
        }
    }
}

/// A run was interrupted at `checkpoint`: resume it, unless the library's
/// kinds changed since or `--full` replaces an incremental pass.
pub fn interrupted(checkpoint: &Checkpoint, library: &LibraryInfo, full: bool) -> Plan {
    let same_kinds = checkpoint.kinds.iter().all(|kind| library.kinds.contains(kind));
    if !same_kinds {
        return Plan::Start(Pass::Full, "the library's kinds changed since the interrupted run".into());
    }
    if full && checkpoint.pass == Pass::Incremental {
        return Plan::Start(Pass::Full, "--full given".into());
    }
    Plan::Resume
}

/// No run is under way: the pass to start, and why.
pub fn fresh(state: &LibraryState, strategy: Strategy, full: bool, full_every: Duration, now: i64) -> (Pass, String) {
    if full {
        return (Pass::Full, "--full given".into());
    }
    let Some(last_full_at) = state.last_full_at else {
        return (Pass::Full, "first sync".into());
    };
    if let Some(reason) = &state.needs_full {
        return (Pass::Full, reason.clone());
    }
    if strategy == Strategy::Unordered {
        return (Pass::Full, "the listing has no change marker, so every run walks it whole".into());
    }
    if !within(last_full_at, full_every, now) {
        return (Pass::Full, format!("the last full pass is older than {}h", full_every.as_secs() / 3600));
    }
    if strategy == Strategy::ChangedSince {
        if state.changed_since.is_none() {
            return (Pass::Full, "no server-clock cursor from an earlier run".into());
        }
        if let FilterCheck::Unusable { checked_at, reason } = &state.filter {
            if within(*checked_at, full_every, now) {
                return (Pass::Full, format!("the server's changed-since filter is unusable ({reason})"));
            }
        }
    }
    (Pass::Incremental, "changes since the last sync".into())
}

/// Whether `at` lies less than `period` before `now` (a clock that went
/// backwards counts as not within).
pub fn within(at: i64, period: Duration, now: i64) -> bool {
    let age = now.saturating_sub(at);
    u64::try_from(age).is_ok_and(|age| age < period.as_secs())
}

#[cfg(test)]
#[allow(clippy::cast_possible_wrap, reason = "test code: the periods are days and weeks")]
mod tests {
    use super::*;
    use crate::model::{Kind, Nesting};
    use crate::store::records::Counters;

    const WEEK: Duration = Duration::from_secs(7 * 86_400);
    const NOW: i64 = 1_800_000_000;

    fn library(strategy: Strategy) -> LibraryInfo {
        LibraryInfo {
            id: "1".into(),
            title: "Movies".into(),
            kinds: vec![Kind::Movie],
            strategy,
            nesting: Nesting::Flat,
            lookup_batch: 100,
        }
    }

    fn synced(last_full_at: i64) -> LibraryState {
        LibraryState { last_full_at: Some(last_full_at), ..LibraryState::default() }
    }

    fn checkpoint(pass: Pass, kinds: Vec<Kind>) -> Checkpoint {
        Checkpoint {
            started_as: pass,
            pass,
            generation: 1,
            kinds,
            kind_index: 0,
            start: 400,
            cursors: Default::default(),
            totals: Default::default(),
            unstored: Default::default(),
            full_passes: 1,
            sweep_approved: false,
            order_broken: false,
            forced: false,
            run: 1,
            started_at: NOW - 10,
            server_started_at: None,
            resumed: false,
            after: None,
            children: None,
            children_approved: false,
            last_id: None,
            restarts: 0,
            anchor: None,
            confirm: None,
            counters: Counters::default(),
            elapsed_ms: 0,
        }
    }

    fn is_full(plan: Plan) -> bool {
        matches!(plan, Plan::Start(Pass::Full, _))
    }

    #[test]
    fn no_state_means_full() {
        assert!(is_full(plan(&LibraryState::default(), &library(Strategy::StopAtCursor), false, WEEK, NOW)));
    }

    #[test]
    fn recent_full_means_incremental() {
        let plan = plan(&synced(NOW - 3600), &library(Strategy::StopAtCursor), false, WEEK, NOW);
        assert!(matches!(plan, Plan::Start(Pass::Incremental, _)), "{plan:?}");
    }

    #[test]
    fn unordered_listings_are_always_walked_whole() {
        let plan = plan(&synced(NOW - 3600), &library(Strategy::Unordered), false, WEEK, NOW);
        assert!(is_full(plan));
    }

    #[test]
    fn old_full_flag_or_needs_full_mean_full() {
        assert!(is_full(plan(
            &synced(NOW - WEEK.as_secs() as i64),
            &library(Strategy::StopAtCursor),
            false,
            WEEK,
            NOW
        )));
        assert!(is_full(plan(&synced(NOW - 60), &library(Strategy::StopAtCursor), true, WEEK, NOW)));
        let mut state = synced(NOW - 60);
        state.needs_full = Some("mass deletion refused".into());
        assert_eq!(
            plan(&state, &library(Strategy::StopAtCursor), false, WEEK, NOW),
            Plan::Start(Pass::Full, "mass deletion refused".into())
        );
        // A clock that went backwards is no reason to trust an old pass.
        assert!(is_full(plan(&synced(NOW + 86_400), &library(Strategy::StopAtCursor), false, WEEK, NOW)));
    }

    #[test]
    fn checkpoints_resume() {
        let mut state = synced(NOW - 60);
        state.checkpoint = Some(checkpoint(Pass::Full, vec![Kind::Movie]));
        assert_eq!(plan(&state, &library(Strategy::StopAtCursor), false, WEEK, NOW), Plan::Resume);
        assert_eq!(
            plan(&state, &library(Strategy::StopAtCursor), true, WEEK, NOW),
            Plan::Resume,
            "--full resumes a full pass"
        );
        state.checkpoint = Some(checkpoint(Pass::Incremental, vec![Kind::Movie]));
        assert_eq!(plan(&state, &library(Strategy::StopAtCursor), false, WEEK, NOW), Plan::Resume);
        assert!(
            is_full(plan(&state, &library(Strategy::StopAtCursor), true, WEEK, NOW)),
            "--full replaces an incremental run"
        );
        state.checkpoint = Some(checkpoint(Pass::Full, vec![Kind::Show]));
        assert!(is_full(plan(&state, &library(Strategy::StopAtCursor), false, WEEK, NOW)));
    }

    #[test]
    fn changed_since_sources_need_a_cursor_and_a_usable_filter() {
        let changed_since = Strategy::ChangedSince;
        let mut state = synced(NOW - 60);
        assert!(is_full(plan(&state, &library(changed_since), false, WEEK, NOW)), "no cursor yet");
        state.changed_since = Some(NOW - 70);
        let incremental = plan(&state, &library(changed_since), false, WEEK, NOW);
        assert!(matches!(incremental, Plan::Start(Pass::Incremental, _)), "{incremental:?}");
        state.filter = FilterCheck::Unusable { checked_at: NOW - 60, reason: "HTTP 500".into() };
        let Plan::Start(Pass::Full, reason) = plan(&state, &library(changed_since), false, WEEK, NOW) else {
            panic!("an unusable filter means full passes");
        };
        assert!(reason.contains("HTTP 500"), "{reason}");
        // A week later the filter gets another chance (the server may have
        // been upgraded).
        state.filter = FilterCheck::Unusable { checked_at: NOW - WEEK.as_secs() as i64, reason: "x".into() };
        let retry = plan(&state, &library(changed_since), false, WEEK, NOW);
        assert!(matches!(retry, Plan::Start(Pass::Incremental, _)), "{retry:?}");
        // Plex keeps its rules whatever these fields say.
        state.changed_since = None;
        let plex = plan(&state, &library(Strategy::StopAtCursor), false, WEEK, NOW);
        assert!(matches!(plex, Plan::Start(Pass::Incremental, _)), "{plex:?}");
    }
}
