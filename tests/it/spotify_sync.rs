//! The engine and the Spotify source against the fake Spotify API and
//! accounts service: exact mirrors after a first sync and after additions,
//! removals and playlist edits; the cost of an unchanged resync; repeated
//! 429s and a spent quota with no page fetched twice and no request before
//! a stored `Retry-After` has passed, across restarts; token expiry,
//! rotation and `invalid_grant`; playlists the user may not read; and the
//! "Connect Spotify" flow over HTTP.

use crate::support::{assert_mirror, stored_rows};
use mediasync::config::{self, Backend, ServerConfig, SpotifyConfig, SyncConfig};
use mediasync::fake::spotify::{CLIENT_ID, CLIENT_SECRET, FakeSpotify, SCOPES};
use mediasync::store::Store;
use mediasync::sync::{self, Options, ServerReport, UnchangedRuns};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

const NAME: &str = "music";

struct Setup {
    fake: FakeSpotify,
    store: Store,
    _dir: tempfile::TempDir,
    max_rate_limit_wait: Duration,
}

impl Setup {
    /// A fake with a library and a store whose account is connected.
    fn new(tracks: usize, albums: usize, artists: usize, playlists: usize, entries: usize) -> Setup {
        let fake = FakeSpotify::start().unwrap();
        fake.generate(tracks, albums, artists, playlists, entries);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("catalog.redb"), 4 << 20).unwrap();
        let refresh = fake.issue_refresh_token();
        store
            .update_session(NAME, |session| {
                session.refresh_token = Some(refresh);
                session.scope = Some(SCOPES.into());
            })
            .unwrap();
        Setup { fake, store, _dir: dir, max_rate_limit_wait: Duration::from_secs(60) }
    }

    fn server(&self) -> ServerConfig {
        ServerConfig {
            name: NAME.into(),
            libraries: None,
            page_size: 50,
            backend: Backend::Spotify(SpotifyConfig {
                api_url: self.fake.api_url(),
                client_id: CLIENT_ID.into(),
                client_secret: Some(CLIENT_SECRET.into()),
                accounts_url: self.fake.accounts_url(),
                redirect_uri: None,
                image_width: mediasync::config::DEFAULT_ARTWORK_WIDTH,
            }),
        }
    }

    /// One run, with a source built afresh as a restarted process would.
    fn sync(&self) -> ServerReport {
        self.sync_with(false)
    }

    /// As `sync`, allowing a mass deletion with `force`.
    fn sync_with(&self, force: bool) -> ServerReport {
        self.sync_as(force, UnchangedRuns::Recorded)
    }

    /// One run as the one-shot `mediasync sync` makes it: a run that
    /// changed nothing commits nothing.
    fn sync_one_shot(&self) -> ServerReport {
        self.sync_as(false, UnchangedRuns::Unrecorded)
    }

    fn sync_as(&self, force: bool, unchanged_runs: UnchangedRuns) -> ServerReport {
        let server = self.server();
        let sync_config = SyncConfig {
            retries: 2,
            retry_delay: Duration::from_millis(5),
            max_rate_limit_wait: self.max_rate_limit_wait,
            ..SyncConfig::default()
        };
        let source = mediasync::source::build(&server, &sync_config, &self.store, &Default::default());
        let options = Options {
            full: false,
            force,
            full_every: Duration::from_secs(7 * 86_400),
            max_delete_share: 0.5,
            history: 5,
            page_size: 50,
            unchanged_runs,
        };
        sync::sync_server(NAME, source.as_ref(), &self.store, &options, &AtomicBool::new(false))
    }

    fn assert_exact(&self) {
        assert_mirror("", &stored_rows(&self.store), &self.fake.expected());
    }

    /// Successful API requests for library pages by path and query: a page
    /// fetched twice shows up with a count above one. (The history is
    /// polled on every run.)
    fn fetched(&self) -> BTreeMap<String, u32> {
        let mut fetched = BTreeMap::new();
        let pages = self.fake.log().into_iter().filter(|entry| !entry.path.ends_with("/recently-played"));
        for entry in pages.filter(|entry| entry.number > 0 && entry.status == 200) {
            *fetched.entry(format!("{}?{}", entry.path, entry.query)).or_insert(0) += 1;
        }
        fetched
    }

    fn item_paths(&self) -> Vec<String> {
        self.fake.log().iter().filter(|entry| entry.path.ends_with("/items")).map(|entry| entry.path.clone()).collect()
    }
}

fn assert_ok(report: &ServerReport) {
    assert!(report.ok(), "sync failed: {report:#?}");
}

#[test]
fn first_sync_is_exact_and_an_unchanged_resync_costs_one_request_per_listing_page() {
    let setup = Setup::new(120, 60, 70, 8, 30);
    let report = setup.sync();
    assert_ok(&report);
    setup.assert_exact();
    let libraries: Vec<&str> = report.libraries.iter().map(|library| library.library_id.as_str()).collect();
    assert_eq!(
        libraries,
        ["history", "tracks", "albums", "artists", "playlists"],
        "the history first (one request), then saved tracks: the most used data"
    );
    assert_eq!(setup.fake.violations(), 0);

    setup.fake.clear_log();
    let before = setup.fake.requests();
    let report = setup.sync();
    assert_ok(&report);
    setup.assert_exact();
    // The history: one poll. Tracks and albums: the newest page only.
    // Followed artists (no change marker): 70 → 2 pages. Playlists: 8 → 1
    // listing page, no /items.
    assert_eq!(setup.fake.requests() - before, 1 + 1 + 1 + 2 + 1, "{:#?}", setup.fake.log());
    assert_eq!(report.requests, 6);
    assert!(setup.item_paths().is_empty(), "unchanged playlists are not refetched: {:?}", setup.item_paths());
    assert_eq!(setup.fake.token_requests(), 1, "the access token is kept between runs");
}

#[test]
fn additions_removals_and_playlist_edits_mirror_exactly_and_only_changed_playlists_are_refetched() {
    let setup = Setup::new(80, 30, 20, 6, 60);
    assert_ok(&setup.sync());
    setup.assert_exact();
    let owned: Vec<String> = {
        let state = setup.fake.state();
        state
            .playlists
            .iter()
            .filter(|playlist| playlist.owner == state.user_id)
            .map(|playlist| playlist.id.clone())
            .collect()
    };
    assert!(owned.len() >= 2, "the generated library has playlists of the user's own");
    let (old_track, old_album, artist) = {
        let state = setup.fake.state();
        (
            state.saved_tracks[40].item.id.clone(),
            state.saved_albums[10].item.id.clone(),
            state.followed_artists[3].id.clone(),
        )
    };
    setup.fake.save_track("New Song");
    setup.fake.unsave_track(&old_track);
    setup.fake.save_album("New Album");
    setup.fake.unsave_album(&old_album);
    setup.fake.unfollow_artist(&artist);
    setup.fake.follow_artist("New Artist");
    setup.fake.playlist_insert(&owned[0], 3, "Inserted Song");
    setup.fake.playlist_remove(&owned[0], 50);
    setup.fake.remove_playlist(&owned[1]);
    let user = setup.fake.state().user_id.clone();
    let added = setup.fake.add_playlist("Brand New", &user, false, 7);
    setup.fake.clear_log();
    let report = setup.sync();
    assert_ok(&report);
    setup.assert_exact();
    let mut refetched = setup.item_paths();
    refetched.dedup();
    assert!(refetched.contains(&format!("/v1/playlists/{}/items", owned[0])), "{refetched:?}");
    assert!(refetched.contains(&format!("/v1/playlists/{added}/items")), "{refetched:?}");
    assert_eq!(refetched.len(), 2, "only the edited and the new playlist: {refetched:?}");
}

#[test]
fn playlists_the_user_cannot_read_are_recorded_and_skipped() {
    let setup = Setup::new(10, 5, 5, 8, 12);
    let foreign = setup.fake.add_playlist("Someone else's", "other-user", false, 5);
    let report = setup.sync();
    assert_ok(&report);
    setup.assert_exact();
    let (_, state) =
        setup.store.libraries().unwrap().into_iter().find(|(_, state)| state.library_id == "playlists").unwrap();
    assert!(state.skipped.contains_key(&foreign), "{:?}", state.skipped);
    assert!(state.skipped[&foreign].contains("403"), "{}", state.skipped[&foreign]);
    // Unchanged, it is not asked for again.
    setup.fake.clear_log();
    assert_ok(&setup.sync());
    assert!(setup.item_paths().is_empty(), "{:?}", setup.item_paths());
}

#[test]
fn a_first_sync_through_repeated_429s_is_exact_fetches_no_page_twice_and_never_asks_early() {
    let setup = Setup::new(400, 120, 130, 5, 60);
    // Four requests per rolling two seconds: the first sync (about 25
    // requests) runs into the limit again and again, even on a machine as
    // slow as qemu emulating ARM.
    setup.fake.state().rate_limit = Some((4, 2));
    let report = setup.sync();
    assert_ok(&report);
    setup.assert_exact();
    let limited = setup.fake.log().iter().filter(|entry| entry.status == 429).count();
    assert!(limited >= 3, "the limit was hit repeatedly ({limited} times)");
    assert_eq!(setup.fake.violations(), 0, "no request before Retry-After ran out");
    let twice: Vec<_> = setup.fetched().into_iter().filter(|(_, count)| *count > 1).collect();
    assert!(twice.is_empty(), "pages fetched twice: {twice:?}");
}

#[test]
fn a_restart_during_a_rate_limit_wait_asks_nothing_until_it_ends_then_resumes_exactly() {
    let mut setup = Setup::new(300, 20, 10, 2, 10);
    // This run gives up on waits over a second, as a daemon stopped mid-wait.
    setup.max_rate_limit_wait = Duration::from_secs(1);
    // Request 1 polls the history, 2 to 4 fetch the first three pages.
    setup.fake.fail_at(5, mediasync::fake::Failure::RateLimited(3));
    let report = setup.sync();
    assert!(!report.ok());
    let error = report.error.clone().unwrap_or_default();
    assert!(error.contains("waiting until") && error.contains("progress is saved"), "{error}");
    let session = setup.store.session(NAME).unwrap();
    assert!(session.not_before.is_some(), "the wait is stored: {session:?}");
    let pages_before = setup.fetched().len();
    // The page shows how far the interrupted first sync got while it waits.
    let (_, tracks) =
        setup.store.libraries().unwrap().into_iter().find(|(_, state)| state.library_id == "tracks").unwrap();
    let shown = serde_json::to_value(mediasync::app::status::progress(&tracks, sync::now_epoch(), None)).unwrap();
    // Three pages of 50, the second and third starting on the entry seen last.
    assert_eq!((shown["done"].as_u64(), shown["total"].as_u64()), (Some(148), Some(300)), "{shown}");

    // A restarted process during the wait asks nothing at all.
    let requests = setup.fake.requests();
    let tokens = setup.fake.token_requests();
    let report = setup.sync();
    assert!(!report.ok());
    assert_eq!(setup.fake.requests(), requests, "no API request before the stored Retry-After");
    assert_eq!(setup.fake.token_requests(), tokens);
    assert_eq!(report.requests, 0);

    // After the wait it resumes where it stopped: every page once.
    let until = session.not_before.unwrap();
    while sync::now_epoch() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    setup.max_rate_limit_wait = Duration::from_secs(60);
    let report = setup.sync();
    assert_ok(&report);
    setup.assert_exact();
    assert_eq!(setup.fake.violations(), 0);
    let twice: Vec<_> = setup.fetched().into_iter().filter(|(_, count)| *count > 1).collect();
    assert!(twice.is_empty(), "pages fetched twice: {twice:?}");
    assert!(setup.fetched().len() > pages_before);
    let tracks = report.libraries.iter().find(|library| library.library_id == "tracks").unwrap();
    assert_eq!(tracks.mode, "resumed");
}

#[test]
fn a_spent_daily_quota_pauses_the_server_until_it_resets() {
    let setup = Setup::new(200, 10, 10, 2, 10);
    {
        let mut state = setup.fake.state();
        state.quota = Some(3);
        state.quota_reset_secs = 20 * 3600;
    }
    let started = std::time::Instant::now();
    let report = setup.sync();
    assert!(!report.ok());
    assert!(started.elapsed() < Duration::from_secs(10), "a quota is not waited out inside a run");
    let error = report.error.clone().unwrap_or_default();
    assert!(error.contains("daily quota") && error.contains("waiting until"), "{error}");
    assert!(error.contains("remaining libraries wait"), "one server's pause stops its other libraries: {error}");
    let session = setup.store.session(NAME).unwrap();
    let until = session.not_before.expect("the quota's reset is stored");
    assert!(until >= sync::now_epoch() + 20 * 3600);
    assert_eq!(session.not_before_reason.as_deref(), Some("daily quota"));
    let requests = setup.fake.requests();
    assert!(!setup.sync().ok());
    assert_eq!(setup.fake.requests(), requests, "nothing is asked while the quota is spent");

    // The day passes (on the fake, and in the stored wait), and the sync
    // resumes where it stopped.
    setup.fake.reset_quota();
    setup.fake.state().quota = None;
    setup.store.update_session(NAME, |session| session.not_before = Some(sync::now_epoch() - 1)).unwrap();
    let report = setup.sync();
    assert_ok(&report);
    setup.assert_exact();
    assert_eq!(setup.fake.violations(), 0);
    let twice: Vec<_> = setup.fetched().into_iter().filter(|(_, count)| *count > 1).collect();
    assert!(twice.is_empty(), "pages fetched twice: {twice:?}");
}

#[test]
fn expired_tokens_are_refreshed_rotated_tokens_replace_the_old_and_invalid_grant_asks_to_reconnect() {
    let setup = Setup::new(150, 10, 10, 2, 10);
    setup.fake.state().rotate_refresh_tokens = true;
    setup.fake.fail_at(3, mediasync::fake::Failure::Status(500));
    assert_ok(&setup.sync());
    let rotated = setup.store.session(NAME).unwrap().refresh_token.clone();
    assert_eq!(rotated, setup.fake.refresh_token(), "the rotated refresh token replaced the old one");

    // 401 mid-run: refreshed once, the run goes on.
    setup.fake.save_track("After expiry");
    setup.fake.expire_access_tokens();
    let tokens = setup.fake.token_requests();
    assert_ok(&setup.sync());
    setup.assert_exact();
    assert_eq!(setup.fake.token_requests(), tokens + 1);
    assert_eq!(setup.store.session(NAME).unwrap().refresh_token, setup.fake.refresh_token());

    // Six months on: invalid_grant puts the account in "re-authorise".
    setup.fake.revoke_refresh_tokens();
    setup.fake.expire_access_tokens();
    let report = setup.sync();
    assert!(!report.ok());
    let session = setup.store.session(NAME).unwrap();
    let reason = session.reauthorize.clone().expect("re-authorise state");
    assert!(reason.contains("invalid_grant") && reason.contains("status page"), "{reason}");
    let shown = format!("{report:?}");
    let secret = setup.fake.state().client_secret.clone().unwrap();
    assert!(!shown.contains(&secret));
    // No crash loop: the next runs ask nothing until the user reconnects.
    let (requests, tokens) = (setup.fake.requests(), setup.fake.token_requests());
    assert!(!setup.sync().ok());
    assert_eq!((setup.fake.requests(), setup.fake.token_requests()), (requests, tokens));
}

/// The user's own playlists, in listing order.
fn owned(fake: &FakeSpotify) -> Vec<String> {
    let state = fake.state();
    state
        .playlists
        .iter()
        .filter(|playlist| playlist.owner == state.user_id)
        .map(|playlist| playlist.id.clone())
        .collect()
}

/// The stored playlist (its `snapshot_id` is the marker) and its entries.
fn stored_playlist(setup: &Setup, id: &str) -> (Option<String>, Vec<mediasync::fake::Expected>) {
    let number = setup.store.find_library(NAME, "playlists").unwrap().unwrap();
    let marker = setup.store.item(number, id).unwrap().and_then(|stored| stored.item.marker);
    let entries = stored_rows(&setup.store)
        .into_iter()
        .filter(|row| row.parent_id.as_deref() == Some(id) && row.id.starts_with(id))
        .collect();
    (marker, entries)
}

/// A page of a playlist's entries that came back empty (or short) while its
/// total said more used to end the listing: the stored entries past it were
/// deleted, and the playlist was stored with its new `snapshot_id`, so they
/// were never fetched again.
#[test]
fn an_empty_page_of_entries_is_an_outage_that_deletes_nothing() {
    let setup = Setup::new(10, 5, 5, 4, 120);
    assert_ok(&setup.sync());
    let playlist = owned(&setup.fake)[0].clone();
    let before = stored_playlist(&setup, &playlist);
    assert_eq!(before.1.len(), 120);
    setup.fake.playlist_insert(&playlist, 0, "New first");
    setup.fake.fail_path(&format!("/v1/playlists/{playlist}/items"), mediasync::fake::Failure::Emptied);
    let report = setup.sync();
    assert!(!report.ok());
    let error = report.libraries.iter().find_map(|library| library.error.clone()).unwrap_or_default();
    assert!(error.contains("counts 121") && error.contains("not complete"), "{error}");
    assert_eq!(stored_playlist(&setup, &playlist), before, "entries and snapshot_id stay as they were");

    setup.fake.heal();
    assert_ok(&setup.sync());
    setup.assert_exact();
    let (marker, entries) = stored_playlist(&setup, &playlist);
    assert_eq!(marker, setup.fake.snapshot_id(&playlist));
    assert_eq!(entries.len(), 121);
}

#[test]
fn a_playlist_that_can_no_longer_be_read_keeps_its_stored_entries() {
    let setup = Setup::new(10, 5, 5, 4, 30);
    assert_ok(&setup.sync());
    let playlist = owned(&setup.fake)[1].clone();
    let before = stored_playlist(&setup, &playlist);
    assert_eq!(before.1.len(), 30);
    // Someone else owns it now, and changes it: its entries answer 403.
    if let Some(taken) = setup.fake.state().playlists.iter_mut().find(|candidate| candidate.id == playlist) {
        taken.owner = "someone-else".into();
        taken.collaborative = false;
    }
    setup.fake.rename_playlist(&playlist, "Taken over");
    let report = setup.sync();
    assert_ok(&report);
    assert_eq!(stored_playlist(&setup, &playlist), before, "the entries and the version they belong to stay");
    let (_, state) =
        setup.store.libraries().unwrap().into_iter().find(|(_, state)| state.library_id == "playlists").unwrap();
    assert!(state.skipped.get(&playlist).is_some_and(|reason| reason.contains("403")), "{:?}", state.skipped);
}

#[test]
fn a_new_playlist_refused_part_way_is_stored_without_the_entries_read_before() {
    let setup = Setup::new(10, 5, 5, 4, 30);
    assert_ok(&setup.sync());
    let user = setup.fake.state().user_id.clone();
    // Two pages of entries (100 and 50); someone else takes the playlist
    // over once its first page is answered, so the second answers 403.
    let playlist = setup.fake.add_playlist("Taken over mid-listing", &user, false, 150);
    let items = format!("/v1/playlists/{playlist}/items");
    let first = setup.fake.requests();
    let taken_over = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for number in first + 1..first + 40 {
        let (playlist, items, taken_over) = (playlist.clone(), items.clone(), taken_over.clone());
        setup.fake.before_request(number, move |state| {
            let after_first_page = state.log.last().is_some_and(|entry| entry.path == items && entry.status == 200);
            if after_first_page && !taken_over.swap(true, std::sync::atomic::Ordering::SeqCst) {
                if let Some(taken) = state.playlists.iter_mut().find(|candidate| candidate.id == playlist) {
                    taken.owner = "someone-else".into();
                }
            }
        });
    }
    setup.fake.clear_log();
    let report = setup.sync();
    assert_ok(&report);
    let statuses: Vec<u16> =
        setup.fake.log().iter().filter(|entry| entry.path == items).map(|entry| entry.status).collect();
    assert!(statuses.starts_with(&[200, 403]), "the takeover came between the two pages: {statuses:?}");
    // The hundred entries read first belong to no version that is stored:
    // none stays, the playlist does (with the refusal), as for a playlist
    // refused from its first page.
    let (marker, entries) = stored_playlist(&setup, &playlist);
    assert_eq!(marker, setup.fake.snapshot_id(&playlist));
    assert!(entries.is_empty(), "{} entries of a refused listing stored", entries.len());
    let (_, state) =
        setup.store.libraries().unwrap().into_iter().find(|(_, state)| state.library_id == "playlists").unwrap();
    assert!(state.skipped.get(&playlist).is_some_and(|reason| reason.contains("403")), "{:?}", state.skipped);
    // The listing said the user owned it; the next one says who does.
    assert_ok(&setup.sync());
    setup.assert_exact();
    // Given back and changed, it is read whole.
    if let Some(back) = setup.fake.state().playlists.iter_mut().find(|candidate| candidate.id == playlist) {
        back.owner = user;
    }
    setup.fake.rename_playlist(&playlist, "Given back");
    assert_ok(&setup.sync());
    setup.assert_exact();
    assert_eq!(stored_playlist(&setup, &playlist).1.len(), 150);
}

#[test]
fn the_mass_deletion_guard_covers_playlist_entries() {
    let setup = Setup::new(10, 5, 5, 4, 60);
    assert_ok(&setup.sync());
    // Playlists 0, 1 (the user's) and 3 (collaborative) have their 180
    // entries stored; 100 of them go.
    for playlist in &owned(&setup.fake)[..2] {
        for _ in 0..50 {
            setup.fake.playlist_remove(playlist, 0);
        }
    }
    let ids = |rows: Vec<mediasync::fake::Expected>| rows.into_iter().map(|row| row.id).collect::<Vec<_>>();
    let before = ids(stored_rows(&setup.store));
    let report = setup.sync();
    assert!(!report.ok());
    let error = report.libraries.iter().find_map(|library| library.error.clone()).unwrap_or_default();
    assert!(
        error.contains("refusing to delete 100 of 180 stored children of playlist items") && error.contains("--force"),
        "{error}"
    );
    // The entries fetched were written position by position; none went.
    assert!(ids(stored_rows(&setup.store)) == before, "nothing may be deleted");
    let report = setup.sync_with(true);
    assert_ok(&report);
    setup.assert_exact();
}

/// A daemon's status server on port 0 with one Spotify server pointing at
/// `fake`; `extra(port)` adds keys to its [[server]] entry.
struct StatusBox {
    daemon: std::sync::Arc<mediasync::app::App>,
    server: mediasync::web::server::Server,
    base: String,
    agent: ureq::Agent,
    /// `Bearer <admin token>` (the generated one): connecting is a control.
    bearer: String,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl StatusBox {
    fn start(fake: &FakeSpotify, extra: impl FnOnce(u16) -> String) -> StatusBox {
        let dir = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let text = format!(
            "[store]\npath = \"{}\"\n[[server]]\nname = \"{NAME}\"\nkind = \"spotify\"\nclient_id = \"{CLIENT_ID}\"\napi_url = \"{}\"\naccounts_url = \"{}\"\n{}",
            dir.path().join("s.redb").display(),
            fake.api_url(),
            fake.accounts_url(),
            extra(port),
        );
        let config = config::parse(&text, &dir.path().join("c.toml")).unwrap();
        let store = Store::open(&dir.path().join("s.redb"), 1 << 20).unwrap();
        let access = mediasync::web::access::Access::from_config(&config).unwrap();
        let bearer = format!("Bearer {}", mediasync::app::admin_token::read(&config).unwrap().unwrap());
        let daemon = std::sync::Arc::new(mediasync::app::App::new(config, store));
        let runtime = crate::status_server::runtime();
        let server = mediasync::web::start(std::sync::Arc::clone(&daemon), access, listener, runtime.handle()).unwrap();
        let agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
        StatusBox {
            daemon,
            server,
            base: format!("http://127.0.0.1:{port}"),
            agent,
            bearer,
            _runtime: runtime,
            _dir: dir,
        }
    }

    /// Presses "Connect Spotify": the answer's JSON.
    fn connect(&self) -> serde_json::Value {
        let url = format!("{}/api/servers/{NAME}/connect", self.base);
        let mut answer = self.agent.post(&url).header("Authorization", &self.bearer).send_empty().unwrap();
        assert_eq!(answer.status(), 200);
        serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap()
    }
}

#[test]
fn the_status_page_connects_an_account_end_to_end_over_http() {
    for pkce in [false, true] {
        let fake = FakeSpotify::start().unwrap();
        fake.generate(5, 2, 2, 1, 3);
        if pkce {
            fake.state().client_secret = None;
        }
        let secret = if pkce { String::new() } else { format!("client_secret = \"{CLIENT_SECRET}\"\n") };
        let mut status_box = StatusBox::start(&fake, |port| {
            format!("{secret}redirect_uri = \"http://127.0.0.1:{port}/spotify/callback\"\n")
        });
        let (agent, base, daemon) = (&status_box.agent, status_box.base.clone(), &status_box.daemon);

        let page = agent.get(&format!("{base}/")).call().unwrap().body_mut().read_to_string().unwrap();
        assert!(page.contains("Connect Spotify") && page.contains("Not connected"), "{page}");

        let body = status_box.connect();
        let url = body["url"].as_str().unwrap().to_string();
        assert!(url.contains("code_challenge=") == pkce, "{url}");

        // The browser at Spotify, sent back to the box.
        let answer = agent.get(&url).call().unwrap();
        assert_eq!(answer.status(), 302);
        let location = answer.headers().get("location").unwrap().to_str().unwrap().to_string();
        assert!(location.starts_with(&format!("{base}/spotify/callback?")), "{location}");
        let mut answer = agent.get(&location).call().unwrap();
        let text = answer.body_mut().read_to_string().unwrap();
        assert_eq!(answer.status(), 200, "{text}");
        assert!(text.contains("Connected"), "{text}");
        let session = daemon.store.session(NAME).unwrap();
        assert_eq!(session.refresh_token, fake.refresh_token());
        assert!(session.connected());

        // The code and state are single-use.
        let answer = agent.get(&location).call().unwrap();
        assert_eq!(answer.status(), 400);

        // The status never shows a token.
        let status = agent.get(&format!("{base}/api/status")).call().unwrap().body_mut().read_to_string().unwrap();
        assert!(status.contains("\"connected\":true"), "{status}");
        assert!(!status.contains(session.refresh_token.as_deref().unwrap()));
        assert!(!status.contains(session.access_token.as_deref().unwrap()));
        status_box.server.stop();
    }
}

#[test]
fn a_pasted_callback_address_finishes_the_flow_and_a_forged_state_is_refused() {
    let fake = FakeSpotify::start().unwrap();
    let mut status_box = StatusBox::start(&fake, |_| format!("client_secret = \"{CLIENT_SECRET}\"\n"));
    let (agent, base, daemon) = (&status_box.agent, status_box.base.clone(), &status_box.daemon);
    let body = status_box.connect();
    // No redirect_uri configured: the box's own callback on 127.0.0.1 at
    // the configured listen port (8787 by default).
    assert_eq!(body["redirect_uri"], "http://127.0.0.1:8787/spotify/callback");
    let answer = agent.get(body["url"].as_str().unwrap()).call().unwrap();
    let location = answer.headers().get("location").unwrap().to_str().unwrap().to_string();

    let forged = location.replace("state=", "state=forged");
    let form = |address: &str| format!("url={}", mediasync::source::http::encode(address));
    let answer = agent
        .post(&format!("{base}/api/spotify/callback"))
        .header("Authorization", &status_box.bearer)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(form(&forged))
        .unwrap();
    assert_eq!(answer.status(), 400);
    assert!(daemon.store.session(NAME).unwrap().refresh_token.is_none());

    let mut answer = agent
        .post(&format!("{base}/api/spotify/callback"))
        .header("Authorization", &status_box.bearer)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(form(&location))
        .unwrap();
    let text = answer.body_mut().read_to_string().unwrap();
    assert_eq!(answer.status(), 200, "{text}");
    assert_eq!(daemon.store.session(NAME).unwrap().refresh_token, fake.refresh_token());
    status_box.server.stop();
}

/// The report of one library of a server's run.
fn library_report<'a>(report: &'a ServerReport, id: &str) -> &'a mediasync::sync::LibraryReport {
    report.libraries.iter().find(|library| library.library_id == id).unwrap()
}

#[test]
fn an_unchanged_resync_of_the_whole_walks_commits_nothing_one_shot_and_once_in_the_daemon() {
    // Followed artists over three pages, playlists over one: walked whole.
    let setup = Setup::new(60, 20, 120, 8, 20);
    assert_ok(&setup.sync());
    let commits = setup.store.commits();
    let report = setup.sync_one_shot();
    assert_ok(&report);
    setup.assert_exact();
    assert_eq!(library_report(&report, "artists").counters.unchanged, 120, "{report:#?}");
    assert_eq!(setup.store.commits(), commits, "an unchanged one-shot resync commits nothing");
    assert_ok(&setup.sync());
    setup.assert_exact();
    assert_eq!(setup.store.commits(), commits + 1, "the daemon records the runs in one commit");
}

#[test]
fn a_deletion_during_an_otherwise_unchanged_walk_is_confirmed_with_the_server_then_applied() {
    let setup = Setup::new(30, 10, 120, 8, 20);
    assert_ok(&setup.sync());
    let (artist, playlist) = {
        let state = setup.fake.state();
        let owned = state.playlists.iter().find(|playlist| playlist.owner == state.user_id).unwrap();
        (state.followed_artists[70].id.clone(), owned.id.clone())
    };
    setup.fake.unfollow_artist(&artist);
    setup.fake.remove_playlist(&playlist);
    let stored = |id: &str| stored_rows(&setup.store).iter().any(|row| row.id == id);

    // The lookup that would confirm the deletions fails: nothing goes.
    setup.fake.fail_path("/v1/me/library/contains", mediasync::fake::Failure::Status(500));
    let report = setup.sync_one_shot();
    assert!(!report.ok(), "the unconfirmed deletions fail the run: {report:#?}");
    assert!(stored(&artist) && stored(&playlist), "nothing is deleted on absence alone");

    setup.fake.heal();
    setup.fake.clear_log();
    let report = setup.sync_one_shot();
    assert_ok(&report);
    setup.assert_exact();
    assert!(!stored(&artist) && !stored(&playlist));
    let asked: Vec<String> = setup
        .fake
        .log()
        .into_iter()
        .filter(|entry| entry.path == "/v1/me/library/contains")
        .map(|entry| entry.query)
        .collect();
    assert!(asked.iter().any(|query| query.contains(&artist)), "the artist's absence is confirmed: {asked:?}");
    assert!(asked.iter().any(|query| query.contains(&playlist)), "the playlist's absence is confirmed: {asked:?}");
    assert_eq!(library_report(&report, "artists").counters.deleted, 1, "{report:#?}");
    assert_eq!(library_report(&report, "artists").counters.kept, 0, "only the unseen artist is asked about");
}

#[test]
fn a_whole_walk_stopped_after_a_page_that_changed_resumes_with_that_pages_marks() {
    let setup = Setup::new(30, 10, 150, 4, 10);
    assert_ok(&setup.sync());
    // Artists list by id, 50 a page: the first one renamed changes the
    // first page, the last one unfollowed leaves the third.
    let (first, last) = {
        let state = setup.fake.state();
        let mut ids: Vec<String> = state.followed_artists.iter().map(|artist| artist.id.clone()).collect();
        ids.sort();
        (ids[0].clone(), ids[149].clone())
    };
    // Where this run's third artists page falls: as the last run's.
    setup.fake.clear_log();
    let before = setup.fake.requests();
    assert_ok(&setup.sync());
    let per_run = setup.fake.requests() - before;
    let pages: Vec<u64> = setup
        .fake
        .log()
        .into_iter()
        .filter(|entry| entry.path == "/v1/me/following")
        .map(|entry| entry.number)
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    {
        let mut state = setup.fake.state();
        let artist = state.followed_artists.iter_mut().find(|artist| artist.id == first).unwrap();
        artist.name = "Renamed Artist".into();
    }
    setup.fake.unfollow_artist(&last);
    setup.fake.fail_from(pages[2] + per_run, mediasync::fake::Failure::Status(500));
    let report = setup.sync_one_shot();
    assert!(!report.ok(), "the third page fails: {report:#?}");
    assert!(stored_rows(&setup.store).iter().any(|row| row.title == "Renamed Artist"), "the first page committed");

    setup.fake.heal();
    let report = setup.sync_one_shot();
    assert_ok(&report);
    setup.assert_exact();
    let artists = &library_report(&report, "artists").counters;
    assert_eq!(artists.deleted, 1, "{report:#?}");
    // The first page's marks were committed with it: none of its artists
    // is taken for unseen and asked about.
    assert_eq!(artists.kept, 0, "{report:#?}");
}
