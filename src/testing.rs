//! Shared set-up for the workflow tests: settings small enough to run instantly, a runtime over
//! the full registry with an in-memory artifact store, and what an instance shows and scheduled.

use std::sync::Arc;
use std::time::Duration;

use super::{registry, WorkflowSettings};
use durable_engine::{EventKind, OrchestrationStatus, Registry};
use durable_runtime::testkit::InMemoryRuntime;
use durable_store::artifacts::MemoryArtifactStore;
use serde_json::Value;

/// What the tests run with: no simulated work, millisecond retries, a two-second approval wait,
/// a one-minute fraud review.
pub fn settings() -> WorkflowSettings {
    WorkflowSettings {
        sync_work_delay: Duration::ZERO,
        sync_retry_first_interval: Duration::from_millis(10),
        claim_approval_timeout: Duration::from_secs(2),
        payment_retry_first_interval: Duration::from_millis(10),
        payment_retry_backoff_coefficient: 2.0,
        payment_retry_max_attempts: 5,
        activity_work_delay: Duration::ZERO,
        fraud_review_timeout: Duration::from_secs(60),
    }
}

/// The app's registry over a fresh in-memory artifact store, for calling activities directly.
pub fn registry_and_store() -> (Registry, Arc<MemoryArtifactStore>) {
    let artifacts = Arc::new(MemoryArtifactStore::new());
    let registry = registry(&settings(), artifacts.clone()).expect("the registry is valid");
    (registry, artifacts)
}

pub fn runtime() -> (InMemoryRuntime, Arc<MemoryArtifactStore>) {
    let (registry, artifacts) = registry_and_store();
    (InMemoryRuntime::new(registry), artifacts)
}

/// The instance's custom status as JSON.
pub fn custom_status(rt: &InMemoryRuntime, instance_id: &str) -> Value {
    let state = rt.state(instance_id).expect("the instance exists");
    state.custom_status_as().expect("the custom status is JSON")
}

/// The output of the instance, checked to have completed.
pub fn completed_output(rt: &InMemoryRuntime, instance_id: &str) -> Value {
    let state = rt.state(instance_id).expect("the instance exists");
    assert_eq!(state.status, OrchestrationStatus::Completed, "{state:?}");
    state.output_as().expect("the output is JSON")
}

/// Names of the activities the instance's current execution scheduled, in order.
pub fn scheduled(rt: &InMemoryRuntime, instance_id: &str) -> Vec<String> {
    rt.history(instance_id)
        .expect("the instance exists")
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::TaskScheduled { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}
