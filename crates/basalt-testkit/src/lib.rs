//! Dev-only test helpers: temp data dirs and a real server on an ephemeral port.
