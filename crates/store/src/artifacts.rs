//! Named blobs that workflow activities keep their data in (pipeline stages, payment records):
//! the `ArtifactStore` trait, its error type, and the in-memory implementation for tests.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use super::backend::StoreError;

/// Azure's limit on a blob name, which every implementation enforces so behaviour matches.
const MAX_NAME_CHARS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    #[error("artifact name '{name}' is not valid: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error(transparent)]
    Storage(#[from] StoreError),
}

/// Named byte blobs shared by activities on every worker. Writes are whole-blob; `put_if_absent`
/// is the primitive for effectively-once side effects under at-least-once activities.
#[async_trait]
pub trait ArtifactStore: Send + Sync {
    /// Creates or overwrites `name`.
    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), ArtifactError>;

    /// The blob's bytes, or `None` if there is no such blob.
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, ArtifactError>;

    /// Creates `name` only if it does not exist; `false` (and nothing written) if it did.
    async fn put_if_absent(&self, name: &str, bytes: Vec<u8>) -> Result<bool, ArtifactError>;

    /// Names starting with `prefix`, in lexicographic order.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, ArtifactError>;
}

/// Refuses names no implementation could store the same way.
pub(crate) fn check_name(name: &str) -> Result<(), ArtifactError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.chars().count() > MAX_NAME_CHARS {
        "it is longer than 1024 characters"
    } else if name.ends_with(['/', '\\', '.']) || name.starts_with('/') {
        // Azure drops trailing dots and slashes, and the SDK a leading slash: the blob would be
        // stored under another name than the one asked for.
        "it starts with '/' or ends with '/', '\\' or '.'"
    } else if name
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        // URL path resolution would collapse these segments.
        "it has a '.' or '..' segment"
    } else {
        return Ok(());
    };
    Err(ArtifactError::InvalidName {
        name: name.to_string(),
        reason,
    })
}

/// An [`ArtifactStore`] in process memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryArtifactStore {
    blobs: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemoryArtifactStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn blobs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        // A panic while holding the lock cannot leave the map half-updated: every change is a
        // single insert.
        self.blobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl ArtifactStore for MemoryArtifactStore {
    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), ArtifactError> {
        check_name(name)?;
        self.blobs().insert(name.to_string(), bytes);
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, ArtifactError> {
        check_name(name)?;
        Ok(self.blobs().get(name).cloned())
    }

    async fn put_if_absent(&self, name: &str, bytes: Vec<u8>) -> Result<bool, ArtifactError> {
        check_name(name)?;
        let mut blobs = self.blobs();
        if blobs.contains_key(name) {
            return Ok(false);
        }
        blobs.insert(name.to_string(), bytes);
        Ok(true)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, ArtifactError> {
        Ok(self
            .blobs()
            .range(prefix.to_string()..)
            .map(|(name, _)| name)
            .take_while(|name| name.starts_with(prefix))
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use futures_executor::block_on;

    use super::*;

    #[test]
    fn put_get_and_overwrite() {
        let store = MemoryArtifactStore::new();
        block_on(async {
            assert_eq!(store.get("a/b.json").await.unwrap(), None);
            store.put("a/b.json", b"one".to_vec()).await.unwrap();
            store.put("a/b.json", b"two".to_vec()).await.unwrap();
            assert_eq!(store.get("a/b.json").await.unwrap(), Some(b"two".to_vec()));
        });
    }

    #[test]
    fn put_if_absent_writes_once() {
        let store = MemoryArtifactStore::new();
        block_on(async {
            assert!(store.put_if_absent("k", b"first".to_vec()).await.unwrap());
            assert!(!store.put_if_absent("k", b"second".to_vec()).await.unwrap());
            assert_eq!(store.get("k").await.unwrap(), Some(b"first".to_vec()));
        });
    }

    #[test]
    fn list_returns_only_the_prefix_in_order() {
        let store = MemoryArtifactStore::new();
        block_on(async {
            for name in ["p/2", "p/1", "q/1", "p", "o/9"] {
                store.put(name, Vec::new()).await.unwrap();
            }
            assert_eq!(store.list("p/").await.unwrap(), ["p/1", "p/2"]);
            assert_eq!(store.list("p").await.unwrap(), ["p", "p/1", "p/2"]);
            assert!(store.list("z").await.unwrap().is_empty());
            assert_eq!(store.list("").await.unwrap().len(), 5);
        });
    }

    #[test]
    fn names_azure_cannot_hold_are_refused() {
        let store = MemoryArtifactStore::new();
        block_on(async {
            let names = [
                String::new(),
                "a/".into(),
                "/a".into(),
                "a.".into(),
                "a\\".into(),
                "a/../b".into(),
                "./a".into(),
                "x".repeat(1025),
            ];
            for name in names {
                let error = store.put(&name, Vec::new()).await.unwrap_err();
                assert!(
                    matches!(error, ArtifactError::InvalidName { .. }),
                    "{name}: {error}"
                );
            }
            store.put(&"x".repeat(1024), Vec::new()).await.unwrap();
            store.put("a/.b/c..d/e.json", Vec::new()).await.unwrap();
        });
    }
}
