//! Real TCP and UDP upstreams for the L4 stream tests: echo servers on 127.0.0.1 that
//! announce their name, and helpers to read the edge's stream metrics.
#![allow(dead_code)]

pub use super::edge_config;

use std::net::SocketAddr;
use std::time::Duration;

use basalt_edge::Edge;
use basalt_edge::l4::StreamProtocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// A TCP upstream: sends `NAME\n`, echoes what it reads, and after the client's half-close
/// sends `EOF\n` and closes. Dropping it stops accepting (the port refuses connections).
pub struct TcpEcho {
    pub name: String,
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TcpEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn tcp_echo(name: &str) -> TcpEcho {
    tcp_echo_on(name, "127.0.0.1:0".parse().expect("addr")).await
}

/// A TCP echo upstream on a given address (to bring a stopped one back on its port).
pub async fn tcp_echo_on(name: &str, addr: SocketAddr) -> TcpEcho {
    let listener = TcpListener::bind(addr).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let n = name.to_string();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(echo(stream, n.clone()));
        }
    });
    TcpEcho {
        name: name.to_string(),
        addr,
        task,
    }
}

async fn echo(mut s: TcpStream, name: String) {
    if s.write_all(format!("{name}\n").as_bytes()).await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) => {
                let _ = s.write_all(b"EOF\n").await;
                let _ = s.shutdown().await;
                return;
            }
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// Connects through the edge and reads the upstream's name line (bounded).
pub async fn connect_named(addr: SocketAddr) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let name = read_line(&mut s).await;
    (s, name)
}

/// Reads one `\n`-terminated line, or what arrived before EOF or a 5 s timeout.
pub async fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(1) = s.read(&mut byte).await {
            if byte[0] == b'\n' {
                break;
            }
            line.push(byte[0]);
        }
    })
    .await;
    String::from_utf8_lossy(&line).into_owned()
}

/// A UDP upstream answering every datagram with `NAME:` followed by the datagram.
pub struct UdpEcho {
    pub name: String,
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn udp_echo(name: &str) -> UdpEcho {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    let n = name.to_string();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        while let Ok((len, from)) = socket.recv_from(&mut buf).await {
            let mut reply = format!("{n}:").into_bytes();
            reply.extend_from_slice(&buf[..len]);
            let _ = socket.send_to(&reply, from).await;
        }
    });
    UdpEcho {
        name: name.to_string(),
        addr,
        task,
    }
}

/// Sends one datagram and waits (bounded) for the reply.
pub async fn udp_ask(socket: &UdpSocket, to: SocketAddr, msg: &str) -> Option<String> {
    socket.send_to(msg.as_bytes(), to).await.expect("send");
    let mut buf = vec![0u8; 65_535];
    match tokio::time::timeout(Duration::from_millis(1500), socket.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        _ => None,
    }
}

pub async fn start(toml: &str) -> Edge {
    let cfg = edge_config::parse(toml).expect("config");
    Edge::start(cfg, None, None).await.expect("edge starts")
}

pub fn tcp_addr(edge: &Edge, listen: &str) -> SocketAddr {
    edge.stream_addr(StreamProtocol::Tcp, listen)
        .expect("tcp stream running")
}

pub fn udp_addr(edge: &Edge, listen: &str) -> SocketAddr {
    edge.stream_addr(StreamProtocol::Udp, listen)
        .expect("udp stream running")
}

/// `targets = [...]` for a pool over these addresses.
pub fn targets(addrs: &[SocketAddr]) -> String {
    let t = addrs
        .iter()
        .map(|a| format!("{{ address = \"{a}\" }}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("targets = [{t}]")
}

/// The value of the first series of `metric` whose labels contain every `labels` pair.
pub fn metric(edge: &Edge, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let text = edge.metrics().render();
    let name = format!("basalt_edge_{metric}{{");
    text.lines()
        .filter(|l| l.starts_with(&name))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Polls `cond` every 20 ms for up to 5 s.
pub async fn eventually(mut cond: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..250 {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
