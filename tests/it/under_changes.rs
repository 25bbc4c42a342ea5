//! Regression tests for syncs that run while the server changes. An offset
//! walk used to miss an item whenever the server deleted one on a page
//! already read (every later item shifts down by one); the sweep then
//! deleted the missed item from the mirror, wrote a tombstone into the
//! change feed and reported `ok`. Edits during an incremental walk could be
//! lost the same way, and a playlist's entries were dropped on an empty
//! page or a 403. Each test puts one chosen change between two chosen
//! requests (`before_request`) and checks: no live item dropped, every
//! deletion in the feed one the server made, the mirror exact after the run
//! or after one more quiet sync, and the cost of the lookups.

use crate::support::*;
use mediasync::fake::plex::Failure;
use mediasync::model::Kind;
use mediasync::source::Source;

/// Plex requests that looked items up (`/library/metadata/{ids}`).
fn lookups(setup: &Setup) -> usize {
    setup.fake.log().iter().filter(|entry| entry.path.starts_with("/library/metadata/")).count()
}

#[test]
fn deletions_on_a_page_already_read_drop_no_live_item() {
    let setup = Setup::new();
    setup.fake.add_movies("Movies", 500);
    assert_ok(&setup.sync());
    let movies = setup.fake.keys("1", Kind::Movie);
    let since = setup.store.changes(0, usize::MAX).unwrap().last().map_or(0, |change| change.seq);
    // A full walk: 1 lists the sections, 2 is the first page (0..100), 3 the
    // second. Two movies of the first page go before it is answered: every
    // later movie moves up two places, and one of them is never listed.
    let gone = [movies[10].clone(), movies[20].clone()];
    let doomed = gone.clone();
    setup.fake.before_request(setup.fake.requests() + 3, move |state| {
        for key in &doomed {
            state.remove(key);
        }
    });
    setup.fake.clear_log();
    let report = setup.sync_with(TOKEN, true, false);
    assert_ok(&report);
    let movies_report = &report.libraries[0];
    assert_eq!(movies_report.counters.deleted, 2, "{movies_report:?}");
    assert_eq!(movies_report.counters.kept, 1, "the movie the walk missed was looked up and kept");
    setup.assert_exact();
    assert_deletions_made_by_the_server("", &setup.store, since, &setup.fake.deleted());
    // The walk's lookup finds the missed movie; the two deleted ones were
    // listed before they went, so the counts disagree after the sweep and
    // the repeated pass's lookup confirms them gone.
    assert_eq!(lookups(&setup), 2);
}

#[test]
fn the_lookup_costs_one_request_per_hundred_candidates_and_the_deletion_lands_at_the_next_sync() {
    let setup = Setup::new();
    setup.fake.add_movies("Movies", 1_000);
    assert_ok(&setup.sync());
    for key in &setup.fake.keys("1", Kind::Movie)[..250] {
        setup.fake.delete(key);
    }
    setup.fake.clear_log();
    let report = setup.sync();
    assert_ok(&report);
    assert_eq!(mode_of(&report, "1"), "incremental+reconcile");
    assert_eq!(report.libraries[0].counters.deleted, 250);
    assert_eq!(lookups(&setup), 3, "250 candidates: three lookups of at most 100");
    setup.assert_exact();
}

#[test]
fn a_failed_lookup_deletes_nothing_and_the_run_resumes_there() {
    let mut setup = Setup::new();
    setup.retries = 1;
    setup.fake.add_movies("Movies", 300);
    assert_ok(&setup.sync());
    let movies = setup.fake.keys("1", Kind::Movie);
    setup.fake.delete(&movies[7]);
    setup.fake.fail_path("/library/metadata/", Failure::Status(500));
    let before = setup.stored();
    let report = setup.sync();
    assert!(!report.ok());
    let error = report.libraries[0].error.clone().unwrap_or_default();
    assert!(error.contains("/library/metadata/") && error.contains("HTTP 500"), "{error}");
    assert_eq!(setup.stored(), before, "nothing is deleted without the server's word");

    setup.fake.heal();
    setup.fake.clear_log();
    let report = setup.sync();
    assert_ok(&report);
    assert_eq!(mode_of(&report, "1"), "resumed+reconcile");
    assert_eq!(report.libraries[0].counters.deleted, 1);
    assert!(setup.listings().is_empty(), "the resumed run looked up and swept, walking no page again");
    setup.assert_exact();
}

#[test]
fn an_item_moved_to_another_section_is_gone_from_the_first() {
    let setup = Setup::new();
    setup.fake.add_movies("Movies", 120);
    let films = setup.fake.add_section("Films", mediasync::fake::plex::SectionKind::Movie);
    setup.fake.add_item(&films, Kind::Movie, "Already there", None);
    assert_ok(&setup.sync());
    let moved = setup.fake.keys("1", Kind::Movie)[4].clone();
    setup.fake.state().move_to(&moved, &films);
    let report = setup.sync();
    assert_ok(&report);
    setup.assert_exact();
    let movies = report.libraries.iter().find(|library| library.library_id == "1").unwrap();
    assert_eq!(movies.counters.deleted, 1, "the lookup saw it in section {films}, not in 1");
}

#[test]
fn the_lookup_of_plex_answers_the_items_that_exist_in_the_library() {
    let setup = Setup::new();
    setup.fake.add_movies("Movies", 5);
    let films = setup.fake.add_section("Films", mediasync::fake::plex::SectionKind::Movie);
    let elsewhere = setup.fake.add_item(&films, Kind::Movie, "Elsewhere", None);
    let stop = Default::default();
    let plex = mediasync::source::plex::Plex::new(
        &setup.server(TOKEN),
        &setup.plex(TOKEN),
        std::time::Duration::from_secs(5),
        &stop,
    );
    let library = plex.libraries().unwrap().remove(0);
    assert_eq!(library.lookup_batch, 100);
    let keys = setup.fake.keys("1", Kind::Movie);
    let ids = vec![keys[1].clone(), "999999".to_string(), elsewhere, keys[3].clone()];
    let found = plex.lookup(&library, Kind::Movie, &ids, Some(&keys[0])).unwrap();
    let found: Vec<&str> = found.iter().map(|present| present.id()).collect();
    assert_eq!(found, [keys[1].as_str(), keys[3].as_str()], "the gone one, the moved one and the anchor are not");
    // None exists: PMS answers 404, which the anchor keeps it from saying.
    let gone = vec!["999998".to_string(), "999999".to_string()];
    assert!(plex.lookup(&library, Kind::Movie, &gone, Some(&keys[0])).unwrap().is_empty());
    assert!(plex.lookup(&library, Kind::Movie, &gone, None).unwrap().is_empty());
}

#[test]
fn an_incremental_walk_the_listing_moves_under_starts_over() {
    let setup = Setup::new();
    setup.fake.add_movies("Movies", 500);
    assert_ok(&setup.sync());
    let movies = setup.fake.keys("1", Kind::Movie);
    for key in &movies[100..350] {
        setup.fake.edit_title(key, &format!("Edited {key}"));
    }
    // The incremental walk: 1 sections, 2 the first page, 3 the second.
    // Before the second, a movie not walked yet is edited: it moves to the
    // top, the ones above it down a place, and the second page no longer
    // starts where the first ended.
    let edited = movies[120].clone();
    setup.fake.before_request(setup.fake.requests() + 3, move |state| state.edit(&edited, "Edited mid-walk"));
    setup.fake.clear_log();
    let report = setup.sync();
    assert_ok(&report);
    let library = &report.libraries[0];
    assert_eq!(library.mode, "incremental");
    assert!(library.counters.shifts >= 1, "{library:?}");
    let from_the_top = setup.listings().iter().filter(|(_, start)| *start == 0).count();
    assert_eq!(from_the_top, 2, "walked again from the top");
    setup.assert_exact();
}

#[test]
fn a_server_clock_that_jumps_ahead_and_back_loses_no_change() {
    let setup = Setup::new();
    setup.fake.add_movies("Movies", 300);
    assert_ok(&setup.sync());
    let movies = setup.fake.keys("1", Kind::Movie);
    // The server's clock runs a day ahead for a while: an edit is stamped
    // then, and a sync runs then.
    setup.fake.state().clock += 86_400;
    setup.fake.edit_title(&movies[1], "Edited while the clock was ahead");
    let report = setup.sync();
    assert_ok(&report);
    assert_eq!(report.libraries[0].counters.changed, 1);
    // The clock is set right: later edits are stamped a day before the last
    // sync, and before the newest change stored.
    setup.fake.state().clock -= 86_400;
    setup.fake.edit_title(&movies[2], "Edited after the clock was set back");
    let report = setup.sync();
    assert_ok(&report);
    assert_eq!(mode_of(&report, "1"), "full", "the server's clock went back: only a full pass is sure to see all");
    setup.assert_exact();
    // From then on incremental runs find the edits again, although a movie
    // still carries the stamp from the future.
    setup.fake.edit_title(&movies[3], "Edited later");
    let report = setup.sync();
    assert_ok(&report);
    assert_eq!(mode_of(&report, "1"), "incremental");
    assert_eq!(report.libraries[0].counters.changed, 1);
    setup.assert_exact();
    // Once that movie is deleted, its stamp goes with it.
    setup.fake.delete(&movies[1]);
    assert_ok(&setup.sync());
    let (_, state) = setup.store.libraries().unwrap().remove(0);
    let clock = setup.fake.state().clock;
    assert!(state.newest[&Kind::Movie] <= clock, "newest {:?} after the recount", state.newest);
    setup.fake.edit_title(&movies[4], "Edited at last");
    let report = setup.sync();
    assert_eq!((mode_of(&report, "1").as_str(), report.libraries[0].counters.changed), ("incremental", 1));
    setup.assert_exact();
}
