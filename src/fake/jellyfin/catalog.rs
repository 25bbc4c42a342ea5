//! A fake Jellyfin's ids, serials and generated items, and the item types
//! each collection type holds (`type_for`, `kind_of`).

use super::{FakeItem, GENERATED_AT, JellyfinState};
use crate::model::Kind;

impl JellyfinState {
    pub(crate) fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.clock
    }

    pub(crate) fn take_serial(&mut self) -> u64 {
        let serial = self.next_serial;
        self.next_serial += 1;
        serial
    }

    /// Jellyfin ids are GUIDs written as 32 hex digits; Emby's look numeric.
    pub(crate) fn take_id(&mut self) -> String {
        let serial = self.take_serial();
        if self.behaviour.is_emby() {
            return (100_000 + serial).to_string();
        }
        let scrambled = u128::from(serial).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
        format!("{scrambled:032x}")
    }

    pub(super) fn generated(
        &mut self,
        view: &str,
        item_type: &'static str,
        parent: Option<&str>,
        number: usize,
    ) -> String {
        let id = self.take_id();
        let serial = self.take_serial();
        let created = GENERATED_AT + serial as i64 * 7;
        let name = match item_type {
            "Season" => format!("Season {}", number + 1),
            "Episode" => format!("Episode {}", number + 1),
            other => format!("{other} {serial}"),
        };
        let item = FakeItem {
            id: id.clone(),
            item_type,
            name,
            parent: parent.map(str::to_string),
            index: parent.map(|_| number as i64 + 1),
            parent_index: (item_type == "Episode").then_some(1),
            year: Some(1990 + (serial % 35) as i32),
            created,
            saved: created + 3,
            image_at: created,
            user_data_at: created,
            play_count: 0,
            last_played: None,
            overview: String::new(),
            serial,
        };
        self.views.iter_mut().find(|candidate| candidate.id == view).expect("no such view").items.push(item);
        id
    }

    pub(super) fn find(&self, id: &str) -> Option<&FakeItem> {
        self.views.iter().flat_map(|view| view.items.iter()).find(|item| item.id == id)
    }
}

pub(super) fn flat_type(collection_type: &str) -> &'static str {
    match collection_type {
        "musicvideos" => "MusicVideo",
        "homevideos" => "Video",
        "boxsets" => "BoxSet",
        "photos" => "Photo",
        _ => "Movie",
    }
}

pub(crate) fn type_for(collection_type: &str, kind: Kind) -> &'static str {
    match kind {
        Kind::Movie | Kind::Playlist => flat_type(collection_type),
        Kind::Show => "Series",
        Kind::Season => "Season",
        Kind::Episode => "Episode",
        Kind::Artist => "MusicArtist",
        Kind::Album => "MusicAlbum",
        // The servers keep no per-play history: a play is never an item.
        Kind::Track | Kind::Play => "Audio",
    }
}

pub(super) fn kind_of(item_type: &str) -> Kind {
    match item_type {
        "Series" => Kind::Show,
        "Season" => Kind::Season,
        "Episode" => Kind::Episode,
        "MusicArtist" => Kind::Artist,
        "MusicAlbum" => Kind::Album,
        "Audio" => Kind::Track,
        "BoxSet" => Kind::Playlist,
        _ => Kind::Movie,
    }
}
