//! The engine against the fake Plex server: what a user relies on.

use crate::support::*;
use mediasync::fake::plex::Failure;
use mediasync::model::Kind;
use mediasync::store::Store;
use mediasync::store::backend::SyncOnGrow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[test]
fn initial_sync_is_exact() {
    let setup = Setup::new();
    setup.fake.add_library_of(3_000);
    let report = setup.sync();
    assert_ok(&report);
    setup.assert_exact();
    assert_eq!(setup.stored().len(), setup.fake.item_count());
    for library in &report.libraries {
        assert_eq!(library.mode, "full");
        assert_eq!(library.counters.changed + library.counters.deleted, 0);
    }
    let new: u64 = report.libraries.iter().map(|library| library.counters.new).sum();
    assert_eq!(new as usize, setup.fake.item_count());
    // Photo sections are skipped, so three libraries.
    assert_eq!(report.libraries.len(), 3);
}

#[test]
fn unchanged_resync_costs_one_request_per_kind_plus_one() {
    let setup = Setup::new();
    setup.fake.add_library_of(3_000);
    assert_ok(&setup.sync());
    let before = setup.fake.requests();
    let report = setup.sync();
    assert_ok(&report);
    let made = setup.fake.requests() - before;
    println!("unchanged resync of {} items: {made} requests", setup.fake.item_count());
    assert!(made <= STREAMS + 1, "{made} requests for an unchanged library");
    assert_eq!(report.requests, made);
    for library in &report.libraries {
        assert_eq!(library.mode, "incremental");
        assert_eq!(library.counters.new + library.counters.changed + library.counters.deleted, 0);
    }
    setup.assert_exact();
}

#[test]
fn an_unchanged_resync_commits_once_and_an_edit_once_more() {
    let disk = crate::disk::SimulatedDisk::new(&[]);
    let mut setup = Setup::new();
    setup.store = Store::with_backend(SyncOnGrow::new(disk.clone()), 4 << 20).unwrap();
    setup.fake.add_library_of(1_000);
    assert_ok(&setup.sync());
    let runs_before = setup.store.runs(1).unwrap().len();
    let before = disk.syncs();
    let report = setup.sync();
    assert_ok(&report);
    assert_eq!(report.libraries.len(), 3);
    let pages: u64 = report.libraries.iter().map(|library| library.counters.pages).sum();
    assert!(pages >= 7, "one page per kind at least: {pages}");
    // Every disk sync is a commit: none for the unchanged pages, one for
    // the runs' bookkeeping and the server's state together.
    assert_eq!(disk.syncs() - before, 1, "an unchanged resync of three libraries");
    assert_eq!(setup.store.runs(1).unwrap().len(), runs_before + 1, "the run is in the history");
    setup.assert_exact();

    let movie = setup.fake.keys("1", Kind::Movie).into_iter().next().unwrap();
    setup.fake.edit_title(&movie, "Edited");
    let before = disk.syncs();
    let report = setup.sync();
    assert_ok(&report);
    assert_eq!(disk.syncs() - before, 2, "the edited page, then the bookkeeping");
    setup.assert_exact();
}

/// A one-shot sync that changes nothing commits nothing (closing the store
/// then writes only redb's header), unless it has something to record: the
/// error a failed sync left is cleared by the next success, and an edit is
/// committed as by the daemon.
#[test]
fn a_one_shot_sync_that_changes_nothing_commits_nothing_but_clears_an_error() {
    let disk = crate::disk::SimulatedDisk::new(&[]);
    let mut setup = Setup::new();
    setup.store = Store::with_backend(SyncOnGrow::new(disk.clone()), 4 << 20).unwrap();
    setup.fake.add_library_of(600);
    assert_ok(&setup.sync());
    let runs_before = setup.store.runs(1).unwrap().len();
    let before = disk.syncs();
    assert_ok(&setup.sync_one_shot(TOKEN));
    assert_eq!(disk.syncs() - before, 0, "an unchanged one-shot sync commits nothing");
    assert_eq!(setup.store.runs(1).unwrap().len(), runs_before, "its run is not recorded");
    setup.assert_exact();

    let failed = setup.sync_with("not-the-token", false, false);
    assert!(failed.error.is_some(), "the wrong token fails the sync");
    assert!(setup.store.server_state("home").unwrap().last_error.is_some(), "the failure is recorded");
    let before = disk.syncs();
    assert_ok(&setup.sync_one_shot(TOKEN));
    assert_eq!(disk.syncs() - before, 1, "the success that clears the error is committed");
    assert_eq!(setup.store.server_state("home").unwrap().last_error, None);
    let before = disk.syncs();
    assert_ok(&setup.sync_one_shot(TOKEN));
    assert_eq!(disk.syncs() - before, 0, "unchanged again: nothing committed");

    let movie = setup.fake.keys("1", Kind::Movie).into_iter().next().unwrap();
    setup.fake.edit_title(&movie, "Edited for a one-shot sync");
    // Counted as commits: the first sync's pages committed together leave
    // little free space, so this commit may grow the file, and `SyncOnGrow`
    // syncs a growing file once more.
    let before = setup.store.commits();
    assert_ok(&setup.sync_one_shot(TOKEN));
    assert_eq!(setup.store.commits() - before, 2, "the edited page, then the bookkeeping");
    // The run that cleared the error and the run that stored the edit.
    assert_eq!(setup.store.runs(1).unwrap().len(), runs_before + 2, "the runs that changed something are recorded");
    setup.assert_exact();
}

/// A first sync commits its pages on the cadence, whole pages with their
/// checkpoint about every 1,000 items or 2 s: far fewer commits than pages.
#[test]
fn a_first_sync_commits_its_pages_on_the_cadence() {
    let mut setup = Setup::new();
    setup.page_size = 10;
    setup.fake.add_library_of(3_000);
    let before = setup.store.commits();
    let report = setup.sync();
    assert_ok(&report);
    let commits = setup.store.commits() - before;
    let pages: u64 = report.libraries.iter().map(|library| library.counters.pages).sum();
    assert!(pages >= 300, "{pages} pages of 10 for 3,000 items");
    // Per library a commit opening the pass, one per 1,000 items or 2 s
    // (more of those on a slow machine), the sweep's and children's, and
    // the bookkeeping at the end: never one per page.
    assert!(commits * 3 <= pages, "{commits} commits for {pages} pages");
    setup.assert_exact();
}

/// What a reader sees while a first sync runs on the cadence: the items,
/// their change-feed entries and the checkpoint of one commit, never the
/// pages fetched since; it sees them move in several steps.
#[test]
fn pages_waiting_for_the_cadence_are_invisible_to_readers() {
    let mut setup = Setup::new();
    setup.page_size = 10;
    let section = setup.fake.add_movies("Movies", 2_500);
    // 250 pages of 20 ms at least: the walk spans two intervals.
    setup.fake.state().delay = Duration::from_millis(20);
    let done = AtomicBool::new(false);
    let mut seen = std::collections::BTreeSet::new();
    std::thread::scope(|scope| {
        let sync = scope.spawn(|| {
            let report = setup.sync();
            done.store(true, Ordering::SeqCst);
            report
        });
        while !done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
            let Some(library) = setup.store.find_library("home", &section).unwrap() else { continue };
            let walked = |store: &Store| {
                let state = store.state(library).unwrap().unwrap_or_default();
                state.checkpoint.filter(|checkpoint| checkpoint.kind_index == 0).map(|checkpoint| checkpoint.start)
            };
            let before = walked(&setup.store);
            let items = items_of(&setup.store, library);
            let feed =
                setup.store.changes(0, 10_000).unwrap().iter().filter(|change| change.library == library).count();
            // Read apart, so only when no commit came between them.
            if before.is_some() && walked(&setup.store) == before {
                assert_eq!(Some(items), before, "the stored items are those the stored checkpoint walked");
                assert_eq!(feed as u64, items, "the change feed holds the committed items only");
                seen.insert(items);
            }
        }
        assert_ok(&sync.join().unwrap());
    });
    let mid_walk: Vec<&u64> = seen.iter().filter(|items| **items > 0 && **items < 2_500).collect();
    assert!(!mid_walk.is_empty(), "no reader saw the walk between two commits: {seen:?}");
    println!("a reader saw the movies' walk at {seen:?} items");
    setup.assert_exact();
}

#[test]
fn additions_edits_and_deletions_are_mirrored() {
    let setup = Setup::new();
    setup.fake.add_library_of(2_000);
    assert_ok(&setup.sync());

    let movies = setup.fake.keys("1", Kind::Movie);
    let seasons = setup.fake.keys("2", Kind::Season);
    let shows = setup.fake.keys("2", Kind::Show);
    let albums = setup.fake.keys("3", Kind::Album);
    setup.fake.add_item("1", Kind::Movie, "Brand New Movie", None);
    setup.fake.add_item("2", Kind::Episode, "A New Episode", Some(&seasons[3]));
    setup.fake.add_item("3", Kind::Track, "A New Track", Some(&albums[0]));
    setup.fake.edit_title(&movies[10], "Renamed Movie");
    setup.fake.replace_art(&movies[11]);
    setup.fake.edit_title(&seasons[0], "Season One (Remastered)");
    setup.fake.delete(&movies[20]);
    setup.fake.delete(&shows[1]); // a whole show: its seasons and episodes go too

    let report = setup.sync();
    assert_ok(&report);
    setup.assert_exact();
    let movies_report = report.libraries.iter().find(|library| library.library_id == "1").unwrap();
    assert_eq!(movies_report.counters.new, 1);
    assert_eq!(movies_report.counters.changed, 2);
    assert_eq!(movies_report.counters.deleted, 1);
    assert_eq!(mode_of(&report, "1"), "incremental+reconcile");
    let tv = report.libraries.iter().find(|library| library.library_id == "2").unwrap();
    assert_eq!(tv.counters.deleted, 1 + 2 + 20, "a show, its 2 seasons and 20 episodes");

    // The next sync finds nothing to do and is cheap again.
    let before = setup.fake.requests();
    let report = setup.sync();
    assert_ok(&report);
    assert!(setup.fake.requests() - before <= STREAMS + 1);
    setup.assert_exact();
}

#[test]
fn deletion_hidden_by_an_addition_is_found() {
    let setup = Setup::new();
    setup.fake.add_movies("Movies", 500);
    assert_ok(&setup.sync());
    let movies = setup.fake.keys("1", Kind::Movie);
    setup.fake.delete(&movies[7]);
    setup.fake.add_item("1", Kind::Movie, "Replacement", None);
    // The server's count is unchanged; the deletion must still be found.
    let report = setup.sync();
    assert_ok(&report);
    setup.assert_exact();
    assert_eq!(report.libraries[0].counters.deleted, 1);
    assert_eq!(report.libraries[0].counters.new, 1);
}

#[test]
fn edit_sharing_the_newest_timestamp_is_found() {
    let setup = Setup::new();
    setup.fake.add_movies("Movies", 300);
    let movies = setup.fake.keys("1", Kind::Movie);
    setup.fake.edit_title(&movies[0], "First edit");
    assert_ok(&setup.sync());
    // A second edit in the same server second as the newest stored change.
    let clock = setup.fake.state().clock;
    setup.fake.edit_title(&movies[1], "Same-second edit");
    setup.fake.state().clock = clock; // edit_title ticked; rewind to share it
    for section in setup.fake.state().sections.iter_mut() {
        for item in section.items.iter_mut().filter(|item| item.rating_key == movies[1]) {
            item.updated_at = clock - 1;
        }
    }
    let report = setup.sync();
    assert_ok(&report);
    setup.assert_exact();
    assert_eq!(report.libraries[0].counters.changed, 1);
}

#[test]
fn interrupted_sync_resumes_without_refetching() {
    let mut setup = Setup::new();
    setup.page_size = 100;
    setup.retries = 1;
    setup.fake.add_movies("Movies", 1_000);
    // Request 1 lists sections, 2..4 fetch pages at 0, 100, 200; then the
    // server breaks (each failure is retried once).
    setup.fake.fail_from(5, Failure::Status(500));
    let report = setup.sync();
    assert!(!report.ok());
    assert!(report.libraries[0].error.as_deref().unwrap().contains("HTTP 500"));
    assert_eq!(setup.stored().len(), 300, "three pages were committed");

    setup.fake.heal();
    setup.fake.clear_log();
    let report = setup.sync();
    assert_ok(&report);
    assert_eq!(mode_of(&report, "1"), "resumed");
    setup.assert_exact();
    // Each page is asked from one entry before the previous one's end: the
    // entry seen last comes again, to show the listing did not move.
    let starts: Vec<u64> = setup.listings().into_iter().map(|(_, start)| start).collect();
    assert_eq!(starts, vec![299, 399, 499, 599, 699, 799, 899], "committed pages were fetched again");
    let status = setup.store.runs(1).unwrap();
    assert!(status.last().unwrap().error.is_none());
}

#[test]
fn mass_deletion_is_refused_unless_forced() {
    let setup = Setup::new();
    setup.fake.add_movies("Movies", 400);
    assert_ok(&setup.sync());
    let movies = setup.fake.keys("1", Kind::Movie);
    for key in &movies[..300] {
        setup.fake.delete(key);
    }
    let report = setup.sync();
    assert!(!report.ok());
    let error = report.libraries[0].error.clone().unwrap();
    assert!(error.contains("refusing to delete 300 of 400"), "{error}");
    assert!(error.contains("--force"), "{error}");
    assert_eq!(setup.stored().len(), 400, "nothing may be deleted");

    // Still refused on the next run, with the same clear reason.
    let report = setup.sync();
    assert!(report.libraries[0].error.as_deref().unwrap().contains("refusing"));
    assert_eq!(setup.stored().len(), 400);

    let report = setup.sync_with(TOKEN, false, true);
    assert_ok(&report);
    assert_eq!(report.libraries[0].counters.deleted, 300);
    setup.assert_exact();
}

#[test]
fn an_emptied_library_is_not_wiped() {
    let setup = Setup::new();
    setup.fake.add_shows("TV Shows", 10, 2, 5);
    assert_ok(&setup.sync());
    let stored = setup.stored().len();
    setup.fake.delete_all("1", Kind::Show);
    let report = setup.sync();
    assert!(!report.ok());
    assert_eq!(setup.stored().len(), stored);
}

#[test]
fn garbage_and_truncated_answers_are_retried() {
    let mut setup = Setup::new();
    setup.retries = 3;
    setup.fake.add_library_of(1_500);
    setup.fake.fail_at(2, Failure::Garbage);
    setup.fake.fail_at(4, Failure::Truncated);
    setup.fake.fail_at(7, Failure::Status(503));
    setup.fake.fail_at(9, Failure::RateLimited(0));
    let report = setup.sync();
    assert_ok(&report);
    setup.assert_exact();
}

#[test]
fn persistent_garbage_fails_the_library_and_keeps_data() {
    let mut setup = Setup::new();
    setup.retries = 1;
    setup.fake.add_movies("Movies", 250);
    assert_ok(&setup.sync());
    let before = setup.stored();
    let movies = setup.fake.keys("1", Kind::Movie);
    setup.fake.edit_title(&movies[0], "Changed while broken");
    setup.fake.fail_from(setup.fake.requests() + 2, Failure::Truncated);
    let report = setup.sync();
    assert!(!report.ok());
    let error = report.libraries[0].error.clone().unwrap();
    assert!(error.contains("not Plex JSON"), "{error}");
    assert_eq!(setup.stored(), before, "the previous catalog stays usable");
    let (_, state) = setup.store.libraries().unwrap().remove(0);
    assert!(state.last_error.is_some());

    setup.fake.heal();
    assert_ok(&setup.sync());
    setup.assert_exact();
}

#[test]
fn wrong_token_stops_the_server_with_a_clear_message() {
    let setup = Setup::new();
    setup.fake.add_library_of(500);
    let report = setup.sync_with("wrong-token", false, false);
    assert!(!report.ok());
    let error = report.error.clone().unwrap();
    assert!(error.contains("refused the token"), "{error}");
    assert!(!error.contains("wrong-token") && !error.contains(TOKEN), "{error}");
    assert_eq!(setup.fake.requests(), 1, "an unauthorized server is not retried");
    assert!(setup.stored().is_empty());
    let state = setup.store.server_state("home").unwrap();
    assert!(state.last_error.unwrap().contains("refused the token"));
}

#[test]
fn failure_keeps_stale_data_usable() {
    let setup = Setup::new();
    setup.fake.add_library_of(800);
    assert_ok(&setup.sync());
    let before = setup.stored();
    let movies = setup.fake.keys("1", Kind::Movie);
    setup.fake.delete(&movies[0]);
    setup.fake.fail_from(setup.fake.requests() + 1, Failure::Status(500));
    let report = setup.sync();
    assert!(!report.ok());
    assert_eq!(setup.stored(), before);
    setup.fake.heal();
    assert_ok(&setup.sync());
    setup.assert_exact();
}

#[test]
fn short_pages_are_followed() {
    let mut setup = Setup::new();
    setup.page_size = 100;
    setup.fake.add_library_of(1_200);
    setup.fake.state().max_page = Some(37);
    assert_ok(&setup.sync());
    setup.assert_exact();
    let movies = setup.fake.keys("1", Kind::Movie);
    setup.fake.delete(&movies[3]);
    assert_ok(&setup.sync());
    setup.assert_exact();
}

#[test]
fn a_server_that_ignores_sorting_still_mirrors_exactly() {
    let setup = Setup::new();
    setup.fake.add_movies("Movies", 450);
    setup.fake.state().honour_sort = false;
    assert_ok(&setup.sync());
    let movies = setup.fake.keys("1", Kind::Movie);
    setup.fake.edit_title(&movies[5], "Edited on an unsorted server");
    let report = setup.sync();
    assert_ok(&report);
    setup.assert_exact();
    assert_eq!(mode_of(&report, "1"), "incremental+reconcile");
}

#[test]
fn unchanged_full_pass_writes_nothing() {
    let setup = Setup::new();
    setup.fake.add_library_of(1_000);
    assert_ok(&setup.sync());
    let changes_before = setup.store.changes(0, usize::MAX).unwrap().len();
    let report = setup.sync_with(TOKEN, true, false);
    assert_ok(&report);
    let rewritten: u64 = report.libraries.iter().map(|library| library.counters.new + library.counters.changed).sum();
    assert_eq!(rewritten, 0);
    assert_eq!(setup.store.changes(0, usize::MAX).unwrap().len(), changes_before, "no item was rewritten");
    setup.assert_exact();
}

#[test]
fn run_history_is_kept_and_bounded() {
    let setup = Setup::new();
    setup.fake.add_movies("Movies", 50);
    for _ in 0..7 {
        assert_ok(&setup.sync());
    }
    let runs = setup.store.runs(1).unwrap();
    assert_eq!(runs.len(), 5, "history keeps the newest 5 in this setup");
    assert_eq!(runs.last().unwrap().run, 7);
    assert_eq!(runs.first().unwrap().mode, "incremental");
}

#[test]
fn library_filter_selects_by_title_or_key() {
    let setup = Setup::new();
    setup.fake.add_library_of(600);
    let mut server = setup.server(TOKEN);
    server.libraries = Some(vec!["Movies".into(), "3".into()]);
    let source = mediasync::source::plex::Plex::new(
        &server,
        &setup.plex(TOKEN),
        std::time::Duration::from_secs(5),
        &Default::default(),
    );
    let report = mediasync::sync::sync_server(
        "home",
        &source,
        &setup.store,
        &setup.options(false, false),
        &std::sync::atomic::AtomicBool::new(false),
    );
    assert_ok(&report);
    let ids: Vec<&str> = report.libraries.iter().map(|library| library.library_id.as_str()).collect();
    assert_eq!(ids, vec!["1", "3"]);
}

#[test]
fn a_repair_pass_still_counts_as_the_weekly_full_pass() {
    let setup = Setup::new();
    setup.fake.add_movies("Movies", 300);
    assert_ok(&setup.sync());
    let (_, state) = setup.store.libraries().unwrap().remove(0);
    assert!(state.last_full_at.is_some(), "the first sync is a full pass");
    let runs = setup.store.runs(1).unwrap();
    assert!(runs[0].duration_ms > 0, "run durations are measured, not rounded to seconds");
    // The next sync is incremental: the full pass was recorded.
    let report = setup.sync();
    assert_eq!(mode_of(&report, "1"), "incremental");
}
