//! What a custom-handler worker and the Functions host (or the dev host standing in for it)
//! share: the invocation payloads, the storage connection settings both read, and how the
//! process is asked to stop.

pub mod connection;
pub mod invocation;
pub mod jsonc;
pub mod shutdown;
