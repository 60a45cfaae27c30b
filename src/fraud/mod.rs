//! Real-time fraud detection on card transactions (issue 19): the `FraudTransactions` queue
//! function, the `CardActivity` entity that judges each card's transactions by the rules, the
//! `FraudReview` orchestration a match starts, and generated transaction streams.

pub mod entity;
pub mod functions;
pub mod review;
pub mod rules;
pub mod stream;

use std::sync::Arc;

use crate::WorkflowSettings;
use durable_engine::RegistryBuilder;
use durable_store::artifacts::ArtifactStore;

/// The fraud workflow's entity, orchestrator and activities.
pub(crate) fn register(
    builder: RegistryBuilder,
    settings: &WorkflowSettings,
    artifacts: &Arc<dyn ArtifactStore>,
) -> RegistryBuilder {
    entity::register(review::register(builder, settings, artifacts))
}
