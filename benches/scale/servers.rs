//! The servers the benchmark syncs, each a simulated server in this process
//! (its memory is not the binary's): a Plex server with movies, shows and
//! music; a Jellyfin or Emby server of each version behaviour with three
//! libraries (movies, shows, music); a Spotify account. Each knows its
//! config section, its request counter, what an exact mirror holds, and
//! one edit a user makes.

use mediasync::fake::Expected;
use mediasync::fake::jellyfin::{Behaviour, FakeJellyfin};
use mediasync::fake::plex::FakePlex;
use mediasync::fake::spotify::{CLIENT_ID, CLIENT_SECRET, FakeSpotify, SCOPES};
use mediasync::model::Kind;
use mediasync::store::Store;
use std::path::Path;

const TOKEN: &str = "bench-token";
pub const NAME: &str = "home";

pub enum Served {
    Plex(FakePlex),
    Jellyfin(FakeJellyfin, Behaviour),
    Spotify(FakeSpotify),
}

impl Served {
    /// A Plex server of about `items` items: 40% movies, 40% TV, 20% music.
    pub fn plex(items: usize) -> Served {
        let fake = FakePlex::start(TOKEN);
        fake.add_library_of(items);
        Served::Plex(fake)
    }

    /// A Jellyfin or Emby server with three libraries of about `items`
    /// items in all, in the Plex server's proportions.
    pub fn jellyfin(behaviour: Behaviour, items: usize) -> Served {
        let fake = FakeJellyfin::start(behaviour, TOKEN);
        // The server's clock is this machine's, as a real server's would be:
        // else the daemon's check finds an offset of years and checks again
        // after every run, two more requests the sync did not make.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs());
        fake.state().clock = i64::try_from(now).unwrap_or(i64::MAX);
        fake.add_movies("Movies", (items.saturating_mul(2) / 5).max(1));
        // One series = 1 + 2 seasons + 2*10 episodes = 23 items.
        fake.add_shows("Shows", (items.saturating_mul(2) / 5 / 23).max(1), 2, 10);
        // One artist = 1 + 2 albums + 2*9 tracks = 21 items.
        fake.add_music("Music", (items / 5 / 21).max(1), 2, 9);
        Served::Jellyfin(fake, behaviour)
    }

    /// A Spotify account with `tracks` saved tracks, a tenth as many saved
    /// albums, a twentieth as many followed artists, and 20 playlists of 50.
    pub fn spotify(tracks: usize) -> Result<Served, String> {
        let fake = FakeSpotify::start()?;
        fake.generate(tracks, tracks / 10, tracks / 20, 20, 50);
        Ok(Served::Spotify(fake))
    }

    pub fn label(&self) -> String {
        match self {
            Served::Plex(_) => "plex".into(),
            Served::Jellyfin(_, behaviour) => behaviour.name().into(),
            Served::Spotify(_) => "spotify".into(),
        }
    }

    /// Requests the server answered so far (Spotify: API and token requests).
    pub fn requests(&self) -> u64 {
        match self {
            Served::Plex(fake) => fake.requests(),
            Served::Jellyfin(fake, _) => fake.requests(),
            Served::Spotify(fake) => fake.requests().saturating_add(fake.token_requests()),
        }
    }

    pub fn expected(&self) -> Vec<Expected> {
        match self {
            Served::Plex(fake) => fake.expected(),
            Served::Jellyfin(fake, _) => fake.expected(),
            Served::Spotify(fake) => fake.expected(),
        }
    }

    /// The `[[server]]` section syncing this server.
    pub fn server_toml(&self) -> String {
        match self {
            Served::Plex(fake) => {
                format!(
                    "[[server]]\nname = \"{NAME}\"\nkind = \"plex\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n",
                    fake.url()
                )
            }
            Served::Jellyfin(fake, behaviour) => format!(
                "[[server]]\nname = \"{NAME}\"\nkind = \"{}\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n",
                if behaviour.is_emby() { "emby" } else { "jellyfin" },
                fake.url()
            ),
            Served::Spotify(fake) => format!(
                "[[server]]\nname = \"{NAME}\"\nkind = \"spotify\"\nclient_id = \"{CLIENT_ID}\"\n\
                 client_secret = \"{CLIENT_SECRET}\"\napi_url = \"{}\"\naccounts_url = \"{}\"\n",
                fake.api_url(),
                fake.accounts_url()
            ),
        }
    }

    /// What must exist before the first sync: a Spotify account is
    /// connected from the status page first, which stores the refresh
    /// token and the scopes granted (so the first sync polls the history
    /// too, as every later one does).
    pub fn prepare(&self, store: &Path, cache_bytes: usize) -> Result<(), String> {
        let Served::Spotify(fake) = self else {
            return Ok(());
        };
        let refresh = fake.issue_refresh_token();
        let store = Store::open(store, cache_bytes).map_err(|err| err.to_string())?;
        store
            .update_session(NAME, |session| {
                session.refresh_token = Some(refresh);
                session.scope = Some(SCOPES.into());
            })
            .map_err(|err| err.to_string())?;
        Ok(())
    }

    /// One edit: a movie renamed to `title` (Plex, Jellyfin, Emby), a
    /// playlist renamed (Spotify, whose saved items are never edited).
    pub fn change_one(&self, title: &str) -> Result<(), String> {
        match self {
            Served::Plex(fake) => {
                let movie = fake.keys("1", Kind::Movie).into_iter().next().ok_or("the Plex server has no movie")?;
                fake.edit_title(&movie, title);
            }
            Served::Jellyfin(fake, _) => {
                let movies = fake.view_id("Movies");
                let movie = fake.ids(&movies, Kind::Movie).into_iter().next().ok_or("the server has no movie")?;
                fake.edit_title(&movie, title);
            }
            Served::Spotify(fake) => {
                let playlist = fake.state().playlists.first().map(|playlist| playlist.id.clone());
                fake.rename_playlist(&playlist.ok_or("the account has no playlist")?, title);
            }
        }
        Ok(())
    }
}
