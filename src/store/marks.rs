//! Seen marks held in memory for the whole walk of a small listing (Spotify's
//! followed artists and playlists, walked whole every run): a walk that
//! sees what is stored then writes no mark at all, and one that does not
//! writes them in one transaction before its lookup and sweep. The stored
//! bitmap (`seen`) stays the marks' durable form; these only defer it.

use super::tables::{SEEN, SEEN_CHUNK_BITS, seen_key};
use super::{Store, StoreError, Writer};
use crate::model::Kind;
use std::collections::BTreeSet;

/// The ordinals of the items a walk saw and has not written as marks yet.
/// Bounded by the caller (`len`), which writes them out past its bound.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeldMarks(BTreeSet<u32>);

impl HeldMarks {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn insert(&mut self, ordinal: u32) {
        self.0.insert(ordinal);
    }

    fn contains(&self, ordinal: u32) -> bool {
        self.0.contains(&ordinal)
    }
}

/// The marks an unseen item lacks.
#[derive(Clone, Copy, Debug)]
pub enum MarksOfThePass<'a> {
    /// The stored bitmap only.
    Stored,
    /// Marks held in memory only: the pass wrote none (the stored bitmap
    /// may hold an abandoned pass's).
    Held(&'a HeldMarks),
    /// Marks held in memory and those the pass already wrote.
    HeldAndStored(&'a HeldMarks),
}

impl Writer<'_> {
    /// From now on `mark_seen` adds to `marks` instead of the seen chunks,
    /// until `release_marks` hands them back.
    pub fn hold_marks(&mut self, marks: HeldMarks) {
        self.held = Some(marks);
    }

    /// The held marks, with marking going to the seen chunks again.
    pub fn release_marks(&mut self) -> HeldMarks {
        self.held.take().unwrap_or_default()
    }

    /// Writes held marks into the library's seen bitmap (with this
    /// transaction, which therefore commits).
    pub fn write_marks(&mut self, library: u32, marks: &HeldMarks) -> Result<(), StoreError> {
        for ordinal in &marks.0 {
            self.mark_seen_in_chunks(library, *ordinal)?;
        }
        Ok(())
    }
}

impl Store {
    /// Items of the given kinds lacking a mark (`marks`), from just after
    /// `after`, at most `limit` of them: (item keys, the walk is complete).
    pub(super) fn scan_unseen(
        &self,
        library: u32,
        kinds: &[Kind],
        after: Option<&[u8]>,
        limit: usize,
        marks: MarksOfThePass<'_>,
    ) -> Result<(Vec<Vec<u8>>, bool), StoreError> {
        let (held, read_stored) = match marks {
            MarksOfThePass::Stored => (None, true),
            MarksOfThePass::Held(held) => (Some(held), false),
            MarksOfThePass::HeldAndStored(held) => (Some(held), true),
        };
        let txn = self.db.begin_read()?;
        let seen = txn.open_table(SEEN)?;
        let mut chunk: Option<(u32, Option<Vec<u8>>)> = None;
        let mut keys = Vec::new();
        let mut error = None;
        let mut complete = true;
        self.scan_headers(library, after, |key, header, _| {
            if !kinds.contains(&header.kind) || held.is_some_and(|held| held.contains(header.ordinal)) {
                return true;
            }
            let wanted = header.ordinal / SEEN_CHUNK_BITS;
            if read_stored && chunk.as_ref().map(|(number, _)| *number) != Some(wanted) {
                let bits = match seen.get(seen_key(library, wanted).as_slice()) {
                    Ok(value) => value.map(|value| value.value().to_vec()),
                    Err(err) => {
                        error = Some(StoreError::from(err));
                        return false;
                    }
                };
                chunk = Some((wanted, bits));
            }
            let bit = header.ordinal % SEEN_CHUNK_BITS;
            let is_seen = chunk
                .as_ref()
                .and_then(|(_, bits)| bits.as_ref())
                // A chunk shorter than SEEN_CHUNK_BYTES (the writer never
                // stores one) reads as unseen past its end, like a missing chunk.
                .is_some_and(|bits| bits.get((bit / 8) as usize).is_some_and(|byte| byte & (1 << (bit % 8)) != 0));
            if !is_seen {
                keys.push(key.to_vec());
                if keys.len() >= limit {
                    complete = false;
                    return false;
                }
            }
            true
        })?;
        match error {
            Some(err) => Err(err),
            None => Ok((keys, complete)),
        }
    }

    /// Whether some item of the given kinds lacks a mark (`marks`).
    pub fn any_unseen(&self, library: u32, kinds: &[Kind], marks: MarksOfThePass<'_>) -> Result<bool, StoreError> {
        let (keys, _) = self.scan_unseen(library, kinds, None, 1, marks)?;
        Ok(!keys.is_empty())
    }
}
