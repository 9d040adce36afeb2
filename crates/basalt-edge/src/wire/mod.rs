//! HTTP/1 on the wire, for everything in Basalt that reads or writes it by hand: request
//! and response heads (`head`: parsed with httparse in place, status and header lines
//! written), the chunked coding both ways (`chunked`), the `Date` line cache (`date`), the
//! framing guard that checks every head before hyper sees it (`guard`), the bound on a
//! blocked write (`stall`) and the look at a connection's first head before it is handed
//! to hyper untouched (`peek`).
//!
//! A leaf: it imports nothing else of the edge, so the fast path (`h1`), the listener,
//! the service and the binary's realtime streams all build on the same codec and are
//! tested once, here (`guard/fuzz.rs` holds the proptest against a reference decoder;
//! `crates/basalt-edge/fuzz` the cargo fuzz targets, run by `scripts/fuzz.sh`).

pub mod chunked;
pub mod date;
pub mod guard;
pub mod head;
pub mod peek;
pub mod stall;
