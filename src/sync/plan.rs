//! Deciding how a library is synced this time, as a pure function of its
//! stored state, the options and the clock, so every rule is unit-tested.

use crate::model::LibraryInfo;
use crate::store::records::{LibraryState, Pass};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Continue the interrupted run recorded in the checkpoint.
    Resume,
    /// Start a new run of this pass, for this reason.
    Start(Pass, String),
}

pub fn plan(state: &LibraryState, library: &LibraryInfo, full: bool, full_every: Duration, now: i64) -> Plan {
    if let Some(checkpoint) = &state.checkpoint {
        let same_kinds = checkpoint.kinds.iter().all(|kind| library.kinds.contains(kind));
        if !same_kinds {
            return Plan::Start(Pass::Full, "the library's kinds changed since the interrupted run".into());
        }
        if full && checkpoint.pass == Pass::Incremental {
            return Plan::Start(Pass::Full, "--full given".into());
        }
        return Plan::Resume;
    }
    if full {
        return Plan::Start(Pass::Full, "--full given".into());
    }
    let Some(last_full_at) = state.last_full_at else {
        return Plan::Start(Pass::Full, "first sync".into());
    };
    if let Some(reason) = &state.needs_full {
        return Plan::Start(Pass::Full, reason.clone());
    }
    let age = now.saturating_sub(last_full_at);
    if age < 0 || age as u64 >= full_every.as_secs() {
        return Plan::Start(Pass::Full, format!("the last full pass is older than {}h", full_every.as_secs() / 3600));
    }
    Plan::Start(Pass::Incremental, "changes since the last sync".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;
    use crate::store::records::{Checkpoint, Counters};

    const WEEK: Duration = Duration::from_secs(7 * 86_400);
    const NOW: i64 = 1_800_000_000;

    fn library() -> LibraryInfo {
        LibraryInfo { id: "1".into(), title: "Movies".into(), kinds: vec![Kind::Movie] }
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
            resumed: false,
            counters: Counters::default(),
        }
    }

    fn is_full(plan: Plan) -> bool {
        matches!(plan, Plan::Start(Pass::Full, _))
    }

    #[test]
    fn no_state_means_full() {
        assert!(is_full(plan(&LibraryState::default(), &library(), false, WEEK, NOW)));
    }

    #[test]
    fn recent_full_means_incremental() {
        let plan = plan(&synced(NOW - 3600), &library(), false, WEEK, NOW);
        assert!(matches!(plan, Plan::Start(Pass::Incremental, _)), "{plan:?}");
    }

    #[test]
    fn old_full_flag_or_needs_full_mean_full() {
        assert!(is_full(plan(&synced(NOW - WEEK.as_secs() as i64), &library(), false, WEEK, NOW)));
        assert!(is_full(plan(&synced(NOW - 60), &library(), true, WEEK, NOW)));
        let mut state = synced(NOW - 60);
        state.needs_full = Some("mass deletion refused".into());
        assert_eq!(plan(&state, &library(), false, WEEK, NOW), Plan::Start(Pass::Full, "mass deletion refused".into()));
        // A clock that went backwards is no reason to trust an old pass.
        assert!(is_full(plan(&synced(NOW + 86_400), &library(), false, WEEK, NOW)));
    }

    #[test]
    fn checkpoints_resume() {
        let mut state = synced(NOW - 60);
        state.checkpoint = Some(checkpoint(Pass::Full, vec![Kind::Movie]));
        assert_eq!(plan(&state, &library(), false, WEEK, NOW), Plan::Resume);
        assert_eq!(plan(&state, &library(), true, WEEK, NOW), Plan::Resume, "--full resumes a full pass");
        state.checkpoint = Some(checkpoint(Pass::Incremental, vec![Kind::Movie]));
        assert_eq!(plan(&state, &library(), false, WEEK, NOW), Plan::Resume);
        assert!(is_full(plan(&state, &library(), true, WEEK, NOW)), "--full replaces an incremental run");
        state.checkpoint = Some(checkpoint(Pass::Full, vec![Kind::Show]));
        assert!(is_full(plan(&state, &library(), false, WEEK, NOW)));
    }
}
