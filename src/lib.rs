//! DurableOrchestrator: durable orchestrations for Azure Functions custom handlers.
//!
//! Layers, each depending only on the ones before it: [`engine`] (pure replay), the storage and
//! runtime layers (to come), then [`handler`] (the HTTP surface the Functions host calls).
//! [`testkit`] runs orchestrations in memory for tests and benchmarks.

pub mod engine;
pub mod handler;
pub mod runtime;
pub mod store;
pub mod testkit;
