//! In-memory harness for running orchestrations end to end inside tests and benchmarks: a
//! single-threaded runtime with a manual clock, and a builder for hand-written histories.

mod runtime;

pub use runtime::{InMemoryRuntime, InstanceState, RuntimeError};
