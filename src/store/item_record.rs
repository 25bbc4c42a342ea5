//! The item record (schema version 2), the value of the `items` table:
//! written and read per item, so it is binary and holds each fact once. The
//! id is the key's, nothing derived is kept (the export's hash is computed
//! from the fields), and integers are LEB128 varints, which have no byte
//! order or word size: the same bytes on x86_64, aarch64 and armv7.
//! ARCHITECTURE.md decodes a record byte by byte.

use crate::model::{Item, Kind};

/// The part of a record the store's scans need without the item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemHeader {
    pub kind: Kind,
    /// The item's bit in the library's seen bitmap.
    pub ordinal: u32,
    /// The change sequence number of its last write.
    pub seq: u64,
}

/// The optional fields, in the order of their presence bits (bit 0 first)
/// and of their values in the content.
#[derive(Clone, Copy)]
enum Field {
    SortTitle,
    ParentId,
    AddedAt,
    Year,
    Index,
    ParentIndex,
    Guid,
    DurationMs,
    Thumb,
    File,
    Marker,
}

const FIELDS: [Field; 11] = [
    Field::SortTitle,
    Field::ParentId,
    Field::AddedAt,
    Field::Year,
    Field::Index,
    Field::ParentIndex,
    Field::Guid,
    Field::DurationMs,
    Field::Thumb,
    Field::File,
    Field::Marker,
];

enum Value<'i> {
    Text(&'i str),
    Number(i64),
}

impl Field {
    fn bit(self) -> u32 {
        match self {
            Field::SortTitle => 1,
            Field::ParentId => 1 << 1,
            Field::AddedAt => 1 << 2,
            Field::Year => 1 << 3,
            Field::Index => 1 << 4,
            Field::ParentIndex => 1 << 5,
            Field::Guid => 1 << 6,
            Field::DurationMs => 1 << 7,
            Field::Thumb => 1 << 8,
            Field::File => 1 << 9,
            Field::Marker => 1 << 10,
        }
    }

    fn of(self, item: &Item) -> Option<Value<'_>> {
        fn text(value: &Option<String>) -> Option<Value<'_>> {
            value.as_deref().map(Value::Text)
        }
        match self {
            Field::SortTitle => text(&item.sort_title),
            Field::ParentId => text(&item.parent_id),
            Field::AddedAt => item.added_at.map(Value::Number),
            Field::Year => item.year.map(|year| Value::Number(i64::from(year))),
            Field::Index => item.index.map(Value::Number),
            Field::ParentIndex => item.parent_index.map(Value::Number),
            Field::Guid => text(&item.guid),
            Field::DurationMs => item.duration_ms.map(Value::Number),
            Field::Thumb => text(&item.thumb),
            Field::File => text(&item.file),
            Field::Marker => text(&item.marker),
        }
    }

    /// Reads this field's value from `reader` into `item`.
    fn read(self, reader: &mut Reader<'_>, item: &mut Item) -> Option<()> {
        match self {
            Field::SortTitle => item.sort_title = Some(reader.text()?),
            Field::ParentId => item.parent_id = Some(reader.text()?),
            Field::AddedAt => item.added_at = Some(reader.signed()?),
            Field::Year => item.year = Some(i32::try_from(reader.signed()?).ok()?),
            Field::Index => item.index = Some(reader.signed()?),
            Field::ParentIndex => item.parent_index = Some(reader.signed()?),
            Field::Guid => item.guid = Some(reader.text()?),
            Field::DurationMs => item.duration_ms = Some(reader.signed()?),
            Field::Thumb => item.thumb = Some(reader.text()?),
            Field::File => item.file = Some(reader.text()?),
            Field::Marker => item.marker = Some(reader.text()?),
        }
        Some(())
    }
}

/// The whole record: kind, ordinal, seq, then the content.
pub fn encode_item(header: &ItemHeader, content: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(content.len().saturating_add(16));
    record.push(header.kind.code());
    put_unsigned(&mut record, u64::from(header.ordinal));
    put_unsigned(&mut record, header.seq);
    record.extend_from_slice(content);
    record
}

/// What an item holds besides its id (the key) and kind (the header): the
/// presence bits, the title, `updated_at`, then the optional fields that
/// are set. The encoding is canonical: two items with the same id and kind
/// are equal exactly when their contents are equal byte for byte.
pub fn encode_content(item: &Item) -> Vec<u8> {
    let values: Vec<(Field, Value<'_>)> =
        FIELDS.iter().filter_map(|&field| field.of(item).map(|value| (field, value))).collect();
    let present = values.iter().fold(0u32, |bits, (field, _)| bits | field.bit());
    let mut content = Vec::with_capacity(item.title.len().saturating_add(96));
    put_unsigned(&mut content, u64::from(present));
    put_text(&mut content, &item.title);
    put_signed(&mut content, item.updated_at);
    for (_, value) in values {
        match value {
            Value::Text(text) => put_text(&mut content, text),
            Value::Number(number) => put_signed(&mut content, number),
        }
    }
    content
}

/// The header and the content of a record; None if it is not one.
pub fn split_record(record: &[u8]) -> Option<(ItemHeader, &[u8])> {
    let mut reader = Reader { rest: record };
    let kind = Kind::from_code(reader.byte()?)?;
    let ordinal = u32::try_from(reader.unsigned()?).ok()?;
    let seq = reader.unsigned()?;
    Some((ItemHeader { kind, ordinal, seq }, reader.rest))
}

/// The item stored under `id`; None unless the record decodes whole.
pub fn decode_item(id: &str, record: &[u8]) -> Option<(ItemHeader, Item)> {
    let (header, content) = split_record(record)?;
    let mut reader = Reader { rest: content };
    let present = u32::try_from(reader.unsigned()?).ok()?;
    let known = FIELDS.iter().fold(0u32, |bits, field| bits | field.bit());
    if present & !known != 0 {
        return None;
    }
    let title = reader.text()?;
    let updated_at = reader.signed()?;
    let mut item = Item::new(id, header.kind, title, updated_at);
    for field in FIELDS.into_iter().filter(|field| present & field.bit() != 0) {
        field.read(&mut reader, &mut item)?;
    }
    reader.rest.is_empty().then_some((header, item))
}

/// The `updated_at` of a record's content, read without decoding the
/// rest; None if it is not a content.
pub fn content_updated_at(content: &[u8]) -> Option<i64> {
    let mut reader = Reader { rest: content };
    reader.unsigned()?;
    let title = usize::try_from(reader.unsigned()?).ok()?;
    reader.rest = reader.rest.get(title..)?;
    reader.signed()
}

/// LEB128: seven bits per byte, least significant group first, the high
/// bit set on every byte but the last.
fn put_unsigned(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let low = u8::try_from(value & 0x7f).unwrap_or_default();
        value = value.wrapping_shr(7);
        if value == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// Zigzag (0, -1, 1, -2, … become 0, 1, 2, 3, …), then LEB128.
fn put_signed(out: &mut Vec<u8>, value: i64) {
    // `!value` of a negative value is its magnitude minus one, never negative.
    let zigzag = match u64::try_from(value) {
        Ok(positive) => positive.wrapping_shl(1),
        Err(_) => u64::try_from(!value).unwrap_or_default().wrapping_shl(1) | 1,
    };
    put_unsigned(out, zigzag);
}

/// The byte length as LEB128, then the UTF-8 bytes.
fn put_text(out: &mut Vec<u8>, text: &str) {
    put_unsigned(out, u64::try_from(text.len()).unwrap_or(u64::MAX));
    out.extend_from_slice(text.as_bytes());
}

struct Reader<'r> {
    rest: &'r [u8],
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(first)
    }

    /// At most ten bytes; bits beyond the 64th make the record invalid.
    fn unsigned(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64u32).step_by(7) {
            let byte = self.byte()?;
            let group = u64::from(byte & 0x7f);
            let shifted = group.checked_shl(shift)?;
            if shifted.checked_shr(shift)? != group {
                return None;
            }
            value |= shifted;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn signed(&mut self) -> Option<i64> {
        let zigzag = self.unsigned()?;
        let magnitude = i64::try_from(zigzag.wrapping_shr(1)).ok()?;
        Some(if zigzag & 1 == 0 { magnitude } else { !magnitude })
    }

    fn text(&mut self) -> Option<String> {
        let length = usize::try_from(self.unsigned()?).ok()?;
        let (text, rest) = self.rest.split_at_checked(length)?;
        self.rest = rest;
        String::from_utf8(text.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_item() -> Item {
        let mut item = Item::new("55", Kind::Episode, "Pilot – ünïcode", 1_579_514_152);
        item.sort_title = Some("pilot".into());
        item.parent_id = Some("54".into());
        item.added_at = Some(-3);
        item.year = Some(i32::MIN);
        item.index = Some(i64::MAX);
        item.parent_index = Some(i64::MIN);
        item.guid = Some("plex://episode/5d9c".into());
        item.duration_ms = Some(0);
        item.thumb = Some("/library/metadata/55/thumb/1579514152".into());
        item.file = Some(String::new());
        item.marker = Some("etag".into());
        item
    }

    #[test]
    fn a_record_is_decoded_by_hand_as_architecture_md_says() {
        let mut item = Item::new("55", Kind::Movie, "Heat", 1_579_514_152);
        item.year = Some(1995);
        item.parent_id = Some("7".into());
        let header = ItemHeader { kind: Kind::Movie, ordinal: 300, seq: 9 };
        let record = encode_item(&header, &encode_content(&item));
        let expected: Vec<u8> = [
            &[0x01][..],                     // kind: movie
            &[0xac, 0x02],                   // ordinal 300 = 0x2c + 2 * 128
            &[0x09],                         // seq 9
            &[0x0a],                         // present: parent_id (bit 1), year (bit 3)
            &[0x04, b'H', b'e', b'a', b't'], // title
            &[0xd0, 0xe4, 0xab, 0xe2, 0x0b], // updated_at 1579514152, zigzag 3159028304
            &[0x01, b'7'],                   // parent_id
            &[0x96, 0x1f],                   // year 1995, zigzag 3990
        ]
        .concat();
        assert_eq!(record, expected);
        assert_eq!(decode_item("55", &record), Some((header, item)));
    }

    #[test]
    fn every_field_and_extreme_numbers_round_trip() {
        let item = full_item();
        let header = ItemHeader { kind: Kind::Episode, ordinal: u32::MAX, seq: u64::MAX };
        let record = encode_item(&header, &encode_content(&item));
        assert_eq!(decode_item("55", &record), Some((header, item.clone())));
        let (split, content) = split_record(&record).unwrap();
        assert_eq!(split, header);
        assert_eq!(content, encode_content(&item).as_slice());
    }

    #[test]
    fn the_content_changes_with_every_field() {
        let base = full_item();
        let before = encode_content(&base);
        let edits: [fn(&mut Item); 13] = [
            |item| item.title.push('!'),
            |item| item.updated_at += 1,
            |item| item.sort_title = None,
            |item| item.parent_id = Some("53".into()),
            |item| item.added_at = None,
            |item| item.year = Some(2000),
            |item| item.index = Some(1),
            |item| item.parent_index = None,
            |item| item.guid = None,
            |item| item.duration_ms = Some(1),
            |item| item.thumb = None,
            |item| item.file = None,
            |item| item.marker = Some("etag2".into()),
        ];
        for edit in edits {
            let mut item = base.clone();
            edit(&mut item);
            assert_ne!(encode_content(&item), before, "{item:?}");
        }
    }

    #[test]
    fn damaged_records_are_refused() {
        let header = ItemHeader { kind: Kind::Movie, ordinal: 1, seq: 2 };
        let record = encode_item(&header, &encode_content(&full_item()));
        for cut in 0..record.len() {
            assert_eq!(decode_item("55", &record[..cut]), None, "cut at {cut}");
        }
        let mut longer = record.clone();
        longer.push(0);
        assert_eq!(decode_item("55", &longer), None, "trailing bytes");
        let mut unknown_kind = record.clone();
        unknown_kind[0] = 0;
        assert_eq!(split_record(&unknown_kind), None);
        let unknown_field = encode_item(&header, &[0x80, 0x10, 0x00, 0x00]);
        assert_eq!(decode_item("55", &unknown_field), None, "presence bit 11");
        assert_eq!(split_record(&[1, 0xff, 0xff, 0xff, 0xff, 0x7f, 0]), None, "ordinal past u32");
        let too_long = [&[1, 0][..], &[0xff; 10], &[0x01]].concat();
        assert_eq!(split_record(&too_long), None, "a varint past 64 bits");
    }
}
