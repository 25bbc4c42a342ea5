//! The simulated servers' posters: small valid PNGs (8-bit RGB, zlib with
//! stored blocks) whose colour follows a seed, so each version of an image
//! has its own bytes and a test can tell them apart. The simulated servers
//! scale them to a tenth of the asked width to keep tests light.

use crate::model::content_hash;

/// A `width`×`height` PNG, one colour picked by `seed`.
pub fn poster(seed: &str, width: u32, height: u32) -> Vec<u8> {
    let (width, height) = (width.max(1), height.max(1));
    let colour = content_hash(seed.as_bytes()).to_be_bytes();
    let row_bytes = 1 + 3 * width as usize;
    let mut raw = Vec::with_capacity(row_bytes * height as usize);
    let mut row = vec![0u8];
    for _ in 0..width {
        row.extend_from_slice(&colour[..3]);
    }
    for _ in 0..height {
        raw.extend_from_slice(&row);
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &header);
    chunk(&mut png, b"IDAT", &zlib_stored(&raw));
    chunk(&mut png, b"IEND", &[]);
    png
}

/// The fake's size for an asked width: a tenth, as a 2:3 poster.
pub fn scaled(width: u32) -> (u32, u32) {
    let width = (width / 10).clamp(1, 400);
    (width, width.saturating_mul(3) / 2)
}

fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    png.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// A zlib stream of stored (uncompressed) deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = if data.is_empty() { vec![&[]] } else { data.chunks(65_535).collect() };
    let last = blocks.len() - 1;
    for (index, block) in blocks.into_iter().enumerate() {
        out.push(u8::from(index == last));
        let length = u16::try_from(block.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(&(!length).to_le_bytes());
        out.extend_from_slice(block);
    }
    let mut adler = simd_adler32::Adler32::new();
    adler.write(data);
    out.extend_from_slice(&adler.finish().to_be_bytes());
    out
}

/// Whether `bytes` is a whole PNG as `poster` writes them: signature, then
/// chunks with good CRCs up to `IEND`, nothing after (the tests' check
/// that no image was torn).
pub fn is_whole_png(bytes: &[u8]) -> bool {
    let Some(mut rest) = bytes.strip_prefix(b"\x89PNG\r\n\x1a\n".as_slice()) else { return false };
    while rest.len() >= 12 {
        let length = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(body) = rest.get(4..8 + length) else { return false };
        let Some(crc) = rest.get(8 + length..12 + length) else { return false };
        if crc32fast::hash(body).to_be_bytes() != crc {
            return false;
        }
        if &body[..4] == b"IEND" {
            return rest.len() == 12 + length;
        }
        rest = &rest[12 + length..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::{is_whole_png, poster, scaled};

    #[test]
    fn posters_are_whole_pngs_that_differ_by_seed() {
        let (width, height) = scaled(300);
        let one = poster("a", width, height);
        assert!(is_whole_png(&one));
        assert_ne!(one, poster("b", width, height));
        assert!(!is_whole_png(&one[..one.len() - 1]));
        let large = poster("c", 400, 600);
        assert!(large.len() > 65_535 * 2 && is_whole_png(&large));
    }
}
