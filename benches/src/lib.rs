//! Benchmarks live in benches/; run `cargo bench`.
