//! A cheap load client for realtime fan-out: opens N SSE connections to `/api/realtime`
//! (PocketBase's protocol, so it drives Basalt and PocketBase alike), subscribes each to
//! `COLLECTION/*`, then creates W records one at a time and measures, per subscriber and
//! record, the time from sending the write to receiving its event.
//!
//! It shares the machine's CPUs with the server it measures, so it is built to cost little:
//! a few threads, each running its own epoll loop (mio) over its share of the sockets, one
//! read buffer per thread instead of one per connection, one `read` per event (a short read
//! means the socket is drained, so no second read to see `WouldBlock`), a timestamp per
//! batch of reads instead of per read, and only the bytes that name the event and its record
//! looked at. `realtime-loadclient-tokio` (the previous client: a tokio task and an 8 KB
//! buffer per connection) measures the same thing and stays for cross-checks.
//!
//! When an event arrived is taken in one of two ways (`RT_LOADCLIENT_STAMP`):
//! - `kernel` (default): the kernel's receive timestamp of the event's last segment
//!   (`SO_TIMESTAMPNS`, read with `recvmsg`), i.e. when the server's bytes reached the
//!   subscriber's socket. The client's own scheduling delay is not in it, so the client
//!   may read in batches: after a poll that brought events it waits
//!   `RT_LOADCLIENT_COALESCE_MS` (default 5) before polling again, so one wake-up reads
//!   many sockets. On loopback each wake-up of the client runs inside the server's
//!   `send()`, so thousands of them per fan-out were CPU the server paid for a receiver
//!   that, in production, sits on another machine.
//! - `read`: when the client read the event (the clock read per batch of reads, as above);
//!   this includes the client's own wake-up and scheduling delay on the shared cores.
//!
//! usage: realtime-loadclient ADDR TOKEN COLLECTION CLIENTS WRITES GAP_MS
//! environment: RT_LOADCLIENT_THREADS (epoll threads, default 1), RT_LOADCLIENT_STAMP
//! (`kernel` or `read`), RT_LOADCLIENT_COALESCE_MS (kernel stamps only)

use std::io::{self, IoSliceMut, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime};

use memchr::memmem;
use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use realtime_loadclient::{Latencies, find, own_cpu_seconds, request, take_response};

/// One read buffer per thread: far larger than an event, so a read that fills it is the
/// only case that needs a second read.
const READ_BUF: usize = 64 * 1024;
/// Reads between two timestamps. A timestamp is taken when `epoll_wait` returns and again
/// after every `STAMP_EVERY` reads, so an arrival is stamped no earlier than its data was
/// ready and no later than its read; the largest gap is reported (`stamp_max_age_ms`).
const STAMP_EVERY: u32 = 16;

/// Reads one HTTP response (status, body) from a keep-alive connection.
fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<(u16, Vec<u8>)> {
    loop {
        if let Some(response) = take_response(buf) {
            return Ok(response);
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Subscribers connecting at once, over all threads (the tokio client's bound).
const CONNECTING: usize = 256;

/// How an event's arrival is stamped (see the crate docs).
#[derive(Clone, Copy, PartialEq)]
enum Stamp {
    /// The kernel's receive timestamp; reads may be batched `coalesce` apart.
    Kernel { coalesce: Duration },
    /// The clock when the client read the event.
    Read,
}

impl Stamp {
    fn from_env() -> Self {
        let coalesce = std::env::var("RT_LOADCLIENT_COALESCE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5);
        match std::env::var("RT_LOADCLIENT_STAMP").as_deref() {
            Ok("read") => Stamp::Read,
            _ => Stamp::Kernel {
                coalesce: Duration::from_millis(coalesce),
            },
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stamp::Kernel { .. } => "kernel",
            Stamp::Read => "read",
        }
    }
}

/// One read; with kernel stamps, through `recvmsg` with the receive timestamp of the last
/// segment it consumed (`None` when the kernel gave none).
fn read_stamped(
    stream: &mut MioStream,
    buf: &mut [u8],
    stamp: Stamp,
    cmsg: &mut [u8],
) -> io::Result<(usize, Option<SystemTime>)> {
    if stamp == Stamp::Read {
        return stream.read(buf).map(|n| (n, None));
    }
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(cmsg), MsgFlags::empty())
        .map_err(io::Error::from)?;
    let at = msg.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|c| match c {
            ControlMessageOwned::ScmTimestampns(ts) => Some(wall_time(ts)),
            _ => None,
        })
    });
    Ok((msg.bytes, at))
}

fn wall_time(ts: TimeSpec) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32)
}

/// The subscribers one epoll thread opens and serves.
struct Share {
    addr: SocketAddr,
    /// The `GET /api/realtime` request each opens its stream with.
    get: Vec<u8>,
    count: usize,
    /// Most connections of this thread waiting for their PB_CONNECT at once.
    in_flight: usize,
}

impl Share {
    /// Starts a non-blocking connect: a handshake the server's full accept queue drops
    /// waits a second for its retry, and a blocking connect would stall every stream.
    fn open(&self) -> io::Result<MioStream> {
        MioStream::connect(self.addr)
    }
}

/// One SSE subscriber as its thread's epoll loop sees it.
struct Subscriber {
    stream: MioStream,
    /// Bytes of an event split across reads (empty, and unallocated, almost always).
    carry: Vec<u8>,
    /// (record n, arrival) per event seen.
    seen: Vec<(usize, SystemTime)>,
    /// The connect completed and `GET /api/realtime` went out.
    get_sent: bool,
    sent_id: bool,
    done: bool,
}

/// What one epoll thread hands back when its subscribers are done (or time is up).
struct Report {
    seen: Vec<Vec<(usize, SystemTime)>>,
    /// Reads that completed an event without a kernel timestamp (read time used instead).
    kernel_stamps_missing: u64,
    stamp_max_age: Duration,
    /// Timestamps taken, and how many of them were used for over 1 ms (preemption).
    stamps: u64,
    stamps_over_1ms: u64,
    /// `epoll_wait` returns that brought at least one record event: how often the
    /// servers' sends found this thread waiting and had to wake it.
    event_batches: u64,
}

/// What the parser looks for, as SIMD searchers built once per thread (a byte-at-a-time
/// scan of every event was a tenth of the client's CPU).
struct Markers {
    frame_end: memmem::Finder<'static>,
    event: memmem::Finder<'static>,
    n: memmem::Finder<'static>,
}

impl Markers {
    fn new(event_marker: &[u8]) -> Self {
        Self {
            frame_end: memmem::Finder::new(b"\n\n"),
            event: memmem::Finder::new(event_marker).into_owned(),
            n: memmem::Finder::new(b"\"n\":"),
        }
    }
}

/// Consumes the complete SSE frames (ending with a blank line) at the start of `bytes` and
/// returns how many bytes they took. Chunked-encoding lines in between are skipped because
/// only the `event:` and `"n":` markers are looked at — the same parsing as the tokio client.
fn scan_frames(
    bytes: &[u8],
    at: SystemTime,
    markers: &Markers,
    sub_seen: &mut Vec<(usize, SystemTime)>,
    sent_id: &mut bool,
    ids: &mpsc::Sender<String>,
) -> usize {
    let mut start = 0;
    while let Some(end) = markers.frame_end.find(&bytes[start..]) {
        let frame = &bytes[start..start + end];
        if !*sent_id && find(frame, b"PB_CONNECT").is_some() {
            let marker = b"\"clientId\":\"";
            if let Some(p) = find(frame, marker) {
                let rest = &frame[p + marker.len()..];
                let len = rest.iter().position(|&c| c == b'"').unwrap_or(rest.len());
                *sent_id = true;
                let _ = ids.send(String::from_utf8_lossy(&rest[..len]).into_owned());
            }
        } else if markers.event.find(frame).is_some()
            && let Some(p) = markers.n.find(frame)
        {
            let n = frame[p + 4..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .fold(0usize, |acc, c| acc * 10 + (c - b'0') as usize);
            sub_seen.push((n, at));
        }
        start += end + 2;
    }
    start
}

/// One thread's epoll loop over its share of the subscribers, until each has seen `writes`
/// events (or its stream ended) or `stop` is set. The sockets stay open afterwards (kept
/// in the returned subscribers): closing 10k sockets while the last event is still being
/// delivered to the others slowed that delivery down, for both servers.
fn epoll_loop(
    share: Share,
    event_marker: Vec<u8>,
    writes: usize,
    ids: mpsc::Sender<String>,
    stop: Arc<AtomicBool>,
    stamp_mode: Stamp,
) -> io::Result<(Report, Vec<Subscriber>)> {
    let markers = Markers::new(&event_marker);
    let mut cmsg = nix::cmsg_space!(TimeSpec);
    let mut kernel_stamps_missing = 0u64;
    let poll = Poll::new()?;
    let mut subs: Vec<Subscriber> = Vec::with_capacity(share.count);
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; READ_BUF];
    let mut left = share.count;
    let (mut attempted, mut awaiting_id) = (0usize, 0usize);
    let mut stamp_max_age = Duration::ZERO;
    let (mut stamps, mut stamps_over_1ms) = (0u64, 0u64);
    let mut event_batches = 0u64;
    let mut age = |stamp: Instant, now: Instant| {
        let a = now - stamp;
        stamps += 1;
        stamps_over_1ms += u64::from(a > Duration::from_millis(1));
        stamp_max_age = stamp_max_age.max(a);
    };
    let mut poll = poll;
    while left > 0 && !stop.load(Ordering::Relaxed) {
        // Top up the connections being opened: at most `in_flight` wait for their
        // PB_CONNECT at a time, as with the tokio client (blasting 10k connects at once
        // overflowed the accept queue, and the dropped handshakes took seconds to retry).
        while attempted < share.count && awaiting_id < share.in_flight.max(1) {
            attempted += 1;
            match share.open() {
                Ok(mut stream) => {
                    if stamp_mode != Stamp::Read {
                        setsockopt(&stream.as_fd(), sockopt::ReceiveTimestampns, &true)
                            .map_err(io::Error::from)?;
                    }
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    poll.registry()
                        .register(&mut stream, Token(subs.len()), interest)?;
                    subs.push(Subscriber {
                        stream,
                        carry: Vec::new(),
                        seen: Vec::with_capacity(writes),
                        get_sent: false,
                        sent_id: false,
                        done: false,
                    });
                    awaiting_id += 1;
                }
                Err(e) => {
                    eprintln!("subscriber: {e}");
                    left -= 1;
                }
            }
        }
        match poll.poll(&mut events, Some(Duration::from_millis(100))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let mut stamp = Instant::now();
        let mut stamp_wall = SystemTime::now();
        let mut reads = 0u32;
        let mut got_event = false;
        for ev in events.iter() {
            let Some(sub) = subs.get_mut(ev.token().0) else {
                continue;
            };
            let had_id = sub.sent_id;
            let seen_before = sub.seen.len();
            if !sub.get_sent && ev.is_writable() && !sub.done {
                // Connected (or failed): send the request once, then only reads matter.
                let sent = match sub.stream.take_error() {
                    Ok(None) => sub.stream.write_all(&share.get).and_then(|()| {
                        poll.registry()
                            .reregister(&mut sub.stream, ev.token(), Interest::READABLE)
                    }),
                    Ok(Some(e)) | Err(e) => Err(e),
                };
                match sent {
                    Ok(()) => sub.get_sent = true,
                    Err(e) => {
                        eprintln!("subscriber: {e}");
                        sub.done = true;
                        left -= 1;
                    }
                }
            }
            while sub.get_sent && !sub.done {
                let (n, kernel_at) =
                    match read_stamped(&mut sub.stream, &mut buf, stamp_mode, &mut cmsg) {
                        Ok((0, _)) => {
                            sub.done = true;
                            left -= 1;
                            break;
                        }
                        Ok(read) => read,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            eprintln!("subscriber: {e}");
                            sub.done = true;
                            left -= 1;
                            break;
                        }
                    };
                reads += 1;
                if reads.is_multiple_of(STAMP_EVERY) {
                    let now = Instant::now();
                    age(stamp, now);
                    stamp = now;
                    stamp_wall = SystemTime::now();
                }
                let at = kernel_at.unwrap_or(stamp_wall);
                let seen_before_read = sub.seen.len();
                let data = &buf[..n];
                if sub.carry.is_empty() {
                    let used =
                        scan_frames(data, at, &markers, &mut sub.seen, &mut sub.sent_id, &ids);
                    sub.carry.extend_from_slice(&data[used..]);
                } else {
                    let mut carry = std::mem::take(&mut sub.carry);
                    carry.extend_from_slice(data);
                    let used =
                        scan_frames(&carry, at, &markers, &mut sub.seen, &mut sub.sent_id, &ids);
                    carry.drain(..used);
                    sub.carry = carry;
                }
                if stamp_mode != Stamp::Read
                    && kernel_at.is_none()
                    && sub.seen.len() > seen_before_read
                {
                    kernel_stamps_missing += 1;
                }
                if sub.seen.len() >= writes {
                    sub.done = true;
                    left -= 1;
                }
                // Edge-triggered epoll: a short read drained the socket, and data arriving
                // after it raises a new edge, so no second read just to see WouldBlock.
                if n < buf.len() {
                    break;
                }
            }
            got_event |= sub.seen.len() > seen_before;
            if !had_id && (sub.sent_id || sub.done) {
                awaiting_id -= 1;
            }
        }
        age(stamp, Instant::now());
        event_batches += u64::from(got_event);
        if let Stamp::Kernel { coalesce } = stamp_mode
            && got_event
            && !coalesce.is_zero()
        {
            // Arrivals are stamped by the kernel: let more sockets become ready before the
            // next poll instead of being woken by each send.
            std::thread::sleep(coalesce);
        }
    }
    let seen = subs
        .iter_mut()
        .map(|s| std::mem::take(&mut s.seen))
        .collect();
    Ok((
        Report {
            seen,
            kernel_stamps_missing,
            stamp_max_age,
            stamps,
            stamps_over_1ms,
            event_batches,
        },
        subs,
    ))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: realtime-loadclient ADDR TOKEN COLLECTION CLIENTS WRITES GAP_MS");
        std::process::exit(2);
    }
    let addr = args[1].clone();
    let sock_addr: SocketAddr = addr.parse().expect("ADDR is ip:port");
    let token = args[2].clone();
    let collection = args[3].clone();
    let clients: usize = args[4].parse().expect("CLIENTS");
    let writes: usize = args[5].parse().expect("WRITES");
    let gap = Duration::from_millis(args[6].parse().expect("GAP_MS"));
    let threads: usize = std::env::var("RT_LOADCLIENT_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let stamp_mode = Stamp::from_env();
    let topic = format!("{collection}/*");

    // 1. Connect every subscriber and open its stream; the epoll threads read the
    //    PB_CONNECT events and report the client ids.
    let started = Instant::now();
    let get =
        format!("GET /api/realtime HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
    let (id_tx, id_rx) = mpsc::channel();
    let (report_tx, report_rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    for t in 0..threads {
        let share = Share {
            addr: sock_addr,
            get: get.clone().into_bytes(),
            count: clients / threads + usize::from(t < clients % threads),
            in_flight: CONNECTING / threads,
        };
        let (marker, id_tx, report_tx, stop) = (
            format!("event:{topic}\n").into_bytes(),
            id_tx.clone(),
            report_tx.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            match epoll_loop(share, marker, writes, id_tx, stop, stamp_mode) {
                Ok((report, _open)) => {
                    let _ = report_tx.send(report);
                    // Keep this thread's sockets open until the process exits (see epoll_loop).
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => eprintln!("epoll loop: {e}"),
            }
        });
    }
    drop(id_tx);
    drop(report_tx);
    let mut client_ids = Vec::with_capacity(clients);
    let id_deadline = Instant::now() + Duration::from_secs(60);
    while client_ids.len() < clients {
        match id_rx.recv_timeout(id_deadline.saturating_duration_since(Instant::now())) {
            Ok(id) => client_ids.push(id),
            Err(_) => break,
        }
    }
    eprintln!(
        "connected {} of {clients} in {:.1}s",
        client_ids.len(),
        started.elapsed().as_secs_f64()
    );

    // 2. Subscribe them over a few keep-alive connections.
    let lanes = 16;
    let subscribed: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..lanes)
            .map(|lane| {
                let (ids, addr, topic) = (&client_ids, &addr, &topic);
                scope.spawn(move || {
                    let mut ok = 0usize;
                    let Ok(mut s) = TcpStream::connect(addr.as_str()) else {
                        return 0;
                    };
                    let mut buf = Vec::new();
                    for id in ids.iter().skip(lane).step_by(lanes) {
                        let body =
                            format!("{{\"clientId\":\"{id}\",\"subscriptions\":[\"{topic}\"]}}");
                        if s.write_all(&request("POST", addr, "/api/realtime", "", &body))
                            .is_err()
                        {
                            break;
                        }
                        match read_response(&mut s, &mut buf) {
                            Ok((204, _)) => ok += 1,
                            Ok((st, b)) => {
                                eprintln!("subscribe: {st} {}", String::from_utf8_lossy(&b))
                            }
                            Err(_) => break,
                        }
                    }
                    ok
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    eprintln!("subscribed {subscribed}");
    let cpu_fanout_start = own_cpu_seconds();
    std::thread::sleep(Duration::from_millis(500));

    // 3. Timed writes, one at a time with a gap, so each measures one whole fan-out.
    let mut w = TcpStream::connect(addr.as_str()).expect("writer connection");
    let mut wbuf = Vec::new();
    let mut sent_at = Vec::with_capacity(writes);
    let mut write_rtt = Vec::with_capacity(writes);
    let path = format!("/api/collections/{collection}/records");
    for n in 0..writes {
        let body = format!("{{\"n\":{n}}}");
        let t0 = Instant::now();
        let t0_wall = SystemTime::now();
        w.write_all(&request("POST", &addr, &path, &token, &body))
            .expect("write");
        let (st, b) = read_response(&mut w, &mut wbuf).expect("write response");
        if st != 200 {
            eprintln!("write {n}: {st} {}", String::from_utf8_lossy(&b));
        }
        write_rtt.push(t0.elapsed().as_secs_f64() * 1000.0);
        sent_at.push(t0_wall);
        std::thread::sleep(gap);
    }

    // 4. Collect arrivals (bounded wait) and report.
    let mut lat = Latencies::new(clients, writes);
    let mut stamp_max_age = Duration::ZERO;
    let (mut stamps, mut stamps_over_1ms, mut event_batches) = (0u64, 0u64, 0u64);
    let mut kernel_stamps_missing = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    for _ in 0..threads {
        let left = deadline.saturating_duration_since(Instant::now());
        let report = match report_rx.recv_timeout(left) {
            Ok(r) => r,
            Err(_) => {
                // Time is up: the threads still waiting report what they have.
                stop.store(true, Ordering::Relaxed);
                match report_rx.recv_timeout(Duration::from_secs(5)) {
                    Ok(r) => r,
                    Err(_) => break,
                }
            }
        };
        stamp_max_age = stamp_max_age.max(report.stamp_max_age);
        stamps += report.stamps;
        stamps_over_1ms += report.stamps_over_1ms;
        event_batches += report.event_batches;
        kernel_stamps_missing += report.kernel_stamps_missing;
        for seen in report.seen {
            for (n, at) in seen {
                if let Some(t0) = sent_at.get(n) {
                    let ms = at.duration_since(*t0).unwrap_or_default().as_secs_f64() * 1000.0;
                    lat.add(n, ms);
                }
            }
        }
    }
    let client_cpu_per_event_ms =
        (own_cpu_seconds() - cpu_fanout_start) * 1000.0 / writes.max(1) as f64;
    let head = lat.report(clients, client_ids.len(), subscribed, write_rtt);
    println!(
        "{head},\"client\":\"epoll\",\"stamp\":\"{}\",\"kernel_stamps_missing\":{kernel_stamps_missing},\"client_threads\":{threads},\"client_cpu_per_event_ms\":{:.1},\"stamp_max_age_ms\":{:.3},\"stamps\":{stamps},\"stamps_over_1ms\":{stamps_over_1ms},\"wakeups_per_event\":{:.0}}}",
        stamp_mode.name(),
        client_cpu_per_event_ms,
        stamp_max_age.as_secs_f64() * 1000.0,
        event_batches as f64 / writes.max(1) as f64,
    );
    std::process::exit(0);
}
