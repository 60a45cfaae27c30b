//! JSON values in the artifact store, as activities read and write them: every failure becomes
//! an activity failure naming the blob, which a retry policy may retry.

use serde::de::DeserializeOwned;
use serde::Serialize;

use durable_engine::ActivityError;
use durable_store::artifacts::ArtifactStore;

fn encode(name: &str, value: &impl Serialize) -> Result<Vec<u8>, ActivityError> {
    serde_json::to_vec(value)
        .map_err(|e| ActivityError::new(format!("could not serialize artifact '{name}': {e}")))
}

pub(super) async fn put(
    store: &dyn ArtifactStore,
    name: &str,
    value: &impl Serialize,
) -> Result<(), ActivityError> {
    Ok(store.put(name, encode(name, value)?).await?)
}

/// Writes `value` unless `name` exists, and returns what the blob holds afterwards: `value`, or
/// whatever an earlier run of the same side effect recorded.
pub(super) async fn put_if_absent<T: Serialize + DeserializeOwned>(
    store: &dyn ArtifactStore,
    name: &str,
    value: T,
) -> Result<T, ActivityError> {
    if store.put_if_absent(name, encode(name, &value)?).await? {
        return Ok(value);
    }
    get(store, name).await
}

/// The blob decoded; a missing blob is a failure, since callers only read what they were told
/// exists.
pub(super) async fn get<T: DeserializeOwned>(
    store: &dyn ArtifactStore,
    name: &str,
) -> Result<T, ActivityError> {
    let bytes = store
        .get(name)
        .await?
        .ok_or_else(|| ActivityError::new(format!("artifact '{name}' does not exist")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ActivityError::new(format!("artifact '{name}' is not valid: {e}")))
}
