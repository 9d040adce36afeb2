//! Images made in code for upload and thumb tests: real, decodable PNGs of any size
//! (stored deflate blocks, so no compression crate is needed).

pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for b in bytes {
        c ^= u32::from(*b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A valid RGB PNG of `w`×`h` (zlib with stored blocks, so no compressor is needed).
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let mut raw = Vec::new();
    let row: Vec<u8> = std::iter::once(0)
        .chain((0..w).flat_map(|x| [(x * 6) as u8, 0x40, 0x80]))
        .collect();
    for _ in 0..h {
        raw.extend_from_slice(&row);
    }
    let mut z = vec![0x78, 0x01];
    let chunks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, c) in chunks.iter().enumerate() {
        z.push(u8::from(i + 1 == chunks.len()));
        let len = c.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(c);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for x in &raw {
        a = (a + u32::from(*x)) % 65_521;
        b = (b + a) % 65_521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    png_with_idat(w, h, &z)
}

/// A PNG whose header declares an 8-bit RGB `w`×`h` image and whose one IDAT chunk is
/// `idat` (what [`png`] builds on; a tiny `idat` under a huge size is a decompression
/// bomb's shape).
pub fn png_with_idat(w: u32, h: u32, idat: &[u8]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |t: &[u8], d: &[u8]| {
        out.extend_from_slice(&(d.len() as u32).to_be_bytes());
        let mut td = t.to_vec();
        td.extend_from_slice(d);
        out.extend_from_slice(&td);
        out.extend_from_slice(&crc32(&td).to_be_bytes());
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", idat);
    chunk(b"IEND", &[]);
    out
}
