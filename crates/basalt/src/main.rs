//! The `basalt` binary: CLI, config and wiring (the composition root).

fn main() {}
