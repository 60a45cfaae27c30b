//! Storage: the backend trait the runtime persists through, and its implementations.

pub mod artifacts;
pub mod azure;
pub mod backend;
pub mod memory;
pub mod model;
pub mod names;
