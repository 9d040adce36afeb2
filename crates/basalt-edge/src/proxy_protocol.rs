//! PROXY protocol v1 (text) and v2 (binary) on accept: the real client address when the
//! edge sits behind a load balancer that speaks it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V1_MAX: usize = 107;

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("proxy protocol: {msg}"))
}

/// Reads the header; `Ok(None)` for LOCAL / UNKNOWN (use the peer address).
///
/// Only bytes known to be the header's are consumed, so what follows it (the request)
/// stays in the socket for the caller; every wait is a wait for the socket to become
/// readable, never a timer.
pub async fn read_header(stream: &mut TcpStream) -> io::Result<Option<SocketAddr>> {
    // The first 12 bytes are the header's either way: v2's signature, or the start of a
    // v1 line (at least "PROXY UNKNOWN\r\n", 15 bytes). Each read asks for no more than
    // what is missing, and a prefix of neither is refused as soon as it shows.
    let mut sig = [0u8; 12];
    let mut have = 0;
    while have < sig.len() {
        let n = stream.read(&mut sig[have..]).await?;
        if n == 0 {
            return Err(invalid("connection closed"));
        }
        have += n;
        let v1 = b"PROXY ".starts_with(&sig[..have.min(6)]);
        if !v1 && !V2_SIGNATURE.starts_with(&sig[..have]) {
            return Err(invalid("missing header"));
        }
    }
    if sig.starts_with(b"PROXY ") {
        return read_v1(stream, &sig).await;
    }
    if &sig != V2_SIGNATURE {
        return Err(invalid("missing header"));
    }
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await?;
    if head[0] >> 4 != 2 {
        return Err(invalid("unsupported version"));
    }
    let mut rest = vec![0u8; usize::from(u16::from_be_bytes([head[2], head[3]]))];
    stream.read_exact(&mut rest).await?;
    parse_v2(head, &rest)
}

/// A v2 header after its signature: `head` (version and command, family, length) and
/// the `rest` that length announced.
pub fn parse_v2(head: [u8; 4], rest: &[u8]) -> io::Result<Option<SocketAddr>> {
    let (ver_cmd, family) = (head[0], head[1]);
    if ver_cmd >> 4 != 2 {
        return Err(invalid("unsupported version"));
    }
    if ver_cmd & 0x0f == 0 {
        return Ok(None); // LOCAL: a health check from the balancer itself
    }
    match family >> 4 {
        1 if rest.len() >= 12 => {
            let ip = Ipv4Addr::new(rest[0], rest[1], rest[2], rest[3]);
            let port = u16::from_be_bytes([rest[8], rest[9]]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        2 if rest.len() >= 36 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&rest[..16]);
            let port = u16::from_be_bytes([rest[32], rest[33]]);
            Ok(Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port)))
        }
        0 => Ok(None),
        _ => Err(invalid("unsupported address family")),
    }
}

/// The rest of a v1 line whose first bytes (`start`) are read: what the socket holds is
/// peeked; without the line's end in it, all of it is the line's and is consumed, and the
/// next peek waits for more.
async fn read_v1(stream: &mut TcpStream, start: &[u8]) -> io::Result<Option<SocketAddr>> {
    let mut line = start.to_vec();
    let mut peeked = [0u8; V1_MAX];
    loop {
        if let Some(end) = line.iter().position(|b| *b == b'\n') {
            line.truncate(end + 1);
            return parse_v1(&line);
        }
        let room = V1_MAX - line.len();
        let n = stream.peek(&mut peeked[..room]).await?;
        if n == 0 {
            return Err(invalid("connection closed"));
        }
        let take = match peeked[..n].iter().position(|b| *b == b'\n') {
            Some(end) => end + 1,
            None if n == room => return Err(invalid("v1 header too long")),
            None => n,
        };
        stream.read_exact(&mut peeked[..take]).await?;
        line.extend_from_slice(&peeked[..take]);
    }
}

/// A v1 line, CRLF included.
pub fn parse_v1(line: &[u8]) -> io::Result<Option<SocketAddr>> {
    let text = std::str::from_utf8(line)
        .ok()
        .and_then(|t| t.strip_suffix("\r\n"))
        .ok_or_else(|| invalid("v1 header must end with CRLF"))?;
    let parts: Vec<&str> = text.split(' ').collect();
    match parts.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Ok(None),
        ["PROXY", proto @ ("TCP4" | "TCP6"), src, _dst, sport, _dport] => {
            let ip: IpAddr = src.parse().map_err(|_| invalid("bad source address"))?;
            if ip.is_ipv4() != (*proto == "TCP4") {
                return Err(invalid("address does not match the protocol"));
            }
            let port: u16 = sport.parse().map_err(|_| invalid("bad source port"))?;
            Ok(Some(SocketAddr::new(ip, port)))
        }
        _ => Err(invalid("malformed v1 header")),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    /// Sends `pieces` with a pause after each (the header arriving in fragments), then
    /// reads the header on the accepting side and what follows it.
    async fn read_fragmented(pieces: Vec<Vec<u8>>) -> (io::Result<Option<SocketAddr>>, Vec<u8>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let writer = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            for p in pieces {
                s.write_all(&p).await.expect("write");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            s.shutdown().await.expect("shutdown");
        });
        let (mut s, _) = listener.accept().await.expect("accept");
        let bounded = Duration::from_secs(10);
        let got = tokio::time::timeout(bounded, read_header(&mut s))
            .await
            .expect("the header is read without waiting past the last byte");
        let mut rest = Vec::new();
        if got.is_ok() {
            tokio::time::timeout(bounded, s.read_to_end(&mut rest))
                .await
                .expect("rest")
                .expect("read");
        }
        drop(writer.await);
        (got, rest)
    }

    #[tokio::test]
    async fn fragments_are_waited_for_and_nothing_after_the_header_is_consumed() {
        let v1 = vec![
            b"PRO".to_vec(),
            b"XY TCP4 203.0.113.7 10".to_vec(),
            b".0.0.1 5555 80\r".to_vec(),
            b"\nGET / HTTP/1.1\r\n\r\n".to_vec(),
        ];
        let (got, rest) = read_fragmented(v1).await;
        assert_eq!(
            got.expect("v1"),
            Some("203.0.113.7:5555".parse().expect("addr"))
        );
        assert_eq!(rest, b"GET / HTTP/1.1\r\n\r\n");

        let (got, rest) = read_fragmented(vec![b"PROXY UNKNOWN\r\nX".to_vec()]).await;
        assert_eq!(got.expect("unknown"), None);
        assert_eq!(rest, b"X");

        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[
            0x21, 0x11, 0, 12, 198, 51, 100, 2, 10, 0, 0, 1, 0x04, 0xd2, 0, 80,
        ]);
        let pieces = vec![
            v2[..5].to_vec(),
            v2[5..14].to_vec(),
            [&v2[14..], b"body"].concat(),
        ];
        let (got, rest) = read_fragmented(pieces).await;
        assert_eq!(
            got.expect("v2"),
            Some("198.51.100.2:1234".parse().expect("addr"))
        );
        assert_eq!(rest, b"body");
    }

    #[tokio::test]
    async fn bad_or_cut_headers_are_refused() {
        // A plain request, in two pieces.
        let (got, _) =
            read_fragmented(vec![b"G".to_vec(), b"ET / HTTP/1.1\r\n\r\n".to_vec()]).await;
        assert!(got.is_err());
        // A v1 line longer than the protocol allows, and one cut short by the close.
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
        assert!(read_fragmented(vec![long]).await.0.is_err());
        assert!(
            read_fragmented(vec![b"PROXY TCP4 1.2.3.4".to_vec()])
                .await
                .0
                .is_err()
        );
        assert!(
            read_fragmented(vec![V2_SIGNATURE[..7].to_vec()])
                .await
                .0
                .is_err()
        );
    }

    #[test]
    fn v1_lines() {
        let a = parse_v1(b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n").expect("ok");
        assert_eq!(a, Some("203.0.113.7:5555".parse().expect("addr")));
        let b = parse_v1(b"PROXY TCP6 2001:db8::1 ::1 5555 443\r\n").expect("ok");
        assert_eq!(b, Some("[2001:db8::1]:5555".parse().expect("addr")));
        assert_eq!(parse_v1(b"PROXY UNKNOWN\r\n").expect("ok"), None);
        assert!(parse_v1(b"PROXY TCP4 2001:db8::1 ::1 1 2\r\n").is_err());
        assert!(parse_v1(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n").is_err());
    }
}
