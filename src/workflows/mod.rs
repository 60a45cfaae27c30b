//! The app's workflows and activities, registered in one place. The seed workflows (sync, claim
//! approval, order processing, medallion pipeline) arrive with issue 5; until then the worker
//! serves the engine with an empty registry.

use crate::engine::{Registry, RegistryError};

pub fn registry() -> Result<Registry, RegistryError> {
    Registry::builder().build()
}
