//! HTTP/1.1 chunked transfer coding (RFC 9112 7.1), both ways: [`Chunks`] follows and
//! decodes a chunked body as it passes (the fast path's and `h1::client`'s upstream
//! bodies, and the framing guard's request bodies, which judge each line with it), and
//! [`size_line`] / [`push_chunk`] frame data for a body written by hand (a stream written
//! straight to the socket). One grammar for every reader, checked by the proptest in
//! `guard/fuzz.rs` against a reference decoder.

/// The last chunk with an empty trailer section: the end of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// `len` in lowercase hex followed by CRLF, the line before one chunk's data, written into
/// `buf` (no allocation: this runs once per event per subscriber).
pub fn size_line(len: usize, buf: &mut [u8; 18]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut i = 16;
    let mut n = len;
    loop {
        i -= 1;
        buf[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    buf[16] = b'\r';
    buf[17] = b'\n';
    &buf[i..]
}

/// Appends `data` as one chunk; empty data appends nothing (an empty chunk would end the
/// body).
pub fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut line = [0u8; 18];
    out.extend_from_slice(size_line(data.len(), &mut line));
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Follows a chunked body as it passes through, to find where it ends: chunk-size lines,
/// data, CRLFs, then trailer lines until an empty one. The grammar is the framing
/// guard's and hyper's: `1*15HEXDIG *(SP / HTAB) [";" ext]` where `ext` is any bytes but
/// CR and LF, then CRLF; a trailer line is any bytes but CR and LF, then CRLF. A CR or LF
/// anywhere else is broken framing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Chunks {
    /// In a chunk size's digits: the size so far and how many digits were seen.
    Size {
        size: u64,
        digits: u8,
    },
    /// Whitespace after the digits: only more of it, `;` or the CR may follow.
    SizeLws {
        size: u64,
    },
    /// In the chunk extensions, which end at the CR.
    Ext {
        size: u64,
    },
    /// The LF ending a chunk-size line.
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (an empty one ends the body).
    TrailerStart,
    /// Inside a trailer line; `cr`: its CR was seen.
    Trailer {
        cr: bool,
    },
    /// The LF of the empty line that ends the body.
    EndLf,
    Done,
}

impl Default for Chunks {
    fn default() -> Self {
        Self::new()
    }
}

// The one failure is broken framing, which every caller maps to its own answer: `()`.
#[allow(clippy::result_unit_err)]
impl Chunks {
    pub fn new() -> Self {
        Chunks::Size { size: 0, digits: 0 }
    }

    /// Follows `data`; how many of its bytes belong to the body (all of them unless the
    /// body ends inside), or `Err` for broken framing.
    pub fn feed(&mut self, data: &[u8]) -> Result<usize, ()> {
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            *self = match *self {
                Chunks::Done => return Ok(i),
                Chunks::Data(n) => {
                    let take = (n as usize).min(data.len() - i);
                    i += take;
                    let left = n - take as u64;
                    *self = if left == 0 {
                        Chunks::DataCr
                    } else {
                        Chunks::Data(left)
                    };
                    continue;
                }
                Chunks::Size { size, digits } => match b {
                    b'\r' if digits > 0 => Chunks::SizeLf { size },
                    b';' if digits > 0 => Chunks::Ext { size },
                    b' ' | b'\t' if digits > 0 => Chunks::SizeLws { size },
                    _ if b.is_ascii_hexdigit() && digits < 15 => Chunks::Size {
                        size: size * 16 + u64::from((b as char).to_digit(16).unwrap_or(0)),
                        digits: digits + 1,
                    },
                    _ => return Err(()),
                },
                Chunks::SizeLws { size } => match b {
                    b' ' | b'\t' => Chunks::SizeLws { size },
                    b';' => Chunks::Ext { size },
                    b'\r' => Chunks::SizeLf { size },
                    _ => return Err(()),
                },
                Chunks::Ext { size } => match b {
                    b'\r' => Chunks::SizeLf { size },
                    b'\n' => return Err(()),
                    _ => Chunks::Ext { size },
                },
                Chunks::SizeLf { size } => match (b, size) {
                    (b'\n', 0) => Chunks::TrailerStart,
                    (b'\n', n) => Chunks::Data(n),
                    _ => return Err(()),
                },
                Chunks::DataCr if b == b'\r' => Chunks::DataLf,
                Chunks::DataLf if b == b'\n' => Chunks::new(),
                Chunks::DataCr | Chunks::DataLf => return Err(()),
                Chunks::TrailerStart => match b {
                    b'\r' => Chunks::EndLf,
                    b'\n' => return Err(()),
                    _ => Chunks::Trailer { cr: false },
                },
                Chunks::Trailer { cr } => match (b, cr) {
                    (b'\n', true) => Chunks::TrailerStart,
                    (b'\n', false) | (_, true) => return Err(()),
                    (b'\r', false) => Chunks::Trailer { cr: true },
                    _ => Chunks::Trailer { cr: false },
                },
                Chunks::EndLf if b == b'\n' => {
                    *self = Chunks::Done;
                    return Ok(i + 1);
                }
                Chunks::EndLf => return Err(()),
            };
            i += 1;
        }
        Ok(i)
    }

    pub fn done(&self) -> bool {
        *self == Chunks::Done
    }

    /// Decodes from the front of `data`: the framing bytes before the next chunk data, and
    /// how many data bytes follow them (0 when `data` ends first, or at the trailer
    /// section, which [`Chunks::feed`] then follows to the body's end).
    pub fn next_data(&mut self, data: &[u8]) -> Result<(usize, usize), ()> {
        let mut i = 0;
        while i < data.len() && !self.in_trailers() {
            if let Chunks::Data(n) = *self {
                let take = (n as usize).min(data.len() - i);
                self.feed(&data[i..i + take])?;
                return Ok((i, take));
            }
            i += self.feed(&data[i..=i])?;
        }
        Ok((i, 0))
    }

    /// Past the last chunk: in the trailer section, or at the body's end.
    pub fn in_trailers(&self) -> bool {
        matches!(
            self,
            Chunks::TrailerStart | Chunks::Trailer { .. } | Chunks::EndLf | Chunks::Done
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_followed_to_their_end() {
        let body = b"3;x=y\r\nabc\r\n10 \t;e\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\nNEXT";
        let end = body.len() - 4;
        let mut c = Chunks::new();
        assert_eq!(c.feed(body), Ok(end));
        assert!(c.done());
        // Byte by byte, every split point.
        let mut c = Chunks::new();
        for (i, b) in body[..end].iter().enumerate() {
            assert_eq!(c.feed(std::slice::from_ref(b)), Ok(1), "at {i}");
        }
        assert!(c.done());
        for bad in [
            &b"3\nabc\r\n0\r\n\r\n"[..],
            b"3\r\nabcX\r\n",
            b"g\r\n",
            b"\r\n",
            b"0\r\nT: 1\n\r\n",
            b"1000000000000000\r\n",
            // Whitespace after the size may lead only to `;` or the line's end.
            b"3 4\r\n",
            // A bare CR in an extension or a trailer line.
            b"3;a\rb\r\n",
            b"0\r\nT: 1\r\r\n",
            b"0;x\n",
        ] {
            assert!(
                Chunks::new().feed(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn chunks_decode_data_apart_from_framing_and_stop_at_the_trailers() {
        let body = b"3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nx-t: 1\r\n\r\nNEXT";
        let mut c = Chunks::new();
        let mut at = 0;
        let mut data = Vec::new();
        loop {
            let (framing, n) = c.next_data(&body[at..]).expect("valid");
            at += framing;
            data.extend_from_slice(&body[at..at + n]);
            at += n;
            if n == 0 {
                break;
            }
        }
        assert_eq!(data, b"abcde");
        assert!(c.in_trailers() && !c.done());
        let n = c.feed(&body[at..]).expect("valid trailers");
        assert!(c.done());
        assert_eq!(&body[at..at + n], b"x-t: 1\r\n\r\n");
        let fields = crate::wire::head::trailer_fields(&body[at..at + n])
            .expect("fields")
            .expect("some");
        assert_eq!(fields["x-t"], "1");
        assert!(
            crate::wire::head::trailer_fields(b"\r\n")
                .expect("none")
                .is_none()
        );
        assert!(
            crate::wire::head::trailer_fields(b"connection: x\r\n\r\n")
                .expect("none")
                .is_none()
        );
        let mut c = Chunks::new();
        assert!(c.next_data(b"zz\r\n").is_err());
    }

    #[test]
    fn chunk_sizes_are_hex_with_crlf() {
        let mut buf = [0u8; 18];
        assert_eq!(size_line(0, &mut buf), b"0\r\n");
        assert_eq!(size_line(21, &mut buf), b"15\r\n");
        assert_eq!(size_line(0xabc1, &mut buf), b"abc1\r\n");
        assert_eq!(size_line(usize::MAX, &mut buf), b"ffffffffffffffff\r\n");
    }

    #[test]
    fn chunks_written_here_are_read_back_whole_and_empty_data_is_skipped() {
        let mut out = Vec::new();
        push_chunk(&mut out, b"hello world, sixteen+");
        push_chunk(&mut out, b"");
        assert_eq!(out, b"15\r\nhello world, sixteen+\r\n");
        push_chunk(&mut out, &[b'x'; 300]);
        out.extend_from_slice(LAST_CHUNK);
        let mut c = Chunks::new();
        let mut at = 0;
        let mut data = Vec::new();
        loop {
            let (framing, n) = c.next_data(&out[at..]).expect("valid");
            at += framing;
            data.extend_from_slice(&out[at..at + n]);
            at += n;
            if n == 0 {
                break;
            }
        }
        assert_eq!(c.feed(&out[at..]), Ok(out.len() - at));
        assert!(c.done());
        assert_eq!(data.len(), 21 + 300);
    }
}
