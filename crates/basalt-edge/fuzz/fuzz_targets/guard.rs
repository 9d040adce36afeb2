//! The framing guard (`wire::guard::GuardedIo`) judging what a client sends, whole and
//! cut in two at a point the first byte picks: nothing panics, and where the bytes are cut
//! does not change what is refused.
#![no_main]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use basalt_edge::wire::guard::{ConnState, GuardLimits, GuardedIo};
use libfuzzer_sys::fuzz_target;

fn judge(pieces: &[&[u8]]) -> Vec<&'static str> {
    let limits = GuardLimits {
        max_header_bytes: 8 * 1024,
        max_headers: 100,
        header_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        body_timeout: Duration::from_secs(60),
    };
    let refused = Arc::new(Mutex::new(Vec::new()));
    let seen = refused.clone();
    let on_reject = Arc::new(move |why: &'static str| {
        seen.lock().unwrap_or_else(|p| p.into_inner()).push(why);
    });
    let mut g = GuardedIo::new((), ConnState::new(), limits, on_reject);
    for p in pieces {
        g = g.with_read(p);
    }
    drop(g);
    let out = refused.lock().unwrap_or_else(|p| p.into_inner()).clone();
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&cut, data)) = input.split_first() else {
        return;
    };
    // The guard's timers need a runtime to exist; none of them fires here.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _enter = rt.enter();
    let cut = usize::from(cut).min(data.len());
    let whole = judge(&[data]);
    let split = judge(&[&data[..cut], &data[cut..]]);
    assert_eq!(whole, split, "split at {cut}");
});
