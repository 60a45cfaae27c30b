//! A synchronous driver of the production runtime for tests and benchmarks: the real
//! [`crate::Runtime`] over the in-memory backend, on a manual clock, in a reproducible order.

mod runtime;

pub use runtime::{InMemoryRuntime, InstanceState};
