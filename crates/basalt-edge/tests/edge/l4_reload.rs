//! Reloading stream listeners: one added and one removed atomically while a TCP connection
//! through the removed one stays open; an invalid stream is rejected and nothing changes.

use crate::support::l4::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn config(streams: &[&str], pool: &str) -> String {
    let mut s = String::from("[edge]\n");
    for listen in streams {
        s.push_str(&format!(
            "[[edge.streams]]\nlisten = \"{listen}\"\npool = \"p\"\n"
        ));
    }
    s.push_str(&format!("[edge.pools.p]\n{pool}\n"));
    s
}

#[tokio::test]
async fn streams_are_added_and_removed_and_a_live_connection_survives() {
    let a = tcp_echo("a").await;
    let pool = targets(&[a.addr]);
    let edge = start(&config(&["127.0.0.1:0"], &pool)).await;
    let first = tcp_addr(&edge, "127.0.0.1:0");
    let (mut live, name) = connect_named(first).await;
    assert_eq!(name, "a");

    // Invalid: an unknown pool. Rejected; the running stream keeps serving.
    let bad = config(&["127.0.0.1:0", "127.0.0.2:0"], &pool)
        .replace("pool = \"p\"\n[edge.pools", "pool = \"nope\"\n[edge.pools");
    let err = edge
        .apply(edge_config::parse(&bad).expect("parses"))
        .await
        .expect_err("unknown pool rejected");
    assert!(err.to_string().contains("unknown pool"), "{err}");
    assert_eq!(connect_named(first).await.1, "a");

    // Replace the stream by another one.
    edge.apply(edge_config::parse(&config(&["127.0.0.2:0"], &pool)).expect("parses"))
        .await
        .expect("reload");
    let second = tcp_addr(&edge, "127.0.0.2:0");
    assert!(
        edge.stream_addr(basalt_edge::l4::StreamProtocol::Tcp, "127.0.0.1:0")
            .is_none()
    );
    assert_eq!(connect_named(second).await.1, "a");
    assert!(
        eventually(async || TcpStream::connect(first).await.is_err()).await,
        "the removed stream stops accepting"
    );
    // The connection accepted before the reload still relays both ways.
    live.write_all(b"still here\n").await.expect("write");
    assert_eq!(read_line(&mut live).await, "still here");
}
