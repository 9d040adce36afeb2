//! A property-based fuzz test of the edge's own request-body following: the framing
//! guard's chunked and length states, and the chunk follower the fast path and
//! `h1::client` use on upstream bodies (`wire::chunked::Chunks`, which the guard also
//! judges its chunk lines with). Only stable Rust is at hand,
//! so proptest stands in for a coverage-guided fuzzer: valid chunked bodies, the same
//! mutated (bytes inserted, removed, replaced from an alphabet of framing bytes) and raw
//! noise, each fed in pieces split at random points, are checked against a plain
//! reference decoder written from RFC 9112 7.1 and the grammar both decoders promise.
//!
//! Invariants: nothing panics; the verdict (complete at byte N, malformed, or still
//! incomplete) is the reference's; the guard passes on exactly the bytes it was sent, in
//! order, never more, and nothing of a broken line or after it; a malformed body is
//! recorded as the client's fault (400) and counted as `framing`; the follower decodes
//! exactly the reference's data. Bounded: a few thousand cases, well under a second.
//! `BASALT_FUZZ_CASES` raises the count for a longer run.

use std::sync::Mutex;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::*;
use crate::wire::chunked::Chunks;

const CHUNKED_HEAD: &[u8] = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
/// The request after the body: found whole exactly when the body ended where it should.
const NEXT: &[u8] = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n";

/// What a decoder makes of a chunked body at the front of its input.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    /// The body ends after this many bytes (its last CRLF included).
    Complete(usize),
    /// Broken framing; the bytes before this offset were well formed.
    Malformed(usize),
    /// More bytes are needed.
    Incomplete,
}

/// The reference decoder: the chunk grammar as the edge documents it, line by line.
/// `max_line` bounds a size or trailer line, CRLF included (the guard's 4096), also while
/// it is still arriving. Returns the verdict and the decoded data.
fn reference(input: &[u8], max_line: Option<usize>) -> (Verdict, Vec<u8>) {
    let mut data = Vec::new();
    let mut pos = 0;
    let too_long = |len: usize| max_line.is_some_and(|m| len > m);
    // A line from `pos`: Ok(Some(text without CRLF)), Ok(None) when incomplete, Err when
    // malformed.
    let line = |pos: usize| -> Result<Option<&[u8]>, ()> {
        let rest = &input[pos..];
        let Some(lf) = rest.iter().position(|b| *b == b'\n') else {
            return if too_long(rest.len()) {
                Err(())
            } else {
                Ok(None)
            };
        };
        let whole = &rest[..=lf];
        if too_long(whole.len()) {
            return Err(());
        }
        match whole.strip_suffix(b"\r\n") {
            Some(text) if !text.iter().any(|b| matches!(b, b'\r' | b'\n')) => Ok(Some(text)),
            _ => Err(()),
        }
    };
    loop {
        let text = match line(pos) {
            Err(()) => return (Verdict::Malformed(pos), data),
            Ok(None) => return (Verdict::Incomplete, data),
            Ok(Some(t)) => t,
        };
        let digits = text.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let after = &text[digits..];
        let ws = after
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        let rest = &after[ws..];
        if digits == 0 || digits > 15 || !(rest.is_empty() || rest[0] == b';') {
            return (Verdict::Malformed(pos), data);
        }
        let size = text[..digits].iter().fold(0u64, |n, d| {
            n * 16 + u64::from((*d as char).to_digit(16).unwrap_or(0))
        });
        pos += text.len() + 2;
        if size == 0 {
            loop {
                match line(pos) {
                    Err(()) => return (Verdict::Malformed(pos), data),
                    Ok(None) => return (Verdict::Incomplete, data),
                    Ok(Some(t)) => {
                        pos += t.len() + 2;
                        if t.is_empty() {
                            return (Verdict::Complete(pos), data);
                        }
                    }
                }
            }
        }
        let available = (input.len() - pos) as u64;
        if available < size {
            data.extend_from_slice(&input[pos..]);
            return (Verdict::Incomplete, data);
        }
        let size = size as usize;
        data.extend_from_slice(&input[pos..pos + size]);
        pos += size;
        for want in [b'\r', b'\n'] {
            match input.get(pos) {
                None => return (Verdict::Incomplete, data),
                Some(b) if *b != want => return (Verdict::Malformed(pos), data),
                Some(_) => pos += 1,
            }
        }
    }
}

/// Splits `input` at the given points (taken modulo its length, sorted, deduplicated).
fn pieces<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|c| c % (input.len() + 1))
        .chain([0, input.len()])
        .collect();
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| &input[w[0]..w[1]]).collect()
}

/// What the guard did with an input.
struct Guarded {
    /// What it passed on of the client's bytes (a refused head's stand-in taken off).
    out: Vec<u8>,
    state: State,
    /// Heads it accepted.
    heads: u64,
    /// The client fault it recorded for the body.
    fault: Option<(StatusCode, &'static str)>,
    /// What it counted as rejected.
    rejected: Vec<&'static str>,
}

/// Runs the guard over `input` split at `cuts`.
fn guard(input: &[u8], cuts: &[usize]) -> Guarded {
    let conn = ConnState::new();
    let limits = GuardLimits {
        max_header_bytes: 16 * 1024,
        max_headers: 100,
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(10),
    };
    let rejected = Arc::new(Mutex::new(Vec::new()));
    let seen = rejected.clone();
    let on_reject = Arc::new(move |reason: &'static str| {
        seen.lock().unwrap_or_else(|p| p.into_inner()).push(reason);
    });
    let mut g = GuardedIo::new((), conn.clone(), limits, on_reject);
    for piece in pieces(input, cuts) {
        g.process(piece);
    }
    let rejected = rejected.lock().unwrap_or_else(|p| p.into_inner()).clone();
    // A refused head is handed on as the stand-in; the client's bytes are what came before.
    let mut out = g.out;
    if g.state == State::Refused {
        assert!(out.ends_with(STAND_IN), "a refusal without its stand-in");
        out.truncate(out.len() - STAND_IN.len());
    }
    Guarded {
        out,
        state: g.state,
        heads: g.heads,
        fault: conn.body_fault(),
        rejected,
    }
}

/// Runs the chunk follower over `body` split at `cuts`, decoding data with `next_data`
/// and following trailers with `feed`, as `h1::client` does.
fn follower(body: &[u8], cuts: &[usize]) -> (Verdict, Vec<u8>) {
    let mut c = Chunks::new();
    let mut data = Vec::new();
    let mut consumed = 0;
    for piece in pieces(body, cuts) {
        let mut at = 0;
        while at < piece.len() {
            if c.done() {
                return (Verdict::Complete(consumed), data);
            }
            let step = if c.in_trailers() {
                c.feed(&piece[at..]).map(|n| (n, 0))
            } else {
                c.next_data(&piece[at..])
            };
            let Ok((framing, n)) = step else {
                return (Verdict::Malformed(consumed), data);
            };
            data.extend_from_slice(&piece[at + framing..at + framing + n]);
            at += framing + n;
            consumed += framing + n;
        }
    }
    if c.done() {
        (Verdict::Complete(consumed), data)
    } else {
        (Verdict::Incomplete, data)
    }
}

/// A valid chunked body: chunks with random data, sizes in either case with leading
/// zeros, extensions (sometimes near the guard's line bound), then trailer fields.
fn valid_body() -> impl Strategy<Value = Vec<u8>> {
    let ext = prop_oneof![
        6 => Just(String::new()),
        2 => prop::sample::select(vec![";a=b", " ;x", "\t", "; q=\"v\"", ";", " \t ;k"])
            .prop_map(str::to_string),
        1 => (4070usize..4110).prop_map(|n| format!(";{}", "e".repeat(n))),
    ];
    let chunk = (
        prop::collection::vec(any::<u8>(), 1..40),
        ext.clone(),
        any::<bool>(),
        0usize..4,
    );
    (
        prop::collection::vec(chunk, 0..5),
        ext,
        prop::collection::vec("[A-Za-z-]{1,8}: [ -~]{0,12}", 0..3),
    )
        .prop_map(|(chunks, last_ext, trailers)| {
            let mut out = Vec::new();
            for (data, ext, upper, zeros) in chunks {
                let size = if upper {
                    format!("{:X}", data.len())
                } else {
                    format!("{:x}", data.len())
                };
                out.extend_from_slice("0".repeat(zeros).as_bytes());
                out.extend_from_slice(size.as_bytes());
                out.extend_from_slice(ext.as_bytes());
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&data);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0");
            out.extend_from_slice(last_ext.as_bytes());
            out.extend_from_slice(b"\r\n");
            for t in trailers {
                out.extend_from_slice(t.trim_end().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"\r\n");
            out
        })
}

/// A change to a body: at a position (modulo its length), remove, insert or replace.
#[derive(Debug, Clone)]
enum Mutation {
    Remove(usize),
    Insert(usize, u8),
    Replace(usize, u8),
}

/// Bytes that matter to chunked framing, and any byte.
fn framing_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(b"\r\n;: \t0fFgz9".to_vec()),
        1 => any::<u8>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), framing_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), framing_byte()).prop_map(|(i, b)| Mutation::Replace(i, b)),
    ]
}

fn mutate(mut body: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = body.len();
        match *m {
            Mutation::Remove(i) if len > 0 => {
                body.remove(i % len);
            }
            Mutation::Insert(i, b) => body.insert(i % (len + 1), b),
            Mutation::Replace(i, b) if len > 0 => body[i % len] = b,
            _ => {}
        }
    }
    body
}

/// Bodies to try: valid, mutated, or noise from the framing alphabet.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => valid_body(),
        5 => (valid_body(), prop::collection::vec(mutation(), 1..4))
            .prop_map(|(b, m)| mutate(b, &m)),
        1 => prop::collection::vec(framing_byte(), 0..64),
    ]
}

fn cases() -> u32 {
    std::env::var("BASALT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        // Failures are reported with their minimal input; no files are written.
        failure_persistence: None,
        ..Config::default()
    })
}

/// A body for a failure message, shortened.
fn show(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(160)]).into_owned();
    match body.len() {
        n if n > 160 => format!("{text}... ({n} bytes)"),
        _ => text,
    }
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if ok {
        Ok(())
    } else {
        Err(TestCaseError::fail(what()))
    }
}

#[test]
fn the_guard_follows_chunked_bodies_as_the_reference_does() {
    // The guard keeps a timer, which needs a runtime to exist (it is never polled here).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _in_runtime = rt.enter();
    let strategy = (body(), prop::collection::vec(any::<usize>(), 0..6));
    let outcome = runner().run(&strategy, |(body, cuts)| {
        let input = [CHUNKED_HEAD, &body, NEXT].concat();
        // What the guard sees after the head: the body, then the next request.
        let stream = &input[CHUNKED_HEAD.len()..];
        let (expected, _) = reference(stream, Some(MAX_CHUNK_LINE));
        let Guarded {
            out,
            state,
            heads,
            fault,
            rejected,
        } = guard(&input, &cuts);
        let shown = || show(&body);
        check(input.starts_with(&out), || {
            format!("passed on bytes it was not sent: {:?}", shown())
        })?;
        match expected {
            Verdict::Complete(n) => {
                // The body ended at n: the bytes after it are the next request's head.
                check(fault.is_none(), || {
                    format!("a valid body was refused: {:?} {fault:?}", shown())
                })?;
                if n == body.len() {
                    check(
                        out == input && heads == 2 && state == State::Head && rejected.is_empty(),
                        || format!("body {:?}: {state:?}, {heads} heads", shown()),
                    )?;
                } else {
                    // Bytes after the body start a head of their own, judged as one.
                    check(heads >= 1 && out.len() >= CHUNKED_HEAD.len() + n, || {
                        format!("body {:?}", shown())
                    })?;
                }
            }
            Verdict::Malformed(at) => {
                check(state == State::Closed, || {
                    format!("malformed {:?} not cut off: {state:?}", shown())
                })?;
                check(
                    fault == Some((StatusCode::BAD_REQUEST, "malformed chunked request body")),
                    || format!("malformed {:?} not the client's fault: {fault:?}", shown()),
                )?;
                check(rejected == ["framing"], || format!("counted {rejected:?}"))?;
                let passed = &out[CHUNKED_HEAD.len()..];
                check(passed == &stream[..at], || {
                    format!(
                        "malformed {:?}: passed {:?}, well formed up to {at}",
                        shown(),
                        String::from_utf8_lossy(passed)
                    )
                })?;
            }
            Verdict::Incomplete => {
                check(
                    matches!(state, State::Chunked(_)) && fault.is_none() && heads == 1,
                    || format!("incomplete {:?}: {state:?} {fault:?}", shown()),
                )?;
            }
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

#[test]
fn the_chunk_follower_decodes_as_the_reference_does() {
    let strategy = (body(), prop::collection::vec(any::<usize>(), 0..6));
    let outcome = runner().run(&strategy, |(body, cuts)| {
        let input = [&body[..], NEXT].concat();
        let (expected, want) = reference(&input, None);
        let (verdict, data) = follower(&input, &cuts);
        let shown = || show(&body);
        match &expected {
            Verdict::Complete(_) | Verdict::Incomplete => {
                check(verdict == expected && data == want, || {
                    format!("{:?}: {verdict:?} != {expected:?}", shown())
                })?;
            }
            // The follower refuses byte by byte, so it may stop inside the broken line.
            Verdict::Malformed(_) => {
                check(
                    matches!(verdict, Verdict::Malformed(_)) && want.starts_with(&data),
                    || format!("{:?}: {verdict:?}, reference {expected:?}", shown()),
                )?;
            }
        }
        check(data.len() <= input.len(), || {
            "decoded more than sent".into()
        })
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

#[test]
fn the_guard_passes_length_bodies_whole_and_finds_the_next_head() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _in_runtime = rt.enter();
    let strategy = (
        prop::collection::vec(any::<u8>(), 0..200),
        0usize..220,
        prop::collection::vec(any::<usize>(), 0..6),
    );
    let outcome = runner().run(&strategy, |(bytes, declared, cuts)| {
        let head = format!("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: {declared}\r\n\r\n");
        let input = [head.as_bytes(), &bytes, NEXT].concat();
        let Guarded {
            out,
            state,
            heads,
            fault,
            ..
        } = guard(&input, &cuts);
        check(input.starts_with(&out) && fault.is_none(), || {
            "passed on bytes it was not sent".into()
        })?;
        if declared <= bytes.len() {
            // The body is the first `declared` bytes; what follows is judged as a head.
            check(heads >= 1 && state != State::Closed, || {
                format!("{state:?}")
            })?;
            if declared == bytes.len() {
                check(out == input && heads == 2 && state == State::Head, || {
                    format!("{state:?}, {heads} heads")
                })?;
            }
        } else if declared - bytes.len() >= NEXT.len() {
            // The next request's bytes are still body.
            let left = (declared - bytes.len() - NEXT.len()) as u64;
            let expect = if left == 0 {
                State::Head
            } else {
                State::Body(left)
            };
            check(out == input && heads == 1 && state == expect, || {
                format!("{state:?} != {expect:?}")
            })?;
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

#[test]
fn the_reference_knows_the_cases_of_issue_15() {
    for (body, verdict) in [
        (&b"2\nab\n0\n\n"[..], Verdict::Malformed(0)),
        (b"2\r\nab\r\n0\r\n\r\n", Verdict::Complete(12)),
        (b"fffffffffffffffff\r\n", Verdict::Malformed(0)),
        (b"0;x\n", Verdict::Malformed(0)),
        (b"2\r\nabX", Verdict::Malformed(5)),
        (b"3 ;e\r\nabc\r\n0\r\nT: 1\r\n\r\n", Verdict::Complete(22)),
        (b"5\r\nab", Verdict::Incomplete),
    ] {
        assert_eq!(reference(body, Some(4096)).0, verdict, "{body:?}");
    }
}
