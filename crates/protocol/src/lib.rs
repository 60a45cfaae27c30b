//! What a custom-handler worker and the Functions host (or the dev host standing in for it)
//! share: the invocation payloads, the storage connection settings both read (and the clients
//! built from them, which count their storage requests), how the process is asked to stop, how
//! both log, and the export of trace spans.

pub mod connection;
pub mod invocation;
pub mod jsonc;
pub mod logging;
pub mod shutdown;
pub mod storage_requests;
pub mod telemetry;
