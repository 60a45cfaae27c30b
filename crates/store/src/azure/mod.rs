//! Azure Storage backend: Tables for state and history, Queues for messages, Blobs for payloads.

pub mod artifacts;
pub mod backend;
pub mod blobs;
mod deferred;
pub mod errors;
mod history_rows;
mod known_summaries;
mod poison;
pub mod queues;
pub mod tables;
