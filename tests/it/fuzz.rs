//! Property tests of every source's parsers on stable Rust (proptest):
//! random bytes (invalid UTF-8 included), random JSON in the answers'
//! shapes (wrong types, extreme numbers, huge strings, deep nesting) and
//! real answers mutated (cut off, bytes flipped or inserted, numbers made
//! extreme), plus odd `Retry-After` and `Date` headers. No input may panic;
//! every page read keeps at most `MAX_ENTRIES` entries and no text past
//! `MAX_TEXT_BYTES`. Cases per parser: MEDIASYNC_FUZZ_CASES (default 2000;
//! `.ci/run` sets fewer under qemu). Each test prints its figures (run with
//! `--nocapture` to see them).

use mediasync::model::{Item, Kind};
use mediasync::source::http::{MAX_WAIT, parse_http_date, retry_after};
use mediasync::source::lenient::{MAX_ENTRIES, MAX_TEXT_BYTES};
use mediasync::source::{Page, jellyfin, plex, spotify};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use std::cell::Cell;
use std::time::{Duration, SystemTime};

fn cases() -> u32 {
    std::env::var("MEDIASYNC_FUZZ_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(2000)
}

/// What a parser made of the inputs, for the figures.
#[derive(Default)]
struct Tally {
    cases: Cell<u64>,
    pages: Cell<u64>,
    refused: Cell<u64>,
    items: Cell<u64>,
    bad: Cell<u64>,
}

impl Tally {
    fn count(&self, read: Result<Page, serde_json::Error>) {
        self.cases.set(self.cases.get() + 1);
        match read {
            Ok(page) => {
                self.pages.set(self.pages.get() + 1);
                assert!(page.items.len() <= MAX_ENTRIES, "{} entries kept", page.items.len());
                for entry in &page.items {
                    match entry {
                        Ok(item) => {
                            self.items.set(self.items.get() + 1);
                            assert_bounded(item);
                        }
                        Err(_) => self.bad.set(self.bad.get() + 1),
                    }
                }
            }
            Err(_) => self.refused.set(self.refused.get() + 1),
        }
    }

    fn print(&self, parser: &str) {
        println!(
            "fuzz {parser}: {} cases, 0 panics, {} pages read ({} items, {} unreadable entries), {} answers refused",
            self.cases.get(),
            self.pages.get(),
            self.items.get(),
            self.bad.get(),
            self.refused.get()
        );
    }
}

fn assert_bounded(item: &Item) {
    let texts = [Some(&item.id), Some(&item.title), item.sort_title.as_ref(), item.parent_id.as_ref()];
    let more = [item.guid.as_ref(), item.thumb.as_ref(), item.file.as_ref(), item.marker.as_ref()];
    for text in texts.into_iter().chain(more).flatten() {
        // A playlist entry's id is the playlist's id plus its position.
        assert!(text.len() <= 2 * MAX_TEXT_BYTES + 32, "a text of {} bytes was kept", text.len());
    }
}

/// Runs `parse` on every input `inputs` makes.
fn fuzz(
    parser: &str,
    inputs: impl Strategy<Value = Vec<u8>>,
    parse: impl Fn(&[u8]) -> Result<Page, serde_json::Error>,
) {
    let tally = Tally::default();
    let config = Config { cases: cases(), failure_persistence: None, ..Config::default() };
    let result = TestRunner::new(config).run(&inputs, |body| {
        tally.count(parse(&body));
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{parser}: {failure}");
    }
    tally.print(parser);
}

/// Any JSON value: extreme numbers, numbers as strings, strings around the
/// text cap, nested lists and objects.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(-1), Just(0)].prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |float| float.is_finite()).prop_map(Value::from),
        any::<i64>().prop_map(|number| Value::from(number.to_string())),
        any::<String>().prop_map(Value::from),
        (MAX_TEXT_BYTES - 2..MAX_TEXT_BYTES + 2).prop_map(|length| Value::from("t".repeat(length))),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(any::<String>(), inner, 0..6).prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// An entry of some source: its known fields (and a few others) with any
/// values.
fn entry(fields: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let name = prop_oneof![4 => proptest::sample::select(fields).prop_map(str::to_string), 1 => any::<String>()];
    btree_map(name, json_value(), 0..fields.len() + 2).prop_map(|map| Value::Object(map.into_iter().collect()))
}

/// Answers in the shape `envelope` gives a list of entries (or anything in
/// their place), as JSON text.
fn shaped(fields: &'static [&'static str], envelope: fn(Value, Value) -> Value) -> impl Strategy<Value = Vec<u8>> {
    let entries = prop_oneof![4 => vec(entry(fields), 0..8).prop_map(Value::Array), 1 => json_value()];
    (entries, json_value()).prop_map(move |(entries, total)| serde_json::to_vec(&envelope(entries, total)).unwrap())
}

/// A valid answer mutated: cut off, bytes flipped or inserted, a number
/// made extreme, or wrapped in deep nesting.
fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let length = valid.len();
    let mutation = prop_oneof![
        (0..=length).prop_map(Mutation::Cut),
        (0..length.max(1), any::<u8>()).prop_map(|(at, byte)| Mutation::Flip(at, byte)),
        (0..=length, vec(any::<u8>(), 1..16)).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (
            0..length.max(1),
            prop_oneof![
                Just("18446744073709551616"),
                Just("-9223372036854775809"),
                Just("1e999"),
                Just("-0.0e-999"),
                Just("\"\\ud800\"")
            ]
        )
            .prop_map(|(at, number)| Mutation::Number(at, number)),
        (1..5_000usize).prop_map(Mutation::Nest),
    ];
    vec(mutation, 1..4).prop_map(move |mutations| {
        let mut body = valid.clone();
        for mutation in mutations {
            mutation.apply(&mut body);
        }
        body
    })
}

#[derive(Clone, Debug)]
enum Mutation {
    Cut(usize),
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    /// Replaces the number (or any token) starting at or after the offset.
    Number(usize, &'static str),
    /// Puts a field nested this deep at the start of the first object.
    Nest(usize),
}

impl Mutation {
    fn apply(self, body: &mut Vec<u8>) {
        match self {
            Mutation::Cut(at) => body.truncate(at),
            Mutation::Flip(at, byte) => {
                if let Some(slot) = body.get_mut(at) {
                    *slot ^= byte | 1;
                }
            }
            Mutation::Insert(at, bytes) => {
                let at = at.min(body.len());
                body.splice(at..at, bytes);
            }
            Mutation::Number(at, number) => {
                let Some(start) = body.iter().skip(at).position(u8::is_ascii_digit).map(|found| found + at) else {
                    return;
                };
                let end =
                    body.iter().skip(start).position(|byte| !byte.is_ascii_digit()).map_or(body.len(), |n| n + start);
                body.splice(start..end, number.bytes());
            }
            Mutation::Nest(depth) => {
                let Some(brace) = body.iter().position(|byte| *byte == b'{') else {
                    return;
                };
                let nested = format!("\"nested\":{}{},", "[".repeat(depth), "]".repeat(depth));
                body.splice(brace + 1..brace + 1, nested.into_bytes());
            }
        }
    }
}

/// Random bytes, invalid UTF-8 included, or the bytes of a valid answer
/// mutated, or answers of the right shape with any values.
fn inputs(valid: Vec<u8>, shapes: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![1 => vec(any::<u8>(), 0..512), 3 => mutated(valid), 3 => shapes]
}

const PLEX_FIELDS: &[&str] = &[
    "ratingKey",
    "type",
    "title",
    "titleSort",
    "parentRatingKey",
    "year",
    "index",
    "parentIndex",
    "guid",
    "addedAt",
    "updatedAt",
    "duration",
    "thumb",
    "Media",
];

#[test]
fn plex_listing_parser() {
    let valid =
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/plex/tv_episodes.json"))
            .unwrap();
    let shapes =
        shaped(PLEX_FIELDS, |entries, total| json!({"MediaContainer": {"totalSize": total, "Metadata": entries}}));
    fuzz("plex listing", inputs(valid, shapes), |body| plex::read_page(body, Kind::Episode));
}

const JELLYFIN_FIELDS: &[&str] = &[
    "Id",
    "Name",
    "Type",
    "DateCreated",
    "SeriesId",
    "SeasonId",
    "ParentId",
    "AlbumId",
    "AlbumArtists",
    "SortName",
    "ProductionYear",
    "IndexNumber",
    "ParentIndexNumber",
    "ProviderIds",
    "RunTimeTicks",
    "ImageTags",
    "Path",
    "Etag",
];

#[test]
fn jellyfin_listing_parser() {
    let valid = serde_json::to_vec(&json!({"Items": [{
        "Name": "Pilot", "Id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "Type": "Episode",
        "SeriesId": "11112222333344445555666677778888", "SeasonId": "99990000aaaabbbbccccddddeeeeffff",
        "IndexNumber": 1, "ParentIndexNumber": 1, "ProductionYear": 2014, "RunTimeTicks": 25_900_000_000i64,
        "DateCreated": "2020-01-02T00:00:00.0000000Z", "Etag": "3f2a", "SortName": "pilot",
        "ImageTags": {"Primary": "c0ffee"}, "Path": "/tv/The 100/S01E01.mkv",
        "ProviderIds": {"Tvdb": "4812", "Imdb": "tt3231564"}, "UserData": {"PlayCount": 3}
    }], "TotalRecordCount": 1, "StartIndex": 0}))
    .unwrap();
    let shapes = shaped(JELLYFIN_FIELDS, |entries, total| json!({"Items": entries, "TotalRecordCount": total}));
    fuzz("jellyfin listing", inputs(valid, shapes), |body| jellyfin::read_page(body, Kind::Episode, &["Episode"]));
}

const SPOTIFY_FIELDS: &[&str] =
    &["id", "name", "uri", "snapshot_id", "owner", "added_at", "track", "album", "item", "type", "duration_ms"];

fn spotify_valid() -> Vec<u8> {
    serde_json::to_vec(&json!({"items": [
        {"added_at": "2024-05-01T10:00:00Z", "track": {"id": "t1", "name": "Song", "uri": "spotify:track:t1", "type": "track",
            "album": {"id": "a1", "release_date": "1999-01-01"}, "track_number": 3, "disc_number": 1, "duration_ms": 1000},
         "album": {"id": "a1", "name": "Album", "release_date": "1999", "artists": [{"id": "r1"}]},
         "id": "p1", "name": "List", "snapshot_id": "s1", "owner": {"id": "u1"}}
    ], "total": 1, "next": null, "cursors": {"after": "p1"}}))
    .unwrap()
}

#[test]
fn spotify_listing_parsers() {
    for library in ["tracks", "albums", "playlists"] {
        let shapes = shaped(SPOTIFY_FIELDS, |entries, total| json!({"items": entries, "total": total, "next": "n"}));
        fuzz(&format!("spotify {library}"), inputs(spotify_valid(), shapes), |body| spotify::read_page(body, library));
    }
    let artists =
        serde_json::to_vec(&json!({"artists": serde_json::from_slice::<Value>(&spotify_valid()).unwrap()})).unwrap();
    let shapes = shaped(
        SPOTIFY_FIELDS,
        |entries, after| json!({"artists": {"items": entries, "next": "n", "cursors": {"after": after}}}),
    );
    fuzz("spotify artists", inputs(artists, shapes), |body| spotify::read_page(body, "artists"));
    let shapes = shaped(SPOTIFY_FIELDS, |entries, total| json!({"items": entries, "total": total}));
    fuzz("spotify playlist entries", inputs(spotify_valid(), shapes), |body| {
        spotify::read_children(body, "p1", u64::MAX - 3)
    });
}

#[test]
fn retry_after_and_date_headers() {
    let now = SystemTime::now();
    let header = prop_oneof![
        any::<String>(),
        vec(proptest::char::range('0', '9'), 0..40).prop_map(|digits| digits.into_iter().collect()),
        any::<i64>().prop_map(|number| number.to_string()),
        any::<u64>().prop_map(|number| number.to_string()),
        (0u64..253_402_300_799)
            .prop_map(|secs| httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))),
        any::<String>().prop_map(|text| format!("Thu, 01 Jan 1970 00:00:00 GMT{text}")),
    ];
    let (read, dated) = (Cell::new(0u64), Cell::new(0u64));
    let config = Config { cases: cases(), failure_persistence: None, ..Config::default() };
    let result = TestRunner::new(config).run(&header, |value| {
        if let Some(wait) = retry_after(&value, now) {
            read.set(read.get() + 1);
            prop_assert!(wait <= MAX_WAIT);
        }
        if parse_http_date(&value).is_some() {
            dated.set(dated.get() + 1);
        }
        let digits = !value.trim().is_empty() && value.trim().bytes().all(|byte| byte.is_ascii_digit());
        prop_assert!(!digits || retry_after(&value, now).is_some(), "{value:?}");
        Ok(())
    });
    if let Err(failure) = result {
        panic!("Retry-After: {failure}");
    }
    println!(
        "fuzz Retry-After and Date: {} cases, 0 panics, {} waits read, {} dates read",
        cases(),
        read.get(),
        dated.get()
    );
}
