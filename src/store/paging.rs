//! Paged reads for the status API: a library's items after a cursor (the
//! last item id a client saw), so a client walks a catalog of any size in
//! bounded answers, and the walk stays stable while syncs write.

use super::tables::{ITEMS, item_key, library_range};
use super::{Store, StoreError, StoredItem};
use crate::model::Kind;

impl Store {
    /// At most `limit` items of `library` (of one kind, if given) whose id
    /// sorts after `after`, in id order, and whether more may follow.
    /// Undecodable records are skipped (export reports them).
    pub fn items_page(
        &self,
        library: u32,
        kind: Option<Kind>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<StoredItem>, bool), StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ITEMS)?;
        let (start, end) = library_range(library);
        let start = match after {
            Some(after) => std::ops::Bound::Excluded(item_key(library, after)),
            None => std::ops::Bound::Included(start),
        };
        let range = (start.as_ref().map(Vec::as_slice), std::ops::Bound::Excluded(end.as_slice()));
        let mut out = Vec::new();
        for entry in table.range::<&[u8]>(range)? {
            let (key, value) = entry?;
            let Some(stored) = StoredItem::decode(key.value(), value.value()) else {
                continue;
            };
            if kind.is_some_and(|kind| kind != stored.item.kind) {
                continue;
            }
            if out.len() == limit {
                return Ok((out, true));
            }
            out.push(stored);
        }
        Ok((out, false))
    }
}
