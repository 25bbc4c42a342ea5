//! The fake must be no kinder than a real PMS: these pin the quirks the
//! clients have to cope with, and compare its answers with the PMS
//! responses in `tests/data/plex`.

use crate::support::TOKEN;
use mediasync::fake::plex::FakePlex;
use serde_json::Value;

fn get(fake: &FakePlex, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut request = agent.get(format!("{}{path}", fake.url()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.call().unwrap();
    let content_type =
        response.headers().get("content-type").map(|value| value.to_str().unwrap().to_string()).unwrap_or_default();
    let status = response.status().as_u16();
    (status, content_type, response.body_mut().read_to_string().unwrap())
}

fn json(fake: &FakePlex, path: &str, extra: &[(&str, &str)]) -> Value {
    let mut headers = vec![("X-Plex-Token", TOKEN), ("Accept", "application/json")];
    headers.extend_from_slice(extra);
    let (status, _, body) = get(fake, path, &headers);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["MediaContainer"].clone()
}

#[test]
fn xml_unless_json_is_asked_for() {
    let fake = FakePlex::start(TOKEN);
    fake.add_movies("Movies", 3);
    let (status, content_type, body) = get(&fake, "/library/sections", &[("X-Plex-Token", TOKEN)]);
    assert_eq!(status, 200);
    assert!(content_type.contains("xml"), "{content_type}");
    assert!(body.starts_with("<?xml") && body.contains("<Directory"), "{body}");
}

#[test]
fn no_token_is_401_html() {
    let fake = FakePlex::start(TOKEN);
    let (status, content_type, _) = get(&fake, "/library/sections", &[("Accept", "application/json")]);
    assert_eq!(status, 401);
    assert_eq!(content_type, "text/html");
    // The token also works as a query parameter, as on PMS.
    let (status, _, _) = get(&fake, &format!("/library/sections?X-Plex-Token={TOKEN}"), &[]);
    assert_eq!(status, 200);
}

#[test]
fn paging_total_and_count_probe() {
    let fake = FakePlex::start(TOKEN);
    fake.add_movies("Movies", 25);
    let page = json(
        &fake,
        "/library/sections/1/all?type=1",
        &[("X-Plex-Container-Start", "20"), ("X-Plex-Container-Size", "10")],
    );
    assert_eq!(page["totalSize"], 25);
    assert_eq!(page["offset"], 20);
    assert_eq!(page["size"], 5);
    assert_eq!(page["Metadata"].as_array().unwrap().len(), 5);
    let probe = json(&fake, "/library/sections/1/all?type=1&X-Plex-Container-Start=0&X-Plex-Container-Size=0", &[]);
    assert_eq!(probe["totalSize"], 25);
    assert!(probe.get("Metadata").is_none());
    let unpaged = json(&fake, "/library/sections/1/all?type=1", &[]);
    assert!(unpaged.get("totalSize").is_none(), "unpaged answers carry no totalSize");
    assert_eq!(unpaged["Metadata"].as_array().unwrap().len(), 25);
}

#[test]
fn sorting_and_the_ignored_added_at_filter() {
    let fake = FakePlex::start(TOKEN);
    fake.add_movies("Movies", 40);
    let sorted = json(&fake, "/library/sections/1/all?type=1&sort=updatedAt:desc", &[]);
    let times: Vec<i64> =
        sorted["Metadata"].as_array().unwrap().iter().map(|item| item["updatedAt"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|pair| pair[0] >= pair[1]));
    let future = "9999999999";
    let filtered = json(&fake, &format!("/library/sections/1/all?type=1&addedAt%3E%3E={future}"), &[]);
    assert_eq!(filtered["Metadata"].as_array().unwrap().len(), 40, "addedAt>>= is ignored");
    // Clients also send the operator raw, which HTTP libraries refuse to
    // build: speak HTTP by hand.
    let raw = raw_get(&fake, &format!("/library/sections/1/all?type=1&addedAt>>={future}"));
    assert_eq!(raw["Metadata"].as_array().unwrap().len(), 40, "raw addedAt>>= is ignored too");
    let filtered = json(&fake, &format!("/library/sections/1/all?type=1&updatedAt%3E%3E={future}"), &[]);
    assert_eq!(filtered["size"], 0, "updatedAt>>= is honoured");
}

#[test]
fn items_are_shaped_like_real_ones() {
    let fake = FakePlex::start(TOKEN);
    fake.add_shows("TV", 1, 1, 2);
    let episodes = json(&fake, "/library/sections/1/all?type=4", &[]);
    let episode = &episodes["Metadata"][0];
    for field in [
        "ratingKey",
        "key",
        "guid",
        "type",
        "title",
        "parentRatingKey",
        "grandparentRatingKey",
        "addedAt",
        "updatedAt",
        "thumb",
        "Media",
    ] {
        assert!(episode.get(field).is_some(), "missing {field}: {episode}");
    }
    assert!(episode["ratingKey"].is_string());
    assert!(episode["Media"][0]["Part"][0]["file"].as_str().unwrap().starts_with("/data/"));
    let sections = json(&fake, "/library/sections", &[]);
    assert!(sections["Directory"][0]["key"].is_string());
}

/// The JSON type of a value, for comparing shapes.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every field both objects carry has the same JSON type in both: a fake
/// sending a number where PMS sends a string (or the reverse) is caught.
fn same_types(what: &str, recorded: &Value, fake: &Value) -> usize {
    let (Some(recorded), Some(fake)) = (recorded.as_object(), fake.as_object()) else {
        panic!("{what}: not objects");
    };
    let mut compared = 0;
    for (name, value) in recorded {
        if let Some(ours) = fake.get(name) {
            assert_eq!(json_type(ours), json_type(value), "{what}.{name}: the fake's {ours} vs PMS's {value}");
            compared += 1;
        }
    }
    compared
}

#[test]
fn items_have_the_field_types_of_the_recorded_responses() {
    let fake = FakePlex::start(TOKEN);
    let movies = fake.add_movies("Movies", 2);
    let shows = fake.add_shows("TV", 1, 1, 2);
    let music = fake.add_music("Music", 1, 1, 2);
    for (file, section, kind) in [
        ("movie_library.json", &movies, 1),
        ("tv_library.json", &shows, 2),
        ("tv_seasons.json", &shows, 3),
        ("tv_episodes.json", &shows, 4),
        ("music_library.json", &music, 8),
        ("music_albums.json", &music, 9),
        ("music_tracks.json", &music, 10),
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/plex").join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let recorded = serde_json::from_str::<Value>(&text).unwrap()["MediaContainer"].clone();
        let ours = json(
            &fake,
            &format!("/library/sections/{section}/all?type={kind}"),
            &[("X-Plex-Container-Start", "0"), ("X-Plex-Container-Size", "50")],
        );
        same_types(file, &recorded, &ours);
        let (recorded_item, our_item) = (&recorded["Metadata"][0], &ours["Metadata"][0]);
        let compared = same_types(&format!("{file} item"), recorded_item, our_item);
        assert!(compared >= 10, "{file}: only {compared} item fields in common: {our_item}");
        if recorded_item.get("Media").is_some() {
            same_types(&format!("{file} Media"), &recorded_item["Media"][0], &our_item["Media"][0]);
            same_types(
                &format!("{file} Part"),
                &recorded_item["Media"][0]["Part"][0],
                &our_item["Media"][0]["Part"][0],
            );
        }
    }
}

fn raw_get(fake: &FakePlex, path: &str) -> Value {
    use std::io::{Read, Write};
    let address = fake.url().trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nX-Plex-Token: {TOKEN}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str::<Value>(body).unwrap()["MediaContainer"].clone()
}

#[test]
fn metadata_answers_the_items_that_exist_and_404_when_none_does() {
    let fake = FakePlex::start(TOKEN);
    fake.add_movies("Movies", 4);
    let films = fake.add_section("Films", mediasync::fake::plex::SectionKind::Movie);
    let film = fake.add_item(&films, mediasync::model::Kind::Movie, "Elsewhere", None);
    let movies = fake.keys("1", mediasync::model::Kind::Movie);
    let one_section = json(&fake, &format!("/library/metadata/{},999999,{}", movies[0], movies[2]), &[]);
    let keys: Vec<&str> =
        one_section["Metadata"].as_array().unwrap().iter().map(|item| item["ratingKey"].as_str().unwrap()).collect();
    assert_eq!(keys, [movies[0].as_str(), movies[2].as_str()]);
    assert_eq!(one_section["librarySectionID"], 1, "every item is in section 1");
    let two_sections = json(&fake, &format!("/library/metadata/{},{film}", movies[1]), &[]);
    assert!(two_sections.get("librarySectionID").is_none(), "no common section");
    let sections: Vec<&Value> =
        two_sections["Metadata"].as_array().unwrap().iter().map(|item| &item["librarySectionID"]).collect();
    assert_eq!(sections, [&Value::from(1), &Value::from(films.parse::<u64>().unwrap())]);
    let (status, content_type, _) =
        get(&fake, "/library/metadata/999998,999999", &[("X-Plex-Token", TOKEN), ("Accept", "application/json")]);
    assert_eq!((status, content_type.as_str()), (404, "text/html"), "none exists: 404, an HTML body");
}
