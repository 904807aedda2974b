//! The cost of one mirrored `tracing` span (placeholder while the layer is built).

fn main() {}
