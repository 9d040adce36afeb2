//! The PROXY protocol v2 header a TCP stream sends to its upstream, so the upstream sees
//! the client's address instead of the edge's.

use std::net::{IpAddr, SocketAddr};

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A `PROXY` command over TCP from `client` to `local` (the address the client reached).
/// Mixed families are sent as IPv6, IPv4 addresses mapped.
pub fn v2(client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(52);
    out.extend_from_slice(V2_SIGNATURE);
    out.push(0x21); // version 2, PROXY
    match (client.ip(), local.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            out.push(0x11); // AF_INET, STREAM
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&src.octets());
            out.extend_from_slice(&dst.octets());
        }
        (src, dst) => {
            let six = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(0x21); // AF_INET6, STREAM
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&six(src).octets());
            out.extend_from_slice(&six(dst).octets());
        }
    }
    out.extend_from_slice(&client.port().to_be_bytes());
    out.extend_from_slice(&local.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_header_reads_back_with_the_edges_own_parser() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cases = [
            ("203.0.113.7:5555", "10.0.0.1:7000"),
            ("[2001:db8::1]:4444", "[::1]:7000"),
            ("198.51.100.2:1234", "[::1]:7000"),
        ];
        for (client, local) in cases {
            let client: SocketAddr = client.parse().expect("client");
            let local: SocketAddr = local.parse().expect("local");
            let mut header = v2(client, local);
            header.extend_from_slice(b"payload");
            let writer = tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
                s.write_all(&header).await.expect("write");
                s
            });
            let (mut s, _) = listener.accept().await.expect("accept");
            let got = crate::proxy_protocol::read_header(&mut s)
                .await
                .expect("parsed");
            let want = match client.ip() {
                IpAddr::V4(v4) if local.is_ipv6() => {
                    SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), client.port())
                }
                _ => client,
            };
            assert_eq!(got, Some(want));
            let mut rest = [0u8; 7];
            tokio::io::AsyncReadExt::read_exact(&mut s, &mut rest)
                .await
                .expect("payload");
            assert_eq!(&rest, b"payload");
            drop(writer.await);
        }
    }
}
