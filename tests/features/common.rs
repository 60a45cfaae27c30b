//! Shared registries and helpers for the feature tests.
