//! The change feed's bounded history. The feed keeps the latest change of
//! every stored item, and a tombstone for every deletion; tombstones alone
//! would grow without end, so the oldest are compacted away beyond a count
//! and an age. `compacted_through` remembers the newest sequence number
//! compacted: a follower whose position is older may have missed a
//! deletion, and is told to re-read the catalog instead (`web::api`).

use super::tables::{CHANGES, META, OP_DELETE, TOMBSTONES};
use super::{Ending, Store, StoreError, Writer};
use redb::{ReadableTable, ReadableTableMetadata};

/// What the feed keeps of its deletions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TombstoneLimits {
    /// At most this many tombstones, the newest.
    pub count: u64,
    /// None older than this many seconds.
    pub age_secs: i64,
}

impl TombstoneLimits {
    pub fn new(count: u64, age: std::time::Duration) -> TombstoneLimits {
        TombstoneLimits { count, age_secs: i64::try_from(age.as_secs()).unwrap_or(i64::MAX) }
    }
}

/// The local clock, epoch seconds: when a tombstone was made.
pub(super) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|elapsed| i64::try_from(elapsed.as_secs()).ok())
        .unwrap_or(0)
}

fn read_u64(meta: &impl ReadableTable<&'static str, &'static [u8]>, key: &str) -> Result<Option<u64>, StoreError> {
    let value = meta.get(key)?;
    Ok(value.and_then(|value| value.value().try_into().ok().map(u64::from_be_bytes)))
}

/// Fills `TOMBSTONES` from the tombstones of `CHANGES` in a store made
/// before it existed (`migrate::EVERY_TABLE` unset); they count as made now.
pub(super) fn index_tombstones(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    if txn.open_table(META)?.get(super::migrate::EVERY_TABLE)?.is_some() {
        return Ok(());
    }
    let changes = txn.open_table(CHANGES)?;
    let mut tombstones = txn.open_table(TOMBSTONES)?;
    let made = now();
    for entry in changes.iter()? {
        let (seq, value) = entry?;
        if value.value().first() == Some(&OP_DELETE) {
            tombstones.insert(seq.value(), made)?;
        }
    }
    Ok(())
}

impl Store {
    /// Drops the oldest tombstones beyond `limits` from the change feed, and
    /// moves `compacted_through` up to the newest one dropped. Returns how
    /// many went.
    pub fn compact_tombstones(&self, limits: TombstoneLimits, now: i64) -> Result<u64, StoreError> {
        self.write_unless_unchanged(|writer| {
            let dropped = writer.compact_tombstones(limits, now)?;
            Ok((dropped, if dropped == 0 { Ending::Abort } else { Ending::Commit }))
        })
    }

    /// The newest change sequence number whose tombstone was compacted away
    /// (0: none was). A follower at a position older than this may have
    /// missed a deletion.
    pub fn compacted_through(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(read_u64(&meta, "compacted_through")?.unwrap_or(0))
    }

    /// The newest change sequence number given out (0 before the first
    /// change): a follower that read the whole catalog after this call
    /// follows the feed from here.
    pub fn head(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(read_u64(&meta, "next_seq")?.unwrap_or(1).saturating_sub(1))
    }
}

impl Writer<'_> {
    fn compact_tombstones(&mut self, limits: TombstoneLimits, now: i64) -> Result<u64, StoreError> {
        let kept = self.tombstones.len()?;
        let oldest_kept = now.saturating_sub(limits.age_secs);
        let mut doomed = Vec::new();
        for entry in self.tombstones.iter()? {
            let (seq, made) = entry?;
            let remaining = kept.saturating_sub(u64::try_from(doomed.len()).unwrap_or(u64::MAX));
            if remaining <= limits.count && made.value() >= oldest_kept {
                break;
            }
            doomed.push(seq.value());
        }
        let Some(newest) = doomed.last().copied() else {
            return Ok(0);
        };
        for seq in &doomed {
            self.tombstones.remove(seq)?;
            self.changes.remove(seq)?;
        }
        let through = read_u64(&self.meta, "compacted_through")?.unwrap_or(0).max(newest);
        self.meta.insert("compacted_through", through.to_be_bytes().as_slice())?;
        Ok(u64::try_from(doomed.len()).unwrap_or(u64::MAX))
    }
}
