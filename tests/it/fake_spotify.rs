//! The fake Spotify must be no kinder than the real Web API and accounts
//! service: these pin its paging, cursors, snapshot ids, 403s, OAuth flows,
//! token lifetimes and rate limits, which the Spotify client's tests rely on.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use mediasync::fake::spotify::{CLIENT_ID, CLIENT_SECRET, Expected, FakeSpotify, PlaylistItem};
use mediasync::model::Kind;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

struct Answer {
    status: u16,
    retry_after: Option<String>,
    location: Option<String>,
    body: Value,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into()
}

fn read(mut response: ureq::http::Response<ureq::Body>) -> Answer {
    let header = |name: &str| response.headers().get(name).map(|value| value.to_str().unwrap().to_string());
    let (retry_after, location) = (header("retry-after"), header("location"));
    let text = response.body_mut().read_to_string().unwrap();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    Answer { status: response.status().as_u16(), retry_after, location, body }
}

/// GET `url` (a full URL, as `next` links are, or a path under the fake).
fn get(fake: &FakeSpotify, token: Option<&str>, url: &str) -> Answer {
    let url = if url.starts_with("http") { url.to_string() } else { format!("{}{url}", fake.url()) };
    let mut request = agent().get(url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    read(request.call().unwrap())
}

fn ok(fake: &FakeSpotify, token: &str, url: &str) -> Value {
    let answer = get(fake, Some(token), url);
    assert_eq!(answer.status, 200, "{url}: {}", answer.body);
    answer.body
}

/// POST the token endpoint, with Basic client authentication when `basic` is given.
fn token_request(fake: &FakeSpotify, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> Answer {
    let mut request = agent().post(format!("{}/api/token", fake.accounts_url()));
    if let Some((id, secret)) = basic {
        request = request.header("Authorization", format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))));
    }
    read(request.send_form(form.iter().copied()).unwrap())
}

fn error_message(answer: &Answer) -> &str {
    answer.body["error"]["message"].as_str().unwrap_or_else(|| panic!("not a Web API error: {}", answer.body))
}

/// Follows `next` links from `first`, returning every page.
fn walk(fake: &FakeSpotify, token: &str, first: &str, inside: Option<&str>) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut url = Some(first.to_string());
    while let Some(current) = url {
        let body = ok(fake, token, &current);
        let page = inside.map_or(body.clone(), |key| body[key].clone());
        url = page["next"].as_str().map(str::to_string);
        pages.push(page);
        assert!(pages.len() < 100, "endless paging");
    }
    pages
}

#[test]
fn saved_tracks_page_by_offset_with_full_url_links_and_limits() {
    let fake = FakeSpotify::start().unwrap();
    fake.generate(45, 3, 2, 0, 0);
    let token = fake.issue_access_token();
    let last = ok(&fake, &token, "/v1/me/tracks?limit=20&offset=40");
    assert_eq!(last["total"], 45);
    assert_eq!(last["items"].as_array().unwrap().len(), 5);
    assert!(last["next"].is_null());
    assert_eq!(last["previous"], format!("{}/me/tracks?offset=20&limit=20", fake.api_url()));
    let first = ok(&fake, &token, "/v1/me/tracks");
    assert_eq!((first["limit"].as_u64(), first["offset"].as_u64()), (Some(20), Some(0)), "defaults");
    assert!(first["previous"].is_null());
    let item = &first["items"][0];
    let added_at = item["added_at"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(added_at).is_ok() && added_at.ends_with('Z'), "{added_at}");
    for field in ["id", "name", "uri", "duration_ms", "album", "artists", "available_markets", "external_urls", "href"]
    {
        assert!(item["track"].get(field).is_some(), "missing {field}: {}", item["track"]);
    }
    assert_eq!(item["track"]["id"].as_str().unwrap().len(), 22);
    assert!(item["track"]["album"]["id"].is_string() && item["track"]["album"]["release_date"].is_string());
    // Walking `next` yields every saved track once, newest first.
    let pages = walk(&fake, &token, "/v1/me/tracks?limit=50", None);
    let walked: Vec<String> = pages
        .iter()
        .flat_map(|page| page["items"].as_array().unwrap().clone())
        .map(|item| item["track"]["id"].as_str().unwrap().to_string())
        .collect();
    let saved: Vec<String> = fake.state().saved_tracks.iter().map(|saved| saved.item.id.clone()).collect();
    assert_eq!(walked, saved);
    let albums = ok(&fake, &token, "/v1/me/albums?limit=2");
    assert_eq!(albums["total"], 3);
    assert!(albums["items"][0]["album"]["tracks"]["items"].is_array());
    for bad in ["limit=51", "limit=0", "limit=x"] {
        let answer = get(&fake, Some(&token), &format!("/v1/me/tracks?{bad}"));
        assert_eq!(answer.status, 400, "{bad}");
        assert_eq!(error_message(&answer), "Invalid limit");
        assert_eq!(answer.body["error"]["status"], 400);
    }
    assert_eq!(get(&fake, Some(&token), "/v1/me/playlists?limit=51").status, 400);
}

#[test]
fn followed_artists_cursor_paging_covers_every_artist_once() {
    let fake = FakeSpotify::start().unwrap();
    fake.generate(0, 0, 37, 0, 0);
    fake.follow_artist("Late Follow");
    let token = fake.issue_access_token();
    let pages = walk(&fake, &token, "/v1/me/following?type=artist&limit=10", Some("artists"));
    assert_eq!(pages.len(), 4);
    let ids: Vec<String> = pages
        .iter()
        .flat_map(|page| page["items"].as_array().unwrap().clone())
        .map(|artist| artist["id"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "sorted by id");
    let followed: BTreeSet<String> = fake.state().followed_artists.iter().map(|artist| artist.id.clone()).collect();
    assert_eq!(ids.len(), 38);
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), followed, "each exactly once");
    assert_eq!(pages[0]["cursors"]["after"], ids[9].as_str());
    assert_eq!(pages[0]["total"], 38);
    assert!(pages[3]["cursors"]["after"].is_null() && pages[3]["next"].is_null());
    // Id order is not follow order, so a new follow can land on any page.
    let in_follow_order: Vec<String> = fake.state().followed_artists.iter().map(|artist| artist.id.clone()).collect();
    assert_ne!(in_follow_order, ids);
    let missing = get(&fake, Some(&token), "/v1/me/following?limit=10");
    assert_eq!((missing.status, error_message(&missing)), (400, "Missing or bad type"));
    assert_eq!(get(&fake, Some(&token), "/v1/me/following?type=artist&limit=51").status, 400);
}

#[test]
fn snapshot_id_changes_on_every_edit_and_only_then() {
    let fake = FakeSpotify::start().unwrap();
    let token = fake.issue_access_token();
    let id = fake.add_playlist("Road Trip", "listener1", false, 5);
    let listed = |fake: &FakeSpotify| {
        let page = ok(fake, &token, "/v1/me/playlists");
        let playlist = page["items"].as_array().unwrap().iter().find(|item| item["id"] == id.as_str()).unwrap().clone();
        (playlist["snapshot_id"].as_str().unwrap().to_string(), playlist)
    };
    let (first, playlist) = listed(&fake);
    assert_eq!(playlist["items"]["total"], 5);
    assert_eq!(playlist["tracks"]["total"], 5, "the deprecated field is still sent");
    assert_eq!(playlist["owner"]["id"], "listener1");
    let (again, relisted) = listed(&fake);
    assert_eq!(first, again, "no edit, same snapshot");
    assert_ne!(playlist["images"][0]["url"], relisted["images"][0]["url"], "image URLs are temporary");
    fake.save_track("Unrelated");
    fake.add_playlist("Other", "listener1", false, 1);
    assert_eq!(listed(&fake).0, first, "edits elsewhere keep the snapshot");
    let mut seen = vec![first];
    fake.playlist_insert(&id, 2, "Inserted");
    seen.push(listed(&fake).0);
    fake.playlist_remove(&id, 0);
    seen.push(listed(&fake).0);
    fake.rename_playlist(&id, "Road Trip 2");
    let (renamed, playlist) = listed(&fake);
    seen.push(renamed);
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 4, "every edit a new snapshot: {seen:?}");
    assert_eq!(playlist["name"], "Road Trip 2");
    assert_eq!(fake.snapshot_id(&id).as_deref(), Some(seen[3].as_str()));
    let entries = ok(&fake, &token, &format!("/v1/playlists/{id}/items"));
    let names: Vec<&str> =
        entries["items"].as_array().unwrap().iter().map(|e| e["item"]["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 5);
    assert_eq!(names[1], "Inserted", "inserted at 2, then entry 0 removed");
}

#[test]
fn items_of_a_playlist_neither_owned_nor_collaborative_are_forbidden() {
    let fake = FakeSpotify::start().unwrap();
    let token = fake.issue_access_token();
    let theirs = fake.add_playlist("Today's Top Hits", "spotify", false, 3);
    let shared = fake.add_playlist("Shared", "friend2", true, 3);
    let mine = fake.add_playlist("Mine", "listener1", false, 3);
    for route in ["items", "tracks"] {
        let answer = get(&fake, Some(&token), &format!("/v1/playlists/{theirs}/{route}"));
        assert_eq!((answer.status, error_message(&answer)), (403, "Forbidden"), "{route}");
        assert_eq!(ok(&fake, &token, &format!("/v1/playlists/{shared}/{route}"))["total"], 3);
        assert_eq!(ok(&fake, &token, &format!("/v1/playlists/{mine}/{route}"))["total"], 3);
    }
    let unknown = get(&fake, Some(&token), "/v1/playlists/p000000000000000000000/items");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["error"]["status"], 404);
    assert_eq!(get(&fake, Some(&token), &format!("/v1/playlists/{mine}/items?limit=51")).status, 400);
    assert_eq!(get(&fake, Some(&token), &format!("/v1/playlists/{mine}/tracks?limit=100")).status, 200);
    assert_eq!(get(&fake, Some(&token), "/v1/me/shows").status, 404);
    // The forbidden playlist is listed, but an exact mirror holds none of its entries.
    let expected = fake.expected();
    assert!(expected.iter().any(|row| row.id == theirs && row.parent_id.as_deref() == Some("spotify")));
    assert!(!expected.iter().any(|row| row.parent_id.as_deref() == Some(theirs.as_str())));
    assert_eq!(expected.iter().filter(|row| row.parent_id.as_deref() == Some(shared.as_str())).count(), 3);
}

/// Reads the whole library through the API with the mapping the client
/// uses and compares it with `expected()`: the fake's answers and its own
/// idea of an exact mirror must agree, quirks included.
#[test]
fn the_api_agrees_with_expected() {
    let fake = FakeSpotify::start().unwrap();
    fake.generate(23, 7, 9, 6, 40);
    let token = fake.issue_access_token();
    let epoch = |value: &Value| {
        value.as_str().map_or(0, |text| chrono::DateTime::parse_from_rfc3339(text).unwrap().timestamp())
    };
    let row = |library: &str, id: &str, kind: Kind, title: &str, parent: Option<&str>, updated_at: i64| Expected {
        library: library.into(),
        id: id.into(),
        kind,
        title: title.into(),
        parent_id: parent.map(str::to_string),
        updated_at,
    };
    let mut rows = Vec::new();
    let items = |pages: Vec<Value>| pages.into_iter().flat_map(|page| page["items"].as_array().unwrap().clone());
    for saved in items(walk(&fake, &token, "/v1/me/tracks?limit=50", None)) {
        let track = &saved["track"];
        let (id, name, album) =
            (track["id"].as_str().unwrap(), track["name"].as_str().unwrap(), track["album"]["id"].as_str());
        rows.push(row("tracks", id, Kind::Track, name, album, epoch(&saved["added_at"])));
    }
    for saved in items(walk(&fake, &token, "/v1/me/albums?limit=50", None)) {
        let album = &saved["album"];
        let (id, name, artist) =
            (album["id"].as_str().unwrap(), album["name"].as_str().unwrap(), album["artists"][0]["id"].as_str());
        rows.push(row("albums", id, Kind::Album, name, artist, epoch(&saved["added_at"])));
    }
    for artist in items(walk(&fake, &token, "/v1/me/following?type=artist&limit=50", Some("artists"))) {
        rows.push(row(
            "artists",
            artist["id"].as_str().unwrap(),
            Kind::Artist,
            artist["name"].as_str().unwrap(),
            None,
            0,
        ));
    }
    let (mut episodes, mut locals, mut nulls, mut undated) = (0, 0, 0, 0);
    for playlist in items(walk(&fake, &token, "/v1/me/playlists?limit=50", None)) {
        let id = playlist["id"].as_str().unwrap();
        rows.push(row(
            "playlists",
            id,
            Kind::Playlist,
            playlist["name"].as_str().unwrap(),
            playlist["owner"]["id"].as_str(),
            0,
        ));
        let first = format!("/v1/playlists/{id}/items?limit=50&additional_types=track,episode");
        if get(&fake, Some(&token), &first).status == 403 {
            continue;
        }
        for (position, entry) in items(walk(&fake, &token, &first, None)).enumerate() {
            let item = &entry["item"];
            assert_eq!(item, &entry["track"], "the deprecated duplicate");
            let kind = if item["type"] == "episode" { Kind::Episode } else { Kind::Track };
            episodes += usize::from(kind == Kind::Episode);
            locals += usize::from(
                entry["is_local"] == true
                    && item["id"].is_null()
                    && item["uri"].as_str().unwrap().starts_with("spotify:local:"),
            );
            nulls += usize::from(item.is_null());
            undated += usize::from(entry["added_at"].is_null());
            let title = item["name"].as_str().unwrap_or("");
            rows.push(row(
                "playlists",
                &format!("{id}/{position:06}"),
                kind,
                title,
                Some(id),
                epoch(&entry["added_at"]),
            ));
        }
    }
    rows.sort();
    assert_eq!(rows, fake.expected());
    assert!(episodes > 0 && locals > 0 && nulls > 0 && undated > 0, "{episodes} {locals} {nulls} {undated}");
    // Without `additional_types=episode` an episode comes in the legacy
    // track shape, with wrong flags: only `type` and the URI tell.
    let state = fake.state();
    let (playlist, position) = state
        .playlists
        .iter()
        .find_map(|playlist| {
            let position = playlist.entries.iter().position(|entry| matches!(entry.item, PlaylistItem::Episode(_)))?;
            Some((playlist.id.clone(), position)).filter(|_| playlist.owner == "listener1")
        })
        .unwrap();
    drop(state);
    let legacy = ok(&fake, &token, &format!("/v1/playlists/{playlist}/items?offset={position}&limit=1"));
    let legacy = &legacy["items"][0]["item"];
    assert_eq!((legacy["type"].as_str(), legacy["track"].as_bool()), (Some("episode"), Some(true)));
    assert!(legacy["album"].is_object() && legacy["uri"].as_str().unwrap().starts_with("spotify:episode:"));
}

fn authorize(fake: &FakeSpotify, query: &str) -> Answer {
    read(agent().get(format!("{}/authorize?{query}", fake.accounts_url())).call().unwrap())
}

fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref())
}

/// The code from a successful authorization, checking the redirect.
fn code_for(fake: &FakeSpotify, redirect_uri: &str, verifier: &str) -> String {
    let query = format!(
        "client_id={CLIENT_ID}&response_type=code&redirect_uri={}&scope=user-library-read%20playlist-read-private&state=xyz%2F1&code_challenge_method=S256&code_challenge={}",
        urlencode(redirect_uri),
        challenge_of(verifier)
    );
    let answer = authorize(fake, &query);
    assert_eq!(answer.status, 302, "{}", answer.body);
    let location = answer.location.unwrap();
    let (target, query) = location.split_once('?').unwrap();
    assert_eq!(target, redirect_uri);
    assert!(query.ends_with("&state=xyz%2F1"), "{location}");
    let code = query.strip_prefix("code=").unwrap().split('&').next().unwrap();
    code.to_string()
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| if byte.is_ascii_alphanumeric() { (byte as char).to_string() } else { format!("%{byte:02X}") })
        .collect()
}

#[test]
fn authorization_code_with_pkce() {
    let fake = FakeSpotify::start().unwrap();
    fake.state().client_secret = None;
    let redirect = "http://127.0.0.1:8888/callback";
    let verifier = "a-verifier-of-enough-entropy-0123456789-abcdefghijklmnop";
    let code = code_for(&fake, redirect, verifier);
    let exchange = |code: &str, verifier: &str, redirect: &str| {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("client_id", CLIENT_ID),
            ("code_verifier", verifier),
        ];
        token_request(&fake, None, &form)
    };
    let granted = exchange(&code, verifier, redirect);
    assert_eq!(granted.status, 200, "{}", granted.body);
    assert_eq!(granted.body["token_type"], "Bearer");
    assert_eq!(granted.body["expires_in"], 3600);
    assert_eq!(granted.body["scope"], "user-library-read playlist-read-private");
    let refresh = granted.body["refresh_token"].as_str().unwrap();
    assert_eq!(fake.refresh_token().as_deref(), Some(refresh));
    let access = granted.body["access_token"].as_str().unwrap();
    assert_eq!(ok(&fake, access, "/v1/me")["id"], "listener1");
    assert_eq!(ok(&fake, access, "/v1/me/tracks")["total"], 0);
    let refused = get(&fake, Some(access), "/v1/me/following?type=artist");
    assert_eq!((refused.status, error_message(&refused)), (403, "Insufficient client scope"), "scope not granted");
    // Codes are single-use.
    let reused = exchange(&code, verifier, redirect);
    assert_eq!((reused.status, reused.body["error"].as_str()), (400, Some("invalid_grant")));
    let code = code_for(&fake, redirect, verifier);
    let mismatch = exchange(&code, "another-verifier-of-enough-entropy-0123456789-abcdefghij", redirect);
    assert_eq!((mismatch.status, mismatch.body["error"].as_str()), (400, Some("invalid_grant")));
    let code = code_for(&fake, redirect, verifier);
    let moved = exchange(&code, verifier, "http://127.0.0.1:9999/callback");
    assert_eq!((moved.status, moved.body["error"].as_str()), (400, Some("invalid_grant")), "redirect_uri must match");
    assert_eq!(fake.token_requests(), 4);
    assert_eq!(fake.requests(), 3, "token requests are not API requests");
    // localhost is refused since November 2025; loopback IP literals and https are fine.
    let insecure = format!(
        "client_id={CLIENT_ID}&response_type=code&redirect_uri=http%3A%2F%2Flocalhost%3A8888%2Fcb&code_challenge_method=S256&code_challenge=abc"
    );
    assert_eq!(authorize(&fake, &insecure).status, 400);
    let unknown = "client_id=nobody&response_type=code&redirect_uri=https%3A%2F%2Fexample.com%2Fcb";
    assert_eq!(authorize(&fake, unknown).status, 400);
    fake.state().deny_authorization = true;
    let denied = format!(
        "client_id={CLIENT_ID}&response_type=code&redirect_uri=https%3A%2F%2Fexample.com%2Fcb%3Fa%3D1&state=s&code_challenge_method=S256&code_challenge=abc"
    );
    let denied = authorize(&fake, &denied);
    assert_eq!(denied.location.as_deref(), Some("https://example.com/cb?a=1&error=access_denied&state=s"));
    // The log holds no secrets.
    let log = format!("{:?}", fake.log());
    assert!(!log.contains(&code) && !log.contains(access) && !log.contains(verifier), "{log}");
}

#[test]
fn confidential_client_authenticates_with_basic() {
    let fake = FakeSpotify::start().unwrap();
    let redirect = "https://box.example/callback";
    let code = code_for(&fake, redirect, "verifier-unused-by-this-test-but-sent-0123456789abcdef");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect),
        ("code_verifier", "verifier-unused-by-this-test-but-sent-0123456789abcdef"),
    ];
    let bad_secret = token_request(&fake, Some((CLIENT_ID, "wrong")), &form);
    assert_eq!((bad_secret.status, bad_secret.body["error"].as_str()), (401, Some("invalid_client")));
    let unknown = token_request(&fake, Some(("someone-else", CLIENT_SECRET)), &form);
    assert_eq!((unknown.status, unknown.body["error"].as_str()), (400, Some("invalid_client")));
    let granted = token_request(&fake, Some((CLIENT_ID, CLIENT_SECRET)), &form);
    assert_eq!(granted.status, 200, "{}", granted.body);
    assert!(granted.body["refresh_token"].is_string());
    let other = token_request(&fake, Some((CLIENT_ID, CLIENT_SECRET)), &[("grant_type", "password")]);
    assert_eq!((other.status, other.body["error"].as_str()), (400, Some("unsupported_grant_type")));
    fake.state().token_failure = Some(503);
    let down = token_request(&fake, Some((CLIENT_ID, CLIENT_SECRET)), &[("grant_type", "refresh_token")]);
    assert_eq!(down.status, 503);
}

fn refresh(fake: &FakeSpotify, refresh_token: &str) -> Answer {
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
    token_request(fake, Some((CLIENT_ID, CLIENT_SECRET)), &form)
}

#[test]
fn refresh_tokens_rotate_or_stay() {
    let fake = FakeSpotify::start().unwrap();
    let first = fake.issue_refresh_token();
    let kept = refresh(&fake, &first);
    assert_eq!(kept.status, 200, "{}", kept.body);
    assert!(kept.body.get("refresh_token").is_none(), "no rotation: keep the old one");
    assert_eq!(kept.body["expires_in"], 3600);
    assert!(ok(&fake, kept.body["access_token"].as_str().unwrap(), "/v1/me").is_object());
    assert_eq!(refresh(&fake, &first).status, 200, "still valid");
    fake.state().rotate_refresh_tokens = true;
    let rotated = refresh(&fake, &first);
    let second = rotated.body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    assert_eq!(fake.refresh_token().as_deref(), Some(second.as_str()));
    let stale = refresh(&fake, &first);
    assert_eq!((stale.status, stale.body["error_description"].as_str()), (400, Some("Invalid refresh token")));
    assert_eq!(stale.body["error"], "invalid_grant");
    assert_eq!(refresh(&fake, &second).status, 200);
}

#[test]
fn revoked_refresh_tokens_are_invalid_grant() {
    let fake = FakeSpotify::start().unwrap();
    let token = fake.issue_refresh_token();
    assert_eq!(refresh(&fake, &token).status, 200);
    fake.revoke_refresh_tokens();
    let revoked = refresh(&fake, &token);
    assert_eq!(revoked.status, 400);
    assert_eq!(revoked.body["error"], "invalid_grant");
    assert_eq!(revoked.body["error_description"], "Refresh token revoked");
    assert_eq!(fake.refresh_token(), None);
}

#[test]
fn access_tokens_expire() {
    let fake = FakeSpotify::start().unwrap();
    let token = fake.issue_access_token();
    assert!(ok(&fake, &token, "/v1/me").is_object());
    let none = get(&fake, None, "/v1/me");
    assert_eq!((none.status, error_message(&none)), (401, "No token provided"));
    let bogus = get(&fake, Some("BQnot-a-token"), "/v1/me");
    assert_eq!((bogus.status, error_message(&bogus)), (401, "Invalid access token"));
    fake.expire_access_tokens();
    let expired = get(&fake, Some(&token), "/v1/me");
    assert_eq!((expired.status, error_message(&expired)), (401, "The access token expired"));
    let renewed = refresh(&fake, &fake.issue_refresh_token());
    let fresh = renewed.body["access_token"].as_str().unwrap().to_string();
    assert!(ok(&fake, &fresh, "/v1/me").is_object(), "tokens issued after the control work");
    // And they expire by themselves after `expires_in`.
    fake.state().token_lifetime_secs = 1;
    let short = fake.issue_access_token();
    assert!(ok(&fake, &short, "/v1/me").is_object());
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&fake, Some(&short), "/v1/me").status, 401);
    assert_eq!(fake.requests(), 7);
}

#[test]
fn rolling_window_answers_429_with_retry_after_and_counts_early_requests() {
    let fake = FakeSpotify::start().unwrap();
    let token = fake.issue_access_token();
    fake.state().rate_limit = Some((3, 1));
    for _ in 0..3 {
        ok(&fake, &token, "/v1/me");
    }
    let limited = get(&fake, Some(&token), "/v1/me");
    assert_eq!((limited.status, error_message(&limited)), (429, "API rate limit exceeded"));
    assert_eq!(limited.retry_after.as_deref(), Some("1"));
    assert_eq!(fake.violations(), 0, "the first 429 is no violation");
    let early = get(&fake, Some(&token), "/v1/me");
    assert_eq!(early.status, 429, "still over the limit");
    assert_eq!(fake.violations(), 1);
    let seconds: u64 = early.retry_after.unwrap().parse().unwrap();
    std::thread::sleep(Duration::from_secs(seconds) + Duration::from_millis(20));
    assert!(ok(&fake, &token, "/v1/me").is_object(), "served after waiting Retry-After");
    assert_eq!(fake.violations(), 1);
    let log = fake.log();
    let statuses: Vec<(u64, u16, bool)> = log.iter().map(|entry| (entry.number, entry.status, entry.early)).collect();
    assert_eq!(
        statuses,
        [(1, 200, false), (2, 200, false), (3, 200, false), (4, 429, false), (5, 429, true), (6, 200, false)]
    );
    assert_eq!(fake.requests(), 6);
}

#[test]
fn quota_mode_refuses_until_reset() {
    let fake = FakeSpotify::start().unwrap();
    let token = fake.issue_access_token();
    {
        let mut state = fake.state();
        state.quota = Some(2);
        state.quota_reset_secs = 5;
    }
    ok(&fake, &token, "/v1/me");
    assert_eq!(get(&fake, None, "/v1/me").status, 401, "failures use no quota");
    ok(&fake, &token, "/v1/me");
    let exhausted = get(&fake, Some(&token), "/v1/me");
    assert_eq!(exhausted.status, 429);
    assert_eq!(exhausted.retry_after.as_deref(), Some("5"));
    assert_eq!(exhausted.body["error"]["reason"], "QUOTA_EXCEEDED");
    assert_eq!(get(&fake, Some(&token), "/v1/me").status, 429);
    assert_eq!(fake.violations(), 1, "asking again before Retry-After is a violation");
    fake.reset_quota();
    assert!(ok(&fake, &token, "/v1/me").is_object());
    assert_eq!(fake.violations(), 1, "after the reset, asking is fine");
}

#[test]
fn injected_failures_count_api_requests_only() {
    let fake = FakeSpotify::start().unwrap();
    let token = fake.issue_access_token();
    assert_eq!(refresh(&fake, &fake.issue_refresh_token()).status, 200);
    fake.fail_at(1, mediasync::fake::Failure::Status(503));
    fake.fail_at(2, mediasync::fake::Failure::RateLimited(7));
    let unavailable = get(&fake, Some(&token), "/v1/me");
    assert_eq!((unavailable.status, unavailable.body["error"]["status"].as_u64()), (503, Some(503)));
    let limited = get(&fake, Some(&token), "/v1/me");
    assert_eq!((limited.status, limited.retry_after.as_deref()), (429, Some("7")));
    assert!(ok(&fake, &token, "/v1/me").is_object());
    assert_eq!(fake.violations(), 1, "an injected Retry-After binds too");
    let numbers: Vec<u64> = fake.log().iter().map(|entry| entry.number).collect();
    assert_eq!(numbers, [0, 1, 2, 3], "the token request is logged as number 0");
    assert!(fake.log()[0].path == "/api/token" && fake.log()[0].method == "POST");
}

#[test]
fn library_contains_answers_one_boolean_per_uri_up_to_forty() {
    let fake = FakeSpotify::start().unwrap();
    fake.generate(3, 2, 2, 2, 1);
    let token = fake.issue_access_token();
    let (track, album, artist, playlist) = {
        let state = fake.state();
        (
            state.saved_tracks[0].item.id.clone(),
            state.saved_albums[0].item.id.clone(),
            state.followed_artists[0].id.clone(),
            state.playlists[0].id.clone(),
        )
    };
    let uris = [
        format!("spotify:track:{track}"),
        "spotify:track:0000000000000000000000".to_string(),
        format!("spotify:album:{album}"),
        format!("spotify:artist:{artist}"),
        format!("spotify:playlist:{playlist}"),
    ];
    let answer = ok(&fake, &token, &format!("/v1/me/library/contains?uris={}", uris.join(",")));
    assert_eq!(answer, serde_json::json!([true, false, true, true, true]));
    fake.unfollow_artist(&artist);
    fake.remove_playlist(&playlist);
    let answer = ok(&fake, &token, &format!("/v1/me/library/contains?uris={}", uris[3..].join(",")));
    assert_eq!(answer, serde_json::json!([false, false]), "unfollowed, and deleted (which is unfollowed)");
    let many: Vec<String> = (0..41).map(|n| format!("spotify:track:{n:022}")).collect();
    let answer = get(&fake, Some(&token), &format!("/v1/me/library/contains?uris={}", many.join(",")));
    assert_eq!(answer.status, 400, "at most 40 URIs");
    let answer = get(&fake, Some(&token), "/v1/me/library/contains?uris=track:x");
    assert_eq!(answer.status, 400, "a URI is spotify:{{type}}:{{id}}");
}
