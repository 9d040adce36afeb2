//! The chunked-body follower (`wire::chunked::Chunks`) the fast path, the upstream client
//! and the framing guard share. The first byte picks a split point: following the rest
//! in two pieces must give the verdict following it whole gives, and decoding it with
//! `next_data` must agree with `feed` on where (and whether) the body ends.
#![no_main]

use basalt_edge::wire::chunked::Chunks;
use libfuzzer_sys::fuzz_target;

/// Where the body ends in `data` (`Ok(Some(n))`), `Ok(None)` when it needs more, `Err`
/// for broken framing.
fn whole(data: &[u8]) -> Result<Option<usize>, ()> {
    let mut c = Chunks::new();
    let n = c.feed(data)?;
    Ok(c.done().then_some(n))
}

fuzz_target!(|input: &[u8]| {
    let Some((&cut, data)) = input.split_first() else {
        return;
    };
    let want = whole(data);
    let cut = usize::from(cut).min(data.len());
    let mut c = Chunks::new();
    let split = c.feed(&data[..cut]).and_then(|n| {
        if c.done() {
            return Ok(Some(n));
        }
        let m = c.feed(&data[cut..])?;
        Ok(c.done().then_some(cut + m))
    });
    assert_eq!(want, split, "split at {cut}");

    // `next_data` walks the same grammar, handing out data runs.
    let mut d = Chunks::new();
    let mut pos = 0;
    let decoded = loop {
        match d.next_data(&data[pos..]) {
            Err(()) => break Err(()),
            Ok((framing, 0)) => {
                pos += framing;
                if d.in_trailers() {
                    break d.feed(&data[pos..]).map(|n| d.done().then_some(pos + n));
                }
                break Ok(None);
            }
            Ok((framing, run)) => pos += framing + run,
        }
    };
    assert_eq!(want, decoded);
});
