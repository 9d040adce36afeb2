//! UDP streams: a session per client address, each with its own connected socket to the
//! pool target picked when the session opened, so replies find their client. The session
//! table is bounded and a session is forgotten after its idle timeout.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::StreamRuntime;
use crate::metrics::ConnectionMeters;
use crate::pool::{Lease, PickContext};

/// Largest datagram relayed (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;

struct Session {
    upstream: UdpSocket,
    /// Milliseconds since `epoch` of the last datagram either way.
    last: AtomicU64,
    epoch: Instant,
    meters: ConnectionMeters,
    lease: Lease,
    /// Set once the target answered, so passive health counts it as up once.
    answered: AtomicBool,
}

impl Session {
    fn touch(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

type Table = Arc<Mutex<HashMap<SocketAddr, Arc<Session>>>>;

fn lock(t: &Table) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Arc<Session>>> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

pub async fn relay(
    socket: UdpSocket,
    runtime: Arc<ArcSwap<StreamRuntime>>,
    mut stopped: watch::Receiver<bool>,
) {
    let socket = Arc::new(socket);
    let table: Table = Arc::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = stopped.changed() => return,
        };
        let (n, client) = match received {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "stream datagram receive failed");
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let existing = lock(&table).get(&client).cloned();
        let session = match existing {
            Some(s) => s,
            None => {
                let rt = runtime.load_full();
                match open(&rt, client, &table).await {
                    Some(s) => {
                        tokio::spawn(answer(
                            s.clone(),
                            client,
                            socket.clone(),
                            table.clone(),
                            rt,
                            stopped.clone(),
                        ));
                        s
                    }
                    None => continue,
                }
            }
        };
        session.touch();
        // A connected UDP socket only fails to send on local trouble; the datagram is lost
        // like any other UDP datagram would be.
        if session.upstream.send(&buf[..n]).await.is_ok() {
            session.meters.bytes_in.inc_by(n as u64);
        }
    }
}

/// Opens a session for a new client, or refuses it (counted) and returns `None`.
async fn open(rt: &StreamRuntime, client: SocketAddr, table: &Table) -> Option<Arc<Session>> {
    let metrics = rt.stream_metrics();
    if !rt.admits(client.ip()) {
        metrics.refused(&rt.name, "ip_denied");
        return None;
    }
    if lock(table).len() >= rt.max_sessions {
        metrics.refused(&rt.name, "session_limit");
        return None;
    }
    let headers = http::HeaderMap::new();
    let ctx = PickContext {
        client_ip: client.ip(),
        headers: &headers,
    };
    let Ok(lease) = rt.pool.pick(&ctx, None) else {
        metrics.refused(&rt.name, "no_target");
        return None;
    };
    let started = Instant::now();
    let upstream = match connect(lease.target.authority.as_str()).await {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(stream = %rt.name, target = %lease.target.address, error = %e, "udp target unreachable");
            rt.pool.observe(&lease, started.elapsed(), false);
            metrics.connect_failed(&rt.name, &lease.target.address);
            return None;
        }
    };
    let meters = metrics.opened(&rt.name, &lease.target.address);
    let session = Arc::new(Session {
        upstream,
        last: AtomicU64::new(0),
        epoch: Instant::now(),
        meters,
        lease,
        answered: AtomicBool::new(false),
    });
    lock(table).insert(client, session.clone());
    Some(session)
}

async fn connect(target: &str) -> io::Result<UdpSocket> {
    let addr = tokio::net::lookup_host(target)
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "target has no address"))?;
    let local: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(addr).await?;
    Ok(socket)
}

/// Relays the target's datagrams back to the client until the session goes idle, the
/// target refuses (an ICMP port unreachable), or the listener stops.
async fn answer(
    session: Arc<Session>,
    client: SocketAddr,
    socket: Arc<UdpSocket>,
    table: Table,
    rt: Arc<StreamRuntime>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let last = Duration::from_millis(session.last.load(Ordering::Relaxed));
        let deadline = tokio::time::Instant::from_std(session.epoch + last + rt.idle_timeout);
        tokio::select! {
            r = session.upstream.recv(&mut buf) => match r {
                Ok(n) => {
                    session.touch();
                    if !session.answered.swap(true, Ordering::Relaxed) {
                        rt.pool.observe(&session.lease, session.epoch.elapsed(), true);
                    }
                    if socket.send_to(&buf[..n], client).await.is_ok() {
                        session.meters.bytes_out.inc_by(n as u64);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    rt.pool.observe(&session.lease, session.epoch.elapsed(), false);
                    rt.stream_metrics().connect_failed(&rt.name, &session.lease.target.address);
                    break;
                }
                Err(_) => break,
            },
            _ = tokio::time::sleep_until(deadline) => {
                if session.last.load(Ordering::Relaxed) == last.as_millis() as u64 {
                    break;
                }
            }
            _ = stopped.changed() => break,
        }
    }
    let mut t = lock(&table);
    if t.get(&client).is_some_and(|s| Arc::ptr_eq(s, &session)) {
        t.remove(&client);
    }
}
