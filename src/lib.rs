//! The seed app: its workflows, activities and entities registered in one place (sync
//! processing, claim approval, order processing, the medallion pipeline, fraud detection with its
//! `CardActivity` entity, the benchmark orchestrations and the `Counter` entity), and its trigger
//! functions (the sync timer and queue functions, the fraud transactions' queue function).

mod bench;
mod claims;
mod counter;
mod decisions;
pub mod fraud;
mod json_blobs;
mod medallion;
mod orders;
mod settings;
mod splitmix;
pub mod sync;
#[cfg(test)]
mod testing;

use std::sync::Arc;
use std::time::Duration;

pub use settings::{SettingsError, WorkflowSettings};

use durable_engine::{Registry, RegistryError};
use durable_store::artifacts::ArtifactStore;
use durable_store::backend::Backend;
use durable_worker::functions::{RegisterError, TriggerFunctions};

/// Every orchestrator, activity and entity of the app. Activities that keep data (payments, pipeline
/// stages) keep it in `artifacts`.
pub fn registry(
    settings: &WorkflowSettings,
    artifacts: Arc<dyn ArtifactStore>,
) -> Result<Registry, RegistryError> {
    let builder = Registry::builder();
    let builder = sync::register(builder, settings);
    let builder = claims::register(builder, settings);
    let builder = orders::register(builder, settings, &artifacts);
    let builder = medallion::register(builder, settings, &artifacts);
    let builder = fraud::register(builder, settings, &artifacts);
    let builder = counter::register(builder);
    bench::register(builder).build()
}

/// The app's trigger functions besides the engine's: the sync workflow's timer and queue
/// functions, and fraud detection's queue function.
pub fn functions<B: Backend>() -> Result<TriggerFunctions<B>, RegisterError> {
    fraud::functions::register(sync::functions::register(TriggerFunctions::new())?)
}

/// Stands in for an activity's real work. A zero delay takes no timer at all, so tests and
/// benchmarks that configure none never wait.
async fn simulate_work(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}
