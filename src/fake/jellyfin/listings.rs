//! A fake Jellyfin's JSON listings: users, views and items, with the
//! paging, filters, dates, fields and `Etag` each behaviour answers.

use super::serve::{Answer, text};
use super::{Behaviour, FakeItem, FilterFault, GENERATED_AT, JellyfinState};
use crate::model::content_hash;
use serde_json::{Map, Value, json};

pub(super) fn users_json(state: &JellyfinState) -> Value {
    let users: Vec<Value> = state
        .users
        .iter()
        .map(|user| {
            json!({
                "Name": user.name,
                "ServerId": "f00dfeedf00dfeedf00dfeedf00dfeed",
                "Id": user.id,
                "HasPassword": true,
                "HasConfiguredPassword": true,
                "EnableAutoLogin": false,
                "LastLoginDate": "2023-11-14T22:13:20.0000000Z",
                "Configuration": {"PlayDefaultAudioTrack": true, "HidePlayedInLatest": true},
                "Policy": {"IsAdministrator": user.admin, "IsHidden": false, "IsDisabled": false, "EnableAllFolders": true},
            })
        })
        .collect();
    Value::Array(users)
}

pub(super) fn views_json(state: &JellyfinState) -> Value {
    let items: Vec<Value> = state
        .views
        .iter()
        .map(|view| {
            json!({
                "Name": view.name,
                "ServerId": "f00dfeedf00dfeedf00dfeedf00dfeed",
                "Id": view.id,
                "Etag": format!("{:016x}", content_hash(view.id.as_bytes())),
                "DateCreated": iso_date(GENERATED_AT),
                "IsFolder": true,
                "Type": "CollectionFolder",
                "CollectionType": view.collection_type,
                "ImageTags": {"Primary": format!("{:016x}", content_hash(view.name.as_bytes()))},
                "LocationType": "FileSystem",
            })
        })
        .collect();
    json!({"Items": items, "TotalRecordCount": state.views.len(), "StartIndex": 0})
}

pub(super) fn iso_date(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S.0000000Z").to_string()
}

/// ISO 8601 as ASP.NET binds it: with or without fraction and zone (no zone
/// meaning UTC here). Parsed here rather than borrowed from the client, so a
/// client bug in date handling cannot be mirrored by the fake.
pub(super) fn parse_date(text: &str) -> Option<i64> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(time.timestamp());
    }
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map(|date| date.and_time(chrono::NaiveTime::MIN))
        });
    naive.ok().map(|time| time.and_utc().timestamp())
}

/// `/Users/{id}/Items`: filtering, sorting, paging, and the date-filter
/// behaviour of each version.
pub(super) fn items_json<'p>(
    state: &JellyfinState,
    param: &dyn Fn(&str) -> Option<&'p str>,
) -> Result<(Value, usize), Answer> {
    let behaviour = state.behaviour;
    let recursive = param("Recursive").is_some_and(|value| value.eq_ignore_ascii_case("true"));
    let types: Vec<&str> = param("IncludeItemTypes")
        .map(|value| value.split(',').map(str::trim).filter(|name| !name.is_empty()).collect())
        .unwrap_or_default();
    let mut items: Vec<&FakeItem> = match param("ParentId") {
        Some(parent) => match state.views.iter().find(|view| view.id == parent) {
            Some(view) => view.items.iter().filter(|item| recursive || item.parent.is_none()).collect(),
            None if state.find(parent).is_some() => state
                .views
                .iter()
                .flat_map(|view| view.items.iter())
                .filter(|item| item.parent.as_deref() == Some(parent))
                .collect(),
            None => return Err(text(400, "Error processing request.")),
        },
        None => state.views.iter().flat_map(|view| view.items.iter()).collect(),
    };
    if !types.is_empty() {
        items.retain(|item| types.iter().any(|name| name.eq_ignore_ascii_case(item.item_type)));
    }
    // `Ids` narrows the query (the library and types still apply). Jellyfin
    // binds it as GUIDs: anything else is a 400; Emby's ids are plain text.
    if let Some(ids) = param("Ids") {
        let ids: Vec<&str> = ids.split(',').map(str::trim).filter(|id| !id.is_empty()).collect();
        let guid = |id: &&str| id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit());
        if !behaviour.is_emby() && !ids.iter().all(guid) {
            return Err(text(400, "Error processing request."));
        }
        items.retain(|item| ids.contains(&item.id.as_str()));
    }
    let date = |name: &str| -> Result<Option<i64>, Answer> {
        match param(name) {
            None => Ok(None),
            Some(value) => parse_date(value).map(Some).ok_or_else(|| text(400, "Error processing request.")),
        }
    };
    let saved_since = date("MinDateLastSaved")?;
    let user_since = date("MinDateLastSavedForUser")?;
    let filtered = saved_since.is_some() || user_since.is_some();
    match state.filter_fault {
        Some(FilterFault::Ignored) => {}
        Some(FilterFault::Fails) if filtered => return Err(text(500, "Error processing request.")),
        Some(FilterFault::Empties) if filtered => items.clear(),
        _ => match (behaviour, saved_since, user_since) {
            (Behaviour::Jellyfin10_8, Some(_), None) => items.clear(),
            (Behaviour::Jellyfin10_10, Some(_), None) => {
                return Err(text(500, "Error processing request."));
            }
            // 10.8 and 10.10 bind the ForUser value to both clauses.
            (Behaviour::Jellyfin10_8 | Behaviour::Jellyfin10_10, _, Some(since)) => {
                items.retain(|item| item.saved >= since);
            }
            (Behaviour::Emby, saved, user) => {
                items.retain(|item| {
                    saved.is_none_or(|since| item.saved >= since) && user.is_none_or(|since| item.user_data_at >= since)
                });
            }
            (_, saved, user) => {
                items.retain(|item| {
                    saved.is_none_or(|since| item.saved >= since) && user.is_none_or(|since| item.saved >= since)
                });
            }
        },
    }
    // The user's played state (both servers): played when the user data
    // says so, whatever the date.
    if let Some(played) = param("IsPlayed") {
        let wanted = played.eq_ignore_ascii_case("true");
        items.retain(|item| (item.play_count > 0) == wanted);
    }
    let sort_by: Vec<String> =
        param("SortBy").unwrap_or("SortName").split(',').map(|name| name.trim().to_ascii_lowercase()).collect();
    let descending = param("SortOrder").is_some_and(|order| order.eq_ignore_ascii_case("Descending"));
    items.sort_by(|a, b| {
        let mut order = std::cmp::Ordering::Equal;
        for field in &sort_by {
            order = order.then_with(|| match field.as_str() {
                "datecreated" => a.created.cmp(&b.created),
                "name" | "sortname" => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
                // No date sorts first ascending, last descending.
                "dateplayed" => a.last_played.cmp(&b.last_played),
                _ => std::cmp::Ordering::Equal,
            });
        }
        let order = if descending { order.reverse() } else { order };
        order.then_with(|| a.serial.cmp(&b.serial))
    });
    let total = items.len();
    let start = param("StartIndex").and_then(|value| value.parse::<usize>().ok()).unwrap_or(0);
    let limit = param("Limit").and_then(|value| value.parse::<usize>().ok());
    let mut size = limit.unwrap_or(usize::MAX);
    if let Some(cap) = state.max_page {
        size = size.min(cap as usize);
    }
    let page: Vec<&FakeItem> = items.into_iter().skip(start).take(size).collect();
    // Without a limit the server counts only what it returned.
    let total = if limit.is_none() { page.len() } else { total };
    let fields: Vec<String> = param("Fields")
        .map(|value| value.split(',').map(|name| name.trim().to_ascii_lowercase()).collect())
        .unwrap_or_default();
    let user_data = !param("EnableUserData").is_some_and(|value| value.eq_ignore_ascii_case("false"));
    let returned = page.len();
    let items: Vec<Value> = page.into_iter().map(|item| item_json(state, item, &fields, user_data)).collect();
    Ok((json!({"Items": items, "TotalRecordCount": total, "StartIndex": start}), returned))
}

/// An item the way the servers send it: always-present fields, the
/// requested optional ones, and fields the client ignores.
pub(super) fn item_json(state: &JellyfinState, item: &FakeItem, fields: &[String], user_data: bool) -> Value {
    let wants = |name: &str| fields.iter().any(|field| field == name);
    let mut value = Map::new();
    value.insert("Name".into(), json!(item.name));
    value.insert("ServerId".into(), json!("f00dfeedf00dfeedf00dfeedf00dfeed"));
    value.insert("Id".into(), json!(item.id));
    if wants("etag") {
        let saved = item.saved.to_be_bytes();
        value.insert(
            "Etag".into(),
            json!(format!("{:016x}{:016x}", content_hash(&saved), content_hash(&item.saved.to_le_bytes()))),
        );
    }
    if wants("datecreated") {
        value.insert("DateCreated".into(), json!(iso_date(item.created)));
    }
    if wants("sortname") {
        value.insert("SortName".into(), json!(item.name.to_lowercase()));
    }
    if wants("path") {
        value.insert("Path".into(), json!(format!("/media/{}/{}.mkv", item.item_type, item.name)));
    }
    if wants("overview") {
        value.insert("Overview".into(), json!(item.overview));
    }
    if wants("providerids") {
        let ids = match item.item_type {
            "Movie" => json!({"Tmdb": item.serial.to_string(), "Imdb": format!("tt{:07}", item.serial)}),
            "Series" | "Episode" => json!({"Tvdb": item.serial.to_string()}),
            "MusicAlbum" => json!({"MusicBrainzAlbum": format!("00000000-0000-4000-8000-{:012}", item.serial)}),
            _ => json!({}),
        };
        value.insert("ProviderIds".into(), ids);
    }
    if wants("parentid") {
        let parent = item.parent.clone().or_else(|| {
            state
                .views
                .iter()
                .find(|view| view.items.iter().any(|other| other.id == item.id))
                .map(|view| view.id.clone())
        });
        value.insert("ParentId".into(), json!(parent));
    }
    if let Some(year) = item.year {
        value.insert("ProductionYear".into(), json!(year));
    }
    if let Some(index) = item.index {
        value.insert("IndexNumber".into(), json!(index));
    }
    if let Some(parent_index) = item.parent_index {
        value.insert("ParentIndexNumber".into(), json!(parent_index));
    }
    let folder = matches!(item.item_type, "Series" | "Season" | "MusicArtist" | "MusicAlbum" | "BoxSet");
    value.insert("IsFolder".into(), json!(folder));
    value.insert("Type".into(), json!(item.item_type));
    if !folder {
        value.insert("RunTimeTicks".into(), json!(600_000_000i64 + item.serial as i64 * 10_000));
    }
    let parent = item.parent.as_deref().and_then(|parent| state.find(parent));
    match (item.item_type, parent) {
        ("Season", Some(series)) => {
            value.insert("SeriesId".into(), json!(series.id));
            value.insert("SeriesName".into(), json!(series.name));
        }
        ("Episode", Some(season)) => {
            value.insert("SeasonId".into(), json!(season.id));
            value.insert("SeasonName".into(), json!(season.name));
            if let Some(series) = season.parent.as_deref().and_then(|id| state.find(id)) {
                value.insert("SeriesId".into(), json!(series.id));
                value.insert("SeriesName".into(), json!(series.name));
            }
        }
        ("MusicAlbum", Some(artist)) => {
            value.insert("AlbumArtist".into(), json!(artist.name));
            value.insert("AlbumArtists".into(), json!([{"Name": artist.name, "Id": artist.id}]));
        }
        ("Audio", Some(album)) => {
            value.insert("AlbumId".into(), json!(album.id));
            value.insert("Album".into(), json!(album.name));
        }
        _ => {}
    }
    if user_data {
        let mut user_data = json!({"PlaybackPositionTicks": 0, "PlayCount": item.play_count, "IsFavorite": false, "Played": item.play_count > 0, "Key": item.id});
        if let Some(at) = item.last_played {
            user_data["LastPlayedDate"] = json!(iso_date(at));
        }
        value.insert("UserData".into(), user_data);
    }
    let image = format!("{:016x}", content_hash(format!("{}:{}", item.id, item.image_at).as_bytes()));
    value.insert("ImageTags".into(), json!({"Primary": image}));
    value.insert("BackdropImageTags".into(), json!([]));
    value.insert("LocationType".into(), json!("FileSystem"));
    value.insert("MediaType".into(), json!(if item.item_type == "Audio" { "Audio" } else { "Video" }));
    Value::Object(value)
}
