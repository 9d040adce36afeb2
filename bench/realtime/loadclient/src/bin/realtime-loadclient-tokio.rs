//! The previous realtime load client (tokio: a task and an 8 KB read buffer per
//! connection), kept to cross-check `realtime-loadclient`, which measures the same thing
//! more cheaply. Opens N SSE connections to `/api/realtime`
//! (PocketBase's protocol, so it drives Basalt and PocketBase alike), subscribes each to
//! `COLLECTION/*`, then creates W records one at a time and measures, per subscriber and
//! record, the time from sending the write to receiving its event. Plain tokio (two
//! threads), hand-rolled HTTP/1.1, no allocation per event: the client must cost far less than the server it loads.
//!
//! usage: realtime-loadclient-tokio ADDR TOKEN COLLECTION CLIENTS WRITES GAP_MS

use std::sync::Arc;
use std::time::{Duration, Instant};

use realtime_loadclient::{Latencies, find, own_cpu_seconds, request, take_response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};

/// Reads one HTTP response (status, body) from a keep-alive connection.
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<(u16, Vec<u8>)> {
    loop {
        if let Some(response) = take_response(buf) {
            return Ok(response);
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One subscriber: connects, reports its client id, then reports (record n, arrival) for
/// every event until it has seen `writes` of them or the stream ends.
async fn subscriber(
    addr: String,
    topic: String,
    writes: usize,
    ids: mpsc::UnboundedSender<String>,
    arrivals: mpsc::UnboundedSender<Vec<(usize, Instant)>>,
) {
    let mut seen = Vec::with_capacity(writes);
    let mut socket = None;
    let result: std::io::Result<()> = async {
        let s = socket.insert(TcpStream::connect(&addr).await?);
        s.write_all(
            format!(
                "GET /api/realtime HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
        let mut buf = Vec::with_capacity(2048);
        let mut chunk = vec![0u8; 8192];
        let mut sent_id = false;
        let event_marker = format!("event:{topic}\n").into_bytes();
        while seen.len() < writes {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            let now = Instant::now();
            buf.extend_from_slice(&chunk[..n]);
            // Events end with a blank line; chunked-encoding lines in between are skipped
            // because only the `event:` and `"n":` markers are looked at. No allocation
            // per event: the client must stay cheaper than the servers it measures.
            while let Some(end) = find(&buf, b"\n\n") {
                let frame = &buf[..end];
                if !sent_id && find(frame, b"PB_CONNECT").is_some() {
                    let marker = b"\"clientId\":\"";
                    if let Some(at) = find(frame, marker) {
                        let rest = &frame[at + marker.len()..];
                        let len = rest.iter().position(|&c| c == b'"').unwrap_or(rest.len());
                        sent_id = true;
                        let _ = ids.send(String::from_utf8_lossy(&rest[..len]).into_owned());
                    }
                } else if find(frame, &event_marker).is_some()
                    && let Some(at) = find(frame, b"\"n\":")
                {
                    let n = frame[at + 4..]
                        .iter()
                        .take_while(|c| c.is_ascii_digit())
                        .fold(0usize, |acc, c| acc * 10 + (c - b'0') as usize);
                    seen.push((n, now));
                }
                buf.drain(..end + 2);
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("subscriber: {e}");
    }
    let _ = arrivals.send(seen);
    // The connection stays open until the process exits: closing 10k sockets while the
    // last event is still being delivered to the others would slow that delivery down
    // (it did: the last write's tail was 2-4x the others', for both servers).
    if socket.is_some() {
        std::future::pending::<()>().await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: realtime-loadclient-tokio ADDR TOKEN COLLECTION CLIENTS WRITES GAP_MS");
        std::process::exit(2);
    }
    let addr = args[1].clone();
    let token = args[2].clone();
    let collection = args[3].clone();
    let clients: usize = args[4].parse().expect("CLIENTS");
    let writes: usize = args[5].parse().expect("WRITES");
    let gap = Duration::from_millis(args[6].parse().expect("GAP_MS"));
    let topic = format!("{collection}/*");

    // 1. Connect every subscriber (bounded concurrency while connecting).
    let (id_tx, mut id_rx) = mpsc::unbounded_channel();
    let (arr_tx, mut arr_rx) = mpsc::unbounded_channel();
    let connecting = Arc::new(Semaphore::new(256));
    let started = Instant::now();
    for _ in 0..clients {
        let permit = connecting.clone().acquire_owned().await.expect("semaphore");
        let (addr, topic, id_tx, arr_tx) =
            (addr.clone(), topic.clone(), id_tx.clone(), arr_tx.clone());
        tokio::spawn(async move {
            let (inner_tx, mut inner_rx) = mpsc::unbounded_channel();
            let task = tokio::spawn(subscriber(addr, topic, writes, inner_tx, arr_tx));
            if let Some(id) = inner_rx.recv().await {
                let _ = id_tx.send(id);
            }
            drop(permit);
            let _ = task.await;
        });
    }
    drop(id_tx);
    drop(arr_tx);
    let mut client_ids = Vec::with_capacity(clients);
    while client_ids.len() < clients {
        match tokio::time::timeout(Duration::from_secs(60), id_rx.recv()).await {
            Ok(Some(id)) => client_ids.push(id),
            _ => break,
        }
    }
    eprintln!(
        "connected {} of {clients} in {:.1}s",
        client_ids.len(),
        started.elapsed().as_secs_f64()
    );

    // 2. Subscribe them over a few keep-alive connections.
    let lanes = 16;
    let ids = Arc::new(client_ids);
    let mut lanes_done = Vec::new();
    for lane in 0..lanes {
        let (ids, addr, topic) = (ids.clone(), addr.clone(), topic.clone());
        lanes_done.push(tokio::spawn(async move {
            let mut ok = 0usize;
            let Ok(mut s) = TcpStream::connect(&addr).await else {
                return 0;
            };
            let mut buf = Vec::new();
            for id in ids.iter().skip(lane).step_by(lanes) {
                let body = format!("{{\"clientId\":\"{id}\",\"subscriptions\":[\"{topic}\"]}}");
                if s.write_all(&request("POST", &addr, "/api/realtime", "", &body))
                    .await
                    .is_err()
                {
                    break;
                }
                match read_response(&mut s, &mut buf).await {
                    Ok((204, _)) => ok += 1,
                    Ok((st, b)) => eprintln!("subscribe: {st} {}", String::from_utf8_lossy(&b)),
                    Err(_) => break,
                }
            }
            ok
        }));
    }
    let mut subscribed = 0;
    for l in lanes_done {
        subscribed += l.await.unwrap_or(0);
    }
    eprintln!("subscribed {subscribed}");
    let cpu_fanout_start = own_cpu_seconds();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 3. Timed writes, one at a time with a gap, so each measures one whole fan-out.
    let mut w = TcpStream::connect(&addr).await.expect("writer connection");
    let mut wbuf = Vec::new();
    let mut sent_at = Vec::with_capacity(writes);
    let mut write_rtt = Vec::with_capacity(writes);
    let path = format!("/api/collections/{collection}/records");
    for n in 0..writes {
        let body = format!("{{\"n\":{n}}}");
        let t0 = Instant::now();
        w.write_all(&request("POST", &addr, &path, &token, &body))
            .await
            .expect("write");
        let (st, b) = read_response(&mut w, &mut wbuf)
            .await
            .expect("write response");
        if st != 200 {
            eprintln!("write {n}: {st} {}", String::from_utf8_lossy(&b));
        }
        write_rtt.push(t0.elapsed().as_secs_f64() * 1000.0);
        sent_at.push(t0);
        tokio::time::sleep(gap).await;
    }

    // 4. Collect arrivals (bounded wait) and report.
    let mut lat = Latencies::new(clients, writes);
    let mut reporting = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while reporting < subscribed {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, arr_rx.recv()).await {
            Ok(Some(seen)) => {
                reporting += 1;
                for (n, at) in seen {
                    if let Some(t0) = sent_at.get(n) {
                        let ms = at.saturating_duration_since(*t0).as_secs_f64() * 1000.0;
                        lat.add(n, ms);
                    }
                }
            }
            _ => break,
        }
    }
    let client_cpu_per_event_ms =
        (own_cpu_seconds() - cpu_fanout_start) * 1000.0 / writes.max(1) as f64;
    let head = lat.report(clients, ids.len(), subscribed, write_rtt);
    println!(
        "{head},\"client\":\"tokio\",\"client_cpu_per_event_ms\":{client_cpu_per_event_ms:.1}}}"
    );
    std::process::exit(0);
}
