//! Serde readers for what servers send in more than one shape, or wrong:
//! ids as numbers or strings, numbers as strings, an object where a list
//! was expected. Every source reads its answers into typed structs of these,
//! so only the fields it stores are kept, a wrong type reads as absent (the
//! entry is refused or the field left out, never the whole page), no text
//! is kept past `MAX_TEXT_BYTES` and no page past `MAX_ENTRIES` entries.

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// The longest text field kept (a title, a path, an id). Real values are a
/// few hundred bytes at most; a longer one makes its entry unreadable.
pub const MAX_TEXT_BYTES: usize = 4096;
/// The most entries one answer may list: the largest page size asked.
pub const MAX_ENTRIES: usize = crate::config::MAX_PAGE_SIZE as usize;

/// The visitor methods of the JSON types a reader does not take: each
/// reads as `$absent` (lists and objects are read through and dropped).
macro_rules! read_as {
    ($absent:expr; $($visit:ident($($value:ty)?)),* $(,)?) => {
        $(fn $visit<E: de::Error>(self $(, _: $value)?) -> Result<Self::Value, E> {
            Ok($absent)
        })*
    };
    ($absent:expr; seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            skip_seq(seq).map(|()| $absent)
        }
    };
    ($absent:expr; map) => {
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            skip_map(map).map(|()| $absent)
        }
    };
}

/// A text field: a non-empty string, or an integer written as one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Text {
    /// Missing, null, empty, or of another type.
    #[default]
    Absent,
    Present(String),
    /// Longer than `MAX_TEXT_BYTES`: not kept.
    TooLong,
}

impl Text {
    /// The text, if present; an error naming `field` when it was too long.
    pub fn read(self, field: &str) -> Result<Option<String>, String> {
        match self {
            Text::Absent => Ok(None),
            Text::Present(text) => Ok(Some(text)),
            Text::TooLong => Err(format!("{field} is longer than {MAX_TEXT_BYTES} bytes")),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Text::Present(text) => Some(text),
            Text::Absent | Text::TooLong => None,
        }
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("text")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Text, E> {
        Ok(match text.len() {
            0 => Text::Absent,
            len if len > MAX_TEXT_BYTES => Text::TooLong,
            _ => Text::Present(text.to_string()),
        })
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Text, E> {
        Ok(Text::Present(number.to_string()))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Text, E> {
        Ok(Text::Present(number.to_string()))
    }

    read_as!(Text::Absent; visit_f64(f64), visit_bool(bool), visit_unit());
    read_as!(Text::Absent; seq);
    read_as!(Text::Absent; map);
}

/// An integer field: an integer, a float (truncated, when in range) or a
/// string holding an integer. Anything else reads as `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Int(pub Option<i64>);

impl Int {
    pub fn get(self) -> Option<i64> {
        self.0
    }

    /// As a count: `None` when negative.
    pub fn count(self) -> Option<u64> {
        self.0.and_then(|number| u64::try_from(number).ok())
    }
}

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Int, D::Error> {
        deserializer.deserialize_any(IntVisitor)
    }
}

struct IntVisitor;

/// Floats at or past these bounds do not fit an `i64`.
const I64_FLOAT_BOUND: f64 = 9_223_372_036_854_775_808.0;

impl<'de> Visitor<'de> for IntVisitor {
    type Value = Int;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Int, E> {
        Ok(Int(Some(number)))
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Int, E> {
        Ok(Int(i64::try_from(number).ok()))
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<Int, E> {
        let fits = number.is_finite() && number > -I64_FLOAT_BOUND && number < I64_FLOAT_BOUND;
        // In range and finite (checked above): the cast only drops the fraction.
        #[allow(clippy::cast_possible_truncation)]
        Ok(Int(fits.then(|| number.trunc() as i64)))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Int, E> {
        Ok(Int(text.trim().parse().ok()))
    }

    read_as!(Int(None); visit_bool(bool), visit_unit());
    read_as!(Int(None); seq);
    read_as!(Int(None); map);
}

/// A boolean field; anything but `true` or `false` reads as `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flag(pub Option<bool>);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Flag, D::Error> {
        deserializer.deserialize_any(FlagVisitor)
    }
}

struct FlagVisitor;

impl<'de> Visitor<'de> for FlagVisitor {
    type Value = Flag;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a boolean")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Flag, E> {
        Ok(Flag(Some(value)))
    }

    read_as!(Flag(None); visit_i64(i64), visit_u64(u64), visit_f64(f64), visit_str(&str), visit_unit());
    read_as!(Flag(None); seq);
    read_as!(Flag(None); map);
}

/// A nested object read as `T`; any other value reads as `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object<T>(pub Option<T>);

impl<T> Default for Object<T> {
    fn default() -> Object<T> {
        Object(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Object<T>, D::Error> {
        deserializer.deserialize_any(ObjectVisitor(PhantomData))
    }
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = Object<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|value| Object(Some(value)))
    }

    read_as!(Object(None); visit_str(&str), visit_i64(i64), visit_u64(u64), visit_f64(f64), visit_bool(bool), visit_unit());
    read_as!(Object(None); seq);
}

/// The first object of a list (an item's first media version, an album's
/// first artist); the rest is skipped unread. Anything else reads as `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct First<T>(pub Option<T>);

impl<T> Default for First<T> {
    fn default() -> First<T> {
        First(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for First<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<First<T>, D::Error> {
        deserializer.deserialize_any(FirstVisitor(PhantomData))
    }
}

struct FirstVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for FirstVisitor<T> {
    type Value = First<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<First<T>, A::Error> {
        let first = seq.next_element::<Object<T>>()?.and_then(|object| object.0);
        skip_seq(seq)?;
        Ok(First(first))
    }

    read_as!(First(None); visit_str(&str), visit_i64(i64), visit_u64(u64), visit_f64(f64), visit_bool(bool), visit_unit());
    read_as!(First(None); map);
}

/// The entries of a listing: a list of objects, each read as `T` (an entry
/// that is not an object reads as `None`, for the source to report). Null or
/// missing is an empty list; another type, or more than `MAX_ENTRIES`
/// entries, makes the whole answer unreadable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entries<T>(pub Vec<Option<T>>);

impl<T> Default for Entries<T> {
    fn default() -> Entries<T> {
        Entries(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Entries<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Entries<T>, D::Error> {
        deserializer.deserialize_any(EntriesVisitor(PhantomData))
    }
}

struct EntriesVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for EntriesVisitor<T> {
    type Value = Entries<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entries<T>, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = seq.next_element::<Object<T>>()? {
            if entries.len() >= MAX_ENTRIES {
                return Err(de::Error::custom(format!("more than {MAX_ENTRIES} entries in one answer")));
            }
            entries.push(entry.0);
        }
        Ok(Entries(entries))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Entries<T>, E> {
        Ok(Entries(Vec::new()))
    }
}

/// Reads and drops the rest of a list, however nested (serde_json bounds
/// the depth).
fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default)]
    struct Entry {
        id: Text,
        number: Int,
        admin: Flag,
        first: First<Inner>,
        inner: Object<Inner>,
    }

    #[derive(Debug, Default, PartialEq, Eq, serde::Deserialize)]
    #[serde(default)]
    struct Inner {
        id: Text,
    }

    fn entry(json: &str) -> Entry {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn both_shapes_read_the_same() {
        assert_eq!(entry(r#"{"id": 42}"#).id, Text::Present("42".into()));
        assert_eq!(entry(r#"{"id": "42"}"#).id, Text::Present("42".into()));
        assert_eq!(entry(r#"{"id": ""}"#).id, Text::Absent);
        assert_eq!(entry(r#"{"number": " 17 "}"#).number, Int(Some(17)));
        assert_eq!(entry(r#"{"number": 17.9}"#).number, Int(Some(17)));
        assert_eq!(entry(r#"{"number": -1}"#).number.count(), None);
        assert_eq!(entry("{}").number, Int(None));
    }

    #[test]
    fn wrong_types_and_extremes_read_as_absent() {
        let wrong = entry(r#"{"id": {"a": [1, 2]}, "number": [3], "admin": "yes", "first": {"id": 1}, "inner": [1]}"#);
        assert_eq!(
            (wrong.id, wrong.number, wrong.admin, wrong.first.0, wrong.inner.0),
            (Text::Absent, Int(None), Flag(None), None, None)
        );
        assert_eq!(entry(r#"{"number": 18446744073709551615}"#).number, Int(None));
        assert_eq!(entry(r#"{"number": 1e300}"#).number, Int(None));
        assert_eq!(entry(r#"{"number": -9.3e18}"#).number, Int(None));
        assert_eq!(entry(r#"{"number": "99999999999999999999999"}"#).number, Int(None));
        let long = format!(r#"{{"id": "{}"}}"#, "x".repeat(MAX_TEXT_BYTES + 1));
        assert_eq!(entry(&long).id, Text::TooLong);
        assert!(entry(&long).id.read("id").unwrap_err().contains("longer than"));
    }

    #[test]
    fn lists_keep_the_first_object_and_cap_the_entries() {
        let first = entry(r#"{"first": [7, {"id": "b"}], "inner": {"id": "c", "x": [[[]]]}}"#);
        assert_eq!(first.first.0, None, "the first element is not an object");
        assert_eq!(first.inner.0, Some(Inner { id: Text::Present("c".into()) }));
        let first = entry(r#"{"first": [{"id": "a"}, {"id": "b"}]}"#);
        assert_eq!(first.first.0, Some(Inner { id: Text::Present("a".into()) }));
        let entries: Entries<Inner> = serde_json::from_str(r#"[{"id": 1}, 2, null]"#).unwrap();
        assert_eq!(entries.0.len(), 3);
        assert!(entries.0[1].is_none() && entries.0[2].is_none());
        let too_many = format!("[{}{{}}]", "{},".repeat(MAX_ENTRIES));
        assert!(serde_json::from_str::<Entries<Inner>>(&too_many).is_err());
        assert!(serde_json::from_str::<Entries<Inner>>(r#""not a list""#).is_err());
        assert!(serde_json::from_str::<Entries<Inner>>("null").unwrap().0.is_empty());
    }
}
