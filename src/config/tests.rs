//! The config module's own tests: the shipped example parses, and every
//! refusal names its key without quoting a secret.

use super::*;
use std::path::Path;

/// The `user` of a Jellyfin or Emby server.
fn user_of(server: &ServerConfig) -> Option<String> {
    match &server.backend {
        Backend::Jellyfin(jellyfin) => jellyfin.user.clone(),
        other => panic!("not a Jellyfin server: {other:?}"),
    }
}

fn parse_str(text: &str) -> Result<Config, ConfigError> {
    parse(text, Path::new("test.toml"))
}

const GOOD: &str = r#"
[store]
path = "/tmp/x.redb"
[[server]]
name = "living-room"
kind = "plex"
url = "http://127.0.0.1:32400/"
token = "abc"
"#;

fn example_text() -> (std::path::PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mediasync.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

/// The example with its server entries uncommented, as its own comment says:
/// the single "#" at the start of their lines removed ("##" lines stay
/// comments, and "# " lines are the file's own comments).
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if !rest.starts_with(' ') && !rest.is_empty() => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_shipped_example_parses_with_no_server() {
    let (path, text) = example_text();
    let config = parse(&text, &path).unwrap();
    assert!(config.servers.is_empty(), "the packaged config must not sync anything unedited: {:?}", config.servers);
    assert_eq!(config.sync.full_every, Duration::from_secs(7 * 86_400));
    assert_eq!(config.status.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(config.daemon.retry_backoff, Duration::from_secs(60));
    assert_eq!(config.daemon.retry_backoff_max, Duration::from_secs(3600));
}

#[test]
fn the_examples_servers_uncommented_are_refused_until_their_placeholders_are_edited() {
    let (path, text) = example_text();
    let servers = uncommented(&text);
    let error = parse(&servers, &path).unwrap_err().to_string();
    assert!(error.contains("\"living-room\"") && error.contains("url = \"http://192.0.2.10:32400\""), "{error}");
    assert!(error.contains("placeholder"), "{error}");
    // One placeholder after another, each refused by name.
    let real_addresses = servers
        .replace("192.0.2.10", "192.168.1.10")
        .replace("192.0.2.11", "192.168.1.11")
        .replace("192.0.2.12", "192.168.1.12");
    let error = parse(&real_addresses, &path).unwrap_err().to_string();
    assert!(
        error.contains("\"living-room\"") && error.contains("`token` is still the example's placeholder"),
        "{error}"
    );
    let real_tokens = real_addresses
        .replace("your-plex-token", "Pq7xY2kLmN3vB8cD9eFg")
        .replace("your-jellyfin-api-key", "0f1e2d3c4b5a69788796a5b4c3d2e1f0")
        .replace("your-emby-api-key", "a1b2c3d4e5f60718293a4b5c6d7e8f90");
    let error = parse(&real_tokens, &path).unwrap_err().to_string();
    assert!(error.contains("\"spotify\"") && error.contains("client_id is still the example's placeholder"), "{error}");
    let edited = real_tokens.replace("0123456789abcdef0123456789abcdef", "9f8e7d6c5b4a39281706f5e4d3c2b1a0");
    let config = parse(&edited, &path).unwrap();
    let kinds: Vec<ServerKind> = config.servers.iter().map(|server| server.kind()).collect();
    assert_eq!(kinds, vec![ServerKind::Plex, ServerKind::Jellyfin, ServerKind::Emby, ServerKind::Spotify]);
    assert_eq!(config.servers[0].name, "living-room");
    assert_eq!(config.servers[0].url(), "http://192.168.1.10:32400");
    assert_eq!(config.servers[0].page_size, DEFAULT_PAGE_SIZE);
    assert_eq!(user_of(&config.servers[2]).as_deref(), Some("alice"));
    let spotify = &config.servers[3];
    assert_eq!((spotify.url(), spotify.page_size), (SPOTIFY_API_URL, SPOTIFY_MAX_PAGE));
    let app = spotify.spotify().unwrap();
    assert_eq!((app.accounts_url.as_str(), app.client_secret.as_deref()), (SPOTIFY_ACCOUNTS_URL, None));
    // Nothing else in the file is a placeholder left for later.
    assert!(config.daemon.schedules.is_empty() && config.status.admin_token.is_none());
}

#[test]
fn placeholders_are_refused_wherever_they_are_put() {
    for (text, wanted) in [
        (GOOD.replace("\"abc\"", "\"your-plex-token\""), "`token` is still the example's placeholder"),
        (
            GOOD.replace("127.0.0.1:32400", "nas.example:32400"),
            "url = \"http://nas.example:32400/\" is the example's placeholder",
        ),
        (GOOD.replace("127.0.0.1:32400", "[2001:db8::5]:8096"), "is the example's placeholder"),
        (
            format!("{GOOD}[status]\nadmin_token = \"change-me-to-a-long-random-string\"\n"),
            "[status] admin_token is still",
        ),
    ] {
        let error = error_of(&text);
        assert!(error.contains(wanted), "{error}");
    }
    let spotify = "[store]\npath = \"/tmp/x.redb\"\n[[server]]\nname = \"s\"\nkind = \"spotify\"\nclient_id = \"abc\"\nclient_secret = \"your-client-secret\"\n";
    assert!(error_of(spotify).contains("client secret is still the example's placeholder"), "{}", error_of(spotify));
}

#[test]
fn retry_backoff_keys() {
    let config =
        parse_str(&format!("{GOOD}[daemon]\nretry_backoff = \"200ms\"\nretry_backoff_max = \"2s\"\n")).unwrap();
    assert_eq!(
        (config.daemon.retry_backoff, config.daemon.retry_backoff_max),
        (Duration::from_millis(200), Duration::from_secs(2))
    );
    for (keys, wanted) in [
        ("retry_backoff = \"0s\"\n", "retry_backoff"),
        ("retry_backoff = \"2h\"\n", "retry_backoff_max"),
        ("retry_backoff_max = \"soon\"\n", "[daemon] retry_backoff_max = \"soon\" is not a duration"),
    ] {
        let error = error_of(&format!("{GOOD}[daemon]\n{keys}"));
        assert!(error.contains(wanted), "{keys}: {error}");
    }
}

#[test]
fn spotify_entries_take_an_app_and_refuse_tokens() {
    let base = "[store]\npath = \"/tmp/x.redb\"\n[[server]]\nname = \"s\"\nkind = \"spotify\"\n";
    let config = parse_str(&format!("{base}client_id = \"abc123\"\nclient_secret = \"s3cret\"\n")).unwrap();
    let shown = format!("{:?}", config.servers[0]);
    assert!(!shown.contains("s3cret") && shown.contains("<redacted>"), "{shown}");
    for (extra, wanted) in [
        ("", "missing `client_id`"),
        ("client_id = \"has-dash\"\n", "client_id must be"),
        ("client_id = \"abc\"\ntoken = \"t\"\n", "`token` does not apply"),
        ("client_id = \"abc\"\npage_size = 51\n", "between 1 and 50"),
        ("client_id = \"abc\"\nlibraries = [\"podcasts\"]\n", "\"tracks\", \"albums\""),
        ("client_id = \"abc\"\nredirect_uri = \"ftp://x\"\n", "redirect_uri"),
    ] {
        let error = error_of(&format!("{base}{extra}"));
        assert!(error.contains(wanted), "{extra}: {error}");
    }
    let plex = "[store]\npath = \"/tmp/x.redb\"\n[[server]]\nname = \"p\"\nkind = \"plex\"\nurl = \"http://h\"\ntoken = \"t\"\nclient_id = \"a\"\n";
    assert!(error_of(plex).contains("applies to kind = \"spotify\" only"), "{}", error_of(plex));
}

#[test]
fn good_config_trims_url() {
    let config = parse_str(GOOD).unwrap();
    assert_eq!(config.servers[0].url(), "http://127.0.0.1:32400");
    assert!(!format!("{:?}", config).contains("abc"), "token leaked through Debug");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
    assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_duration("12 h"), Some(Duration::from_secs(43_200)));
    assert_eq!(parse_duration("h"), None);
    assert_eq!(parse_duration("3 weeks"), None);
}

fn error_of(text: &str) -> String {
    parse_str(text).unwrap_err().to_string()
}

#[test]
fn bad_configs_name_the_key() {
    let unknown = error_of(&GOOD.replace("token = ", "tokn = "));
    assert!(unknown.contains("tokn"), "{unknown}");
    assert!(unknown.contains("line 8"), "{unknown}");
    let missing = error_of(&GOOD.replace("token = \"abc\"", ""));
    assert!(missing.contains("missing `token`"), "{missing}");
    let url = error_of(&GOOD.replace("http://127.0.0.1:32400/", "ftp://x"));
    assert!(url.contains("url") && url.contains("http://"), "{url}");
    let url = error_of(&GOOD.replace("http://127.0.0.1:32400/", "not a url"));
    assert!(url.contains("not a valid URL"), "{url}");
    let twice =
        format!("{GOOD}\n[[server]]\nname = \"living-room\"\nkind = \"plex\"\nurl = \"http://a:1\"\ntoken = \"t\"\n");
    assert!(error_of(&twice).contains("used twice"));
    let kind = error_of(&GOOD.replace("\"plex\"", "\"kodi\""));
    assert!(kind.contains("kodi"), "{kind}");
    let share = error_of(&format!("{GOOD}\n[sync]\nmax_delete_share = 2.0\n"));
    assert!(share.contains("max_delete_share"), "{share}");
    let duration = error_of(&format!("{GOOD}\n[sync]\nfull_every = \"weekly\"\n"));
    assert!(duration.contains("full_every"), "{duration}");
    let page = error_of(&GOOD.replace("token = \"abc\"", "token = \"abc\"\npage_size = 0"));
    assert!(page.contains("page_size"), "{page}");
}

#[test]
fn jellyfin_and_emby_kinds_take_an_optional_user() {
    let jellyfin = parse_str(&GOOD.replace("\"plex\"", "\"jellyfin\"")).unwrap();
    assert_eq!(jellyfin.servers[0].kind(), ServerKind::Jellyfin);
    assert_eq!(user_of(&jellyfin.servers[0]), None);
    let emby = parse_str(
        &GOOD.replace("\"plex\"", "\"emby\"").replace("token = \"abc\"", "token = \"abc\"\nuser = \" alice \""),
    )
    .unwrap();
    assert_eq!(emby.servers[0].kind(), ServerKind::Emby);
    assert_eq!(user_of(&emby.servers[0]).as_deref(), Some("alice"));
    let plex_user = error_of(&GOOD.replace("token = \"abc\"", "token = \"abc\"\nuser = \"alice\""));
    assert!(plex_user.contains("`user`"), "{plex_user}");
    let empty =
        error_of(&GOOD.replace("\"plex\"", "\"jellyfin\"").replace("token = \"abc\"", "token = \"abc\"\nuser = \"\""));
    assert!(empty.contains("user"), "{empty}");
}

#[test]
fn daemon_and_status_defaults() {
    let config = parse_str(GOOD).unwrap();
    assert_eq!(config.status.listen.to_string(), DEFAULT_LISTEN);
    assert!(config.status.admin_token.is_none());
    assert!(config.status.hostnames.is_empty());
    assert_eq!(config.daemon.max_concurrent_syncs, 1);
    assert!(config.daemon.freshness.is_none());
    assert!(config.daemon.schedules.is_empty());
}

#[test]
fn daemon_and_status_keys() {
    let text = format!(
        "{}\n[status]\nlisten = \"0.0.0.0:9000\"\nadmin_token = \"s3cret-admin-token\"\n[daemon]\nmax_concurrent_syncs = 2\nfreshness = \"6h\"\n",
        GOOD.replace("token = \"abc\"", "token = \"abc\"\nschedule = \"0 30 3 * * *\"")
    );
    let config = parse_str(&text).unwrap();
    assert_eq!(config.status.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(config.status.admin_token.as_deref(), Some("s3cret-admin-token"));
    assert!(!format!("{config:?}").contains("s3cret-admin-token"), "admin token leaked through Debug");
    assert_eq!(config.daemon.max_concurrent_syncs, 2);
    assert_eq!(config.daemon.freshness, Some(Duration::from_secs(6 * 3600)));
    assert!(config.daemon.schedules.contains_key("living-room"));
}

#[test]
fn status_hostnames_are_bare_names_kept_lowercase() {
    let config =
        parse_str(&format!("{GOOD}\n[status]\nhostnames = [\"Pi.Example.NET.\", \"192.168.1.5\", \"[fd00::5]\"]\n"))
            .unwrap();
    assert_eq!(config.status.hostnames, ["pi.example.net", "192.168.1.5", "[fd00::5]"]);
    for bad in ["http://pi.local", "pi.local:8787", "", "user@pi", "pi/status", "pi local"] {
        let error = error_of(&format!("{GOOD}\n[status]\nhostnames = [\"{bad}\"]\n"));
        assert!(error.contains("[status] hostnames") && error.contains("no scheme, port or path"), "{bad}: {error}");
    }
}

#[test]
fn bad_daemon_keys_name_the_key() {
    let schedule = error_of(&GOOD.replace("token = \"abc\"", "token = \"abc\"\nschedule = \"every night\""));
    assert!(schedule.contains("schedule") && schedule.contains("seconds first"), "{schedule}");
    let five_fields = error_of(&GOOD.replace("token = \"abc\"", "token = \"abc\"\nschedule = \"10 */12 * * *\""));
    assert!(five_fields.contains("schedule"), "{five_fields}");
    let listen = error_of(&format!("{GOOD}\n[status]\nlisten = \"8787\"\n"));
    assert!(listen.contains("[status] listen"), "{listen}");
    let short = error_of(&format!("{GOOD}\n[status]\nadmin_token = \"x y\"\n"));
    assert!(short.contains("admin token") && !short.contains("x y"), "{short}");
    let concurrent = error_of(&format!("{GOOD}\n[daemon]\nmax_concurrent_syncs = 0\n"));
    assert!(concurrent.contains("max_concurrent_syncs"), "{concurrent}");
    let freshness = error_of(&format!("{GOOD}\n[daemon]\nfreshness = \"soon\"\n"));
    assert!(freshness.contains("freshness"), "{freshness}");
}

#[test]
fn token_never_in_errors() {
    let text = GOOD.replace("url = \"http://127.0.0.1:32400/\"", "url = \"nope\"");
    let text = text.replace("\"abc\"", "\"secret-token-xyz\"");
    assert!(!error_of(&text).contains("secret-token-xyz"));
    let text = GOOD.replace("token = \"abc\"", "token = \"secret-token-xyz\"\nbogus = 1");
    assert!(!error_of(&text).contains("secret-token-xyz"));
}

#[test]
fn default_status_listens_on_the_default_address() {
    assert_eq!(StatusConfig::default().listen.to_string(), DEFAULT_LISTEN);
}

#[test]
fn errors_keep_their_cause() {
    use std::error::Error;
    let missing = load(Path::new("/nonexistent/mediasync.toml")).unwrap_err();
    let io = missing.source().and_then(|cause| cause.downcast_ref::<std::io::Error>());
    assert_eq!(io.map(std::io::Error::kind), Some(std::io::ErrorKind::NotFound), "{missing:?}");
    let token_file = parse_str(&GOOD.replace("token = \"abc\"", "token_file = \"/nonexistent/token\"")).unwrap_err();
    assert!(matches!(
        &token_file,
        ConfigError::Invalid {
            problem: Problem::Server {
                problem: ServerProblem::Secret(SecretProblem::Unreadable { key: "token", .. }),
                ..
            },
            ..
        }
    ));
    assert!(token_file.source().is_some_and(|cause| cause.is::<std::io::Error>()), "{token_file:?}");
    let schedule = error_of_value(&GOOD.replace("token = \"abc\"", "token = \"abc\"\nschedule = \"every night\""));
    assert!(schedule.source().is_some_and(|cause| cause.is::<cron::error::Error>()), "{schedule:?}");
    let listen = error_of_value(&format!("{GOOD}\n[status]\nlisten = \"8787\"\n"));
    assert!(listen.source().is_some_and(|cause| cause.is::<std::net::AddrParseError>()), "{listen:?}");
}

fn error_of_value(text: &str) -> ConfigError {
    parse_str(text).unwrap_err()
}

#[test]
fn each_kind_carries_its_own_keys() {
    let config = parse_str(&format!(
        "{GOOD}\n[[server]]\nname = \"den\"\nkind = \"emby\"\nurl = \"http://h:8096\"\ntoken = \"k\"\nuser = \"bob\"\n\n[[server]]\nname = \"s\"\nkind = \"spotify\"\nclient_id = \"abc\"\n"
    ))
    .unwrap();
    assert!(matches!(&config.servers[0].backend, Backend::Plex(plex) if plex.token == "abc"));
    assert!(matches!(
        &config.servers[1].backend,
        Backend::Jellyfin(JellyfinConfig { flavor: Flavor::Emby, user: Some(user), .. }) if user == "bob"
    ));
    assert!(matches!(&config.servers[2].backend, Backend::Spotify(app) if app.client_secret.is_none()));
    assert_eq!(config.servers[2].url(), SPOTIFY_API_URL);
}

#[test]
fn the_change_feed_keeps_deletions_by_count_and_age() {
    let defaults = parse_str(GOOD).unwrap();
    assert_eq!(defaults.store.max_tombstones, DEFAULT_MAX_TOMBSTONES);
    assert_eq!(defaults.store.max_tombstone_age, Duration::from_secs(90 * 86_400));
    let text = GOOD
        .replace("path = \"/tmp/x.redb\"", "path = \"/tmp/x.redb\"\nmax_tombstones = 500\nmax_tombstone_age = \"30d\"");
    let config = parse_str(&text).unwrap();
    assert_eq!((config.store.max_tombstones, config.store.max_tombstone_age), (500, Duration::from_secs(30 * 86_400)));
    let short = error_of(&GOOD.replace("path = \"/tmp/x.redb\"", "path = \"/tmp/x.redb\"\nmax_tombstone_age = \"2h\""));
    assert!(short.contains("[store] max_tombstone_age") && short.contains("at least \"1d\""), "{short}");
    let garbled =
        error_of(&GOOD.replace("path = \"/tmp/x.redb\"", "path = \"/tmp/x.redb\"\nmax_tombstone_age = \"long\""));
    assert!(garbled.contains("[store] max_tombstone_age = \"long\" is not a duration"), "{garbled}");
}

/// 4096 MiB overflowed a 32-bit usize (armv7, where CI runs this test under
/// qemu); there it is clamped to usize::MAX bytes.
#[test]
fn the_largest_cache_fits_every_target() {
    let config = parse_str(&GOOD.replace("[store]", "[store]\ncache_mib = 4096")).unwrap();
    let expected = if usize::BITS > 32 { 4096 << 20 } else { usize::MAX };
    assert_eq!(config.store.cache_bytes, expected);
    let config = parse_str(&GOOD.replace("[store]", "[store]\ncache_mib = 3")).unwrap();
    assert_eq!(config.store.cache_bytes, 3 << 20);
}
