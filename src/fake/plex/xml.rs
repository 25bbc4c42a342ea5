//! PMS's XML: the JSON shape rendered as elements named by their kind,
//! scalars as attributes, for clients that don't ask for JSON.

use serde_json::Value;

/// Renders the JSON shape as PMS's XML: objects become elements named by
/// their kind, scalars attributes.
pub(super) fn to_xml(envelope: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    if let Some(container) = envelope.get("MediaContainer") {
        write_element(&mut out, "MediaContainer", container);
    }
    out
}

pub(super) fn write_element(out: &mut String, name: &str, value: &Value) {
    out.push('<');
    out.push_str(name);
    let mut children = Vec::new();
    if let Value::Object(map) = value {
        for (key, field) in map {
            match field {
                Value::Array(entries) => children.push((key.as_str(), entries)),
                Value::Object(_) => {}
                Value::String(text) => attribute(out, key, text),
                other => attribute(out, key, &other.to_string()),
            }
        }
    }
    if children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for (key, entries) in children {
        for entry in entries {
            let element = match (key, entry.get("type").and_then(Value::as_str)) {
                ("Metadata", Some("movie" | "episode")) => "Video",
                ("Metadata", Some("track")) => "Track",
                ("Metadata", _) => "Directory",
                (other, _) => other,
            };
            write_element(out, element, entry);
        }
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

pub(super) fn attribute(out: &mut String, key: &str, text: &str) {
    out.push(' ');
    out.push_str(key);
    out.push_str("=\"");
    out.push_str(&crate::web::page::escape(text));
    out.push('"');
}
