//! What the edge's integration tests share: real upstreams (`upstreams`: hyper servers
//! that answer, count, fail and stall on demand; `h1_upstream`: a scripted raw HTTP/1.1
//! upstream; `cache_origin`: a scripted origin for caching and compression; `l4`: TCP and
//! UDP echo servers), a raw HTTP/1.1 client with bounded reads (`h1_wire`), and test edge
//! configurations (`edge_config`).

pub mod cache_origin;
pub mod edge_config;
pub mod h1_upstream;
pub mod h1_wire;
pub mod l4;
pub mod upstreams;
