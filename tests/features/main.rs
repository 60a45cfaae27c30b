//! Context feature tests: each feature of the orchestration API driven through the in-memory
//! runtime (and hand-written histories where the exact event order matters).

mod common;
mod activities;
