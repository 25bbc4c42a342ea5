//! The small JSON records the store keeps (library state with its
//! checkpoint, run history, server state): JSON where records are few and
//! rarely written, so fields can be added with `#[serde(default)]`. The
//! item record, written and read per item, is binary (`item_record`). A
//! running sync writes its state and checkpoint as one `LibraryState` record.

use crate::model::{Item, Kind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Per-run tallies, kept in the checkpoint so a resumed run reports the
/// whole run, not only its last stretch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub new: u64,
    pub changed: u64,
    pub deleted: u64,
    pub unchanged: u64,
    pub bad: u64,
    pub pages: u64,
    pub requests: u64,
    /// Items a walk did not see that the server confirmed it still holds
    /// (a listing moved under the walk): refreshed and kept.
    #[serde(default)]
    pub kept: u64,
    /// Page boundaries where the listing had moved since the page before.
    #[serde(default)]
    pub shifts: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pass {
    Incremental,
    Full,
}

/// Where an interrupted run stands. Written in the same transaction as the
/// page it describes, so it never runs ahead of or behind the data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// How the run started: "full" or "incremental".
    pub started_as: Pass,
    pub pass: Pass,
    /// The full pass's generation: its seen marks belong to it.
    pub generation: u64,
    /// The kinds this pass walks, in order, and how far it got.
    pub kinds: Vec<Kind>,
    pub kind_index: u32,
    pub start: u64,
    /// Incremental cursors: items changed at or after these times are fetched.
    pub cursors: BTreeMap<Kind, i64>,
    /// The counts the server reported for each kind during this pass.
    pub totals: BTreeMap<Kind, u64>,
    /// Unreadable entries of a full pass that have no stored copy, per kind:
    /// the server counts them, the store cannot.
    #[serde(default)]
    pub unstored: BTreeMap<Kind, u64>,
    /// Full passes made in this run (a second one repairs a shifted walk).
    pub full_passes: u32,
    /// A full walk is complete and its sweep was approved by the guard.
    pub sweep_approved: bool,
    /// The incremental listing came back in the wrong order: its stop rule
    /// cannot be trusted, so the run ends with a full pass.
    #[serde(default)]
    pub order_broken: bool,
    pub forced: bool,
    pub run: u64,
    pub started_at: i64,
    /// The server's clock when the run started (sources that report it):
    /// becomes `LibraryState::changed_since` when the run succeeds.
    #[serde(default)]
    pub server_started_at: Option<i64>,
    pub resumed: bool,
    /// Cursor-paged listings: the cursor the next page starts after.
    #[serde(default)]
    pub after: Option<String>,
    /// Nested libraries: set once the parents' walk and sweep are done, while
    /// the children of new and changed parents are fetched.
    #[serde(default)]
    pub children: Option<ChildCursor>,
    /// Nested libraries: every waiting parent's children are fetched and the
    /// guard approved the deletions that completes.
    #[serde(default)]
    pub children_approved: bool,
    /// The id of the last entry of the page walked last (this kind): the
    /// next page is asked from one entry earlier and must start with it, or
    /// the listing moved in between.
    #[serde(default)]
    pub last_id: Option<String>,
    /// How often this kind's incremental walk started over because the
    /// listing moved under it.
    #[serde(default)]
    pub restarts: u32,
    /// An item this full pass saw, asked for alongside every lookup (a
    /// server may answer 404 when none of the ids asked for exists).
    #[serde(default)]
    pub anchor: Option<String>,
    /// After a complete full walk: how far the lookup of the items it did not
    /// see has got (`None`: not begun).
    #[serde(default)]
    pub confirm: Option<ConfirmCursor>,
    pub counters: Counters,
    /// Time spent on this run so far, over all attempts.
    #[serde(default)]
    pub elapsed_ms: u64,
}

/// Where the children phase of a nested library stands: the parent being
/// fetched (`None`: the next one waiting), how far in, and the id of the last
/// child written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildCursor {
    pub parent: Option<String>,
    pub start: u64,
    pub last: Option<String>,
}

/// Where the lookup of unseen items stands: the kind being looked up (an
/// index into the pass's kinds) and the last id asked about; the next batch
/// is the unseen items after it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmCursor {
    pub kind_index: u32,
    pub after: Option<String>,
}

/// A deletion the mass-deletion guard refused: `items` of the `stored`
/// items concerned. The status page offers to allow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedDeletion {
    pub items: u64,
    pub stored: u64,
}

/// What the engine knows about a source's changed-since filter for one
/// library (`Strategy::ChangedSince`). Times are local epoch seconds, like
/// `last_full_at`: they only decide when to check again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "state")]
pub enum FilterCheck {
    #[default]
    Unverified,
    /// Checked (by an incremental run's count through it) and honoured.
    Works { checked_at: i64 },
    /// The server errors on, ignores or empties the filter: runs are full
    /// passes until `full_every` after `checked_at`, then it is tried again.
    Unusable { checked_at: i64, reason: String },
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LibraryState {
    pub server: String,
    pub library_id: String,
    pub title: String,
    pub next_ordinal: u32,
    pub counts: BTreeMap<Kind, u64>,
    /// The newest `updated_at` stored per kind, recomputed from the items at
    /// every full pass: with the server's clock at the last success's start
    /// (`changed_since`), the incremental cursor's base.
    pub newest: BTreeMap<Kind, i64>,
    /// Entries the server lists but sends unreadably, per kind, as of the last
    /// full pass; counted in when comparing with the server's totals.
    #[serde(default)]
    pub unreadable: BTreeMap<Kind, u64>,
    pub last_full_at: Option<i64>,
    pub last_success_at: Option<i64>,
    pub last_error: Option<String>,
    /// Set when the next run must be a full pass, with the reason.
    pub needs_full: Option<String>,
    /// Where an interrupted run stands. While a run is under way the engine
    /// holds its checkpoint apart and writes both with
    /// `Writer::put_running_state`.
    pub checkpoint: Option<Checkpoint>,
    pub runs: u64,
    pub generation: u64,
    /// The server's clock at the start of the last successful run (sources
    /// that report it): what changed since then, minus a margin, is what the
    /// next incremental pass fetches.
    #[serde(default)]
    pub changed_since: Option<i64>,
    #[serde(default)]
    pub filter: FilterCheck,
    /// Nested libraries: parents whose children the server would not list
    /// (a playlist the user neither owns nor collaborates on), by id, with
    /// the reason; retried when the parent changes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped: BTreeMap<String, String>,
    /// The last run's deletion the mass-deletion guard refused, until a run
    /// succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<RefusedDeletion>,
    /// Histories (`Strategy::AppendOnly`): the last possible gap found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<Gap>,
}

/// A possible hole in a history: a run's walk ended before it reached a
/// play already stored, so plays older than the oldest it got and newer
/// than the newest stored before may be missing (Spotify lists only the
/// last 50 plays: more than 50 between two polls).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// When it was found, local epoch seconds.
    pub found_at: i64,
    /// The oldest play that run got, server epoch seconds: the hole lies
    /// before it.
    pub before: Option<i64>,
    /// Possible gaps found so far.
    pub count: u64,
}

impl LibraryState {
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn count(&self, kind: Kind) -> u64 {
        self.counts.get(&kind).copied().unwrap_or(0)
    }
}

/// The `LibraryState` record of a run under way: the state's JSON with
/// `checkpoint` in place of the state's own.
pub(super) fn running_state_json(state: &LibraryState, checkpoint: &Checkpoint) -> serde_json::Result<Vec<u8>> {
    let mut record = serde_json::to_value(state)?;
    let Some(fields) = record.as_object_mut() else {
        return Err(serde::ser::Error::custom("a library state is not a JSON object"));
    };
    fields.insert("checkpoint".to_string(), serde_json::to_value(checkpoint)?);
    serde_json::to_vec(&record)
}

/// A parent whose children are all fetched (`tables::FETCHED`): its new
/// version, the last child the listing had (children after it are gone),
/// or why the server refused to list them (then the stored children stay).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetched {
    pub item: Item,
    pub last: Option<String>,
    pub refused: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run: u64,
    pub mode: String,
    pub started_at: i64,
    pub finished_at: i64,
    pub duration_ms: u64,
    pub counters: Counters,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerState {
    pub last_attempt_at: Option<i64>,
    pub last_success_at: Option<i64>,
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_state_is_stored_as_the_state_with_its_checkpoint() {
        let checkpoint: Checkpoint = serde_json::from_value(serde_json::json!({
            "started_as": "incremental", "pass": "full", "generation": 3, "kinds": ["show", "season"],
            "kind_index": 1, "start": 200, "cursors": {"show": 17}, "totals": {"show": 9}, "full_passes": 1,
            "sweep_approved": false, "forced": false, "run": 4, "started_at": 1_800_000_000, "resumed": true,
            "after": "cursor-1", "counters": {"new": 1, "changed": 2, "deleted": 0, "unchanged": 3, "bad": 0,
            "pages": 2, "requests": 5}
        }))
        .unwrap();
        let state = LibraryState { server: "home".into(), runs: 4, generation: 3, ..LibraryState::default() };
        let stored: LibraryState = serde_json::from_slice(&running_state_json(&state, &checkpoint).unwrap()).unwrap();
        assert_eq!(stored, LibraryState { checkpoint: Some(checkpoint), ..state });
    }

    #[test]
    fn states_written_before_the_changed_since_fields_still_decode() {
        let old = r#"{"server":"home","library_id":"1","title":"Movies","next_ordinal":3,"counts":{"movie":3},
            "newest":{"movie":17},"last_full_at":5,"last_success_at":5,"last_error":null,"needs_full":null,
            "checkpoint":null,"runs":1,"generation":1}"#;
        let state: LibraryState = serde_json::from_str(old).unwrap();
        assert_eq!(state.changed_since, None);
        assert_eq!(state.filter, FilterCheck::Unverified);
        let mut state = state;
        state.filter = FilterCheck::Unusable { checked_at: 9, reason: "HTTP 500".into() };
        let text = serde_json::to_string(&state).unwrap();
        assert!(text.contains(r#""filter":{"state":"unusable","checked_at":9,"reason":"HTTP 500"}"#), "{text}");
        assert_eq!(serde_json::from_str::<LibraryState>(&text).unwrap(), state);
    }
}
