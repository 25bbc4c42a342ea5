//! `mediasync export`: the stored catalog as JSON Lines, streamed from the
//! store one item at a time (memory stays flat however large the catalog).

use crate::store::{Store, StoreError, StoredItem};
use serde_json::{Value, json};
use std::io::Write;

/// One export line: the item's fields plus where it lives and its hash.
#[allow(clippy::expect_used, reason = "an Item has string keys and plain values: serializing it cannot fail")]
pub fn line(server: &str, library_id: &str, stored: &StoredItem) -> Value {
    let mut value = serde_json::to_value(&stored.item).expect("an Item always serializes");
    if let Value::Object(map) = &mut value {
        map.insert("server".into(), json!(server));
        map.insert("library".into(), json!(library_id));
        map.insert("hash".into(), json!(format!("{:016x}", stored.hash)));
        map.insert("seq".into(), json!(stored.seq));
        if !map.contains_key("parent_id") {
            map.insert("parent_id".into(), Value::Null);
        }
    }
    value
}

/// Writes every stored item (of one server, or all) to `out`. Stops quietly
/// when the reader goes away (`mediasync export | head`).
pub fn write(store: &Store, server: Option<&str>, out: &mut dyn Write) -> Result<u64, StoreError> {
    let mut written = 0u64;
    let mut broken = false;
    for (number, state) in store.libraries()? {
        if server.is_some_and(|server| server != state.server) {
            continue;
        }
        store.for_each_item(number, |stored| {
            let mut text = line(&state.server, &state.library_id, &stored).to_string();
            text.push('\n');
            if out.write_all(text.as_bytes()).is_err() {
                broken = true;
                return false;
            }
            written = written.saturating_add(1);
            true
        })?;
        if broken {
            break;
        }
    }
    let _ = out.flush();
    Ok(written)
}
