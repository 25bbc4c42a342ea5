//! Readers for JSON fields that servers send in more than one shape (ids as
//! numbers or strings, numbers as strings). Shared by every source so a
//! quirk learnt from one server is handled the same way for all.

use serde_json::Value;

/// A non-empty string, or a number written as one.
pub fn string(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// An integer, a float (truncated toward zero, clamped to the i64 range) or
/// a string holding an integer.
#[allow(clippy::cast_possible_truncation, reason = "the float is truncated and clamped on purpose: `as` does both")]
pub fn i64(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(number) => number.as_i64().or_else(|| number.as_f64().map(|f| f as i64)),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// As `i64`, when not negative.
pub fn u64(value: Option<&Value>) -> Option<u64> {
    i64(value).and_then(|number| u64::try_from(number).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_shapes_read_the_same() {
        assert_eq!(string(Some(&json!(42))), Some("42".into()));
        assert_eq!(string(Some(&json!("42"))), Some("42".into()));
        assert_eq!(string(Some(&json!(""))), None);
        assert_eq!(i64(Some(&json!(" 17 "))), Some(17));
        assert_eq!(i64(Some(&json!(17.9))), Some(17));
        assert_eq!(u64(Some(&json!(-1))), None);
        assert_eq!(i64(None), None);
    }
}
