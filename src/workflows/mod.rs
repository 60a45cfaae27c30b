//! The app's workflows and activities, registered in one place: sync processing, claim
//! approval, order processing, the medallion pipeline and the benchmark orchestrations.

mod bench;
mod claims;
mod json_blobs;
mod medallion;
mod orders;
mod settings;
pub mod sync;
#[cfg(test)]
mod testing;

use std::sync::Arc;
use std::time::Duration;

pub use settings::{SettingsError, WorkflowSettings};

use crate::engine::{Registry, RegistryError};
use crate::store::artifacts::ArtifactStore;

/// Every orchestrator and activity of the app. Activities that keep data (payments, pipeline
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
    bench::register(builder).build()
}

/// Stands in for an activity's real work. A zero delay takes no timer at all, so activities
/// also run outside tokio (the testkit polls them with a plain executor).
async fn simulate_work(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}
