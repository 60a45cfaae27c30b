//! DurableOrchestrator: durable orchestrations for Azure Functions custom handlers.
//!
//! Layers, each depending only on the ones before it: [`engine`] (pure replay), [`store`]
//! (backends: in memory, Azure), [`runtime`] (message processing with the crash-safe
//! checkpoint), then [`handler`] (the HTTP surface the Functions host calls); [`workflows`]
//! registers the app's orchestrations. [`devhost`] holds the development stand-in for the
//! Functions host; [`testkit`] runs orchestrations in memory for tests and benchmarks.

pub mod devhost;
pub mod engine;
pub mod handler;
pub mod runtime;
pub mod shutdown;
pub mod store;
pub mod testkit;
pub mod workflows;
