//! Hostile servers: every source against its fake in hostile mode (extreme,
//! negative and dated `Retry-After`, garbage, giant bodies and titles,
//! values of the wrong type, deep nesting, bodies dripped out slowly). The
//! regression of issue 12: `Retry-After: 1` then `18446744073709551615`
//! panicked the sync. Now no answer panics, the catalog synced before stays
//! exactly as it was, and once the server heals the next sync is exact.

use crate::support::{assert_mirror, stored_rows};
use mediasync::config::{Backend, Flavor, JellyfinConfig, PlexConfig, ServerConfig, SpotifyConfig, SyncConfig};
use mediasync::fake::Fake;
use mediasync::fake::jellyfin::{Behaviour, FakeJellyfin};
use mediasync::fake::plex::{Expected, Failure, FakePlex};
use mediasync::fake::spotify::{CLIENT_ID, CLIENT_SECRET, FakeSpotify};
use mediasync::store::Store;
use mediasync::sync::{self, Options, ServerReport};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "hostile-token";

/// The controls of any fake the cases need.
trait Controls {
    fn requests(&self) -> u64;
    fn fail_from(&self, number: u64, failure: Failure);
    fn fail_at(&self, number: u64, failure: Failure);
    fn heal(&self);
    fn expected(&self) -> Vec<Expected>;
}

macro_rules! controls {
    ($fake:ty) => {
        impl Controls for $fake {
            fn requests(&self) -> u64 {
                Fake::requests(self)
            }
            fn fail_from(&self, number: u64, failure: Failure) {
                Fake::fail_from(self, number, failure)
            }
            fn fail_at(&self, number: u64, failure: Failure) {
                Fake::fail_at(self, number, failure)
            }
            fn heal(&self) {
                Fake::heal(self)
            }
            fn expected(&self) -> Vec<Expected> {
                <$fake>::expected(self)
            }
        }
    };
}
controls!(FakePlex);
controls!(FakeJellyfin);
controls!(FakeSpotify);

/// A server of one kind, its fake, and a store that mirrors it.
struct Target {
    label: &'static str,
    fake: Box<dyn Controls>,
    server: ServerConfig,
    store: Store,
    _dir: tempfile::TempDir,
}

impl Target {
    fn plex() -> Target {
        let fake = FakePlex::start(TOKEN);
        fake.add_movies("Movies", 150);
        fake.add_shows("TV Shows", 3, 2, 4);
        let backend =
            Backend::Plex(PlexConfig { url: fake.url().to_string(), token: TOKEN.into(), notifications: false });
        Target::new("plex", Box::new(fake), backend, 100)
    }

    fn jellyfin() -> Target {
        let fake = FakeJellyfin::start(Behaviour::Jellyfin10_11, TOKEN);
        fake.add_movies("Movies", 150);
        let backend = Backend::Jellyfin(JellyfinConfig {
            flavor: Flavor::Jellyfin,
            url: fake.url().to_string(),
            token: TOKEN.into(),
            user: None,
            notifications: false,
            login: None,
        });
        Target::new("jellyfin", Box::new(fake), backend, 100)
    }

    fn spotify() -> Target {
        let fake = FakeSpotify::start().unwrap();
        fake.generate(120, 10, 10, 3, 5);
        let refresh = fake.issue_refresh_token();
        let backend = Backend::Spotify(SpotifyConfig {
            api_url: fake.api_url(),
            client_id: CLIENT_ID.into(),
            client_secret: Some(CLIENT_SECRET.into()),
            accounts_url: fake.accounts_url(),
            redirect_uri: None,
            image_width: mediasync::config::DEFAULT_ARTWORK_WIDTH,
        });
        let target = Target::new("spotify", Box::new(fake), backend, 50);
        target.store.update_session("hostile", |session| session.refresh_token = Some(refresh)).unwrap();
        target
    }

    fn new(label: &'static str, fake: Box<dyn Controls>, backend: Backend, page_size: u32) -> Target {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("catalog.redb"), 4 << 20).unwrap();
        let server = ServerConfig { name: "hostile".into(), libraries: None, page_size, backend };
        Target { label, fake, server, store, _dir: dir }
    }

    fn sync(&self) -> ServerReport {
        let config = SyncConfig {
            retries: 2,
            retry_delay: Duration::from_millis(2),
            max_rate_limit_wait: Duration::from_secs(2),
            timeout: Duration::from_secs(20),
            ..SyncConfig::default()
        };
        let stop = Arc::default();
        let source = mediasync::source::build(&self.server, &config, &self.store, &stop);
        let options = Options {
            full: false,
            force: false,
            full_every: Duration::from_secs(7 * 86_400),
            max_delete_share: 0.5,
            history: 5,
            page_size: self.server.page_size,
            unchanged_runs: mediasync::sync::UnchangedRuns::Recorded,
        };
        sync::sync_server("hostile", source.as_ref(), &self.store, &options, &Default::default())
    }

    /// Lets the server heal and forgets a wait it asked for, so the next
    /// sync runs at once.
    fn heal(&self) {
        self.fake.heal();
        self.store.update_session("hostile", |session| session.not_before = None).unwrap();
    }

    fn assert_exact(&self, context: &str) {
        assert_mirror(&format!("{} ({context}): ", self.label), &stored_rows(&self.store), &self.fake.expected());
    }
}

/// The hostile answers every source must survive from every request on.
fn hostile_answers() -> Vec<Failure> {
    let in_a_day = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(86_400));
    vec![
        Failure::RetryAfter("18446744073709551615".into()),
        Failure::RetryAfter("99999999999999999999999999999999".into()),
        Failure::RetryAfter("-30".into()),
        Failure::RetryAfter("soon".into()),
        Failure::RetryAfter(in_a_day),
        Failure::RetryAfter("Wed, 21 Oct 2015 07:28:00 GMT".into()),
        Failure::Garbage,
        Failure::Truncated,
        Failure::Giant(60 << 20),
        Failure::GiantTitle(10 << 20),
        Failure::WrongTypes,
        Failure::Deep(1_000),
    ]
}

fn survives_every_hostile_answer(target: Target) {
    let first = target.sync();
    assert!(first.ok(), "{}: {first:#?}", target.label);
    target.assert_exact("the first sync");
    let before = stored_rows(&target.store);
    for failure in hostile_answers() {
        target.fake.fail_from(target.fake.requests() + 1, failure.clone());
        let report = target.sync();
        let shown = format!("{failure:?}").chars().take(80).collect::<String>();
        assert_mirror(&format!("{} after {shown}: ", target.label), &stored_rows(&target.store), &before);
        // Deep nesting in a field nobody reads is skipped without recursion
        // (serde_json's `IgnoredAny`): such answers are good answers.
        if matches!(failure, Failure::RetryAfter(_) | Failure::Giant(_) | Failure::Garbage) {
            assert!(!report.ok(), "{} accepted {shown}: {report:#?}", target.label);
        }
        let wait = target.store.session("hostile").unwrap().not_before;
        let bound = mediasync::sync::now_epoch() + 86_400 + 2;
        assert!(wait.is_none_or(|until| until <= bound), "{}: a wait past a day was stored: {wait:?}", target.label);
        target.heal();
    }
    // A short answer dripped out slowly is still an answer.
    target.fake.fail_at(target.fake.requests() + 1, Failure::SlowDrip { bytes: 512, pause: Duration::from_millis(2) });
    let healed = target.sync();
    assert!(healed.ok(), "{}: {healed:#?}", target.label);
    target.assert_exact("after the server healed");
}

#[test]
fn plex_survives_hostile_answers() {
    survives_every_hostile_answer(Target::plex());
}

#[test]
fn jellyfin_survives_hostile_answers() {
    survives_every_hostile_answer(Target::jellyfin());
}

#[test]
fn spotify_survives_hostile_answers() {
    survives_every_hostile_answer(Target::spotify());
}

/// The exact sequence of the report: a short wait, then the largest number.
#[test]
fn a_short_then_an_endless_retry_after_ends_the_run_without_a_panic() {
    let target = Target::plex();
    assert!(target.sync().ok());
    let next = target.fake.requests() + 1;
    target.fake.fail_at(next, Failure::RetryAfter("1".into()));
    target.fake.fail_at(next + 1, Failure::RetryAfter("18446744073709551615".into()));
    let report = target.sync();
    let error = report.error.clone().unwrap_or_default();
    assert!(error.contains("rate limited"), "{report:#?}");
    assert_eq!(target.fake.requests(), next + 1, "nothing is sent after the endless wait was refused");
    target.assert_exact("after the endless wait");
}
