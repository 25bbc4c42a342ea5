//! A fake Plex's JSON listings: sections, section items with their paging,
//! sorts and filters, `/library/metadata/{keys}`, and items shaped like the
//! recorded PMS responses.

use super::{BASE_TIME, FakeItem, FakeSection, PlexState, SectionKind};
use crate::model::Kind;
use serde_json::{Map, Value, json};

pub(super) fn sections_container(state: &PlexState) -> Value {
    let directories: Vec<Value> = state
        .sections
        .iter()
        .map(|section| {
            let changed = section.items.iter().map(|item| item.updated_at).max().unwrap_or(BASE_TIME);
            json!({
                "allowSync": true,
                "art": format!("/:/resources/{}-fanart.jpg", section.kind.name()),
                "composite": format!("/library/sections/{}/composite/{changed}", section.key),
                "filters": true,
                "refreshing": false,
                "thumb": format!("/:/resources/{}.png", section.kind.name()),
                "key": section.key,
                "type": section.kind.name(),
                "title": section.title,
                "agent": "tv.plex.agents.none",
                "scanner": "Plex Scanner",
                "language": "en-US",
                "uuid": format!("00000000-0000-4000-8000-{:012}", section.key.parse::<u64>().unwrap_or(0)),
                "updatedAt": changed,
                "createdAt": BASE_TIME - 40_000_000,
                "scannedAt": changed,
                "content": true,
                "directory": true,
                "contentChangedAt": changed,
                "hidden": 0,
                "Location": [{"id": section.key.parse::<u64>().unwrap_or(0), "path": format!("/data/{}", section.title)}]
            })
        })
        .collect();
    json!({
        "size": directories.len(),
        "allowSync": false,
        "title1": "Plex Library",
        "Directory": directories,
    })
}

pub(super) fn default_type(kind: SectionKind) -> u8 {
    match kind {
        SectionKind::Movie => 1,
        SectionKind::Show => 2,
        SectionKind::Artist => 8,
        SectionKind::Photo => 13,
    }
}

pub(super) fn listing(
    state: &PlexState,
    section: &FakeSection,
    item_type: Option<u8>,
    params: &[(String, String)],
    start: Option<u64>,
    size: Option<u64>,
) -> (Value, usize) {
    let wanted = item_type.unwrap_or_else(|| default_type(section.kind));
    let mut items: Vec<&FakeItem> = section.items.iter().filter(|item| item.kind.code() == wanted).collect();
    // Filters: `updatedAt>>=` is honoured; `addedAt>>=` is silently ignored,
    // as PMS 1.43+ does.
    for (name, value) in params {
        if let (Some(field), Ok(value)) = (name.strip_suffix(">>"), value.parse::<i64>()) {
            if field == "updatedAt" {
                items.retain(|item| item.updated_at >= value);
            }
        }
    }
    if state.honour_sort {
        let sort = params.iter().find(|(name, _)| name == "sort").map_or("titleSort", |(_, value)| value.as_str());
        let (field, descending) = match sort.split_once(':') {
            Some((field, direction)) => (field, direction == "desc"),
            None => (sort, false),
        };
        let key_number = |item: &FakeItem| item.rating_key.parse::<u64>().unwrap_or(0);
        items.sort_by(|a, b| {
            let order = match field {
                "updatedAt" => a.updated_at.cmp(&b.updated_at),
                "addedAt" => a.added_at.cmp(&b.added_at),
                _ => sort_title(a).cmp(&sort_title(b)),
            };
            let order = if descending { order.reverse() } else { order };
            order.then_with(|| key_number(a).cmp(&key_number(b)))
        });
    }
    let total = items.len();
    let section_number = section.key.parse::<u64>().unwrap_or(0);
    let mut container = Map::new();
    container.insert("allowSync".into(), json!(true));
    container.insert("art".into(), json!(format!("/:/resources/{}-fanart.jpg", section.kind.name())));
    container.insert("identifier".into(), json!("com.plexapp.plugins.library"));
    container.insert("librarySectionID".into(), json!(section_number));
    container.insert("librarySectionTitle".into(), json!(section.title));
    container.insert("librarySectionUUID".into(), json!(format!("00000000-0000-4000-8000-{section_number:012}")));
    container.insert("mediaTagPrefix".into(), json!("/system/bundle/media/flags/"));
    container.insert("mediaTagVersion".into(), json!(1_634_922_197));
    container.insert("title1".into(), json!(section.title));
    container.insert("viewGroup".into(), json!(Kind::from_code(wanted).map_or("photo", |kind| kind.name())));
    container.insert("viewMode".into(), json!(65592));
    let page: Vec<&FakeItem> = match (start, size) {
        (None, None) => items,
        (start, size) => {
            let start = start.unwrap_or(0) as usize;
            let mut size = size.unwrap_or(50) as usize;
            if let Some(cap) = state.max_page {
                size = size.min(cap as usize);
            }
            container.insert("offset".into(), json!(start));
            container.insert("totalSize".into(), json!(total));
            items.into_iter().skip(start).take(size).collect()
        }
    };
    container.insert("size".into(), json!(page.len()));
    let returned = page.len();
    if !page.is_empty() {
        let metadata: Vec<Value> = page.into_iter().map(|item| item_json(section, item)).collect();
        container.insert("Metadata".into(), Value::Array(metadata));
    }
    (Value::Object(container), returned)
}

/// `/library/metadata/{keys}`: the items of those rating keys that exist,
/// in the order asked, wherever they are; `None` (404) when none does. An
/// item carries its own `librarySectionID`; the container carries one only
/// when every item shares it.
pub(super) fn metadata(state: &PlexState, keys: &str, start: Option<u64>, size: Option<u64>) -> Option<Value> {
    let found: Vec<(&FakeSection, &FakeItem)> = keys
        .split(',')
        .filter_map(|key| {
            state.sections.iter().find_map(|section| {
                section.items.iter().find(|item| item.rating_key == key).map(|item| (section, item))
            })
        })
        .collect();
    if found.is_empty() {
        return None;
    }
    let total = found.len();
    let mut container = Map::new();
    container.insert("identifier".into(), json!("com.plexapp.plugins.library"));
    container.insert("mediaTagPrefix".into(), json!("/system/bundle/media/flags/"));
    container.insert("mediaTagVersion".into(), json!(1_634_922_197));
    let section = found.first().map(|(section, _)| section.key.clone());
    if found.iter().all(|(other, _)| Some(&other.key) == section.as_ref()) {
        container.insert("librarySectionID".into(), json!(section.and_then(|key| key.parse::<u64>().ok())));
    }
    let page: Vec<(&FakeSection, &FakeItem)> = match (start, size) {
        (None, None) => found,
        (start, size) => {
            let start = start.unwrap_or(0) as usize;
            let size = size.unwrap_or(50) as usize;
            container.insert("offset".into(), json!(start));
            container.insert("totalSize".into(), json!(total));
            found.into_iter().skip(start).take(size).collect()
        }
    };
    container.insert("size".into(), json!(page.len()));
    let metadata: Vec<Value> = page.into_iter().map(|(section, item)| item_json(section, item)).collect();
    container.insert("Metadata".into(), Value::Array(metadata));
    Some(Value::Object(container))
}

pub(super) fn sort_title(item: &FakeItem) -> String {
    item.title_sort.clone().unwrap_or_else(|| item.title.clone()).to_lowercase()
}

/// An item shaped like the recorded PMS responses: the fields mediasync
/// reads plus the many it ignores.
pub(super) fn item_json(section: &FakeSection, item: &FakeItem) -> Value {
    let key = &item.rating_key;
    let mut value = Map::new();
    value.insert("ratingKey".into(), json!(key));
    let children = matches!(item.kind, Kind::Show | Kind::Season | Kind::Artist | Kind::Album);
    value.insert(
        "key".into(),
        json!(if children { format!("/library/metadata/{key}/children") } else { format!("/library/metadata/{key}") }),
    );
    let guid = match item.kind {
        Kind::Movie => format!("plex://movie/5d7768{key:0>18}"),
        Kind::Show => format!("com.plexapp.agents.thetvdb://{key}?lang=en"),
        Kind::Season | Kind::Episode => format!(
            "com.plexapp.agents.thetvdb://{}/{key}?lang=en",
            item.grandparent.as_deref().or(item.parent.as_deref()).unwrap_or("0")
        ),
        Kind::Track => format!("local://{key}"),
        _ => format!("com.plexapp.agents.lastfm://{}?lang=en", item.title.replace(' ', "%20")),
    };
    value.insert("guid".into(), json!(guid));
    value.insert("type".into(), json!(item.kind.name()));
    value.insert("title".into(), json!(item.title));
    if let Some(title_sort) = &item.title_sort {
        value.insert("titleSort".into(), json!(title_sort));
    }
    value.insert("librarySectionTitle".into(), json!(section.title));
    value.insert("librarySectionID".into(), json!(section.key.parse::<u64>().unwrap_or(0)));
    value.insert("summary".into(), json!(format!("A generated {} for testing.", item.kind)));
    if let Some(parent) = &item.parent {
        value.insert("parentRatingKey".into(), json!(parent));
        value.insert("parentKey".into(), json!(format!("/library/metadata/{parent}")));
        value.insert("parentThumb".into(), json!(format!("/library/metadata/{parent}/thumb/{}", item.art_at)));
    }
    if let Some(grandparent) = &item.grandparent {
        value.insert("grandparentRatingKey".into(), json!(grandparent));
        value.insert("grandparentKey".into(), json!(format!("/library/metadata/{grandparent}")));
    }
    if let Some(index) = item.index {
        value.insert("index".into(), json!(index));
    }
    if let Some(parent_index) = item.parent_index {
        value.insert("parentIndex".into(), json!(parent_index));
    }
    if let Some(year) = item.year {
        value.insert("year".into(), json!(year));
    }
    value.insert("thumb".into(), json!(format!("/library/metadata/{key}/thumb/{}", item.art_at)));
    value.insert("art".into(), json!(format!("/library/metadata/{key}/art/{}", item.art_at)));
    value.insert("addedAt".into(), json!(item.added_at));
    value.insert("updatedAt".into(), json!(item.updated_at));
    if matches!(item.kind, Kind::Show | Kind::Season | Kind::Artist | Kind::Album) {
        value.insert("leafCount".into(), json!(0));
        value.insert("viewedLeafCount".into(), json!(0));
        value.insert("childCount".into(), json!(1));
    }
    if let Some(duration) = item.duration {
        value.insert("duration".into(), json!(duration));
        let (container, folder) = if item.kind == Kind::Track { ("flac", "Music") } else { ("mkv", "Media") };
        value.insert(
            "Media".into(),
            json!([{
                "id": key.parse::<u64>().unwrap_or(0),
                "duration": duration,
                "bitrate": 21178,
                "container": container,
                "Part": [{
                    "id": key.parse::<u64>().unwrap_or(0),
                    "key": format!("/library/parts/{key}/1579478991/file.{container}"),
                    "duration": duration,
                    "file": format!("/data/{folder}/{}.{container}", item.title),
                    "size": 13_400_382,
                    "container": container
                }]
            }]),
        );
    }
    value.insert("Genre".into(), json!([{"tag": "Drama"}, {"tag": "Comedy"}]));
    Value::Object(value)
}
