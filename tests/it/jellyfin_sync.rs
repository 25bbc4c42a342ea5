//! The engine against the fake Jellyfin/Emby server. Every scenario runs for
//! every version behaviour (10.8, 10.10, 10.11, 12, Emby), since each version
//! breaks the changed-since filter or the authentication differently; the
//! failure messages name the behaviour. The last tests pin the fake's own
//! fidelity to the notes.

use crate::support::{assert_deletions_made_by_the_server, assert_mirror, assert_ok, mode_of, stored_rows};
use mediasync::config::{Backend, JellyfinConfig, ServerConfig};
use mediasync::fake::jellyfin::{Behaviour, Failure, FakeJellyfin, FilterFault, Logged};
use mediasync::model::{Kind, PlayState};
use mediasync::source::Stop;
use mediasync::source::jellyfin::{Flavor, Jellyfin};
use mediasync::source::retry::{RetryPolicy, Retrying};
use mediasync::store::Store;
use mediasync::store::records::FilterCheck;
use mediasync::sync::{self, Options, ServerReport};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

const KEY: &str = "jf-api-key-5ecret";

struct Setup {
    behaviour: Behaviour,
    fake: FakeJellyfin,
    _dir: tempfile::TempDir,
    store: Store,
    page_size: u32,
    retries: u32,
    user: Option<String>,
}

impl Setup {
    fn new(behaviour: Behaviour) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("catalog.redb"), 4 << 20).unwrap();
        Setup {
            behaviour,
            fake: FakeJellyfin::start(behaviour, KEY),
            _dir: dir,
            store,
            page_size: 100,
            retries: 2,
            user: None,
        }
    }

    fn server(&self, key: &str) -> ServerConfig {
        ServerConfig {
            name: "den".into(),
            libraries: None,
            page_size: self.page_size,
            backend: Backend::Jellyfin(self.jellyfin(key)),
        }
    }

    fn jellyfin(&self, key: &str) -> JellyfinConfig {
        JellyfinConfig {
            flavor: if self.behaviour.is_emby() { Flavor::Emby } else { Flavor::Jellyfin },
            url: self.fake.url().to_string(),
            token: key.to_string(),
            user: self.user.clone(),
            notifications: false,
            login: None,
        }
    }

    fn source(&self, key: &str) -> Retrying<Jellyfin> {
        let stop: Arc<Stop> = Default::default();
        Retrying::new(
            Jellyfin::new(&self.server(key), &self.jellyfin(key), Duration::from_secs(10), &stop),
            RetryPolicy {
                retries: self.retries,
                delay: Duration::from_millis(2),
                max_rate_limit_wait: Duration::from_secs(2),
            },
            &stop,
        )
    }

    fn options(&self, force: bool) -> Options {
        Options {
            full: false,
            force,
            full_every: Duration::from_secs(7 * 86_400),
            max_delete_share: 0.5,
            history: 5,
            page_size: self.page_size,
            unchanged_runs: mediasync::sync::UnchangedRuns::Recorded,
        }
    }

    fn sync_with(&self, key: &str, force: bool) -> ServerReport {
        sync::sync_server("den", &self.source(key), &self.store, &self.options(force), &AtomicBool::new(false))
    }

    fn sync(&self) -> ServerReport {
        self.sync_with(KEY, false)
    }

    /// A sync walking whole libraries (`--full`).
    fn synced_full(&self) -> ServerReport {
        let mut options = self.options(false);
        options.full = true;
        let report = sync::sync_server("den", &self.source(KEY), &self.store, &options, &AtomicBool::new(false));
        assert!(report.ok(), "{}: sync failed: {report:#?}", self.behaviour.name());
        report
    }

    fn synced(&self) -> ServerReport {
        let report = self.sync();
        assert!(report.ok(), "{}: sync failed: {report:#?}", self.behaviour.name());
        report
    }

    fn assert_exact(&self) {
        assert_mirror(&format!("{}: ", self.behaviour.name()), &stored_rows(&self.store), &self.fake.expected());
    }

    fn library<'r>(&self, report: &'r ServerReport, view: &str) -> &'r sync::LibraryReport {
        let id = self.fake.view_id(view);
        report.libraries.iter().find(|library| library.library_id == id).expect("library in report")
    }

    /// Item listings (not counts) requested since the log was cleared.
    fn listings(&self) -> Vec<Logged> {
        self.fake
            .log()
            .into_iter()
            .filter(|entry| {
                entry.path.ends_with("/Items") && entry.param("Limit") != Some("0") && entry.param("IsPlayed").is_none()
            })
            .collect()
    }
}

/// Libraries of `add_library_of`: movies, shows (3 kinds), music (3 kinds),
/// home videos, music videos, collections.
const LIBRARIES: u64 = 6;

/// Issue 13's budget, with 3 libraries of 7 kinds on every version: an
/// unchanged resync is /Users, /Views and 2 requests per library (the
/// changed listing across kinds, the count through the filter), whatever
/// the filter's quirk; one edited item costs no more, since the changed
/// listing brings it. Exact mirrors throughout.
#[test]
fn three_libraries_resync_within_two_requests_each_plus_two() {
    for behaviour in Behaviour::ALL {
        let setup = Setup::new(behaviour);
        setup.fake.add_movies("Movies", 120);
        let shows = setup.fake.add_shows("Shows", 6, 2, 8);
        setup.fake.add_music("Music", 4, 3, 6);
        setup.synced();
        setup.assert_exact();
        let budget = 2 + 2 * 3;
        for run in 1..=2 {
            let before = setup.fake.requests();
            let report = setup.synced();
            let made = setup.fake.requests() - before;
            println!("{}: unchanged resync {run}: {made} requests", behaviour.name());
            assert!(
                made <= budget,
                "{}: {made} requests for 3 unchanged libraries (budget {budget})",
                behaviour.name()
            );
            assert!(report.libraries.iter().all(|library| library.mode == "incremental"), "{}", behaviour.name());
            setup.assert_exact();
        }
        let episodes = setup.fake.ids(&shows, Kind::Episode);
        setup.fake.edit_title(&episodes[5], "An Edited Episode");
        let before = setup.fake.requests();
        let report = setup.synced();
        let made = setup.fake.requests() - before;
        println!("{}: one edited episode: {made} requests", behaviour.name());
        assert!(made <= budget + 2, "{}: {made} requests for one edited episode", behaviour.name());
        assert_eq!(setup.library(&report, "Shows").counters.changed, 1, "{}", behaviour.name());
        setup.assert_exact();
        // Each library's changed listing names every kind of it at once.
        let listings = setup.listings();
        let types = |listing: &Logged| listing.param("IncludeItemTypes").unwrap_or_default().to_string();
        assert!(listings.iter().any(|listing| types(listing) == "Series,Season,Episode"), "{listings:?}");
        assert!(listings.iter().any(|listing| types(listing) == "MusicArtist,MusicAlbum,Audio"), "{listings:?}");
    }
}

#[test]
fn initial_sync_is_exact_and_unchanged_resyncs_are_cheap() {
    for behaviour in Behaviour::ALL {
        let setup = Setup::new(behaviour);
        setup.fake.add_library_of(700);
        let report = setup.synced();
        setup.assert_exact();
        assert_eq!(report.libraries.len() as u64, LIBRARIES, "{}: photos and playlists are skipped", behaviour.name());
        for library in &report.libraries {
            assert_eq!(library.mode, "full");
        }

        // /Users and /Views, then per library one changed listing across
        // its kinds and one count through the filter (which checks it):
        // every run alike, the first incremental one included.
        for (run, budget) in [(1, 2 + 2 * LIBRARIES), (2, 2 + 2 * LIBRARIES)] {
            setup.fake.clear_log();
            let before = setup.fake.requests();
            let report = setup.synced();
            let made = setup.fake.requests() - before;
            println!(
                "{}: unchanged resync {run} of {} items: {made} requests",
                behaviour.name(),
                setup.fake.item_count()
            );
            assert!(made <= budget, "{}: {made} requests for an unchanged library (budget {budget})", behaviour.name());
            assert_eq!(report.requests, made);
            for library in &report.libraries {
                assert_eq!(library.mode, "incremental", "{}", behaviour.name());
                assert_eq!(library.counters.new + library.counters.changed + library.counters.deleted, 0);
            }
            for listing in setup.listings() {
                assert!(
                    listing.param("MinDateLastSaved").is_some(),
                    "{}: a full listing: {listing:?}",
                    behaviour.name()
                );
                assert_eq!(
                    listing.param("MinDateLastSavedForUser").is_some(),
                    !behaviour.is_emby(),
                    "{}: the ForUser twin goes to Jellyfin only: {listing:?}",
                    behaviour.name()
                );
            }
        }
        setup.assert_exact();
    }
}

#[test]
fn additions_edits_and_deletions_are_mirrored() {
    for behaviour in Behaviour::ALL {
        let setup = Setup::new(behaviour);
        setup.fake.add_library_of(600);
        setup.synced();
        setup.synced(); // an incremental run: its count checks the filter

        let movies_view = setup.fake.view_id("Movies");
        let shows_view = setup.fake.view_id("Shows");
        let music_view = setup.fake.view_id("Music");
        let movies = setup.fake.ids(&movies_view, Kind::Movie);
        let shows = setup.fake.ids(&shows_view, Kind::Show);
        let seasons = setup.fake.ids(&shows_view, Kind::Season);
        let albums = setup.fake.ids(&music_view, Kind::Album);
        setup.fake.add_item(&movies_view, Kind::Movie, "Brand New Movie", None);
        setup.fake.add_item(&shows_view, Kind::Episode, "A New Episode", Some(&seasons[4]));
        setup.fake.add_item(&music_view, Kind::Track, "A New Track", Some(&albums[0]));
        setup.fake.edit_title(&movies[10], "Renamed Movie");
        setup.fake.edit_overview(&movies[11]); // only the Etag changes
        setup.fake.replace_image(&movies[12]);
        setup.fake.play(&movies[13]); // not saved: the played listing brings it
        setup.fake.edit_title(&seasons[0], "Season One (Remastered)");
        setup.fake.delete(&movies[20]);
        setup.fake.delete(&shows[1]); // its 2 seasons and 20 episodes go too

        let report = setup.synced();
        setup.assert_exact();
        let movies_report = setup.library(&report, "Movies");
        assert_eq!(
            (movies_report.counters.new, movies_report.counters.changed, movies_report.counters.deleted),
            (1, 3, 1),
            "{}: new, changed (title, overview, image; the played one came before, by the played listing), deleted",
            behaviour.name()
        );
        assert_eq!(mode_of(&report, &movies_view), "incremental+reconcile", "{}", behaviour.name());
        let tv = setup.library(&report, "Shows");
        assert_eq!(tv.counters.deleted, 1 + 2 + 20, "{}", behaviour.name());
        assert_eq!(tv.counters.new, 1, "{}", behaviour.name());
        let number = setup.store.find_library("den", &movies_view).unwrap().unwrap();
        let edited = setup.store.item(number, &movies[11]).unwrap().unwrap();
        assert!(edited.item.marker.is_some(), "{}: the Etag is stored", behaviour.name());
        let played = setup.store.item(number, &movies[13]).unwrap().unwrap().item.play_state.unwrap();
        assert_eq!((played.played, played.play_count), (true, 1), "{}", behaviour.name());

        let before = setup.fake.requests();
        let report = setup.synced();
        assert!(setup.fake.requests() - before <= 2 + 2 * LIBRARIES, "{}", behaviour.name());
        assert_eq!(mode_of(&report, &movies_view), "incremental");
        setup.assert_exact();
    }
}

/// The user's played state rides on every listed item, and the played
/// listing (newest play first, walked down to the last run's newest play)
/// brings plays between full passes: a play saves nothing, so the
/// save-time filter would not list it again.
#[test]
fn the_users_played_state_is_stored_and_kept_current_between_full_passes() {
    for behaviour in Behaviour::ALL {
        let setup = Setup::new(behaviour);
        let view = setup.fake.add_movies("Movies", 40);
        let movies = setup.fake.ids(&view, Kind::Movie);
        setup.fake.play(&movies[3]);
        setup.fake.play(&movies[3]);
        let played_at = setup.fake.state().clock;
        setup.synced();
        let number = setup.store.find_library("den", &view).unwrap().unwrap();
        let state = |id: &str| setup.store.item(number, id).unwrap().unwrap().item.play_state.unwrap();
        let twice = PlayState { played: true, play_count: 2, last_played_at: Some(played_at) };
        assert_eq!(state(&movies[3]), twice, "{}", behaviour.name());
        assert_eq!(state(&movies[4]), PlayState::default(), "{}: never played", behaviour.name());
        setup.synced(); // an incremental run: its count checks the filter
        setup.fake.play(&movies[4]);
        let played_at = setup.fake.state().clock;
        let report = setup.synced();
        let once = PlayState { played: true, play_count: 1, last_played_at: Some(played_at) };
        assert_eq!(state(&movies[4]), once, "{}", behaviour.name());
        assert_eq!(setup.library(&report, "Movies").mode, "incremental", "{}", behaviour.name());
        let report = setup.synced_full();
        assert_eq!(setup.library(&report, "Movies").counters.changed, 0, "{}: nothing left behind", behaviour.name());
        setup.assert_exact();
    }
}

/// Plays on an unchanged catalog of 3 libraries show in the mirror after
/// the next resync within 2 requests per library plus 2 (the views and one
/// played listing: the user is kept from the first run); an un-marking
/// (which clears the date, so it never leads the listing) and a re-marking
/// (which keeps the old date) are caught by the played count, then the
/// whole played listing (one more page here). Each shows in the change feed.
#[test]
fn plays_and_unmarks_show_after_an_unchanged_resync_within_budget() {
    for behaviour in Behaviour::ALL {
        let name = behaviour.name();
        let setup = Setup::new(behaviour);
        let movies_view = setup.fake.add_movies("Movies", 60);
        let shows_view = setup.fake.add_shows("Shows", 3, 2, 5);
        let music_view = setup.fake.add_music("Music", 2, 2, 5);
        let movie = setup.fake.ids(&movies_view, Kind::Movie)[7].clone();
        let episode = setup.fake.ids(&shows_view, Kind::Episode)[4].clone();
        let track = setup.fake.ids(&music_view, Kind::Track)[9].clone();
        setup.fake.play(&movie);
        setup.synced();
        setup.synced();
        let budget = 2 + 2 * 3;
        let state = |view: &str, id: &str| {
            let number = setup.store.find_library("den", view).unwrap().unwrap();
            setup.store.item(number, id).unwrap().unwrap().item.play_state.unwrap_or_default()
        };
        let feed_has = |id: &str, after: u64| setup.store.changes(after, 10_000).unwrap().iter().any(|c| c.id == id);
        let resync = |what: &str, extra: u64| {
            let before = setup.fake.requests();
            let report = setup.synced();
            let made = setup.fake.requests() - before;
            println!("{name}: {what}: {made} requests");
            assert!(made <= budget + extra, "{name}: {what}: {made} requests (budget {})", budget + extra);
            assert!(report.libraries.iter().all(|library| library.mode == "incremental"), "{name}: {report:#?}");
        };
        resync("unchanged", 0);

        let seq = setup.store.changes(0, 100_000).unwrap().last().map_or(0, |change| change.seq);
        setup.fake.play(&episode);
        setup.fake.play(&track);
        setup.fake.play(&movie);
        let played_at = setup.fake.state().clock;
        resync("three plays", 0);
        assert_eq!(
            state(&movies_view, &movie),
            PlayState { played: true, play_count: 2, last_played_at: Some(played_at) },
            "{name}"
        );
        assert!(state(&shows_view, &episode).played && state(&music_view, &track).played, "{name}");
        assert!(feed_has(&episode, seq) && feed_has(&track, seq) && feed_has(&movie, seq), "{name}: in the feed");

        setup.fake.mark_unplayed(&episode);
        resync("one un-marked", 1);
        assert_eq!(state(&shows_view, &episode), PlayState::default(), "{name}: un-marked");
        assert!(state(&music_view, &track).played, "{name}");

        setup.fake.mark_played(&episode); // no date left: marked now, it leads
        let other = setup.fake.ids(&movies_view, Kind::Movie)[2].clone();
        setup.fake.play(&other);
        setup.fake.mark_unplayed(&other);
        setup.fake.play(&other); // played again: a new date
        resync("re-played", 1);
        assert!(state(&shows_view, &episode).played && state(&movies_view, &other).played, "{name}");
        assert_eq!(state(&movies_view, &other).play_count, 1, "{name}");

        resync("unchanged again", 0);
        setup.assert_exact();
    }
}

/// Many plays between runs take more pages of the played listing (50 a
/// page), down to the last run's newest play and no further; a user kept
/// from an earlier run that the server no longer knows (a reinstalled
/// server: same name, new id) is looked up again, once.
#[test]
fn many_plays_take_more_pages_and_a_gone_user_is_looked_up_again() {
    for behaviour in Behaviour::ALL {
        let name = behaviour.name();
        let setup = Setup::new(behaviour);
        let view = setup.fake.add_movies("Movies", 150);
        let movies = setup.fake.ids(&view, Kind::Movie);
        setup.synced();
        setup.synced();
        for movie in &movies[..120] {
            setup.fake.play(movie);
        }
        let before = setup.fake.requests();
        setup.synced();
        let made = setup.fake.requests() - before;
        println!("{name}: 120 plays: {made} requests");
        assert!(made <= 4 + 2, "{name}: {made} requests: the views, 3 played pages, 2 for the library");
        let number = setup.store.find_library("den", &view).unwrap().unwrap();
        let played = |id: &str| setup.store.item(number, id).unwrap().unwrap().item.play_state.unwrap_or_default();
        assert!(movies[..120].iter().all(|movie| played(movie).played), "{name}: every play");
        assert!(!played(&movies[120]).played, "{name}");

        setup.fake.state().users.iter_mut().filter(|user| user.admin).for_each(|user| {
            user.id = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f".into();
        });
        setup.fake.play(&movies[130]);
        let report = setup.synced();
        assert!(report.libraries.iter().all(|library| library.mode == "incremental"), "{name}: {report:#?}");
        assert!(played(&movies[130]).played, "{name}: played as the user looked up again");
        let before = setup.fake.requests();
        setup.synced();
        let made = setup.fake.requests() - before;
        assert!(made <= 4, "{name}: {made} requests: the new id is kept");
        setup.assert_exact();
    }
}

/// An un-marking is found by absence from the whole played listing, so a
/// listing that holds fewer items than it counts (here emptied) un-marks
/// nothing; the next run lists again and un-marks then.
#[test]
fn an_unmark_is_not_taken_from_a_played_listing_short_of_its_count() {
    for behaviour in Behaviour::ALL {
        let name = behaviour.name();
        let setup = Setup::new(behaviour);
        let view = setup.fake.add_movies("Movies", 30);
        let movies = setup.fake.ids(&view, Kind::Movie);
        for movie in &movies[..3] {
            setup.fake.play(movie);
        }
        setup.synced();
        setup.synced();
        let number = setup.store.find_library("den", &view).unwrap().unwrap();
        let played = |id: &str| setup.store.item(number, id).unwrap().unwrap().item.play_state.unwrap_or_default();
        setup.fake.mark_unplayed(&movies[1]);
        // The views, the played listing's first page, then the whole listing.
        setup.fake.fail_at(setup.fake.requests() + 3, Failure::Emptied);
        setup.synced();
        assert!(movies[..3].iter().all(|movie| played(movie).played), "{name}: nothing un-marked on a short listing");
        setup.synced();
        assert!(!played(&movies[1]).played, "{name}: un-marked by the next run");
        assert!(played(&movies[0]).played && played(&movies[2]).played, "{name}");
        setup.assert_exact();

        // A store from before the played state was followed: no cursor.
        let mut state = setup.store.server_state("den").unwrap();
        state.played = None;
        setup.store.write(|writer| writer.put_server_state("den", &state)).unwrap();
        setup.fake.mark_unplayed(&movies[2]);
        setup.synced();
        assert!(!played(&movies[2]).played, "{name}: the first run with the played state reads it whole");
        assert!(played(&movies[0]).played, "{name}");
    }
}

#[test]
fn deletion_hidden_by_an_addition_is_found() {
    for behaviour in Behaviour::ALL {
        let setup = Setup::new(behaviour);
        let view = setup.fake.add_movies("Movies", 300);
        setup.synced();
        let movies = setup.fake.ids(&view, Kind::Movie);
        setup.fake.delete(&movies[7]);
        setup.fake.add_item(&view, Kind::Movie, "Replacement", None);
        let report = setup.synced();
        setup.assert_exact();
        assert_eq!(
            (report.libraries[0].counters.new, report.libraries[0].counters.deleted),
            (1, 1),
            "{}",
            behaviour.name()
        );
    }
}

#[test]
fn interrupted_initial_sync_resumes_without_refetching() {
    for behaviour in Behaviour::ALL {
        let mut setup = Setup::new(behaviour);
        setup.retries = 1;
        setup.fake.add_movies("Movies", 1_000);
        // Requests 1 and 2 find the user and the views, 3 the played items,
        // 4..6 fetch pages at 0, 100, 200; then the server breaks (each
        // failure retried once).
        setup.fake.fail_from(7, Failure::Status(500));
        let report = setup.sync();
        assert!(!report.ok());
        assert!(report.libraries[0].error.as_deref().unwrap().contains("HTTP 500"), "{report:#?}");
        assert_eq!(stored_rows(&setup.store).len(), 300, "{}: three pages were committed", behaviour.name());

        setup.fake.heal();
        setup.fake.clear_log();
        let report = setup.synced();
        assert_eq!(report.libraries[0].mode, "resumed");
        setup.assert_exact();
        let listings = setup.listings();
        let starts: Vec<&str> = listings.iter().map(|entry| entry.param("StartIndex").unwrap_or("?")).collect();
        assert_eq!(
            starts,
            vec!["299", "399", "499", "599", "699", "799", "899"],
            "{}: committed pages were fetched again",
            behaviour.name()
        );
    }
}

#[test]
fn mass_deletion_is_refused_unless_forced() {
    for behaviour in Behaviour::ALL {
        let setup = Setup::new(behaviour);
        let view = setup.fake.add_movies("Movies", 400);
        setup.synced();
        for id in &setup.fake.ids(&view, Kind::Movie)[..300] {
            setup.fake.delete(id);
        }
        let report = setup.sync();
        let error = report.libraries[0].error.clone().unwrap_or_default();
        assert!(
            error.contains("refusing to delete 300 of 400") && error.contains("--force"),
            "{}: {error}",
            behaviour.name()
        );
        assert_eq!(stored_rows(&setup.store).len(), 400, "{}: nothing may be deleted", behaviour.name());
        let report = setup.sync_with(KEY, true);
        assert_ok(&report);
        assert_eq!(report.libraries[0].counters.deleted, 300);
        setup.assert_exact();
    }
}

#[test]
fn wrong_key_stops_the_server_with_a_clear_message() {
    for behaviour in Behaviour::ALL {
        let setup = Setup::new(behaviour);
        setup.fake.add_library_of(200);
        let report = setup.sync_with("wrong-key", false);
        let error = report.error.clone().unwrap_or_default();
        assert!(error.contains("refused the token") && error.contains("token"), "{}: {error}", behaviour.name());
        assert!(!error.contains("wrong-key") && !error.contains(KEY), "{}: {error}", behaviour.name());
        assert_eq!(setup.fake.requests(), 1, "{}: an unauthorized server is not retried", behaviour.name());
        assert!(stored_rows(&setup.store).is_empty());
        // Nothing is poisoned: the right key syncs the same store.
        setup.synced();
        setup.assert_exact();
    }
}

#[test]
fn a_missing_user_is_a_clear_error_and_a_named_user_is_used() {
    let mut setup = Setup::new(Behaviour::Jellyfin10_11);
    setup.fake.add_movies("Movies", 20);
    setup.user = Some("nobody".into());
    let error = setup.sync().error.unwrap_or_default();
    assert!(error.contains("no user named \"nobody\"") && error.contains("`user`"), "{error}");
    assert!(error.contains("alice"), "the message lists the users: {error}");
    setup.user = Some("Alice".into());
    setup.synced();
    let alice = setup.fake.state().users.iter().find(|user| user.name == "alice").unwrap().id.clone();
    assert!(setup.fake.log().iter().any(|entry| entry.path == format!("/Users/{alice}/Views")));
    setup.assert_exact();
}

/// Emby 4.8 documents only `/Users/Query`, Jellyfin only `/Users`; a server
/// that has just the other one must still be usable.
#[test]
fn users_are_found_on_either_route() {
    use mediasync::source::Source;
    let setup = Setup::new(Behaviour::Emby);
    setup.fake.add_movies("Movies", 5);
    let jellyfin = JellyfinConfig { flavor: Flavor::Jellyfin, ..setup.jellyfin(KEY) };
    let source = Jellyfin::new(&setup.server(KEY), &jellyfin, Duration::from_secs(10), &Default::default());
    assert_eq!(source.libraries().unwrap().len(), 1);
    let paths: Vec<String> = setup.fake.log().into_iter().map(|entry| entry.path).collect();
    assert_eq!(paths[..2], ["/Users".to_string(), "/Users/Query".to_string()]);
}

/// Jellyfin 10.9+ documents only `/UserViews?userId=` and `/Items?userId=`;
/// a server that dropped the user-scoped routes must still sync exactly
/// and incrementally.
#[test]
fn a_jellyfin_without_user_scoped_routes_is_served_by_the_query_routes() {
    for behaviour in [Behaviour::Jellyfin10_10, Behaviour::Jellyfin12] {
        let setup = Setup::new(behaviour);
        setup.fake.state().user_routes = false;
        let view = setup.fake.add_movies("Movies", 250);
        setup.synced();
        setup.assert_exact();
        let movies = setup.fake.ids(&view, Kind::Movie);
        setup.fake.edit_overview(&movies[9]);
        setup.fake.clear_log();
        let report = setup.synced();
        assert_eq!((mode_of(&report, &view).as_str(), report.libraries[0].counters.changed), ("incremental", 1));
        let paths: Vec<String> = setup.fake.log().into_iter().map(|entry| entry.path).collect();
        assert!(paths.contains(&"/UserViews".to_string()) && paths.contains(&"/Items".to_string()), "{paths:?}");
        setup.assert_exact();
    }
}

#[test]
fn an_unusable_filter_falls_back_to_a_full_reconcile_and_is_remembered() {
    let faults = [FilterFault::Ignored, FilterFault::Fails, FilterFault::Empties];
    for (behaviour, fault) in Behaviour::ALL.into_iter().flat_map(|behaviour| faults.map(|fault| (behaviour, fault))) {
        let setup = Setup::new(behaviour);
        let view = setup.fake.add_movies("Movies", 250);
        setup.fake.add_shows("Shows", 4, 2, 5);
        setup.synced();
        let movies = setup.fake.ids(&view, Kind::Movie);
        setup.fake.state().filter_fault = Some(fault);
        setup.fake.edit_title(&movies[3], "Edited behind a broken filter");
        let report = setup.synced();
        setup.assert_exact();
        assert_eq!(mode_of(&report, &view), "incremental+reconcile", "{}: {fault:?}", behaviour.name());
        assert_eq!(report.libraries[0].counters.changed, 1, "{}: {fault:?}", behaviour.name());
        let number = setup.store.find_library("den", &view).unwrap().unwrap();
        let state = setup.store.state(number).unwrap().unwrap();
        assert!(matches!(state.filter, FilterCheck::Unusable { .. }), "{fault:?}: {:?}", state.filter);

        // Remembered: the next runs are cheap full passes, not filtered.
        setup.fake.edit_title(&movies[4], "Edited again");
        setup.fake.clear_log();
        let report = setup.synced();
        assert_eq!(mode_of(&report, &view), "full", "{fault:?}");
        assert!(
            setup.fake.log().iter().all(|entry| entry.param("MinDateLastSaved").is_none()),
            "{fault:?}: filtered again"
        );
        setup.assert_exact();
    }
}

/// A changed listing as long as the library is either an ignored filter or
/// a library that changed whole: the count for a date ahead tells them
/// apart, and a working filter stays trusted.
#[test]
fn a_library_edited_whole_is_not_taken_for_an_ignored_filter() {
    for behaviour in Behaviour::ALL {
        let setup = Setup::new(behaviour);
        let view = setup.fake.add_movies("Movies", 50);
        setup.synced();
        setup.synced();
        for (index, id) in setup.fake.ids(&view, Kind::Movie).iter().enumerate() {
            setup.fake.edit_title(id, &format!("Retitled {index}"));
        }
        let before = setup.fake.requests();
        let report = setup.synced();
        // /Users, /Views, the changed listing, the count ahead, the count.
        assert_eq!(setup.fake.requests() - before, 5, "{}", behaviour.name());
        assert_eq!(mode_of(&report, &view), "incremental", "{}", behaviour.name());
        assert_eq!(report.libraries[0].counters.changed, 50, "{}", behaviour.name());
        let number = setup.store.find_library("den", &view).unwrap().unwrap();
        let state = setup.store.state(number).unwrap().unwrap();
        assert!(matches!(state.filter, FilterCheck::Works { .. }), "{}: {:?}", behaviour.name(), state.filter);
        setup.assert_exact();
    }
}

/// An interrupted incremental run of an older version walked one kind at a
/// time; its checkpoint between kinds is walked again across kinds, so an
/// edit of a kind it had passed is not missed.
#[test]
fn an_older_checkpoint_between_kinds_is_walked_again_across_kinds() {
    let setup = Setup::new(Behaviour::Jellyfin10_11);
    let view = setup.fake.add_shows("Shows", 4, 2, 5);
    setup.synced();
    setup.synced();
    let shows = setup.fake.ids(&view, Kind::Show);
    setup.fake.edit_title(&shows[0], "A Show Edited");
    let number = setup.store.find_library("den", &view).unwrap().unwrap();
    let state = setup.store.state(number).unwrap().unwrap();
    let cursor = state.changed_since.unwrap() - 300;
    let checkpoint: mediasync::store::records::Checkpoint = serde_json::from_value(serde_json::json!({
        "started_as": "incremental", "pass": "incremental", "generation": state.generation,
        "kinds": ["show", "season", "episode"], "kind_index": 1, "start": 5,
        "cursors": {"show": cursor, "season": cursor, "episode": cursor}, "totals": {}, "full_passes": 0,
        "sweep_approved": false, "forced": false, "run": state.runs + 1, "started_at": 1_800_000_000,
        "server_started_at": state.changed_since, "resumed": false,
        "counters": {"new": 0, "changed": 0, "deleted": 0, "unchanged": 0, "bad": 0, "pages": 1, "requests": 3}
    }))
    .unwrap();
    setup.store.write(|writer| writer.put_running_state(number, &state, &checkpoint)).unwrap();
    let report = setup.synced();
    assert_eq!(mode_of(&report, &view), "resumed");
    assert_eq!(report.libraries[0].counters.changed, 1, "the edited show, of the kind already passed");
    setup.assert_exact();
}

#[test]
fn a_filter_failing_mid_pass_falls_back_and_an_outage_does_not() {
    let setup = Setup::new(Behaviour::Jellyfin10_11);
    let view = setup.fake.add_movies("Movies", 300);
    setup.synced();
    setup.synced(); // an incremental run: its count finds the filter working
    let movies = setup.fake.ids(&view, Kind::Movie);
    setup.fake.edit_title(&movies[0], "Changed");
    // An outage is not blamed on the filter: the run fails and keeps state.
    setup.fake.fail_from(setup.fake.requests() + 1, Failure::Status(503));
    assert!(!setup.sync().ok());
    setup.fake.heal();
    let number = setup.store.find_library("den", &view).unwrap().unwrap();
    assert!(matches!(setup.store.state(number).unwrap().unwrap().filter, FilterCheck::Works { .. }));
    // The filter alone failing is.
    setup.fake.state().filter_fault = Some(FilterFault::Fails);
    let report = setup.synced();
    assert_eq!(mode_of(&report, &view), "incremental+reconcile");
    assert!(matches!(setup.store.state(number).unwrap().unwrap().filter, FilterCheck::Unusable { .. }));
    setup.assert_exact();
}

#[test]
fn short_pages_and_garbage_answers_are_survived() {
    for behaviour in [Behaviour::Jellyfin10_8, Behaviour::Emby] {
        let mut setup = Setup::new(behaviour);
        setup.retries = 3;
        setup.fake.add_library_of(900);
        setup.fake.state().max_page = Some(37);
        setup.fake.fail_at(3, Failure::Garbage);
        setup.fake.fail_at(5, Failure::Truncated);
        setup.fake.fail_at(8, Failure::RateLimited(0));
        setup.synced();
        setup.assert_exact();
        let movies = setup.fake.ids(&setup.fake.view_id("Movies"), Kind::Movie);
        setup.fake.delete(&movies[3]);
        setup.fake.edit_title(&movies[40], "Renamed");
        setup.synced();
        setup.assert_exact();
    }
}

/// A full walk used to miss an item whenever the server deleted one on a
/// page already read (every later item moves up a place), and the sweep
/// deleted the missed item. Now what a walk did not see is looked up first.
#[test]
fn deletions_on_a_page_already_read_drop_no_live_item() {
    for behaviour in Behaviour::ALL {
        let setup = Setup::new(behaviour);
        let view = setup.fake.add_movies("Movies", 400);
        setup.synced();
        let movies = setup.fake.ids(&view, Kind::Movie);
        let since = setup.store.changes(0, usize::MAX).unwrap().last().map_or(0, |change| change.seq);
        // 1 /Users, 2 /Views, 3 the first page, 4 the second: before it,
        // two movies of the first page go.
        let doomed = [movies[10].clone(), movies[20].clone()];
        setup.fake.before_request(setup.fake.requests() + 4, move |state| {
            for id in &doomed {
                state.remove(id);
            }
        });
        setup.fake.clear_log();
        let report = setup.synced_full();
        let library = &report.libraries[0];
        assert_eq!((library.counters.deleted, library.counters.kept), (2, 1), "{}: {library:?}", behaviour.name());
        setup.assert_exact();
        assert_deletions_made_by_the_server(
            &format!("{}: ", behaviour.name()),
            &setup.store,
            since,
            &setup.fake.deleted(),
        );
        let lookups = setup.fake.log().iter().filter(|entry| entry.param("Ids").is_some()).count();
        assert_eq!(lookups, 2, "{}: the walk's miss, then the repeated pass's two deletions", behaviour.name());
    }
}

/// An incremental walk the listing moves under starts the kind over: the
/// changed-since listing is in creation order, and when an item it already
/// read goes, every later one moves up a place and one changed item would
/// never be listed (with an addition elsewhere in the same run, the counts
/// could still agree, and the next run's cursor be past its edit).
#[test]
fn an_incremental_walk_the_listing_moves_under_starts_over() {
    for behaviour in Behaviour::ALL {
        let setup = Setup::new(behaviour);
        let view = setup.fake.add_movies("Movies", 400);
        setup.synced();
        setup.synced(); // an incremental run: its count checks the filter
        let movies = setup.fake.ids(&view, Kind::Movie);
        for id in &movies[100..350] {
            setup.fake.edit_title(id, &format!("Edited {id}"));
        }
        setup.fake.state().clock += 3_600; // an hour passes
        // 1 /Users, 2 /Views, 3 the first changed page, 4 the second.
        let deleted = movies[120].clone();
        setup.fake.before_request(setup.fake.requests() + 4, move |state| state.remove(&deleted));
        setup.fake.clear_log();
        let report = setup.synced();
        let library = setup.library(&report, "Movies");
        assert!(library.counters.shifts >= 1, "{}: {library:?}", behaviour.name());
        let first_pages = setup
            .listings()
            .iter()
            .filter(|entry| entry.param("MinDateLastSaved").is_some() && entry.param("StartIndex") == Some("0"))
            .count();
        assert_eq!(first_pages, 2, "{}: the changed items were walked again from the top", behaviour.name());
        // The deletion shows in the counts: reconciled in the same run.
        assert_eq!(library.mode, "incremental+reconcile", "{}", behaviour.name());
        setup.assert_exact();
    }
}

/// The changed-since cursor follows the server's clock (its `Date`), not
/// the local one: a server clock a day ahead, then set back, loses no edit.
#[test]
fn a_server_clock_that_jumps_ahead_and_back_loses_no_change() {
    for behaviour in Behaviour::ALL {
        let name = behaviour.name();
        let setup = Setup::new(behaviour);
        let view = setup.fake.add_movies("Movies", 60);
        setup.synced();
        setup.synced(); // an incremental run: its count checks the filter
        let movies = setup.fake.ids(&view, Kind::Movie);
        setup.fake.state().clock += 86_400;
        setup.fake.edit_title(&movies[1], "Edited while the clock was ahead");
        let report = setup.synced();
        assert_eq!(mode_of(&report, &view), "incremental", "{name}");
        assert_eq!(setup.library(&report, "Movies").counters.changed, 1, "{name}");
        // Set right, the clock stamps later edits before the last sync began.
        setup.fake.state().clock -= 86_400;
        setup.fake.edit_title(&movies[2], "Edited after the clock was set back");
        let report = setup.synced();
        assert_eq!(mode_of(&report, &view), "full", "{name}: the server's clock went back");
        setup.assert_exact();
        setup.fake.state().clock += 60;
        setup.fake.edit_title(&movies[3], "Edited later");
        let report = setup.synced();
        assert_eq!(mode_of(&report, &view), "incremental", "{name}");
        assert_eq!(setup.library(&report, "Movies").counters.changed, 1, "{name}");
        setup.assert_exact();
    }
}

/// Through the binary, as a user runs it: the config's `kind`, the source
/// built from it, a SIGKILL in the middle of the first sync, and a rerun
/// that resumes without refetching committed pages and exports exactly.
#[test]
fn sigkill_during_the_first_sync_then_rerun_is_exact() {
    for (behaviour, kind) in [(Behaviour::Jellyfin12, "jellyfin"), (Behaviour::Emby, "emby")] {
        let fake = FakeJellyfin::start(behaviour, KEY);
        fake.add_library_of(2_000);
        fake.state().delay = Duration::from_millis(15);
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        let text = format!(
            "[store]\npath = \"{}\"\n[sync]\nretry_delay = \"5ms\"\nretries = 1\n[[server]]\nname = \"den\"\nkind = \"{kind}\"\nurl = \"{}\"\ntoken = \"{KEY}\"\npage_size = 50\n",
            dir.path().join("catalog.redb").display(),
            fake.url()
        );
        std::fs::write(&config, text).unwrap();
        let binary = || {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mediasync"));
            command.env_remove("MEDIASYNC_CONFIG").env("RUST_LOG", "warn").arg("--config").arg(&config);
            command
        };
        // Pages of full passes; a library the first run finished is walked
        // incrementally (filtered) by the second, which is no refetch.
        let page = |entry: &Logged| {
            if entry.param("Limit") == Some("0") || entry.param("MinDateLastSaved").is_some() {
                return None;
            }
            Some((
                entry.param("ParentId")?.to_string(),
                entry.param("IncludeItemTypes")?.to_string(),
                entry.param("StartIndex")?.to_string(),
            ))
        };
        let mut child = binary()
            .arg("sync")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while fake.requests() < 20 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let first: Vec<_> = fake.log().iter().filter_map(page).collect();
        assert!(first.len() >= 15, "{}: killed too early to prove anything", behaviour.name());
        fake.state().delay = Duration::ZERO;
        fake.clear_log();

        let output = binary().arg("sync").output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{}: {}", behaviour.name(), String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("mode=resumed"), "{stdout}");
        let second: Vec<_> = fake.log().iter().filter_map(page).collect();
        let refetched = second.iter().filter(|page| first.contains(page)).count();
        // Only a page in flight at the kill (fetched, not committed) may come again.
        assert!(refetched <= 1, "{}: {refetched} pages fetched twice: {second:?}", behaviour.name());

        let export = binary().arg("export").output().unwrap();
        let mut stored: Vec<(String, String, String)> = String::from_utf8_lossy(&export.stdout)
            .lines()
            .map(|line| {
                let value: Value = serde_json::from_str(line).unwrap();
                let field = |name: &str| value[name].as_str().unwrap().to_string();
                (field("library"), field("id"), field("title"))
            })
            .collect();
        stored.sort();
        let expected: Vec<(String, String, String)> =
            fake.expected().into_iter().map(|row| (row.library, row.id, row.title)).collect();
        assert_eq!(stored, expected, "{}", behaviour.name());
    }
}

// The fake's fidelity: it must be no kinder than the real servers.

fn get(fake: &FakeJellyfin, path: &str, headers: &[(&str, &str)]) -> (u16, Option<String>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut request = agent.get(format!("{}{path}", fake.url()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.call().unwrap();
    let date = response.headers().get("date").map(|value| value.to_str().unwrap().to_string());
    let status = response.status().as_u16();
    (status, date, response.body_mut().read_to_string().unwrap())
}

fn authorization() -> String {
    format!("MediaBrowser Client=\"t\", Device=\"t\", DeviceId=\"t\", Version=\"1\", Token=\"{KEY}\"")
}

fn items(fake: &FakeJellyfin, query: &str) -> (u16, Value) {
    let admin = fake.state().users.iter().find(|user| user.admin).unwrap().id.clone();
    let (status, _, body) = get(fake, &format!("/Users/{admin}/Items?{query}"), &[("Authorization", &authorization())]);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[test]
fn fake_authentication_follows_each_version() {
    for behaviour in Behaviour::ALL {
        let fake = FakeJellyfin::start(behaviour, KEY);
        let legacy = behaviour != Behaviour::Jellyfin12;
        let expect =
            |status: u16, allowed: bool| assert_eq!(status == 200, allowed, "{}: HTTP {status}", behaviour.name());
        let users = if behaviour.is_emby() { "/Users/Query" } else { "/Users" };
        expect(get(&fake, users, &[("Authorization", &authorization())]).0, true);
        expect(get(&fake, users, &[("X-Emby-Token", KEY)]).0, legacy);
        expect(get(&fake, &format!("{users}?api_key={KEY}"), &[]).0, legacy);
        expect(get(&fake, users, &[("Authorization", "MediaBrowser Token=\"nope\"")]).0, false);
        expect(get(&fake, users, &[]).0, false);
        let other = if behaviour.is_emby() { "/Users" } else { "/Users/Query" };
        assert_eq!(get(&fake, other, &[("Authorization", &authorization())]).0, 404, "{}", behaviour.name());
    }
}

#[test]
fn fake_date_filter_has_each_versions_bug() {
    for behaviour in Behaviour::ALL {
        let fake = FakeJellyfin::start(behaviour, KEY);
        let view = fake.add_movies("Movies", 30);
        let movies = fake.ids(&view, Kind::Movie);
        fake.edit_title(&movies[0], "Edited");
        fake.play(&movies[1]);
        let since = mediasync::source::jellyfin::format_date(fake.state().clock - 5);
        let base = format!("ParentId={view}&Recursive=true&IncludeItemTypes=Movie&StartIndex=0&Limit=50");
        let (status, alone) = items(&fake, &format!("{base}&MinDateLastSaved={since}"));
        let (_, both) = items(&fake, &format!("{base}&MinDateLastSaved={since}&MinDateLastSavedForUser={since}"));
        let count = |value: &Value| value["Items"].as_array().map_or(0, Vec::len);
        match behaviour {
            Behaviour::Jellyfin10_8 => assert_eq!((status, count(&alone)), (200, 0)),
            Behaviour::Jellyfin10_10 => assert_eq!(status, 500),
            _ => assert_eq!((status, count(&alone)), (200, 1), "{}", behaviour.name()),
        }
        // Emby reads the twin as user-data changes: the played item, not the
        // edited one, passes it, so together they match nothing.
        let expected_both = if behaviour.is_emby() { 0 } else { 1 };
        assert_eq!(count(&both), expected_both, "{}", behaviour.name());

        // Several types at once are one query: the same quirks, the total
        // counted across the types, each entry with its own `Type`.
        let shows = fake.add_shows("Shows", 2, 2, 3);
        let episodes = fake.ids(&shows, Kind::Episode);
        fake.edit_title(&episodes[1], "Edited episode");
        let since = mediasync::source::jellyfin::format_date(fake.state().clock - 5);
        let across = format!("ParentId={shows}&Recursive=true&IncludeItemTypes=Series,Season,Episode&StartIndex=0");
        let (_, all) = items(&fake, &format!("{across}&Limit=0"));
        assert_eq!(all["TotalRecordCount"], 2 + 4 + 12, "{}", behaviour.name());
        let twin = if behaviour.is_emby() { String::new() } else { format!("&MinDateLastSavedForUser={since}") };
        let (status, alone) = items(&fake, &format!("{across}&Limit=50&MinDateLastSaved={since}"));
        let (_, changed) = items(&fake, &format!("{across}&Limit=50&MinDateLastSaved={since}{twin}"));
        match behaviour {
            Behaviour::Jellyfin10_8 => assert_eq!((status, count(&alone)), (200, 0)),
            Behaviour::Jellyfin10_10 => assert_eq!(status, 500),
            _ => assert_eq!((status, count(&alone)), (200, 1), "{}", behaviour.name()),
        }
        assert_eq!(changed["TotalRecordCount"], 1, "{}", behaviour.name());
        assert_eq!(changed["Items"][0]["Type"], "Episode", "{}", behaviour.name());
        let past = mediasync::source::jellyfin::format_date(86_400);
        let twin = if behaviour.is_emby() { String::new() } else { format!("&MinDateLastSavedForUser={past}") };
        let (_, saved) = items(&fake, &format!("{across}&Limit=0&MinDateLastSaved={past}{twin}"));
        assert_eq!(saved["TotalRecordCount"], 2 + 4 + 12, "{}: a date before any save", behaviour.name());
    }
}

#[test]
fn fake_answers_like_the_real_servers() {
    for behaviour in Behaviour::ALL {
        let fake = FakeJellyfin::start(behaviour, KEY);
        let view = fake.add_movies("Movies", 30);
        let users = if behaviour.is_emby() { "/Users/Query" } else { "/Users" };
        let (status, date, _) = get(&fake, users, &[("Authorization", &authorization())]);
        assert_eq!(status, 200);
        let clock = fake.state().clock;
        assert_eq!(
            mediasync::source::http::parse_http_date(&date.unwrap()),
            Some(clock),
            "the Date is the server's clock"
        );

        let base = format!("ParentId={view}&Recursive=true&IncludeItemTypes=Movie");
        let (_, count) = items(&fake, &format!("{base}&Limit=0"));
        assert_eq!(count["TotalRecordCount"], 30);
        assert_eq!(count["Items"].as_array().unwrap().len(), 0);
        let (_, plain) = items(&fake, &format!("{base}&StartIndex=10&Limit=5"));
        let first = &plain["Items"][0];
        assert!(first.get("Etag").is_none() && first.get("DateCreated").is_none(), "optional fields need Fields=");
        assert_eq!(
            plain["StartIndex"].is_null(),
            behaviour.is_emby(),
            "{}: Emby sends no StartIndex",
            behaviour.name()
        );
        let id = first["Id"].as_str().unwrap();
        if behaviour.is_emby() {
            assert!(id.chars().all(|c| c.is_ascii_digit()), "{id}");
        } else {
            assert!(id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        }
        let (_, with_fields) = items(&fake, &format!("{base}&StartIndex=10&Limit=5&Fields=Etag,DateCreated"));
        let etag = with_fields["Items"][0]["Etag"].as_str().unwrap().to_string();
        assert!(with_fields["Items"][0]["DateCreated"].as_str().unwrap().ends_with(".0000000Z"));
        // Playback does not change the Etag; a metadata edit does.
        fake.play(id);
        let (_, played) = items(&fake, &format!("{base}&StartIndex=10&Limit=5&Fields=Etag"));
        assert_eq!(played["Items"][0]["Etag"].as_str().unwrap(), etag);
        fake.edit_overview(id);
        let (_, edited) = items(&fake, &format!("{base}&StartIndex=10&Limit=5&Fields=Etag"));
        assert_ne!(edited["Items"][0]["Etag"].as_str().unwrap(), etag);
        // Jellyfin binds query names in any case; Emby only PascalCase.
        let (_, lower) = items(&fake, &format!("parentId={view}&recursive=true&includeItemTypes=Movie&limit=0"));
        // (Emby reads no limit there, so it lists every item.)
        assert_eq!(lower["TotalRecordCount"], 30);
        assert_eq!(lower["Items"].as_array().unwrap().is_empty(), !behaviour.is_emby(), "{}", behaviour.name());
    }
}

#[test]
fn fake_ids_narrow_a_listing_within_its_library_and_types() {
    for behaviour in Behaviour::ALL {
        let fake = FakeJellyfin::start(behaviour, KEY);
        let movies = fake.add_movies("Movies", 20);
        let shows = fake.add_shows("Shows", 2, 1, 2);
        let films = fake.add_movies("Films", 3);
        let movie_ids = fake.ids(&movies, Kind::Movie);
        let series = fake.ids(&shows, Kind::Show)[0].clone();
        let film = fake.ids(&films, Kind::Movie)[0].clone();
        let gone = movie_ids[9].clone();
        fake.delete(&gone);
        let asked = [movie_ids[2].clone(), gone, series, film, movie_ids[5].clone()].join(",");
        let query = format!("ParentId={movies}&Recursive=true&IncludeItemTypes=Movie&Ids={asked}&StartIndex=0&Limit=5");
        let (status, answer) = items(&fake, &query);
        assert_eq!(status, 200, "{}", behaviour.name());
        let found: Vec<&str> =
            answer["Items"].as_array().unwrap().iter().map(|item| item["Id"].as_str().unwrap()).collect();
        assert_eq!(
            found,
            [movie_ids[2].as_str(), movie_ids[5].as_str()],
            "{}: only this library's movies",
            behaviour.name()
        );
        assert_eq!(answer["TotalRecordCount"], 2, "{}", behaviour.name());
        let (status, _) = items(&fake, &format!("ParentId={movies}&Recursive=true&Ids=not-an-id&Limit=5"));
        // Jellyfin binds Ids as GUIDs; Emby's ids are plain numbers.
        assert_eq!(status == 400, !behaviour.is_emby(), "{}: HTTP {status}", behaviour.name());
    }
}
