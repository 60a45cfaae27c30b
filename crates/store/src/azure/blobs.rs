//! The task hub's `{hub}-largemessages` container: payloads too large for a queue message or a
//! table property, named under the escaped instance id so a purge can delete them by prefix.

use azure_storage_blobs::prelude::{BlobServiceClient, ContainerClient};
use futures::StreamExt;

use super::errors::{classify_unconditional, error_code, status};
use crate::backend::StoreError;
use crate::names::TaskHub;

/// Deletes in flight at once during a prefix purge.
const DELETE_CONCURRENCY: usize = 8;

#[derive(Debug, Clone)]
pub struct Blobs {
    container: ContainerClient,
}

impl Blobs {
    pub fn new(service: BlobServiceClient, hub: &TaskHub) -> Self {
        Self {
            container: service.container_client(hub.large_messages_container()),
        }
    }

    /// The container's name (for logs and errors).
    pub fn container_name(&self) -> &str {
        self.container.container_name()
    }

    /// Creates the container if it is missing.
    pub async fn create(&self) -> Result<(), StoreError> {
        create_container(&self.container).await
    }

    /// Uploads (or overwrites) a blob.
    pub async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.container
            .blob_client(name)
            .put_block_blob(bytes)
            .content_type("application/json")
            .await
            .map(|_| ())
            .map_err(|e| classify_unconditional(&format!("upload blob '{name}'"), e))
    }

    /// Downloads a blob; `None` if it does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.container.blob_client(name).get_content().await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if is_missing_blob(&e) => Ok(None),
            Err(e) => Err(classify_unconditional(
                &format!("download blob '{name}'"),
                e,
            )),
        }
    }

    /// Deletes every blob whose name starts with `prefix`, but `keep`; returns how many it
    /// deleted (blobs someone else deleted meanwhile are not counted).
    pub async fn delete_prefix(
        &self,
        prefix: &str,
        keep: Option<&str>,
    ) -> Result<usize, StoreError> {
        let operation = || format!("delete blobs under '{prefix}'");
        // List everything first: deleting while paging could shift the listing's markers.
        let mut names = Vec::new();
        let mut pages = self
            .container
            .list_blobs()
            .prefix(prefix.to_string())
            .into_stream();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify_unconditional(&operation(), e))?;
            names.extend(
                page.blobs
                    .blobs()
                    .map(|blob| blob.name.clone())
                    .filter(|name| Some(name.as_str()) != keep),
            );
        }
        // Bounded concurrency in fixed chunks: a stream combinator over borrowing closures
        // would make the future lose `Send`, which the Backend trait requires.
        let mut results: Vec<Result<bool, StoreError>> = Vec::with_capacity(names.len());
        for chunk in names.chunks(DELETE_CONCURRENCY) {
            let deletes: Vec<_> = chunk.iter().map(|name| self.delete(name)).collect();
            results.extend(futures::future::join_all(deletes).await);
        }
        let mut deleted = 0;
        for result in results {
            if result? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

impl Blobs {
    /// Deletes one blob; `false` if it was already gone.
    pub async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        match self.container.blob_client(name.to_string()).delete().await {
            Ok(_) => Ok(true),
            Err(e) if is_missing_blob(&e) => Ok(false),
            Err(e) => Err(classify_unconditional(&format!("delete blob '{name}'"), e)),
        }
    }
}

/// 404 for the blob itself; a missing container is a set-up error, not an absent blob.
fn is_missing_blob(error: &azure_core::Error) -> bool {
    status(error) == Some(404) && error_code(error).is_none_or(|code| code != "ContainerNotFound")
}

/// Creates `container` if it is missing.
pub async fn create_container(container: &ContainerClient) -> Result<(), StoreError> {
    match container.create().await {
        Ok(_) => Ok(()),
        // 409 ContainerBeingDeleted is also a conflict but not "already there"; let it fail.
        Err(e)
            if status(&e) == Some(409)
                && error_code(&e).is_none_or(|code| code == "ContainerAlreadyExists") =>
        {
            Ok(())
        }
        Err(e) => Err(classify_unconditional(
            &format!("create container '{}'", container.container_name()),
            e,
        )),
    }
}
