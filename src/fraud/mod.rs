//! Real-time fraud detection on card transactions (issue 19): the rules a card's activity is
//! judged by, the `FraudReview` orchestration a match starts, and generated transaction streams.
//! The `CardActivity` entity builds on the rules.

pub mod review;
pub mod rules;
pub mod stream;

use std::sync::Arc;

use crate::WorkflowSettings;
use durable_engine::RegistryBuilder;
use durable_store::artifacts::ArtifactStore;

/// The fraud workflow's orchestrators and activities.
pub(crate) fn register(
    builder: RegistryBuilder,
    settings: &WorkflowSettings,
    artifacts: &Arc<dyn ArtifactStore>,
) -> RegistryBuilder {
    review::register(builder, settings, artifacts)
}
