//! Azure Storage backend: Tables for state and history, Queues for messages, Blobs for payloads.

pub mod connection;
