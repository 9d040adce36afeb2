//! L4 streams through the real binary: `basalt proxy --config` with only `[[edge.streams]]`
//! forwards TCP and UDP to real echo upstreams, and a SIGHUP adding a stream keeps an open
//! TCP connection relaying.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A TCP upstream echoing every byte (bounded: it serves until the test's runtime ends).
async fn tcp_echo() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn udp_echo() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = s.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let _ = s.send_to(&buf[..n], from).await;
        }
    });
    addr
}

/// Connects until the stream listens (bounded), then checks one echo round trip.
async fn echo_through(port: u16, msg: &[u8]) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await {
            s.write_all(msg).await.expect("write");
            let mut back = vec![0u8; msg.len()];
            tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut back))
                .await
                .expect("bounded")
                .expect("echo");
            assert_eq!(back, msg);
            return s;
        }
        assert!(Instant::now() < deadline, "stream on {port} never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn config(tcp_ports: &[u16], udp_port: u16, tcp_up: SocketAddr, udp_up: SocketAddr) -> String {
    // Two workers, not one per core: the suites start many edges at once.
    let mut c = String::from("[edge]\nworkers = 2\n");
    for p in tcp_ports {
        c.push_str(&format!(
            "[[edge.streams]]\nlisten = \"127.0.0.1:{p}\"\npool = \"tcp\"\n"
        ));
    }
    c.push_str(&format!(
        "[[edge.streams]]\nlisten = \"127.0.0.1:{udp_port}\"\nprotocol = \"udp\"\npool = \"udp\"\n\
         [edge.pools.tcp]\ntargets = [{{ address = \"{tcp_up}\" }}]\n\
         [edge.pools.udp]\ntargets = [{{ address = \"{udp_up}\" }}]\n"
    ));
    c
}

#[tokio::test]
async fn basalt_proxy_forwards_tcp_and_udp_and_reloads_streams() {
    let (tcp_up, udp_up) = (tcp_echo().await, udp_echo().await);
    let (first, second, udp) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("edge.toml");
    std::fs::write(&file, config(&[first], udp, tcp_up, udp_up)).expect("write");
    let proxy = Process(
        Command::new(env!("CARGO_BIN_EXE_basalt"))
            .args(["proxy", "--config"])
            .arg(&file)
            .env("BASALT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("basalt proxy starts"),
    );
    let mut live = echo_through(first, b"tcp hello").await;

    let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    client
        .send_to(b"udp hello", ("127.0.0.1", udp))
        .await
        .expect("send");
    let mut buf = [0u8; 64];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
        .await
        .expect("bounded")
        .expect("reply");
    assert_eq!(&buf[..n], b"udp hello");

    std::fs::write(&file, config(&[first, second], udp, tcp_up, udp_up)).expect("write");
    let status = Command::new("kill")
        .args(["-HUP", &proxy.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    echo_through(second, b"added by reload").await;
    live.write_all(b"still open").await.expect("write");
    let mut back = [0u8; 10];
    tokio::time::timeout(Duration::from_secs(5), live.read_exact(&mut back))
        .await
        .expect("bounded")
        .expect("echo");
    assert_eq!(&back, b"still open");
}
