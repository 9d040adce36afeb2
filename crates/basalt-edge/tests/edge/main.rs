//! The edge's integration tests, in one test binary (each test binary links the whole
//! crate, so one binary builds and links once): a module per area, against real upstreams,
//! real sockets and, where a test needs one, a real server started by the test (Pebble for
//! ACME, dnsmasq for DNS discovery). Shared helpers live in `support`.
//!
//! Run one area with a filter: `cargo test -p basalt-edge --test edge -- l4_tcp::`; the
//! HTTP/3 tests need the feature: `cargo test -p basalt-edge --features http3 --test edge -- h3::`.

mod support;

mod acme;
mod balancing;
mod cache;
mod cache_tiers;
mod client_limits;
mod compress;
mod dns_discovery;
mod h1_semantics;
mod h2_upstream;
#[cfg(feature = "http3")]
mod h3;
mod l4_reload;
mod l4_tcp;
mod l4_udp;
mod protection;
mod protocol;
mod reload;
mod shutdown;
mod static_files;
mod tls;
mod upstream_connections;
mod workers;
