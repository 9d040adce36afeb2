//! Logs and metrics shared by every crate: subscriber set-up and the metrics registry.
//! It must never know about any other Basalt crate.
