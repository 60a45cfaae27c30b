//! Replay and determinism tests: recorded JSON histories, every-prefix property tests, sessions
//! against `execute`, nondeterminism reports, duplicate and out-of-order completions, panics and
//! foreign awaits.

#[path = "../common/failure_details.rs"]
mod failure_details;
mod failures;
mod fixtures;
mod nondeterminism;
mod ordering_and_duplicates;
mod properties;
mod serde_format;
mod session;
