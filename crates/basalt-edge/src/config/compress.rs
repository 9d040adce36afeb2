//! A route's `compress = { ... }` table: what the edge compresses on the way out, and how.

use serde::Deserialize;

/// A route's `compress = { ... }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressConfig {
    /// Content types compressed (a type, or a prefix ending in `/` such as `text/`).
    /// Default: text/*, JSON, JavaScript, XML, SVG, wasm.
    #[serde(default = "default_types")]
    pub types: Vec<String>,
    /// Bodies declared smaller than this many bytes are sent as they are. Default 1024.
    #[serde(default = "default_min_size")]
    pub min_size: u64,
    /// 1 (fastest) to 9 (smallest), the same scale for every encoding. Default: gzip 6,
    /// brotli 4, zstd 3.
    #[serde(default)]
    pub level: Option<u8>,
    /// Encodings offered, in the edge's order of preference. Default `["br", "zstd", "gzip"]`.
    #[serde(default = "default_encodings")]
    pub encodings: Vec<String>,
}

fn default_types() -> Vec<String> {
    [
        "text/",
        "application/json",
        "application/javascript",
        "application/xml",
        "application/wasm",
        "image/svg+xml",
    ]
    .map(String::from)
    .to_vec()
}
fn default_min_size() -> u64 {
    1024
}
fn default_encodings() -> Vec<String> {
    ["br", "zstd", "gzip"].map(String::from).to_vec()
}
