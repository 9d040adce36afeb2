//! The edge's error type: configuration problems (rejected before anything runs) and
//! start-up IO failures.

#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("invalid edge configuration: {0}")]
    Config(String),
    #[error("tls: {0}")]
    Tls(String),
    #[error("binding {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
}
