//! A disk that loses power on cue, after `docs/power-loss.md`: it keeps a
//! live image (what was written) and a durable one (what reached the
//! platters); `sync_data` makes the live writes durable. At the chosen sync
//! the power goes: every write since the last sync survives or is lost
//! independently (seeded), and so does a pending `set_len`; the result is
//! the crash image, and every later call fails.

use redb::StorageBackend;
use redb::backends::InMemoryBackend;
use std::io;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Disk {
    live: Vec<u8>,
    durable: Vec<u8>,
    pending_writes: Vec<(u64, Vec<u8>)>,
    pending_len: Option<u64>,
    syncs: u64,
    cut_at: u64,
    seed: u64,
    crash_image: Option<Vec<u8>>,
}

impl Disk {
    fn random(&mut self) -> bool {
        // xorshift64*: deterministic per seed.
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        self.seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 63 == 1
    }

    /// The durable image plus each unsynced change that happens to survive.
    fn cut(&mut self) -> Vec<u8> {
        let mut image = self.durable.clone();
        if let Some(len) = self.pending_len {
            if self.random() {
                image.resize(len as usize, 0);
            }
        }
        for (offset, data) in std::mem::take(&mut self.pending_writes) {
            if self.random() {
                let end = offset as usize + data.len();
                if image.len() < end {
                    // A write beyond the durable length extends the file
                    // only if the data reached the disk.
                    image.resize(end, 0);
                }
                image[offset as usize..end].copy_from_slice(&data);
            }
        }
        image
    }
}

#[derive(Debug, Clone)]
pub struct SimulatedDisk(Arc<Mutex<Disk>>);

impl SimulatedDisk {
    /// A disk holding `image`, written and synced.
    pub fn new(image: &[u8]) -> SimulatedDisk {
        SimulatedDisk(Arc::new(Mutex::new(Disk { live: image.to_vec(), durable: image.to_vec(), ..Disk::default() })))
    }

    /// Cuts the power at the `after`-th sync from now (1: the next one),
    /// with `seed` deciding the fate of the unsynced writes.
    pub fn cut_after(&self, after: u64, seed: u64) {
        let mut disk = self.0.lock().unwrap();
        disk.cut_at = disk.syncs + after;
        disk.seed = seed | 1;
    }

    pub fn syncs(&self) -> u64 {
        self.0.lock().unwrap().syncs
    }

    /// What was written, synced or not.
    pub fn live(&self) -> Vec<u8> {
        self.0.lock().unwrap().live.clone()
    }

    /// What survived the cut, once it happened.
    pub fn crash_image(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap().crash_image.clone()
    }
}

fn dead() -> io::Error {
    io::Error::other("power cut")
}

impl StorageBackend for SimulatedDisk {
    fn len(&self) -> Result<u64, io::Error> {
        let disk = self.0.lock().unwrap();
        if disk.crash_image.is_some() {
            return Err(dead());
        }
        Ok(disk.live.len() as u64)
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, io::Error> {
        let disk = self.0.lock().unwrap();
        if disk.crash_image.is_some() {
            return Err(dead());
        }
        let end = offset as usize + len;
        if end > disk.live.len() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"));
        }
        Ok(disk.live[offset as usize..end].to_vec())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut disk = self.0.lock().unwrap();
        if disk.crash_image.is_some() {
            return Err(dead());
        }
        disk.live.resize(len as usize, 0);
        disk.pending_len = Some(len);
        Ok(())
    }

    fn sync_data(&self, _eventual: bool) -> Result<(), io::Error> {
        let mut disk = self.0.lock().unwrap();
        if disk.crash_image.is_some() {
            return Err(dead());
        }
        disk.syncs += 1;
        if disk.syncs == disk.cut_at {
            let image = disk.cut();
            disk.crash_image = Some(image);
            return Err(dead());
        }
        let Disk { live, durable, .. } = &mut *disk;
        durable.clone_from(live);
        disk.pending_writes.clear();
        disk.pending_len = None;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut disk = self.0.lock().unwrap();
        if disk.crash_image.is_some() {
            return Err(dead());
        }
        let end = offset as usize + data.len();
        if end > disk.live.len() {
            disk.live.resize(end, 0);
        }
        disk.live[offset as usize..end].copy_from_slice(data);
        disk.pending_writes.push((offset, data.to_vec()));
        Ok(())
    }
}

/// An image as an in-memory database file.
pub fn memory_image(image: &[u8]) -> InMemoryBackend {
    let backend = InMemoryBackend::new();
    backend.set_len(image.len() as u64).unwrap();
    backend.write(0, image).unwrap();
    backend
}
