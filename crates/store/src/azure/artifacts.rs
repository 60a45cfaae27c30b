//! The task hub's `{hub}-artifacts` container: an [`ArtifactStore`] for the workflows' own data,
//! kept apart from the engine's large-message container so a purge of one never touches the other.

use async_trait::async_trait;
use azure_core::request_options::IfMatchCondition;
use azure_storage_blobs::prelude::{BlobServiceClient, ContainerClient};
use futures::StreamExt;

use super::blobs::create_container;
use super::errors::{classify_unconditional, error_code, status};
use crate::artifacts::{check_name, ArtifactError, ArtifactStore};
use crate::names::TaskHub;

#[derive(Debug, Clone)]
pub struct AzureArtifactStore {
    container: ContainerClient,
}

impl AzureArtifactStore {
    pub fn new(service: BlobServiceClient, hub: &TaskHub) -> Self {
        Self {
            // Container names must be lowercase; hub names may not be.
            container: service
                .container_client(format!("{}-artifacts", hub.name().to_ascii_lowercase())),
        }
    }

    pub fn container_name(&self) -> &str {
        self.container.container_name()
    }

    /// Creates the container if it is missing.
    pub async fn create(&self) -> Result<(), ArtifactError> {
        Ok(create_container(&self.container).await?)
    }
}

#[async_trait]
impl ArtifactStore for AzureArtifactStore {
    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), ArtifactError> {
        check_name(name)?;
        self.container
            .blob_client(name)
            .put_block_blob(bytes)
            .await
            .map(|_| ())
            .map_err(|e| classify_unconditional(&format!("upload artifact '{name}'"), e).into())
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, ArtifactError> {
        check_name(name)?;
        match self.container.blob_client(name).get_content().await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if is_missing_blob(&e) => Ok(None),
            Err(e) => Err(classify_unconditional(&format!("download artifact '{name}'"), e).into()),
        }
    }

    /// A put with `If-None-Match: *`. Should the SDK retry a put whose first try landed, the
    /// retry sees the blob and reports `false`: callers treat "already there" as "done", which
    /// is what it is.
    async fn put_if_absent(&self, name: &str, bytes: Vec<u8>) -> Result<bool, ArtifactError> {
        check_name(name)?;
        let put = self
            .container
            .blob_client(name)
            .put_block_blob(bytes)
            .if_match(IfMatchCondition::NotMatch("*".to_string()))
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if is_existing_blob(&e) => Ok(false),
            Err(e) => Err(classify_unconditional(&format!("create artifact '{name}'"), e).into()),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, ArtifactError> {
        let mut listing = self.container.list_blobs();
        if !prefix.is_empty() {
            listing = listing.prefix(prefix.to_string());
        }
        let mut pages = listing.into_stream();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                classify_unconditional(&format!("list artifacts under '{prefix}'"), e)
            })?;
            names.extend(page.blobs.blobs().map(|blob| blob.name.clone()));
        }
        Ok(names)
    }
}

/// The conditional create lost: Azure answers 409 BlobAlreadyExists, some versions 412. A 409
/// with another code (a lease, a container being deleted) is a real failure.
fn is_existing_blob(error: &azure_core::Error) -> bool {
    match status(error) {
        Some(412) => true,
        Some(409) => error_code(error).is_none_or(|code| code == "BlobAlreadyExists"),
        _ => false,
    }
}

/// 404 for the blob itself; a missing container is a set-up error, not an absent artifact.
fn is_missing_blob(error: &azure_core::Error) -> bool {
    status(error) == Some(404) && error_code(error).is_none_or(|code| code != "ContainerNotFound")
}
