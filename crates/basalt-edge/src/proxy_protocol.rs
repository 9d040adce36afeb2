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
pub async fn read_header(stream: &mut TcpStream) -> io::Result<Option<SocketAddr>> {
    let mut sig = [0u8; 12];
    // Peek first so nothing past the header is consumed.
    loop {
        let n = stream.peek(&mut sig).await?;
        if n == 0 {
            return Err(invalid("connection closed"));
        }
        if n >= 6 && &sig[..6] == b"PROXY " {
            return read_v1(stream).await;
        }
        if n == 12 {
            break;
        }
        if !V2_SIGNATURE.starts_with(&sig[..n]) && !b"PROXY ".starts_with(&sig[..n.min(6)]) {
            return Err(invalid("missing header"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    if &sig != V2_SIGNATURE {
        return Err(invalid("missing header"));
    }
    let mut head = [0u8; 16];
    stream.read_exact(&mut head).await?;
    let ver_cmd = head[12];
    let family = head[13];
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if ver_cmd >> 4 != 2 {
        return Err(invalid("unsupported version"));
    }
    let mut rest = vec![0u8; len];
    stream.read_exact(&mut rest).await?;
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

async fn read_v1(stream: &mut TcpStream) -> io::Result<Option<SocketAddr>> {
    let mut peeked = [0u8; V1_MAX];
    let n = loop {
        let n = stream.peek(&mut peeked).await?;
        if peeked[..n].contains(&b'\n') || n == V1_MAX {
            break n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    let end = peeked[..n]
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| invalid("v1 header too long"))?;
    let mut line = vec![0u8; end + 1];
    stream.read_exact(&mut line).await?;
    parse_v1(&line)
}

fn parse_v1(line: &[u8]) -> io::Result<Option<SocketAddr>> {
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
    use super::*;

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
