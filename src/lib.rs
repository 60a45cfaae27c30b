//! DurableOrchestrator: durable orchestrations for Azure Functions custom handlers.
//!
//! Layers, each depending only on the ones above it: [`engine`] (pure replay), then the storage,
//! runtime and handler layers; [`testkit`] runs orchestrations in memory for tests and benchmarks.

pub mod engine;
pub mod testkit;
